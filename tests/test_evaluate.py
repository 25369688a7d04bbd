"""Evaluation of a tiny trained model: every reported key, the report and plots, and the estimators.

The slow test (POEMBOT_SLOW=1) evaluates runs/real when a real training run has finished there.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from training.evaluate import (evaluate, latent_neighbours, mutual_info,  # noqa: E402
                               neighbour_rates, tfidf_bigram_neighbours)
from training.train import CONFIG_DIR, train  # noqa: E402

KEYS = ("test_nll_per_char", "test_nll_per_char_iw", "lm_test_nll_per_char", "kl_nats",
        "active_units", "active_units_02", "latent_dim", "mutual_info_nats", "form_valid_rate",
        "rhyme_rate", "tone_rate", "distinct_1", "distinct_2", "line_copy_rate", "duplicate_rate",
        "neighbour_same_form@10", "neighbour_same_poet@10", "tfidf_neighbour_same_form@10",
        "tfidf_neighbour_same_poet@10")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny_run")
    return train(str(CONFIG_DIR / "tiny.json"), str(out))


def test_evaluate_reports_every_key(tiny_run, capsys):
    metrics = evaluate(str(tiny_run), n=8, as_json=True, iw_k=10)
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in KEYS:
        assert key in metrics and key in printed
    assert metrics["n_generated"] == 32
    assert metrics["latent_dim"] == 32
    assert 0 <= metrics["active_units_02"] <= metrics["active_units"] <= 32
    assert metrics["test_nll_per_char_iw"] <= metrics["test_nll_per_char"] + 1e-3
    assert 0 < metrics["lm_test_nll_per_char"] < math.log(60)
    for key in ("form_valid_rate", "distinct_1", "distinct_2", "line_copy_rate", "duplicate_rate"):
        assert 0.0 <= metrics[key] <= 1.0
    report = (tiny_run / "report.md").read_text()
    assert "## Targets" in report and report.count("### ") == 8     # eight interpolations
    for png in ("training_curves.png", "latents_pca.png", "kl_per_dim.png"):
        assert (tiny_run / png).read_bytes()[:4] == b"\x89PNG"
    saved = json.loads((tiny_run / "metrics.json").read_text())
    assert saved["train_steps"] == 30 and saved["kl_nats"] == metrics["kl_nats"]


def test_mutual_info_is_near_zero_for_one_posterior_and_log_n_for_separate_ones():
    rng = np.random.default_rng(0)
    same = np.zeros((300, 4))
    assert abs(mutual_info(same, np.zeros((300, 4)))) < 0.1
    apart = rng.normal(scale=50.0, size=(300, 4))
    # The one-sample estimator has noise of about 0.08 nats here.
    assert mutual_info(apart, np.full((300, 4), -6.0)) == pytest.approx(math.log(300), abs=0.3)


def test_neighbours_find_the_near_copies():
    texts = ["山水风月花云", "山水风月花雨", "春秋江天人心", "春秋江天人意"]
    neigh = tfidf_bigram_neighbours(texts, 1)
    assert neigh[:, 0].tolist() == [1, 0, 3, 2]
    mu = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.0, 5.1]])
    assert latent_neighbours(mu, 1)[:, 0].tolist() == [1, 0, 3, 2]
    assert neighbour_rates(neigh, ["a", "a", "b", "b"]) == 1.0
    assert neighbour_rates(neigh, ["a", "b", "a", "b"]) == 0.0


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("POEMBOT_SLOW") != "1", reason="needs the built corpus; POEMBOT_SLOW=1")
def test_real_model_evaluation(tmp_path):
    run = Path(__file__).resolve().parents[1] / "runs" / "real"
    if not (run / "lm" / "weights.npz").exists():
        pytest.skip("no finished real training run in runs/real")
    metrics = evaluate(str(run), n=100, iw_poems=50)
    assert metrics["latent_dim"] >= 32
    assert metrics["test_nll_per_char_iw"] <= metrics["test_nll_per_char"]
    assert metrics["kl_nats"] > 1.0
