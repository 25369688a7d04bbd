"""Where poembot keeps downloaded and built data, from the environment.

POEMBOT_DATA_DIR (default ~/.cache/poembot) holds the corpus tarball and the built corpus.
POEMBOT_STYLES_DIR (default model/styles) holds the style adapters a worker serves.
"""
from __future__ import annotations

from pathlib import Path

EXTRACTED = "chinese-poetry"        # the package's folder under download_dir()
# The packages are siblings, in the repository and in site-packages alike.
PACKAGES_DIR = Path(__file__).resolve().parent.parent
PRETRAINED_DIR = PACKAGES_DIR / "model" / "pretrained"
SHIPPED_STYLES_DIR = PACKAGES_DIR / "model" / "styles"


def styles_dir() -> Path:
    from protocol.settings import PathsSettings      # it imports this module's constants

    return PathsSettings.from_env().styles_dir or SHIPPED_STYLES_DIR


def data_dir() -> Path:
    from protocol.settings import PathsSettings

    return PathsSettings.from_env().data_dir


def download_dir() -> Path:
    return data_dir() / "download"


def corpus_root(dest: Path | None = None) -> Path:
    """The extracted package (`poembot corpus fetch`; its poet.*.json files lie somewhere below it)."""
    return (dest or download_dir()) / EXTRACTED


def corpus_dir() -> Path:
    return data_dir() / "corpus"
