"""One folder per trained model (nanoGPT's habit): config.json, vocab.json, weights.npz and
metrics.json, written and read the same way for every model poembot trains (the poem VAE, the
couplet model)."""
from __future__ import annotations

import json
import re
from dataclasses import asdict, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

if TYPE_CHECKING:
    from verse.vocab import Vocab

CONFIG_FILE = "config.json"
VOCAB_FILE = "vocab.json"
WEIGHTS_FILE = "weights.npz"
METRICS_FILE = "metrics.json"

C = TypeVar("C", bound="SavedConfig")


class SavedConfig:
    """A model config dataclass as its folder's config.json holds it: a field added later reads
    back at its default from an older folder, and a key the code no longer knows is ignored."""

    def to_dict(self) -> dict:
        return asdict(self)   # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[C], data: dict) -> C:
        known = {f.name for f in fields(cls)}   # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in known})


def save_folder(model: Any, config: dict, vocab: "Vocab", directory: str | Path, dtype: str = "float16",
                metrics: dict | None = None) -> Path:
    """Write the config, the vocabulary, the weights (float16 by default: half the size, the same
    samples; written to a temporary file and renamed, so a reader never sees half of them) and the
    metrics (merged into any already there) into directory."""
    return write_folder(directory, config, vocab, [w.path for w in model.weights],
                        [w.numpy() for w in model.weights], dtype, metrics)


def write_folder(directory: str | Path, config: dict, vocab: "Vocab", names: list[str], values: list[np.ndarray],
                 dtype: str = "float16", metrics: dict | None = None) -> Path:
    """save_folder from the weights' names and arrays rather than a built model (the PyTorch twin's
    folders, training/torch_vae.py, are written by it too)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2))
    vocab.save(directory / VOCAB_FILE)
    write_weights(directory, names, values, dtype)
    if metrics is not None or not (directory / METRICS_FILE).exists():
        merge_metrics(directory, metrics or {})
    return directory


def write_weights(directory: Path, names: list[str], values: list[np.ndarray], dtype: str = "float16") -> Path:
    """weights.npz as load_weights reads it: the names, then w000, w001, … in the model's weight order
    (also what the PyTorch trainer writes, training/torch_vae.py)."""
    arrays = {f"w{i:03d}": np.asarray(v, dtype=dtype) for i, v in enumerate(values)}
    tmp = directory / (WEIGHTS_FILE + ".tmp.npz")
    # Compressed: float16 weights shrink only by about a twentieth, but the shipped folder (poem, 词
    # and judge models side by side) has a size budget, and loading pays a few tens of milliseconds.
    np.savez_compressed(tmp, names=np.array(names), **arrays)
    tmp.replace(directory / WEIGHTS_FILE)
    return directory / WEIGHTS_FILE


def read_weights(directory: str | Path) -> dict[str, np.ndarray]:
    """A folder's weights as float32 arrays keyed by weight_key, in the model's weight order, without
    building the model (growing a decoder, training/grow.py; the PyTorch twin)."""
    with np.load(Path(directory) / WEIGHTS_FILE) as data:
        names = [str(n) for n in data["names"]]
        return {weight_key(n): data[f"w{i:03d}"].astype(np.float32) for i, n in enumerate(names)}


def weight_key(path: str) -> str:
    """A weight's path without the model's own name and without the counters Keras appends to
    names already used in the process (poem_vae_1/encoder/forward_gru_1/… → encoder/forward_gru/…)."""
    return "/".join(re.sub(r"_\d+$", "", part) for part in path.split("/")[1:])


def merge_metrics(directory: str | Path, metrics: dict) -> None:
    """Merge metrics into the folder's metrics.json (written when missing)."""
    path = Path(directory) / METRICS_FILE
    merged = json.loads(path.read_text()) if path.exists() else {}
    merged.update(metrics)
    path.write_text(json.dumps(merged, indent=2, ensure_ascii=False))


def load_folder(directory: str | Path, config_type: type[C], build: Any) -> tuple[Any, "Vocab", C]:
    """(model, vocab, config) of a model folder: the config read back as config_type, the model built
    from it by build(config), the saved weights assigned as float32."""
    from verse.vocab import Vocab

    config = config_type.from_dict(read_config(directory))
    vocab = Vocab.load(Path(directory) / VOCAB_FILE)
    model = build(config)
    load_weights(model, directory)
    return model, vocab, config


def read_config(directory: str | Path) -> dict:
    return json.loads((Path(directory) / CONFIG_FILE).read_text())


def load_weights(model: Any, directory: str | Path) -> None:
    """Assign the saved weights to a model built from the same config, as float32; a count or
    shape that differs is an error naming the weight."""
    directory = Path(directory)
    with np.load(directory / WEIGHTS_FILE) as data:
        names = [str(n) for n in data["names"]]
        if len(names) != len(model.weights):
            raise ValueError(f"{directory}: {len(names)} weight arrays, model has {len(model.weights)}")
        for i, var in enumerate(model.weights):
            value = data[f"w{i:03d}"]
            if tuple(value.shape) != tuple(var.shape):
                raise ValueError(f"{directory}: weight {names[i]} has shape {value.shape}, "
                                 f"model expects {tuple(var.shape)}")
            var.assign(value.astype(np.float32))
