"""Style adapters (微调 per poet or collection): small low-rank updates of the frozen base decoder.

An adapter changes the decoder of model/vae.py in two places and moves the latent prior:
    input   x' = x + (x A_in) B_in + b_in       x = [character embedding, z, form]   (D wide)
    output  y' = y + (h A_out) B_out + b_out    h the GRU state (H), y the logits     (V wide)
    prior   z ~ N(z_mu, diag(z_std²))           the aggregate posterior of the style's poems
B starts at zero, so an untrained adapter is the base model (LoRA, Hu et al. 2021); b_out alone is
a "bias adapter" (rank 0). A style is two files in the styles folder: `<id>.npz` (the arrays) and
`<id>.json` (its card: title, one line, training data, steps, metrics, the base model's version).

Serving many styles in one batch (Punica / S-LoRA): the adapters are stacked, every row computes
its low-rank coefficients for all styles, a one-hot mask keeps its own style's, and one matmul
[B, S(r+1)] × [S(r+1), V] applies them — the bias rides along as a coefficient fixed at 1. With
S·(r+1) in the tens this costs a few percent of the [B, H] × [H, V] output layer, and a batch that
mixes styles costs exactly what a single-style batch does. Rows with style -1 get the base model.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

# The arrays of one adapter; shapes with D = emb_dim + latent_dim + form_dim, H = dec_units.
ADAPTER_SHAPES = {
    "in_a": ("D", "r"), "in_b": ("r", "D"), "in_bias": ("D",),
    "out_a": ("H", "r"), "out_b": ("r", "V"), "out_bias": ("V",),
    "z_mu": ("Z",), "z_std": ("Z",),
}
CARD_SUFFIX = ".json"
ARRAYS_SUFFIX = ".npz"
BASE = -1                       # the style index of a row without a style


def adapter_dims(config: Any) -> dict[str, int]:
    """D, H, V, Z of a VAEConfig (the letters of ADAPTER_SHAPES)."""
    latent = int(config.latent_dim) if config.use_latent else 0
    return {"D": int(config.emb_dim) + latent + int(config.form_dim), "H": int(config.dec_units),
            "V": int(config.vocab_size), "Z": latent}


def zero_adapter(config: Any, rank: int) -> dict[str, np.ndarray]:
    """An adapter that leaves the base model unchanged (z prior N(0, I))."""
    dims = {**adapter_dims(config), "r": rank}
    arrays = {k: np.zeros([dims[d] for d in shape], np.float32) for k, shape in ADAPTER_SHAPES.items()}
    arrays["z_std"][:] = 1.0
    return arrays


def random_adapter(model: str | Path | Any, rank: int = 4, seed: int = 0, scale: float = 0.1
                   ) -> dict[str, np.ndarray]:
    """A random adapter for a model (its folder, or its VAEConfig): a visible but harmless change
    (tests, benchmarks)."""
    from model.vae import CONFIG_FILE, VAEConfig

    config = (VAEConfig.from_dict(json.loads((Path(model) / CONFIG_FILE).read_text()))
              if isinstance(model, (str, Path)) else model)
    rng = np.random.default_rng(seed)
    arrays = zero_adapter(config, rank)
    for k in ("in_a", "in_b", "out_a", "out_b", "out_bias"):
        arrays[k] = (scale * rng.standard_normal(arrays[k].shape)).astype(np.float32)
    arrays["z_mu"] = (0.5 * rng.standard_normal(arrays["z_mu"].shape)).astype(np.float32)
    return arrays


def check_shapes(arrays: dict[str, np.ndarray], config: Any, where: str) -> int:
    """The adapter's rank; ValueError naming `where` when it does not fit config."""
    missing = sorted(set(ADAPTER_SHAPES) - set(arrays))
    if missing:
        raise ValueError(f"{where}: no {', '.join(missing)}")
    dims = {**adapter_dims(config), "r": int(arrays["in_a"].shape[-1])}
    for k, shape in ADAPTER_SHAPES.items():
        want = tuple(dims[d] for d in shape)
        if tuple(arrays[k].shape) != want:
            raise ValueError(f"{where}: {k} has shape {arrays[k].shape}, the model needs {want}")
    return dims["r"]


