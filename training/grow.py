"""Growing a trained model's decoder wider, so that the grown model starts out writing exactly as the
trained one did (issue 21: "a larger decoder where it pays", continued from the shipped weights
rather than from scratch, which two CPU cores could not catch up with in a session).

A decoder GRU of U units becomes one of U' > U. The old units keep their weights. The new units read
the input and every unit's state through freshly initialised weights, but nothing reads them yet:
their weights into the old units' gates and into the logits start at zero. So the old units, and
with them the logits, compute exactly what they did (a test holds the logits equal), and training
puts the new units to use through those zero weights' gradients. (Net2Net, Chen et al. 2016, splits
units instead; silent new units keep the function without the noise a split needs to break symmetry.)

`grown_arrays` places a trained folder's weights into a wider model's; `init_from_folder`
(training/train.py) and the PyTorch twin (training/torch_vae.py) both load through it.
"""
from __future__ import annotations

import numpy as np

GATES = 3          # a Keras GRU's kernels hold the update, reset and candidate blocks side by side


def _gate_columns(value: np.ndarray, target: np.ndarray) -> np.ndarray:
    """target with value in the first U columns of each of its gate blocks (U' wide in target) and,
    for a kernel, in the first rows; the rest stays as built."""
    units, grown = value.shape[-1] // GATES, target.shape[-1] // GATES
    out = target.copy()
    for g in range(GATES):
        out[:value.shape[0], g * grown:g * grown + units] = value[:, g * units:(g + 1) * units]
    return out


def place(key: str, value: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The trained weight value (named key, as training.train._weight_key gives it) placed into the
    grown model's weight target (as built), so the grown model computes what the trained one did.
    Raises ValueError for a weight this module does not know how to grow."""
    if key.startswith("decoder/"):
        if key.endswith("recurrent_kernel"):
            # Rows: whose state is read; the new units' rows into the old gates start at zero.
            out = _gate_columns(value, target)
            units, grown = value.shape[-1] // GATES, target.shape[-1] // GATES
            for g in range(GATES):
                out[units:, g * grown:g * grown + units] = 0.0
            return out
        if key.endswith("kernel") or key.endswith("bias"):
            return _gate_columns(value, target)
    if key.startswith(("init_state/", "title_init/")):
        out = target.copy()
        out[..., :value.shape[-1]] = value            # the new units' initial state is their own
        return out
    if key == "logits/kernel":
        out = np.zeros_like(target)
        out[:value.shape[0]] = value                  # the logits do not read the new units yet
        return out
    raise ValueError(f"{key}: cannot grow {value.shape} into {target.shape}")


def grown_arrays(source: dict[str, np.ndarray], target: dict[str, np.ndarray], grow: bool,
                 where: str = "the source") -> dict[str, np.ndarray]:
    """The source's weights (keyed by weight_key) in the target's shapes: equal ones as they are and,
    when grow (a wider decoder than the source's), the others placed by `place`; a shape that differs
    without growing, or a source weight the target lacks, is an error naming where. Target weights
    the source lacks stay as built (new layers, e.g. the title's)."""
    extra = sorted(set(source) - set(target))
    if extra:
        raise ValueError(f"{where}: weights the model has no place for: {extra}")
    out = {}
    for key, built in target.items():
        value = source.get(key)
        if value is None or value.shape == built.shape:
            out[key] = built if value is None else value
        elif grow:
            out[key] = place(key, value, built)
        else:
            raise ValueError(f"{where}: {key} has shape {value.shape}, the model expects {built.shape}")
    return out
