"""The index directory's files and the model version they are tied to: what the latent index
(search/index.py) and the theme index (search/themes.py) both read, so neither imports the other for it.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from protocol.paths import data_dir

INDEX_FILE = "index.npz"
META_FILE = "meta.json.gz"
INDEX_FORMAT = 2          # 2: every regular poem, raw μ, popularity, canon, inverted lists, themes
BUILDING_SUFFIX = ".building"
# Files that define a model's behaviour; their hash is the version an index (and a style) is tied to.
MODEL_FILES = ("config.json", "vocab.json", "weights.npz")
WEIGHTS_NAME = "weights.npz"


class IndexMismatch(RuntimeError):
    """The index was built for another model, or by an older poembot, than the one in use."""


def model_version(model_dir: str | Path) -> str:
    """The hash of what the model computes: its config and vocabulary files and its weights' arrays.

    The weights are hashed by content (each array's key, dtype, shape and values), not by the npz
    file's bytes: re-saving the same arrays in another container (compressed, say) once changed the
    version and silently unloaded every style trained on the model."""
    digest = hashlib.sha256()
    for name in MODEL_FILES:
        path = Path(model_dir) / name
        if not path.exists():
            continue
        digest.update(name.encode())
        if name == WEIGHTS_NAME:
            with np.load(path) as arrays:
                for key in arrays.files:
                    value = arrays[key]
                    digest.update(f"{key}:{value.dtype.str}:{value.shape}".encode())
                    digest.update(np.ascontiguousarray(value).tobytes())
        else:
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def default_index_dir(version: str) -> Path:
    return data_dir() / "index" / version


def building_marker(index_dir: Path) -> Path:
    """The file a background build of index_dir holds while it runs (run/prepare.py writes it; the bot's
    /similar reads it to answer "being built" rather than "not available")."""
    return index_dir.parent / (index_dir.name + BUILDING_SUFFIX)


def check_version(directory: Path, version: str | None, fmt: Any, expect_version: str | None) -> None:
    if fmt != INDEX_FORMAT:
        raise IndexMismatch(f"the index at {directory} has format {fmt}, this poembot reads "
                            f"{INDEX_FORMAT}: run `poembot index build` again")
    if expect_version is not None and version != expect_version:
        raise IndexMismatch(
            f"the index at {directory} was built for model {version}, but the model "
            f"in use is {expect_version}: run `poembot index build` again")


def load_mu(directory: str | Path, expect_version: str | None = None) -> np.ndarray:
    """The raw μ rows only (float16), for the worker's theme prior: no metadata is read."""
    directory = Path(directory)
    with np.load(directory / INDEX_FILE) as data:
        version = str(data["version"]) if "version" in data else None
        fmt = int(data["format"]) if "format" in data else None
        check_version(directory, version, fmt, expect_version)
        return data["mu"]


def is_current(directory: Path, version: str) -> bool:
    """An index of this format for this model version is already there (`--if-stale`)."""
    try:
        load_mu(directory, expect_version=version)
    except (OSError, IndexMismatch, KeyError, ValueError):
        return False
    return (directory / META_FILE).exists()