def save_style(styles_dir: str | Path, style_id: str, arrays: dict[str, np.ndarray], card: dict
               ) -> Path:
    """Write `<id>.npz` (float16: half the size, the same poems) and `<id>.json`; returns the npz."""
    styles_dir = Path(styles_dir)
    styles_dir.mkdir(parents=True, exist_ok=True)
    path = styles_dir / f"{style_id}{ARRAYS_SUFFIX}"
    tmp = styles_dir / f".{style_id}.tmp{ARRAYS_SUFFIX}"
    np.savez(tmp, **{k: np.asarray(v, np.float16) for k, v in arrays.items()})
    tmp.replace(path)
    card = {"id": style_id, "title": style_id, "line": "", "line_en": "", "aliases": [], **card}
    (styles_dir / f"{style_id}{CARD_SUFFIX}").write_text(json.dumps(card, ensure_ascii=False, indent=1))
    return path


@dataclass
class Style:
    """One loaded adapter and its card."""
    id: str
    card: dict
    arrays: dict[str, np.ndarray]

    @property
    def rank(self) -> int:
        return int(self.arrays["in_a"].shape[-1])

    @property
    def strength(self) -> float:
        """How much of the learned update decoding applies (card "strength", default 1): above 1
        the manner shows more, at some cost in fluency; the card's metrics say which was measured."""
        return float(self.card.get("strength", 1.0))

    def summary(self) -> dict:
        """What the bot shows: id, title, one line in each language, aliases."""
        c = self.card
        return {"id": self.id, "title": c.get("title", self.id), "line": c.get("line", ""),
                "line_en": c.get("line_en", ""), "aliases": list(c.get("aliases", []))}


def load_style(path: str | Path) -> Style:
    path = Path(path)
    with np.load(path) as data:
        arrays = {k: data[k].astype(np.float32) for k in data.files}
    card_path = path.with_suffix(CARD_SUFFIX)
    card = json.loads(card_path.read_text()) if card_path.exists() else {}
    return Style(path.stem, card, arrays)


@dataclass
class StyleBank:
    """Every style a worker serves, stacked for one-batch serving; index -1 is the base model."""
    styles: list[Style] = field(default_factory=list)

    @classmethod
    def load(cls, styles_dir: str | Path | None, config: Any, version: str | None = None
             ) -> "StyleBank":
        """The adapters in styles_dir that fit config; one trained on another base model
        (card "base_version" ≠ version) is skipped with a log line, never served."""
        styles = []
        folder = Path(styles_dir) if styles_dir else None
        for path in sorted(folder.glob(f"*{ARRAYS_SUFFIX}")) if folder and folder.is_dir() else []:
            if path.name.startswith("."):
                continue
            try:
                style = load_style(path)
                check_shapes(style.arrays, config, str(path))
            except (OSError, ValueError, KeyError) as exc:
                log.warning("style %s not loaded: %s", path.name, exc)
                continue
            base = style.card.get("base_version")
            if version and base and base != version:
                log.warning("style %s not loaded: trained on model %s, this model is %s",
                            style.id, base, version)
                continue
            styles.append(style)
        return cls(styles)

    @property
    def ids(self) -> list[str]:
        return [s.id for s in self.styles]

    def index(self, style_id: str) -> int:
        """The row index of a style id ("" → BASE); ValueError for an unknown id."""
        return self.ids.index(style_id) if style_id else BASE

    def get(self, style_id: str) -> Style | None:
        return self.styles[self.ids.index(style_id)] if style_id in self.ids else None

    def __len__(self) -> int:
        return len(self.styles)

    def stacked(self) -> dict[str, Any]:
        """The serving form (module doc): in_a [D, S·r], in_b [S·(r+1), D], out_a [H, S·r],
        out_b [S·(r+1), V], every style padded to the largest rank r with zeros; and "rank": r."""
        # At least 1: a bias-only adapter (rank 0) still needs a slot for its coefficient-1 bias row.
        r = max(1, max(s.rank for s in self.styles))

        def pad(a: np.ndarray, axis: int) -> np.ndarray:
            width = [(0, 0)] * a.ndim
            width[axis] = (0, r - a.shape[axis])
            return np.pad(a, width)

        out = {}
        for side in ("in", "out"):
            out[f"{side}_a"] = np.concatenate([pad(s.arrays[f"{side}_a"], 1) for s in self.styles], 1)
            # A style's strength scales its whole update (B and the bias), as LoRA's alpha does.
            out[f"{side}_b"] = np.concatenate(
                [s.strength * np.concatenate([pad(s.arrays[f"{side}_b"], 0), s.arrays[f"{side}_bias"][None]], 0)
                 for s in self.styles], 0)
        return {**{k: np.ascontiguousarray(v, np.float32) for k, v in out.items()}, "rank": r}


