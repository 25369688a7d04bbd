"""The latent index: VAE encoder means of popular corpus poems, searched by cosine similarity.

Building needs TensorFlow (`poembot index build`); loading and searching need only numpy, so the bot can use it.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from model.forms import FORMS
from model.paths import data_dir

INDEX_FILE = "index.npz"
META_FILE = "meta.json"
DEFAULT_SIZE = 60_000
# Files that define a model's behaviour; their hash is the version an index is tied to.
MODEL_FILES = ("config.json", "vocab.json", "weights.npz")


class IndexMismatch(RuntimeError):
    """The index was built for another model than the one in use."""


def model_version(model_dir: str | Path) -> str:
    digest = hashlib.sha256()
    for name in MODEL_FILES:
        path = Path(model_dir) / name
        if path.exists():
            digest.update(name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def default_index_dir(version: str) -> Path:
    return data_dir() / "index" / version


@dataclass
class Index:
    version: str
    ids: list[str]
    vectors: np.ndarray          # [N, Z] float32, unit length (float16 on disk)
    meta: list[dict]             # title, author, dynasty, form, text, rank — per row
    popular_order: np.ndarray    # row numbers by descending popularity

    def __post_init__(self) -> None:
        self.row = {pid: i for i, pid in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    def _rows(self, ids: Iterable[str]) -> list[int]:
        return [self.row[i] for i in ids if i in self.row]

    def get(self, poem_id: str) -> dict | None:
        """The entry of one poem by id, or None."""
        k = self.row.get(poem_id)
        return None if k is None else self.entry(k)

    def vector_of(self, poem_id: str) -> np.ndarray | None:
        k = self.row.get(poem_id)
        return None if k is None else self.vectors[k]

    def entry(self, row: int, score: float | None = None) -> dict:
        out = {"id": self.ids[row], **self.meta[row]}
        if score is not None:
            out["score"] = round(float(score), 4)
        return out

    def search(self, vector: Sequence[float] | np.ndarray, k: int = 5,
               exclude_ids: Iterable[str] = ()) -> list[dict]:
        """The k rows of highest cosine similarity to vector, skipping excluded ids."""
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        if query.shape[0] != self.vectors.shape[1]:
            raise ValueError(f"query has {query.shape[0]} dims, index has {self.vectors.shape[1]}")
        norm = float(np.linalg.norm(query))
        if not np.isfinite(norm) or norm == 0.0:
            return self.popular(k, exclude_ids)
        scores = self.vectors @ (query / norm)
        excluded = self._rows(exclude_ids)
        if excluded:
            scores[excluded] = -np.inf
        k = min(k, len(self) - len(set(excluded)))
        if k <= 0:
            return []
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top])]
        return [self.entry(int(r), scores[r]) for r in top]

    def popular(self, k: int = 5, exclude_ids: Iterable[str] = ()) -> list[dict]:
        excluded = set(self._rows(exclude_ids))
        out = []
        for r in self.popular_order:
            if int(r) not in excluded:
                out.append(self.entry(int(r)))
                if len(out) == k:
                    break
        return out

    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        np.savez(directory / INDEX_FILE, vectors=self.vectors.astype(np.float16),
                 popular_order=self.popular_order.astype(np.int32))
        payload = {"version": self.version, "ids": self.ids, "meta": self.meta}
        (directory / META_FILE).write_text(json.dumps(payload, ensure_ascii=False))
        return directory

    @classmethod
    def load(cls, directory: str | Path, expect_version: str | None = None) -> "Index":
        directory = Path(directory)
        if not (directory / META_FILE).exists():
            raise FileNotFoundError(f"no latent index at {directory}: run `poembot index build`")
        payload = json.loads((directory / META_FILE).read_text())
        if expect_version is not None and payload["version"] != expect_version:
            raise IndexMismatch(
                f"the index at {directory} was built for model {payload['version']}, but the model "
                f"in use is {expect_version}: run `poembot index build` again")
        with np.load(directory / INDEX_FILE) as data:
            vectors = data["vectors"].astype(np.float32)
            order = data["popular_order"].astype(np.int64)
        return cls(payload["version"], payload["ids"], vectors, payload["meta"], order)


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.maximum(norms, 1e-8)).astype(np.float32)


def choose_rows(corpus, size: int) -> list[int]:
    """The most popular regular-form poems (all four forms), ties broken by corpus order."""
    rows = corpus.indices(forms=tuple(FORMS))
    rows.sort(key=lambda i: -corpus.rank[i])
    return rows[:size]


def encode_texts(model, vocab, lines_list: list[list[str]], batch: int = 512,
                 progress: bool = False) -> np.ndarray:
    """Encoder means μ for poems of regular form (TensorFlow)."""
    import tensorflow as tf
    from tqdm import tqdm

    from model.forms import FORM_INDEX, classify

    order = sorted(range(len(lines_list)), key=lambda i: classify(lines_list[i]))
    out = np.zeros((len(lines_list), model.config.latent_dim), dtype=np.float32)
    encode = tf.function(lambda t, f: model.encode(t, f)[0], reduce_retracing=True)
    starts = range(0, len(order), batch)
    for start in tqdm(starts, desc="encoding", unit="batch", disable=not progress):
        chunk = order[start:start + batch]
        # Group by form so each call has one sequence length and no padding.
        by_form: dict[str, list[int]] = {}
        for i in chunk:
            by_form.setdefault(classify(lines_list[i]), []).append(i)
        for form, rows in by_form.items():
            if form not in FORM_INDEX:
                raise ValueError(f"poem {rows[0]} is not of a regular form")
            tokens = np.array([vocab.encode_lines(lines_list[i]) for i in rows], dtype=np.int32)
            forms = np.full(len(rows), FORM_INDEX[form], dtype=np.int32)
            out[rows] = encode(tf.constant(tokens), tf.constant(forms)).numpy()
    return out


def build_index(model_dir: str | Path, out_dir: str | Path | None = None,
                size: int = DEFAULT_SIZE, corpus=None) -> Path:
    """Encode the `size` most popular regular poems with the model and save the index."""
    from model.corpus import Corpus
    from model.vae import load_model

    version = model_version(model_dir)
    out = Path(out_dir) if out_dir else default_index_dir(version)
    corpus = corpus if corpus is not None else Corpus.load()
    model, vocab, _ = load_model(model_dir)
    rows = choose_rows(corpus, size)
    mu = encode_texts(model, vocab, [corpus.lines[i] for i in rows], progress=True)
    meta = [{"title": corpus.title[i], "author": corpus.author[i], "dynasty": corpus.dynasty[i],
             "form": corpus.form[i], "text": corpus.text(i), "rank": corpus.rank[i]} for i in rows]
    ranks = np.array([corpus.rank[i] for i in rows])
    popular = np.argsort(-ranks, kind="stable")
    index = Index(version, [corpus.id[i] for i in rows], unit_rows(mu), meta, popular)
    return index.save(out)
