"""Where poembot keeps downloaded and built data, from the environment.

POEMBOT_DATA_DIR (default ~/.cache/poembot) holds the corpus tarball and the built corpus.
POEMBOT_STYLES_DIR (default model/styles) holds the style adapters a worker serves.
"""
from __future__ import annotations

import os
from pathlib import Path

EXTRACTED = "chinese-poetry"        # the package's folder under download_dir()
# The packages are siblings, in the repository and in site-packages alike.
PACKAGES_DIR = Path(__file__).resolve().parent.parent
PRETRAINED_DIR = PACKAGES_DIR / "model" / "pretrained"
SHIPPED_STYLES_DIR = PACKAGES_DIR / "model" / "styles"


def styles_dir() -> Path:
    return Path(os.environ.get("POEMBOT_STYLES_DIR") or SHIPPED_STYLES_DIR).expanduser()


def data_dir() -> Path:
    root = os.environ.get("POEMBOT_DATA_DIR") or str(Path.home() / ".cache" / "poembot")
    return Path(root).expanduser()


def download_dir() -> Path:
    return data_dir() / "download"


def corpus_root(dest: Path | None = None) -> Path:
    """The extracted package (`poembot corpus fetch`; its poet.*.json files lie somewhere below it)."""
    return (dest or download_dir()) / EXTRACTED


def corpus_dir() -> Path:
    return data_dir() / "corpus"