def stacked_tensors(bank: "StyleBank") -> dict[str, Any]:
    """bank.stacked() as StyleMix takes it: tensors, and the rank as an int."""
    import tensorflow as tf

    return {k: (int(v) if k == "rank" else tf.constant(v)) for k, v in bank.stacked().items()}


class Adapter:
    """One style's adapter as tensors (constants to measure, variables to train); works on
    [..., D] / [..., H] inputs, so the teacher-forced decoder and one decoding step share it."""

    def __init__(self, tensors: dict[str, Any]) -> None:
        self.t = tensors

    @classmethod
    def constant(cls, arrays: dict[str, np.ndarray]) -> "Adapter":
        import tensorflow as tf

        return cls({k: tf.constant(v, tf.float32) for k, v in arrays.items()})

    def _low_rank(self, x: Any, side: str) -> Any:
        import tensorflow as tf

        u = tf.tensordot(tf.cast(x, tf.float32), self.t[f"{side}_a"], 1)
        return tf.tensordot(u, self.t[f"{side}_b"], 1) + self.t[f"{side}_bias"]

    def adapt_input(self, x: Any) -> Any:
        return x + tf_cast_like(self._low_rank(x, "in"), x)

    def adapt_logits(self, h: Any, logits: Any) -> Any:
        return logits + self._low_rank(h, "out")


def tf_cast_like(value: Any, like: Any) -> Any:
    import tensorflow as tf

    return tf.cast(value, like.dtype)


class StyleMix:
    """The stacked adapters applied per row (tensors inside the decoding loop); see module doc."""

    def __init__(self, stacked: dict[str, Any], style: Any) -> None:
        import tensorflow as tf

        self.s = stacked
        self.rank = int(stacked["rank"])
        n = int(stacked["in_a"].shape[1]) // self.rank
        # [B, S, 1]: 1 on the row's own style; all zero for a base row (style -1).
        self.mask = tf.one_hot(tf.cast(style, tf.int32), n, dtype=tf.float32)[:, :, None]

    def _apply(self, x: Any, a: Any, b: Any) -> Any:
        import tensorflow as tf

        u = tf.matmul(x, a)                                            # [B, S·r]
        u = tf.reshape(u, [tf.shape(x)[0], -1, self.rank])             # [B, S, r]
        u = tf.concat([u, tf.ones_like(u[:, :, :1])], axis=2) * self.mask  # [B, S, r+1]
        return tf.matmul(tf.reshape(u, [tf.shape(x)[0], -1]), b)

    def adapt_input(self, x: Any) -> Any:
        """[B, D] decoder input → adapted (one step)."""
        return x + self._apply(x, self.s["in_a"], self.s["in_b"])

    def adapt_logits(self, h: Any, logits: Any) -> Any:
        """[B, V] logits of GRU state h [B, H] → adapted."""
        return logits + self._apply(h, self.s["out_a"], self.s["out_b"])


def style_prior(style: Style, rng: np.random.Generator, centre: np.ndarray | None = None
                ) -> np.ndarray:
    """A latent for one poem of a style: around the style's centre (averaged with a theme's
    centre when the request has one, so both show), spread as the style's own poems are."""
    mu = style.arrays["z_mu"] if centre is None else 0.5 * (style.arrays["z_mu"] + centre)
    return (mu + style.arrays["z_std"] * rng.standard_normal(mu.shape[0])).astype(np.float32)
