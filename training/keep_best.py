"""The bookkeeping of a short fine-tuning run that keeps its best weights (the couplet and 词 models):
the step count, the training losses since the last evaluation, the held-out history, the best
held-out figure, and the state file a stopped run resumes from."""
from __future__ import annotations

import csv
import json
import logging
import math
import time
from pathlib import Path
from typing import Callable

import numpy as np

log = logging.getLogger(__name__)

HISTORY_FIELDS = ["step", "train_nll", "val_nll", "minutes"]


def lr_share(progress: float, final_share: float) -> float:
    """Share of the learning rate at a point (0..1) of the run: cosine from 1 down to final_share."""
    progress = min(max(progress, 0.0), 1.0)
    return final_share + (1.0 - final_share) * 0.5 * (1.0 + math.cos(math.pi * progress))


class KeepBest:
    """held_out() gives the held-out figure (lower is better); keep(value, step) saves the weights
    as the run's best. state: what save_state wrote before ({} for a new run)."""

    def __init__(self, state: dict, started: float, held_out: Callable[[], float],
                 keep: Callable[[float, int], None], unit: str = "nats") -> None:
        self.step = int(state.get("step", 0))
        self.best = float(state.get("best_val_nll", np.inf))
        self.history: list[dict] = list(state.get("history", []))
        self.prior_hours = float(state.get("hours", 0.0))
        self.started, self.held_out, self.keep, self.unit = started, held_out, keep, unit
        self.losses: list[float] = []

    def evaluate_and_keep(self) -> float:
        """Evaluate, log against the training losses since the last time, keep the weights if best."""
        val = self.held_out()
        train_nll = float(np.mean(self.losses)) if self.losses else None
        self.history.append({"step": self.step, "train_nll": train_nll, "val_nll": val,
                             "minutes": round((time.time() - self.started) / 60, 2)})
        log.info("step %d: train %.4f, held-out %.4f %s", self.step, train_nll or 0.0, val, self.unit)
        self.losses.clear()
        if val < self.best:
            self.best = val
            self.keep(val, self.step)
        return val

    def save_state(self, path: Path, config: dict, history_csv: Path | None = None) -> None:
        """The state a resumed run starts from (and the history as CSV for plots, when asked)."""
        path.write_text(json.dumps({"step": self.step, "best_val_nll": self.best, "history": self.history,
                                    "hours": self.prior_hours + (time.time() - self.started) / 3600,
                                    "config": config}, indent=1))
        if history_csv is not None:
            with open(history_csv, "w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=HISTORY_FIELDS)
                writer.writeheader()
                writer.writerows(self.history)
