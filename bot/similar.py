"""What /similar needs from the latent index, and a user's taste as one vector in latent space.

The bot only sees the small Index protocol below; the index itself (numpy over corpus μ vectors)
is loaded from a file without TensorFlow.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Awaitable, Callable, Collection, Iterable, Protocol, Sequence

import numpy as np

from model.reasons import QueryPoem

log = logging.getLogger(__name__)

LIKE_WEIGHT = 3.0      # a liked poem says more about taste than one merely written
RECENCY_DECAY = 0.97   # older history counts a little less: entry i back weighs 0.97**i
TASTE_POEMS = 8        # liked, then recent, poems an answer's "why" may name (one Redis read each)


class Index(Protocol):
    """Nearest corpus poems by cosine similarity of μ vectors.

    Each hit is a dict with at least id, title, author, dynasty ("tang" | "song") and text
    (the poem with punctuation, couplets on separate lines), in simplified characters;
    recommend's hits also carry "why" (model.reasons.reason).
    """

    def search(self, vector: Sequence[float], k: int,
               exclude_ids: Collection[str] = ()) -> list[dict[str, Any]]: ...

    def recommend(self, vector: Sequence[float], k: int, exclude_ids: Collection[str] = (),
                  query: Sequence[QueryPoem] = ()) -> list[dict[str, Any]]: ...

    def popular(self, k: int, exclude_ids: Collection[str] = ()) -> list[dict[str, Any]]: ...

    def get(self, poem_id: str) -> dict[str, Any] | None: ...


def load_index(path: Path, expect_version: str | None = None) -> Index:
    """Load the index directory written by `poembot index build` (model.index: numpy, no TensorFlow).

    expect_version (model.index.model_version of the workers' model) refuses an index built for
    another model, whose neighbours would be meaningless.
    """
    from model.index import Index as LatentIndex

    return LatentIndex.load(path, expect_version=expect_version)


def find_index(model_dir: Path | None, index_path: Path | None) -> Index | None:
    """The index for the workers' model, or None (logged) when there is none or it does not match."""
    from model.index import IndexMismatch, default_index_dir, model_version

    version = model_version(model_dir) if model_dir and (Path(model_dir) / "config.json").exists() else None
    path = index_path or (default_index_dir(version) if version else None)
    if path is None or not Path(path).exists():
        log.warning("no latent index%s: /similar is off", f" at {path}" if path else "")
        return None
    try:
        return load_index(Path(path), expect_version=version)
    except (IndexMismatch, OSError, ValueError, KeyError) as exc:
        log.error("latent index not usable, /similar is off: %s", exc)
        return None


def _unit(vector: Iterable[float]) -> np.ndarray | None:
    v = np.asarray(list(vector), dtype=np.float32)
    norm = float(np.linalg.norm(v))
    if v.ndim != 1 or v.size == 0 or not np.isfinite(norm) or norm == 0.0:
        return None
    return v / norm


def taste_vector(history: list[dict[str, Any]], likes: dict[str, dict[str, Any]],
                 like_weight: float = LIKE_WEIGHT) -> np.ndarray | None:
    """Weighted mean direction of the μ of poems a user got (newest first) and liked; None if none.

    Vectors are unit-normalised first so one poem with a large μ cannot dominate, and vectors of
    a different size than the majority (an older model) are dropped.
    """
    weighted: list[tuple[np.ndarray, float]] = []
    for i, entry in enumerate(history):
        v = _unit(entry.get("mu") or [])
        if v is not None:
            weighted.append((v, RECENCY_DECAY ** i))
    for entry in likes.values():
        v = _unit(entry.get("mu") or [])
        if v is not None:
            weighted.append((v, like_weight))
    if not weighted:
        return None
    sizes = [v.size for v, _ in weighted]
    size = max(set(sizes), key=sizes.count)
    kept = [(v, w) for v, w in weighted if v.size == size]
    mean = sum(v * w for v, w in kept) / sum(w for _, w in kept)
    return _unit(mean)


async def taste_poems(load_poem: Callable[[str], Awaitable[Any]], history: list[dict[str, Any]],
                      likes: dict[str, dict[str, Any]], limit: int = TASTE_POEMS) -> list[QueryPoem]:
    """The poems behind a taste vector that an answer can be "near": the newest likes first, then
    the newest history; load_poem (BotState.load_poem) gives a record with .lines, or None once
    the poem expired."""
    picked: list[tuple[str, Any, bool]] = []
    for pid, entry in sorted(likes.items(), key=lambda kv: -float(kv[1].get("at") or 0)):
        picked.append((pid, entry.get("mu"), True))
    picked += [(str(e.get("pid")), e.get("mu"), False) for e in history if e.get("pid")]
    out: list[QueryPoem] = []
    seen: set[str] = set()
    for pid, mu, liked in picked:
        if len(out) == limit:
            break
        if pid in seen:
            continue
        seen.add(pid)
        lines = getattr(await load_poem(pid), "lines", None)
        if lines:
            out.append(QueryPoem(list(lines), _unit(mu or []), liked, taste=True))
    return out
