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

from verse.forms import FORM_NAMES, FORMS  # noqa: E402
from training.constrained import constrained_metrics, line_tone_fits, text_stats  # noqa: E402
from training.evaluate import evaluate  # noqa: E402
from training.likelihood import mutual_info  # noqa: E402
from training.neighbours import latent_neighbours, neighbour_rates, tfidf_bigram_neighbours  # noqa: E402

KEYS = ("test_nll_per_char", "test_nll_per_char_iw", "lm_test_nll_per_char", "kl_nats",
        "active_units", "active_units_02", "latent_dim", "mutual_info_nats", "form_valid_rate",
        "rhyme_rate", "tone_rate", "distinct_1", "distinct_2", "line_copy_rate", "duplicate_rate",
        "neighbour_same_form@10", "neighbour_same_poet@10", "tfidf_neighbour_same_form@10",
        "tfidf_neighbour_same_poet@10")
RATE_KEYS = tuple(f"constrained_{k}" for k in (
    "form_valid_rate", "rhyme_rate", "rhyme_rate_wujue", "rhyme_rate_qijue", "rhyme_rate_wulv",
    "rhyme_rate_qilv", "rhyme_rate_wuyan", "rhyme_rate_qiyan", "line_tone_rate", "line_copy_rate",
    "distinct_1", "distinct_2", "distinct_2_all", "top20_char_share", "duplicate_rate", "relaxed_rate",
    "not_novel_rate", "acrostic_success_rate", "acrostic_rhyme_rate", "ref_distinct_1", "ref_distinct_2",
    "ref_top20_char_share", "ref_rhyme_rate", "ref_line_tone_rate"))


@pytest.fixture(scope="module")
def evaluated_run(tiny_run: Path, tmp_path_factory) -> Path:
    """A copy of the session's tiny run (evaluate writes its report and plots into the run)."""
    import shutil
    return Path(shutil.copytree(tiny_run, tmp_path_factory.mktemp("evaluated") / "run"))


def test_evaluate_reports_every_key(evaluated_run, capsys):
    metrics = evaluate(str(evaluated_run), n=8, as_json=True, iw_k=10)
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
    report = (evaluated_run / "report.md").read_text()
    assert "## Targets" in report and report.count("### ") == 8     # eight interpolations
    for png in ("training_curves.png", "latents_pca.png", "kl_per_dim.png"):
        assert (evaluated_run / png).read_bytes()[:4] == b"\x89PNG"
    saved = json.loads((evaluated_run / "metrics.json").read_text())
    assert saved["train_steps"] == 30 and saved["kl_nats"] == metrics["kl_nats"]

    # The constrained decoder's section: structure and acrostics are hard constraints.
    for key in RATE_KEYS:
        assert key in printed and key in saved, key
        assert 0.0 <= metrics[key] <= 1.0, (key, metrics[key])
    assert metrics["constrained_n_generated"] == 32 and metrics["constrained_acrostic_n"] == 8
    assert metrics["constrained_errors"] == 0
    assert metrics["constrained_form_valid_rate"] == 1.0
    assert metrics["constrained_acrostic_success_rate"] == 1.0
    assert metrics["constrained_poems_per_second"] > 0
    section = report[report.index("## Targets: constrained decoder"):]
    assert "| form validity 100% | 1.0000 | yes |" in section
    assert "| acrostic requests succeed 100% | 1.0000 | yes |" in section
    samples = section[section.index("## Constrained samples"):section.index("## Acrostic samples")]
    assert samples.count("\n- ") == 8 and all(f"- {f}" in samples for f in FORM_NAMES)
    acrostic = section[section.index("## Acrostic samples"):section.index("## All metrics")]
    assert acrostic.count("\n- ") == 4 and acrostic.count("藏头「") == 4

    # Measures that see meaning, and the unselected samples beside the report.
    assert 0.0 <= printed["c2st_acc"] <= 1.0 and printed["c2st_n_test"] > 0
    assert printed["judge_nll_gen"] > 0 and printed["judge_nll_real"] > 0
    assert metrics["constrained_non_gbk_chars"] == 0 and metrics["constrained_best_of"] >= 1
    assert "c2st_acc <= 0.75" in report and "(samples.md)" in report
    samples_md = (evaluated_run / "samples.md").read_text()
    assert all(f"## {f}" in samples_md for f in FORM_NAMES) and samples_md.count("「") == 8


