"""What a training run leaves in its folder, for both trainers: train.py (Keras) and the GPU machine's
(training/device_train.py, which may import neither TensorFlow nor the corpus code): the columns of
log.csv and val.csv, train_state.json, and the training hours a continued model carries over."""
from __future__ import annotations

import json
from pathlib import Path

STATE_FILE = "train_state.json"
LOG_FILE = "log.csv"
VAL_LOG_FILE = "val.csv"
LOG_FIELDS = ("step", "epoch", "elapsed_s", "loss", "rec", "kl", "kl_fb", "beta", "lr",
              "nll_per_char", "tokens_per_s")
VAL_FIELDS = ("step", "elapsed_s", "val_rec", "val_kl", "val_nll_per_char", "cumulative_hours")
# Training hours of the shipped model before hours were recorded in train_state.json
# (40 minutes of the VAE, model/pretrained/MODEL_CARD.md).
LEGACY_HOURS = 40 / 60


def read_state(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def prior_hours(directory: Path) -> float:
    """Cumulative training hours of the model saved in directory (0 if none)."""
    state = read_state(directory / STATE_FILE)
    if "cumulative_hours" in state:
        return float(state["cumulative_hours"])
    if (directory / "weights.npz").exists():
        return float(state.get("elapsed_s", LEGACY_HOURS * 3600)) / 3600
    return 0.0
