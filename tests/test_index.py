"""The latent index: build from a tiny random VAE, cosine search, exclusions, popularity, versioning."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from model.corpus import Corpus
from model.forms import FORMS
from model.index import Index, IndexMismatch, build_index, model_version, unit_rows
from model.vocab import Vocab

CHARS = "春夏秋冬风花雪月山水江天云雨人归来去明日"


def synthetic_corpus(n: int = 80, seed: int = 1) -> Corpus:
    rng = random.Random(seed)
    corpus = Corpus()
    names = list(FORMS)
    for k in range(n):
        form = FORMS[names[k % 4]]
        lines = ["".join(rng.choice(CHARS) for _ in range(form.line_len))
                 for _ in range(form.n_lines)]
        corpus.append(id=f"p{k}", dynasty="tang" if k % 2 else "song", author=f"作者{k % 5}",
                      title=f"题{k}", author_t=f"作者{k % 5}", title_t=f"題{k}", form=form.name,
                      split="train", lines=lines, lines_t=lines, puncts="，。" * (form.n_lines // 2),
                      strains=None, rank=k * 10)
    return corpus


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    from model.vae import VAEConfig, build_vae, save_model

    vocab = Vocab.build([CHARS], max_size=64, min_count=1)
    config = VAEConfig(vocab_size=len(vocab), emb_dim=16, enc_units=16, dec_units=24,
                       latent_dim=8, form_dim=4)
    directory = tmp_path_factory.mktemp("tiny_vae")
    save_model(build_vae(config), vocab, directory)
    return directory


def test_build_search_and_popular(tiny_model_dir: Path, tmp_path: Path) -> None:
    corpus = synthetic_corpus()
    out = build_index(tiny_model_dir, tmp_path / "idx", size=50, corpus=corpus)
    index = Index.load(out, expect_version=model_version(tiny_model_dir))
    assert len(index) == 50
    # the 50 most popular: rank = 10 * k, so ids p30..p79
    assert set(index.ids) == {f"p{k}" for k in range(30, 80)}
    assert index.popular(3)[0]["id"] == "p79"
    assert [e["id"] for e in index.popular(2, exclude_ids=["p79"])] == ["p78", "p77"]
    row = index.row["p40"]
    hits = index.search(index.vectors[row], k=5)
    assert hits[0]["id"] == "p40" and hits[0]["score"] == pytest.approx(1.0, abs=1e-3)
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert all({"title", "author", "dynasty", "text", "form"} <= set(h) for h in hits)
    hits = index.search(index.vectors[row], k=5, exclude_ids=["p40", "unknown"])
    assert "p40" not in [h["id"] for h in hits] and len(hits) == 5


def test_search_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    vectors = unit_rows(rng.normal(size=(500, 16)))
    ids = [f"x{i}" for i in range(500)]
    index = Index("v", ids, vectors, [{} for _ in ids], np.arange(500))
    query = rng.normal(size=16)
    want = sorted(range(500), key=lambda i: -float(vectors[i] @ query / np.linalg.norm(query)))[:7]
    assert [h["id"] for h in index.search(query, k=7)] == [f"x{i}" for i in want]
    assert len(index.search(query, k=600)) == 500
    assert index.search(np.zeros(16), k=3) == index.popular(3)   # no taste yet: popular poems
    with pytest.raises(ValueError):
        index.search(np.ones(3), k=1)


def test_version_mismatch_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    index = Index("aaaa", ["a"], np.ones((1, 8), dtype=np.float32), [{}], np.arange(1))
    index.save(tmp_path / "i")
    with pytest.raises(IndexMismatch, match="poembot index build"):
        Index.load(tmp_path / "i", expect_version=model_version(tiny_model_dir))
    with pytest.raises(FileNotFoundError):
        Index.load(tmp_path / "nothing")