def test_constrained_metrics_on_the_prosody_model(tiny_generator):
    """With real rhyme groups in the vocabulary, rhyme and acrostics hold; copies and references count."""
    m, samples = constrained_metrics(tiny_generator, n=6, seed=3)
    assert m["constrained_n_generated"] == 24 and m["constrained_acrostic_n"] == 4
    assert m["constrained_form_valid_rate"] == 1.0
    assert m["constrained_relaxed_rate"] == 0.0
    assert m["constrained_rhyme_rate"] == 1.0 and m["constrained_acrostic_rhyme_rate"] == 1.0
    assert m["constrained_acrostic_success_rate"] == 1.0
    assert m["constrained_line_copy_rate"] is None and "constrained_ref_n" not in m
    assert m["constrained_not_novel_rate"] is None          # this generator has no novelty table
    poems = samples["lines"]
    assert [len(p) for p in poems] == [FORMS[f].n_lines for f in FORM_NAMES for _ in range(6)]

    # Same seed, same poems: one line of each poem as "training lines" gives a known copy rate, and
    # the poems as their own reference give the same text statistics.
    train = {p[0] for p in poems}
    n_lines = sum(len(p) for p in poems)
    expected = sum(line in train for p in poems for line in p) / n_lines
    reference = [(f, p) for f, p in zip([f for f in FORM_NAMES for _ in range(6)], poems)]
    again, same = constrained_metrics(tiny_generator, n=6, seed=3, train_lines=train, reference=reference)
    assert same["lines"] == poems
    assert again["constrained_line_copy_rate"] == pytest.approx(expected) and expected >= 24 / n_lines
    assert again["constrained_ref_distinct_2"] == pytest.approx(again["constrained_distinct_2"])
    assert again["constrained_ref_top20_char_share"] == pytest.approx(again["constrained_top20_char_share"])
    assert again["constrained_ref_rhyme_rate"] == 1.0


def _tone_chars() -> tuple[list[str], list[str]]:
    """Characters whose only 平水韵 tone is 平, and ones whose only tone is 仄 (from the committed tables)."""
    from verse import prosody
    from conftest import tiny_chars
    chars = tiny_chars()
    ping = [c for c in chars if prosody.tones(c) == frozenset({prosody.PING})]
    ze = [c for c in chars if prosody.tones(c) == frozenset({prosody.ZE})]
    return ping, ze


def test_line_tone_fits_counts_lines_against_the_named_pattern():
    from verse import prosody
    ping, ze = _tone_chars()
    pattern = "仄起首句不入韵"
    want = prosody.named_patterns("五绝")[pattern]
    lines = ["".join((ping if t == prosody.PING else ze)[k + 5 * i] for k, t in enumerate(tones))
             for i, tones in enumerate(want)]
    assert line_tone_fits(lines, "五绝", pattern) == [True, True, True, True]
    broken = list(lines)
    broken[2] = broken[2][0] + (ze[40] if want[2][1] == prosody.PING else ping[40]) + broken[2][2:]
    assert line_tone_fits(broken, "五绝", pattern) == [True, True, False, True]
    unknown = list(lines)
    unknown[1] = unknown[1][0] + "x" + unknown[1][2] + "y" + unknown[1][4]     # no known 2nd/4th tone
    assert line_tone_fits(unknown, "五绝", pattern) == [True, None, True, True]
    assert line_tone_fits(lines[:3], "五绝", None) == [False, False, False]


def test_text_stats_distinct_and_top_share():
    stats = text_stats([["山水山水"]])
    assert stats["distinct_1"] == 0.5
    assert stats["distinct_2"] == pytest.approx(2 / 3)          # 山水 水山 山水
    assert stats["top20_char_share"] == 1.0
    chars = "".join(chr(0x4E00 + k) for k in range(40))
    spread = text_stats([[chars[:20]], [chars[20:]]])
    assert spread["distinct_1"] == 1.0 and spread["top20_char_share"] == 0.5


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
    assert metrics["constrained_form_valid_rate"] == 1.0
    assert metrics["constrained_acrostic_success_rate"] == 1.0
    assert metrics["constrained_line_copy_rate"] is not None
