"""The data pack a lent GPU machine trains on (training/device_train.py): the train and val splits'
token matrices and encoded titles by form, the vocabulary, the training config, and the draws of z
behind each validation poem, in a few compressed files, so that machine (no TensorFlow, no corpus,
a 64 MiB limit on what is copied to it) needs nothing else.

Written here by `poembot corpus pack` from training.train.training_data, the function train.py's
runs read their data with, so both trainers see the same poems, titles and validation set. Read
there by load_pack with numpy alone.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from verse.vocab import Vocab

PACK_FILE = "pack.npz"
META_FILE = "pack.json"
VOCAB_FILE = "vocab.json"


@dataclass
class Pack:
    """A data pack in memory: {form_id: [N_f, seq_len + 2] int64} matrices as train.py encodes them."""
    vocab: Vocab
    meta: dict                                  # config (the training config), counts, where from
    train: dict[int, np.ndarray]
    val: dict[int, np.ndarray]
    train_titles: dict[int, np.ndarray] | None
    val_titles: dict[int, np.ndarray] | None
    val_eps: dict[int, np.ndarray]              # [N_f, latent_dim] float32: z = mu + sigma * eps

    @property
    def config(self) -> dict:
        return self.meta["config"]


def validation_eps(val: dict[int, np.ndarray], latent_dim: int) -> dict[int, np.ndarray]:
    """train.py's draws of z for every validation poem (training.train.validation_draws, chunk by
    chunk as its validate takes them), so a validation on the GPU machine scores as train.py's does
    and its figures line up with a model folder's val.csv. Needs TensorFlow (here, not there)."""
    from training.train import VAL_CHUNK, validation_draws

    out = {}
    for form, matrix in sorted(val.items()):
        chunks = [np.asarray(validation_draws(len(matrix[s:s + VAL_CHUNK]), latent_dim, form, s))
                  for s in range(0, len(matrix), VAL_CHUNK)]
        out[form] = np.concatenate(chunks).astype(np.float32)
    return out


def write_pack(config_path: str | Path | None, out_dir: str | Path, init: str | Path | None = None) -> Path:
    """Write the pack of a run of config_path (continued from init, whose vocabulary it then keeps)
    into out_dir: pack.npz (int16 tokens and titles, float32 draws, compressed), vocab.json, pack.json."""
    from model.vae_config import VAEConfig
    from training.train import TrainConfig, training_data

    cfg = TrainConfig.load(config_path)
    vocab, train, val, train_titles, val_titles = training_data(cfg, init)
    if len(vocab) > np.iinfo(np.int16).max:
        raise ValueError(f"a vocabulary of {len(vocab)} does not fit int16 ids")
    latent_dim = VAEConfig.from_dict({**cfg.model, "vocab_size": len(vocab)}).latent_dim
    arrays: dict[str, np.ndarray] = {}
    for split, data, titles in (("train", train, train_titles), ("val", val, val_titles)):
        for form, matrix in data.items():
            arrays[f"{split}_tokens_{form}"] = matrix.astype(np.int16)
            if titles is not None:
                arrays[f"{split}_titles_{form}"] = titles[form].astype(np.int16)
    for form, eps in validation_eps(val, latent_dim).items():
        arrays[f"val_eps_{form}"] = eps
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / PACK_FILE, **arrays)
    vocab.save(out / VOCAB_FILE)
    meta = {"config": cfg.to_dict(), "init": str(init) if init else None, "vocab_size": len(vocab),
            "titled": train_titles is not None,
            "n_train": {str(f): len(m) for f, m in sorted(train.items())},
            "n_val": {str(f): len(m) for f, m in sorted(val.items())}}
    (out / META_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False))
    return out


def load_pack(directory: str | Path) -> Pack:
    """The pack write_pack wrote, ids as int64 (torch's index type)."""
    directory = Path(directory)
    meta = json.loads((directory / META_FILE).read_text())
    parts: dict[str, dict[int, np.ndarray]] = {}
    with np.load(directory / PACK_FILE) as data:
        for name in data.files:
            what, form = name.rsplit("_", 1)
            value = data[name]
            parts.setdefault(what, {})[int(form)] = (value.astype(np.float32) if what == "val_eps"
                                                     else value.astype(np.int64))
    return Pack(vocab=Vocab.load(directory / VOCAB_FILE), meta=meta, train=parts["train_tokens"],
                val=parts["val_tokens"], train_titles=parts.get("train_titles"),
                val_titles=parts.get("val_titles"), val_eps=parts["val_eps"])
