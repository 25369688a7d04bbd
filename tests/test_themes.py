"""The theme index: terms → popular poems and their mean μ, and the worker's theme prior from it
with no corpus on disk (as in the Docker image)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from search import themes as themes_mod
from factories import random_corpus
from model.requests import PoemRequest
from search.themes import THEME_POEMS, ThemeIndex, poem_terms



def test_poem_terms_are_characters_and_within_line_pairs() -> None:
    assert poem_terms(["春风", "明月"]) == {"春", "风", "明", "月", "春风", "明月"}   # no 风明


def test_terms_map_to_the_most_popular_poems_and_their_mean_mu(monkeypatch) -> None:
    monkeypatch.setattr(themes_mod, "MIN_WORD_POEMS", 5)
    # Centres are float16 on disk, hence rtol. Row order is popularity order; rows 0, 2, 5 and 7 hold 明月, the others hold 春风.
    lines = [["明月照山", "江水东流"] if i in (0, 2, 5, 7) else ["春风吹雨", "花落人归"] for i in range(10)]
    lines[9] = ["明月春风", "花落人归"]
    mu = np.arange(10, dtype=np.float32)[:, None] * np.ones((1, 4), np.float32)
    index = ThemeIndex.build(lines, mu)

    assert list(index.posting("明月")) == [0, 2, 5, 7, 9]
    assert int(index.df[index.slot["明月"]]) == 5 and "照山" not in index.slot   # 4 poems < MIN_WORD_POEMS
    np.testing.assert_allclose(index.prior(["明月"]), np.full(4, np.mean([0, 2, 5, 7, 9])), rtol=1e-3)
    # A word not held is read as its characters (照 and 山: rows 0, 2, 5, 7); unknown text: no prior.
    np.testing.assert_allclose(index.prior(["照山"]), np.full(4, np.mean([0, 2, 5, 7])), rtol=1e-3)
    assert index.prior(["龙"]) is None and index.prior([]) is None
    # Two words: the poems holding both are too few (one), so the mean of each word's prior.
    np.testing.assert_allclose(index.prior(["明月", "春风"]),
                               np.mean([index.prior(["明月"]), index.prior(["春风"])], axis=0), rtol=1e-3)
    # Two characters held together by 4 poems (>= MIN_SHARED): the mean of those poems.
    np.testing.assert_allclose(index.prior(["明", "江"]), np.full(4, np.mean([0, 2, 5, 7])), rtol=1e-3)


def test_theme_index_files_round_trip(tmp_path: Path) -> None:
    lines = [["春风吹雨", "花落人归"]] * 30
    mu = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
    built = ThemeIndex.build(lines, mu)
    built.save(tmp_path)
    loaded = ThemeIndex.load(tmp_path, mu=mu.astype(np.float16))
    assert loaded.terms == built.terms and loaded.n_poems == 30
    np.testing.assert_allclose(loaded.prior(["春风"]), mu[:THEME_POEMS].mean(axis=0), atol=2e-3)
    weights = ThemeIndex.load(tmp_path, centres=False)
    assert weights.idf("春风") == pytest.approx(0.0) and weights.idf("龙") == 0.0
    assert list(weights.posting("春风")) == list(range(30))


def test_theme_prior_works_without_a_corpus(tiny_model_dir: Path, tmp_path: Path, monkeypatch) -> None:
    """`poembot index build` writes the theme index; a worker on a machine with no corpus (the
    Docker image) finds the prior there, and it is the mean μ of the most popular poems with the word."""
    from model.index_build import build_index
    from model.generate import load_generator

    corpus = random_corpus(120, seed=3, authors=7)
    out = build_index(tiny_model_dir, tmp_path / "index", corpus=corpus, canon_root=tmp_path / "none")
    empty = tmp_path / "data"
    empty.mkdir()
    monkeypatch.setenv("POEMBOT_DATA_DIR", str(empty))          # no corpus, no download
    monkeypatch.setenv("POEMBOT_INDEX_PATH", str(out))
    generator = load_generator(tiny_model_dir)
    assert generator.themes is not None                          # no corpus was loaded for themes

    popular = sorted((i for i in range(len(corpus)) if "风" in "".join(corpus.lines[i])),
                     key=lambda i: -corpus.rank[i])[:THEME_POEMS]
    expected = generator.encode_lines([corpus.lines[i] for i in popular], [corpus.form[i] for i in popular])
    job = PoemRequest(form="五绝", seed=9, keywords=["风"], novelty=False)
    rows, refused = generator.plan([job])
    assert refused == [None]
    np.testing.assert_allclose(rows[0].theme, expected.mean(axis=0), atol=5e-3)   # float16 μ on disk
    result = generator.generate([PoemRequest(form="五绝", seed=9, keywords=["风"], novelty=False)])[0]
    assert result.ok and "风" in "".join(result.poems[0]["lines"])


def test_without_a_theme_index_a_theme_is_written_by_its_words_only(tiny_generator) -> None:
    assert getattr(tiny_generator, "themes", None) is None
    rows, _ = tiny_generator.plan([PoemRequest(form="五绝", seed=9, keywords=["风"], novelty=False)])
    assert rows[0].theme is None
