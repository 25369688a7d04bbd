"""The order of a run's batches and its learning rate over the run: numpy and arithmetic only, so the
Keras trainer (training/train.py) and the PyTorch one (training/device_train.py, on a machine without
TensorFlow) feed the same batches in the same order under the same schedule."""
from __future__ import annotations

import math
from typing import Iterator

import numpy as np


def epoch_batches(data: dict[int, np.ndarray], batch_size: int, seed: int, epoch: int
                  ) -> list[tuple[int, np.ndarray]]:
    """The epoch's batches as (form, row indices); one form per batch so nothing is padded.

    Deterministic in (seed, epoch), so a resumed run replays the same order.
    """
    rng = np.random.default_rng([seed, epoch])
    batches = []
    for form, matrix in sorted(data.items()):
        order = rng.permutation(len(matrix))
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            # A ragged last batch would cost a retrace for little data; drop it unless tiny data.
            if len(chunk) < batch_size and len(order) >= batch_size:
                continue
            batches.append((form, chunk))
    rng.shuffle(batches)
    return batches


def batch_stream(data: dict[int, np.ndarray], batch_size: int, seed: int, epoch: int,
                 position: int, titles: dict[int, np.ndarray] | None = None
                 ) -> Iterator[tuple[int, int, np.ndarray, np.ndarray, np.ndarray]]:
    """Endless (epoch, position, tokens, forms, titles) from (epoch, position) on; titles are
    [B, 0] when the data has none."""
    while True:
        batches = epoch_batches(data, batch_size, seed, epoch)
        for pos in range(position, len(batches)):
            form, rows = batches[pos]
            title = (titles[form][rows] if titles is not None
                     else np.zeros((len(rows), 0), np.int32))
            yield epoch, pos + 1, data[form][rows], np.full(len(rows), form, np.int32), title
        epoch, position = epoch + 1, 0


def learning_rate(train: dict, progress: float) -> float:
    """Short linear warm-up by progress, then cosine decay to lr_min_ratio of the peak; train is a
    training config's train section (lr, lr_min_ratio, warmup_fraction).

    progress is the larger of steps done/planned and minutes used/budget, so a time-limited
    run still ends at the low rate.
    """
    peak = float(train.get("lr", 1e-3))
    floor = peak * float(train.get("lr_min_ratio", 0.1))
    warm = float(train.get("warmup_fraction", 0.02))
    if progress < warm:
        return peak * max(progress / warm, 0.05)
    p = min(1.0, (progress - warm) / max(1e-9, 1.0 - warm))
    return floor + 0.5 * (peak - floor) * (1.0 + math.cos(math.pi * p))
