"""Where poembot keeps downloaded and built data, read from the environment through PathsSettings.

POEMBOT_DATA_DIR (default ~/.cache/poembot) holds the corpus tarball and the built corpus.
POEMBOT_STYLES_DIR (default model/styles) holds the style adapters a worker serves.
The shipped folders (PRETRAINED_DIR, SHIPPED_STYLES_DIR) are the settings' defaults, so they live there.
"""
from __future__ import annotations

from pathlib import Path

from protocol.settings import SHIPPED_STYLES_DIR, PathsSettings

EXTRACTED = "chinese-poetry"        # the package's folder under download_dir()


def styles_dir() -> Path:
    return PathsSettings.from_env().styles_dir or SHIPPED_STYLES_DIR


def data_dir() -> Path:
    return PathsSettings.from_env().data_dir


def download_dir() -> Path:
    return data_dir() / "download"


def corpus_root(dest: Path | None = None) -> Path:
    """The extracted package (`poembot corpus fetch`; its poet.*.json files lie somewhere below it)."""
    return (dest or download_dir()) / EXTRACTED


def corpus_dir() -> Path:
    return data_dir() / "corpus"
