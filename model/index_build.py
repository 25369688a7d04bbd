"""Build the latent index (`poembot index build`): encode every regular-form corpus poem with the VAE's
encoder (TensorFlow) and save the latent index and the theme index that search/index.py searches.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable

import numpy as np

from search.files import default_index_dir, model_version
from search.index import EXACT_BELOW, Index, unit_rows
from search.ivf import InvertedLists
from search.popularity import canon_membership, popularity, shared_rank
from search.themes import ThemeIndex
from verse.forms import FORMS

DEFAULT_SIZE = None       # None: every regular-form poem (~230k)


def choose_rows(corpus, size: int | None, canon_root: Path | None = None
                ) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Regular-form rows (all four forms) in descending popularity — canon poems first, then by
    shared rank, ties in corpus order — at most size of them; with their popularity and canon."""
    rows = corpus.indices(forms=tuple(FORMS))
    shared = shared_rank(corpus, rows)
    canon = canon_membership(corpus, rows, canon_root)
    pop = popularity(shared, canon)
    order = np.lexsort((np.arange(len(rows)), -shared, -pop))[:size]
    return [rows[k] for k in order], pop[order], canon[order]


def encode_texts(model, vocab, lines_list: list[list[str]], batch: int = 512,
                 progress: bool = False) -> np.ndarray:
    """Encoder means μ for poems of regular form (TensorFlow)."""
    import tensorflow as tf
    from tqdm import tqdm

    from verse.forms import FORM_INDEX, classify

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


def assemble(version: str, corpus, rows: list[int], mu: np.ndarray, pop: np.ndarray,
             canon: np.ndarray) -> tuple[Index, ThemeIndex]:
    """The latent and theme indexes from encoded rows (numpy; split from build_index so the
    benchmarks can reuse one encoding)."""
    meta = [{"title": corpus.title[i], "author": corpus.author[i], "dynasty": corpus.dynasty[i],
             "form": corpus.form[i], "text": corpus.text(i), "rank": corpus.rank[i]} for i in rows]
    vectors = unit_rows(mu)
    lists = InvertedLists.build(vectors) if len(rows) >= EXACT_BELOW else None
    themes = ThemeIndex.build([corpus.lines[i] for i in rows], mu)
    index = Index(version, [corpus.id[i] for i in rows], vectors, meta, np.arange(len(rows)),
                  pop, canon, lists, themes)
    return index, themes


def build_index(model_dir: str | Path, out_dir: str | Path | None = None,
                size: int | None = DEFAULT_SIZE, corpus=None, canon_root: Path | None = None) -> Path:
    """Encode the regular poems (the `size` most popular when given) and save the latent index and
    the theme index. canon_root: the chinese-poetry download (default: the data dir's)."""
    from corpus.reader import Corpus
    from model.vae import load_model
    from protocol.paths import corpus_root

    version = model_version(model_dir)
    out = Path(out_dir) if out_dir else default_index_dir(version)
    corpus = corpus if corpus is not None else Corpus.load()
    root = canon_root or corpus_root()
    rows, pop, canon = choose_rows(corpus, size, root if root.exists() else None)
    model, vocab, _ = load_model(model_dir)
    mu = encode_texts(model, vocab, [corpus.lines[i] for i in rows], progress=True)
    index, themes = assemble(version, corpus, rows, mu, pop, canon)
    return publish(out, lambda tmp: (index.save(tmp, mu=mu), themes.save(tmp)))


def publish(out: Path, write: Callable[[Path], object]) -> Path:
    """Run write(tmp) on a temporary sibling of out, then rename it to out: a reader (the bot and the
    worker re-check for an index while it is built) sees no index or a whole one, never a part."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)      # left by a build of this pid that was killed
    try:
        write(tmp)
        if out.exists():
            # A stale index (another format or model) goes aside first: rename cannot replace a
            # non-empty directory, and the gap in between reads as "no index", not a mixed one.
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
            shutil.rmtree(old, ignore_errors=True)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
