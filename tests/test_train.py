"""Training on the synthetic corpus with the tiny config: end to end, resume, batching, schedules.

The slow test (POEMBOT_SLOW=1, needs the built corpus) checks the real config's first steps lower the loss.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from verse.forms import FORM_INDEX, FORMS, classify  # noqa: E402
from training.train import (CONFIG_DIR, LM_DIR, LOG_FILE, STATE_FILE, TrainConfig,  # noqa: E402
                            _learning_rate, encode_split, epoch_batches,
                            load_corpus_and_vocab, synthetic_corpus, train)

TINY = CONFIG_DIR / "tiny.json"


def log_rows(path: Path) -> list[dict]:
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_synthetic_corpus_has_all_forms_and_splits():
    corpus = synthetic_corpus(80, seed=1)
    assert {classify(lines) for lines in corpus.lines} == set(FORMS)
    assert all(classify(lines) == form for lines, form in zip(corpus.lines, corpus.form))
    assert {"train", "val", "test"} == set(corpus.split)
    assert list(synthetic_corpus(80, seed=1).lines) == list(corpus.lines)


def test_batches_hold_one_form_cover_the_data_and_replay():
    cfg = TrainConfig.load(TINY)
    corpus, vocab = load_corpus_and_vocab(cfg)
    data = encode_split(corpus, vocab, "train")
    for form, matrix in data.items():
        assert matrix.shape[1] == list(FORMS.values())[form].seq_len + 2
    def plan(epoch: int) -> list[tuple[int, tuple[int, ...]]]:
        return [(f, tuple(rows.tolist())) for f, rows in epoch_batches(data, 16, 3, epoch)]

    assert plan(0) == plan(0) and plan(0) != plan(1)
    batches = epoch_batches(data, 16, seed=3, epoch=0)
    seen = {f: set() for f in data}
    for form, rows in batches:
        assert len(rows) == 16
        seen[form].update(rows.tolist())
    for form, matrix in data.items():
        assert len(seen[form]) >= len(matrix) - 15      # only a ragged tail may be left out


def test_learning_rate_warms_up_then_decays_to_the_floor():
    cfg = TrainConfig(model={}, train={"lr": 1e-3, "lr_min_ratio": 0.1, "warmup_fraction": 0.1})
    assert _learning_rate(cfg, 0.05) == pytest.approx(5e-4)
    assert _learning_rate(cfg, 0.1) == pytest.approx(1e-3)
    assert _learning_rate(cfg, 0.55) == pytest.approx(5.5e-4)
    assert _learning_rate(cfg, 1.0) == pytest.approx(1e-4)


def test_tiny_training_runs_end_to_end(tiny_run):
    from model.vae import load_model

    model, vocab, config = load_model(tiny_run)
    assert config.use_latent and config.latent_dim == 32
    lm, _, lm_config = load_model(tiny_run / LM_DIR)
    assert not lm_config.use_latent and lm_config.word_dropout == 0.0
    rows = log_rows(tiny_run / LOG_FILE)
    assert [int(r["step"]) for r in rows] == [5, 10, 15, 20, 25, 30]
    per_char = [float(r["nll_per_char"]) for r in rows]
    assert all(np.isfinite(per_char)) and per_char[-1] < per_char[0]
    assert {float(r["beta"]) for r in rows} != {1.0}     # the annealing schedule ran
    lm_rows = log_rows(tiny_run / LM_DIR / LOG_FILE)
    assert int(lm_rows[-1]["step"]) == 30                 # the LM got the VAE's step count
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert metrics["train_steps"] == 30


def test_resume_continues_where_it_stopped(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)              # the session's run, stopped after its 30 steps
    first_weights = (run / "weights.npz").read_bytes()
    train(str(TINY), str(run), resume=True, max_steps=40)
    state = json.loads((run / STATE_FILE).read_text())
    assert state["step"] == 40 and state["position"] > 0
    assert [int(r["step"]) for r in log_rows(run / LOG_FILE)] == [5, 10, 15, 20, 25, 30, 35, 40]
    assert (run / "weights.npz").read_bytes() != first_weights
    assert json.loads((run / LM_DIR / STATE_FILE).read_text())["step"] == 40
    # A fresh (non-resumed) run starts over (the VAE's log says so; its judge LM is not needed).
    train(str(_tiny_variant(tmp_path)), str(run), resume=False, max_steps=5)
    assert [int(r["step"]) for r in log_rows(run / LOG_FILE)] == [5]


def _tiny_variant(tmp_path: Path, **train_overrides) -> Path:
    cfg = json.loads(TINY.read_text())
    cfg["train"].update(train_overrides)
    cfg["lm"]["enabled"] = False
    path = tmp_path / "variant.json"
    path.write_text(json.dumps(cfg))
    return path


def test_a_new_run_starts_from_a_trained_model_and_carries_its_hours(tiny_run, tmp_path):
    base = tiny_run
    base_state = json.loads((base / STATE_FILE).read_text())
    config = _tiny_variant(tmp_path, num_sampled=8, exact_from=0.5)
    from model.vae import load_model
    from training.train import VAL_LOG_FILE

    # Two steps at a tiny learning rate: the validation loss stays where the base model's was,
    # which a random initialisation would not.
    cfg = json.loads(config.read_text())
    cfg["train"]["lr"] = 1e-9
    config.write_text(json.dumps(cfg))
    out = tmp_path / "continued"
    train(str(config), str(out), max_steps=2, init=str(base))
    state = json.loads((out / STATE_FILE).read_text())
    assert state["init_from"] == str(base) and state["step"] == 2
    assert state["cumulative_hours"] > base_state["cumulative_hours"]
    assert state["val_nll_per_char"] == pytest.approx(base_state["val_nll_per_char"], abs=0.02)
    rows = log_rows(out / VAL_LOG_FILE)
    assert float(rows[-1]["cumulative_hours"]) >= base_state["cumulative_hours"]
    load_model(out)  # saved as a normal model folder
    # The history holds the base run's validations, then this run's, hours increasing.
    history = log_rows(out / "val_history.csv")
    assert [r["run"] for r in history] == [base.name] * len(log_rows(base / VAL_LOG_FILE)) + ["continued"]
    hours = [float(r["cumulative_hours"]) for r in history]
    assert hours == sorted(hours)


def test_resume_on_a_folder_with_weights_but_no_checkpoint_starts_from_them(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    shutil.rmtree(run / "ckpt")
    before = json.loads((run / STATE_FILE).read_text())
    train(str(_tiny_variant(tmp_path, num_sampled=8)), str(run), resume=True, max_steps=3)
    state = json.loads((run / STATE_FILE).read_text())
    assert state["init_from"] == str(run) and state["step"] == 3
    assert state["base_hours"] == pytest.approx(before["cumulative_hours"])


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("POEMBOT_SLOW") != "1", reason="needs the built corpus; POEMBOT_SLOW=1")
def test_real_config_first_steps_lower_the_loss(tmp_path):
    cfg = json.loads((CONFIG_DIR / "real.json").read_text())
    cfg["train"]["log_every"] = 10
    cfg["lm"]["enabled"] = False
    path = tmp_path / "real.json"
    path.write_text(json.dumps(cfg))
    train(str(path), str(tmp_path / "out"), max_steps=50)
    per_char = [float(r["nll_per_char"]) for r in log_rows(tmp_path / "out" / LOG_FILE)]
    assert per_char[-1] < per_char[0] - 0.3
    assert FORM_INDEX["七律"] == 3


def test_a_wider_decoder_continues_a_trained_model_from_where_it_was(tiny_run, tmp_path):
    # The model section asks for a wider decoder than the base's: the run grows the base
    # (training/grow.py), so at a tiny learning rate it validates where the base did.
    base_state = json.loads((tiny_run / STATE_FILE).read_text())
    config = _tiny_variant(tmp_path, lr=1e-9)
    cfg = json.loads(config.read_text())
    cfg["model"]["dec_units"] += 16
    config.write_text(json.dumps(cfg))
    out = tmp_path / "wider"
    train(str(config), str(out), max_steps=2, init=str(tiny_run))
    from model.vae import load_model
    assert load_model(out)[2].dec_units == cfg["model"]["dec_units"]
    state = json.loads((out / STATE_FILE).read_text())
    assert state["val_nll_per_char"] == pytest.approx(base_state["val_nll_per_char"], abs=0.02)
