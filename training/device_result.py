"""What a run on the lent GPU machine leaves in its output folder, and the model folder made from it here.

That machine returns at most 8 files of at most 16 MiB each, so the weights travel as parts
(weights.partK.npz, each at most PART_LIMIT bytes: an array larger than that is cut into pieces),
beside run.json (the model config, the vocabulary, the run's state and best validation) and the
log.csv/val.csv train.py writes too. `poembot assemble RUN --out DIR` turns them into config.json,
vocab.json and weights.npz that model.vae.load_model reads.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from verse.vocab import Vocab

PART_LIMIT = 15 * 2**20            # bytes per file: under the machine's 16 MiB, with room to spare
_MARGIN = 256 * 2**10              # the npz's headers and the manifest
RUN_FILE = "run.json"
PARTS_STEM = "weights.part"
MAX_FILES = 8                      # what the machine returns from $OUT


def write_parts(arrays: dict[str, np.ndarray], directory: str | Path, generation: int,
                limit: int = PART_LIMIT, dtype: str = "float32") -> list[Path]:
    """arrays (in order) as weights.part0.npz, part1, …, each at most limit bytes; older parts beyond
    the new count are removed. All parts are written under temporary names first and then renamed,
    so a run killed while saving leaves the previous set whole; generation tags each part of a set."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    room = limit - min(_MARGIN, limit // 4)
    manifest = [{"key": k, "shape": list(v.shape)} for k, v in arrays.items()]
    groups: list[dict[str, np.ndarray]] = [{}]
    used = 0
    for i, value in enumerate(arrays.values()):
        flat = np.ascontiguousarray(value, dtype=dtype).reshape(-1)
        step = max(1, room // flat.itemsize)
        for c, start in enumerate(range(0, max(len(flat), 1), step)):
            piece = flat[start:start + step]
            if used + piece.nbytes > room and groups[-1]:
                groups.append({})
                used = 0
            groups[-1][f"a{i:04d}_{c:04d}"] = piece
            used += piece.nbytes
    header = json.dumps({"generation": generation, "parts": len(groups), "arrays": manifest})
    tmps = []
    for k, group in enumerate(groups):
        tmp = directory / f"{PARTS_STEM}{k}.tmp.npz"
        np.savez_compressed(tmp, manifest=np.array(header), **group)
        if tmp.stat().st_size > limit:
            raise ValueError(f"{tmp.name}: {tmp.stat().st_size} bytes, over the limit of {limit}")
        tmps.append(tmp)
    paths = []
    for k, tmp in enumerate(tmps):
        path = directory / f"{PARTS_STEM}{k}.npz"
        os.replace(tmp, path)
        paths.append(path)
    k = len(groups)
    while (directory / f"{PARTS_STEM}{k}.npz").exists():
        (directory / f"{PARTS_STEM}{k}.npz").unlink()
        k += 1
    return paths


def read_parts(directory: str | Path) -> dict[str, np.ndarray]:
    """The arrays write_parts wrote, in their order, as float32; a set mixed from two saves, or one
    with a part missing, is an error."""
    directory = Path(directory)
    first = directory / f"{PARTS_STEM}0.npz"
    if not first.exists():
        raise FileNotFoundError(f"{directory}: no {first.name}")
    with np.load(first) as data:
        header = json.loads(str(data["manifest"]))
    pieces: dict[str, np.ndarray] = {}
    for k in range(header["parts"]):
        with np.load(directory / f"{PARTS_STEM}{k}.npz") as data:
            if json.loads(str(data["manifest"]))["generation"] != header["generation"]:
                raise ValueError(f"{directory}: the parts come from different saves")
            pieces.update({n: data[n] for n in data.files if n != "manifest"})
    out = {}
    for i, entry in enumerate(header["arrays"]):
        names = sorted(n for n in pieces if n.startswith(f"a{i:04d}_"))
        flat = np.concatenate([pieces[n] for n in names]).astype(np.float32)
        out[entry["key"]] = flat.reshape(entry["shape"])
    return out


def read_run(directory: str | Path) -> dict:
    return json.loads((Path(directory) / RUN_FILE).read_text())


def assemble(run_dir: str | Path, out_dir: str | Path, dtype: str = "float16", name: str | None = None) -> Path:
    """A model folder (config.json, vocab.json, weights.npz, metrics.json, train_state.json, and the
    run's val.csv, log.csv and run.json without the vocabulary) from a device run's output folder; with
    the folder the run started from at hand, also val_history.csv (its curve, then this run's, labelled
    name), as train.py writes it."""
    from model.vae_config import VAEConfig
    from training.torch_vae import TorchPoemVAE, write_arrays_folder

    run_dir, out = Path(run_dir), Path(out_dir)
    run = read_run(run_dir)
    config = VAEConfig.from_dict(run["config"])
    arrays = read_parts(run_dir)
    expected = list(TorchPoemVAE(config).keras_arrays())       # PoemVAE's weight order
    if list(arrays) != expected:
        raise ValueError(f"{run_dir}: weights {list(arrays)} are not the model's {expected}")
    metrics = {"train_steps": run["state"]["step"], "train_minutes": round(run["state"]["elapsed_s"] / 60, 2),
               "val_nll_per_char": run["best"]["val_nll_per_char"], "best_step": run["best"]["step"],
               "trained_on": run.get("device")}
    write_arrays_folder(config, arrays, Vocab(run["vocab"]), out, dtype, metrics)
    for log_name in ("val.csv", "log.csv"):
        if (run_dir / log_name).exists():
            shutil.copyfile(run_dir / log_name, out / log_name)
    # train.py's train_state.json: a Keras run continued from this folder carries its hours over.
    state = {**run["state"], "done": True, "best_step": run["best"]["step"], "run_name": name or out.name,
             **{k: run["best"][k] for k in ("val_rec", "val_kl", "val_nll_per_char")}}
    (out / "train_state.json").write_text(json.dumps(state, indent=2))
    init = Path(run["state"]["init_from"]) if run["state"].get("init_from") else None
    if init is not None and init.is_dir() and (out / "val.csv").exists():
        from training.train import write_history

        write_history(out, init)
    (out / "device_run.json").write_text(json.dumps({k: v for k, v in run.items() if k != "vocab"},
                                                    indent=2, ensure_ascii=False))
    return out
