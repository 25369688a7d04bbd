"""The latent index: build from a tiny random VAE, cosine search, exclusions, popularity, versioning."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from factories import CHARS, random_corpus
from corpus.reader import Corpus
from search.files import INDEX_FILE, IndexMismatch, is_current, model_version
from search.index import Index, unit_rows
from model.index_build import build_index
from search.ivf import InvertedLists
from search.popularity import IN_TANG300, NOT_CANON, match_poems, popularity
from search.reasons import QueryPoem, reason
from search.themes import ThemeIndex
from verse.vocab import Vocab



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
    corpus = random_corpus(80, seed=1, authors=5)
    out = build_index(tiny_model_dir, tmp_path / "idx", size=50, corpus=corpus, canon_root=tmp_path / "none")
    index = Index.load(out, expect_version=model_version(tiny_model_dir))
    assert is_current(out, model_version(tiny_model_dir)) and index.weights is not None
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


def test_an_index_of_another_format_is_refused(tmp_path: Path) -> None:
    index = Index("v1", ["a"], np.ones((1, 8), dtype=np.float32), [{}], np.arange(1))
    index.save(tmp_path / "i")
    assert is_current(tmp_path / "i", "v1") and not is_current(tmp_path / "i", "v2")
    with np.load(tmp_path / "i" / INDEX_FILE) as data:
        arrays = dict(data)
    arrays["format"] = np.int64(1)
    np.savez(tmp_path / "i" / INDEX_FILE, **arrays)
    assert not is_current(tmp_path / "i", "v1")       # `poembot index build --if-stale` rebuilds it


def test_inverted_lists_find_what_a_full_scan_finds() -> None:
    rng = np.random.default_rng(0)
    # Clustered like poems of a few kinds, not uniform noise.
    centres = rng.normal(size=(40, 16))
    vectors = unit_rows(centres[rng.integers(40, size=4000)] + 0.4 * rng.normal(size=(4000, 16)))
    ids = [f"x{i}" for i in range(4000)]
    lists = InvertedLists.build(vectors, n_lists=200)
    assert sorted(lists.order.tolist()) == list(range(4000))       # every row in exactly one list
    index = Index("v", ids, vectors, [{} for _ in ids], np.arange(4000), lists=lists)
    found = []
    for row in rng.choice(4000, size=50, replace=False):
        got, _ = index.nearest(vectors[row], 10)
        want, _ = index.nearest(vectors[row], 10, exact=True)
        assert got[0] == row                   # a poem's own list is probed first
        found.append(len(set(got) & set(want)) / 10)
    assert np.mean(found) >= 0.9
    # Excluding more rows than the probed lists hold falls back to a full scan.
    got, _ = index.nearest(vectors[0], 5, excluded=range(1, 3990))
    assert set(got) <= {0, *range(3990, 4000)} and len(got) == 5


def poets_index() -> Index:
    """Twelve poems: 0-5 by one poet and nearest the query, 6-11 by six others, a little further."""
    rng = np.random.default_rng(1)
    query = unit_rows(rng.normal(size=(1, 8)))[0]
    vectors = unit_rows(np.stack([query + (0.05 if i < 6 else 0.3) * rng.normal(size=8) for i in range(12)]))
    meta = [{"title": f"题{i}", "author": "李白" if i < 6 else f"诗人{i}", "dynasty": "tang", "form": "五绝",
             "text": "明月松间照，清泉石上流。" if i == 7 else "白日依山尽，黄河入海流。", "rank": 0}
            for i in range(12)]
    canon = np.array([IN_TANG300 if i == 8 else NOT_CANON for i in range(12)], np.int8)
    return Index("v", [f"p{i}" for i in range(12)], vectors, meta, np.arange(12), canon=canon), query


def test_recommend_takes_one_poem_per_poet_and_says_why() -> None:
    index, query = poets_index()
    plain = [h["id"] for h in index.search(query, k=5)]
    assert all(int(pid[1:]) < 6 for pid in plain)             # cosine alone: five poems by 李白
    asked = [QueryPoem(["明月松间照", "清泉石上流"])]
    answer = index.recommend(query, k=5, query=asked)
    assert len({h["author"] for h in answer}) == 5 and answer[0]["author"] == "李白"
    why = {h["id"]: h["why"] for h in index.recommend(query, k=7, query=asked)}   # all seven poets
    assert len(why["p7"]["words"]) == 2 and all(len(w) == 2 for w in why["p7"]["words"])
    assert why["p6"]["words"] == ["流"]                         # 白日依山尽 shares only 流
    assert why["p8"]["canon"] == "唐诗三百首" and why["p7"]["canon"] is None
    assert why["p7"]["near"] is None                          # the poem asked about is not named
    # The cap gives way when the pool has too few poets; per_poet raises it.
    assert len(index.recommend(query, k=12, per_poet=1)) == 12
    assert sum(int(h["id"][1:]) < 6 for h in index.recommend(query, k=5, per_poet=5, diversity=0.0,
                                                             pop_weight=0.0)) == 5


def test_popularity_lifts_the_more_popular_of_two_equally_near_poems() -> None:
    vectors = unit_rows(np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))
    meta = [{"author": f"a{i}", "text": ""} for i in range(3)]
    index = Index("v", ["low", "high", "far"], vectors, meta, np.array([1, 2, 0]))
    assert index.popularity.tolist() == [0.0, 1.0, 0.5]      # from popular_order: row 1 first
    assert [h["id"] for h in index.recommend([1.0, 0.0], k=2)][0] == "high"
    assert [h["id"] for h in index.recommend([1.0, 0.0], k=2, pop_weight=0.0)][0] == "low"   # tie: row order


def test_why_names_the_nearest_taste_poem_and_rare_shared_words(monkeypatch) -> None:
    from search import themes
    monkeypatch.setattr(themes, "MIN_WORD_POEMS", 2)
    weights = ThemeIndex.build([["明月松间照", "清泉石上流"]] * 2 + [["白日依山尽", "黄河入海流"]] * 98,
                               np.zeros((100, 2), np.float32))
    a, b = np.array([1.0, 0.0], np.float32), np.array([0.0, 1.0], np.float32)
    taste = [QueryPoem(["白日依山尽", "黄河入海流"], a, liked=False, taste=True),
             QueryPoem(["明月松间照", "清泉石上流"], b, liked=True, taste=True)]
    why = reason("明月松间照，清泉石上流。", b, taste, weights, None)
    assert why["near"] == "明月松间照" and why["liked"] is True
    # 流 is in every poem: not imagery; the two-character words come first.
    assert len(why["words"]) == 2 and all(len(w) == 2 for w in why["words"]) and "流" not in why["words"]


def test_canon_poems_are_found_in_another_edition() -> None:
    corpus = Corpus()
    for k, lines in enumerate([["床前看月光", "疑是地上霜", "举头望山月", "低头思故乡"],
                               ["床前花影动", "门外马蹄霜", "举杯邀山月", "低头醉故乡"]]):
        corpus.append(id=f"c{k}", dynasty="tang", author="李白", title="静夜思", author_t="李白",
                      title_t="靜夜思", form="五绝", split="train", lines=lines, lines_t=lines,
                      puncts="，。，。", strains=None, rank=10)
    canon = [["床前明月光", "疑是地上霜", "举头望明月", "低头思故乡"], ["红豆生南国", "春来发几枝", "愿君多采撷", "此物最相思"]]
    assert match_poems(corpus, [0, 1], canon) == {0: 0}       # 18 of 20 characters agree; 红豆 is not there
    score = popularity(np.array([5.0, 1.0, 3.0]), np.array([NOT_CANON, IN_TANG300, NOT_CANON], np.int8))
    assert score.tolist() == [1.0, 1.0, 0.5]


def test_the_poem_asked_about_is_not_its_own_answer(monkeypatch) -> None:
    from search import reasons, themes
    from search.reasons import BREAKS

    # Twelve poems are too few for the corpus-wide thresholds of what counts as imagery.
    monkeypatch.setattr(themes, "MIN_WORD_POEMS", 1)
    monkeypatch.setattr(reasons, "MAX_WORD_SHARE", 0.5)
    monkeypatch.setattr(reasons, "MAX_CHAR_SHARE", 0.5)
    index, _ = poets_index()
    index.weights = ThemeIndex.build([BREAKS.split(m["text"]) for m in index.meta], index.vectors)
    assert index.recommend(index.vectors[7], k=1, pop_weight=0.0)[0]["id"] == "p7"   # its own nearest
    for pasted in (["明月松间照", "清泉石上流"], ["明月松间照", "清泉石下流"]):      # p7, in two editions
        ids = [h["id"] for h in index.recommend(index.vectors[7], k=5, query=[QueryPoem(pasted)])]
        assert "p7" not in ids and len(ids) == 5
