"""What /similar needs from the latent index, and a user's taste as one vector in latent space.

The bot only sees the small Index protocol below; the index itself (numpy over corpus μ vectors)
is loaded from a file without TensorFlow.
"""
from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Collection, Iterable, Protocol, Sequence

import numpy as np

from search.files import building_marker
from search.reasons import QueryPoem

log = logging.getLogger(__name__)

LIKE_WEIGHT = 3.0      # a liked poem says more about taste than one merely written
RECENCY_DECAY = 0.97   # older history counts a little less: entry i back weighs 0.97**i
TASTE_POEMS = 8        # liked, then recent, poems an answer's "why" may name (one Redis read each)
# While no index is loaded, /similar looks for one at most this often: a stat per look, but a burst
# of /similar must not turn into a burst of stats, and a refused index must not be re-read each time.
INDEX_RECHECK_S = 5.0


class Index(Protocol):
    """Nearest corpus poems by cosine similarity of μ vectors.

    Each hit is a dict with at least id, title, author, dynasty ("tang" | "song") and text
    (the poem with punctuation, couplets on separate lines), in simplified characters;
    recommend's hits also carry "why" (search.reasons.reason).
    """

    def search(self, vector: Sequence[float], k: int,
               exclude_ids: Collection[str] = ()) -> list[dict[str, Any]]: ...

    def recommend(self, vector: Sequence[float], k: int, exclude_ids: Collection[str] = (),
                  query: Sequence[QueryPoem] = ()) -> list[dict[str, Any]]: ...

    def popular(self, k: int, exclude_ids: Collection[str] = ()) -> list[dict[str, Any]]: ...

    def get(self, poem_id: str) -> dict[str, Any] | None: ...


def load_index(path: Path, expect_version: str | None = None) -> Index:
    """Load the index directory written by `poembot index build` (search.index: numpy, no TensorFlow).

    expect_version (search.files.model_version of the workers' model) refuses an index built for
    another model, whose neighbours would be meaningless.
    """
    from search.index import Index as LatentIndex

    return LatentIndex.load(path, expect_version=expect_version)


def find_index(model_dir: Path | None, index_path: Path | None) -> Index | None:
    """The index for the workers' model, or None (logged) when there is none or it does not match."""
    return IndexSource.for_model(model_dir, index_path).load_now()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:        # alive, another user's
        return True
    return True


def build_running(index_dir: Path) -> bool:
    """A background build of index_dir is running: its marker names a live process (a build that
    was killed leaves a marker naming a dead one, which does not count)."""
    try:
        pid = int(json.loads(building_marker(index_dir).read_text(encoding="utf-8"))["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return pid > 0 and _alive(pid)


class IndexSource:
    """The index for the workers' model, loaded when it appears: while none is loaded, get() looks for
    one (at most every recheck_s), so an index built in the background by `poembot run` is served
    without restarting the bot. The index is published by renaming a whole directory into place
    (model/index_build.publish), so a directory that exists holds a complete index."""

    def __init__(self, path: Path | None, version: str | None, recheck_s: float = INDEX_RECHECK_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(path) if path is not None else None
        self.version = version
        self.recheck_s = recheck_s
        self.clock = clock
        self.index: Index | None = None
        self._checked_at = -math.inf
        self._refused: float | None = None    # mtime of an index that failed to load: not re-read
        self._lock = asyncio.Lock()

    @classmethod
    def for_model(cls, model_dir: Path | None, index_path: Path | None, **kwargs: Any) -> "IndexSource":
        """The source for the model in model_dir (POEMBOT_INDEX_PATH when given, else the data dir's)."""
        from search.files import default_index_dir, model_version

        version = model_version(model_dir) if model_dir and (Path(model_dir) / "config.json").exists() else None
        path = index_path or (default_index_dir(version) if version else None)
        return cls(path, version, **kwargs)

    def _stamp(self) -> float | None:
        """The index's modification time, or None while there is none."""
        from search.files import META_FILE

        try:
            return (self.path / META_FILE).stat().st_mtime if self.path is not None else None
        except OSError:
            return None

    def load_now(self) -> Index | None:
        """Load the index if it is there (blocking; logged either way); None when it is not usable."""
        from search.files import IndexMismatch

        self._checked_at = self.clock()
        stamp = self._stamp()
        if stamp is None:
            where = f" at {self.path}" if self.path else ""
            if self.path is not None and build_running(self.path):
                log.info("no latent index%s yet: it is being built; /similar starts once it is there", where)
            else:
                log.warning("no latent index%s: /similar is off", where)
            return None
        if stamp == self._refused:
            return None
        try:
            self.index = load_index(self.path, expect_version=self.version)
        except (IndexMismatch, OSError, ValueError, KeyError) as exc:
            self._refused = stamp
            log.error("latent index not usable, /similar is off: %s", exc)
            return None
        log.info("latent index loaded from %s: %d poems", self.path, len(self.index))
        return self.index

    async def get(self) -> Index | None:
        """The index, loading it (on a thread) the first time it is found; cheap while none is there."""
        if self.index is not None or self.path is None:
            return self.index
        if self.clock() - self._checked_at < self.recheck_s:
            return None
        async with self._lock:          # one load, however many /similar arrive meanwhile
            if self.index is None and self.clock() - self._checked_at >= self.recheck_s:
                if self._stamp() is None:
                    self._checked_at = self.clock()
                else:
                    await asyncio.to_thread(self.load_now)
        return self.index

    def building(self) -> bool:
        """No index yet, and a background build of it is running."""
        return self.index is None and self.path is not None and build_running(self.path)


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
