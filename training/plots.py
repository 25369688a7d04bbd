"""The evaluation's plots: training curves, validation NLL against training hours, the test latents
(PCA, by form and by dynasty) and the KL of each latent dimension, as PNGs in the model folder.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from training.constrained import FORM_KEYS
from verse.forms import FORM_NAMES


def read_log(path: Path) -> dict[str, np.ndarray]:
    if not path.exists():
        return {}
    with open(path) as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return {}
    return {k: np.asarray([float(r[k]) for r in rows]) for k in rows[0]}


def make_plots(model_dir: Path, mu: np.ndarray, forms: list[int], dynasties: list[str],
               kl_dims: np.ndarray) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    log, lm_log = read_log(model_dir / "log.csv"), read_log(model_dir / "lm" / "log.csv")
    if log:
        fig, axes = plt.subplots(1, 3, figsize=(15, 4))
        axes[0].plot(log["step"], log["rec"], label="VAE rec")
        if lm_log:
            axes[0].plot(lm_log["step"], lm_log["rec"], label="LM nll")
        axes[0].set_title("reconstruction NLL (nats/poem)")
        axes[0].legend()
        axes[1].plot(log["step"], log["kl"], label="KL")
        axes[1].plot(log["step"], log["kl_fb"], label="KL after free bits", alpha=0.7)
        axes[1].set_title("KL (nats/poem)")
        axes[1].legend()
        axes[2].plot(log["step"], log["beta"], label="beta")
        axes[2].plot(log["step"], log["lr"] / max(log["lr"].max(), 1e-12), label="lr (scaled)")
        axes[2].set_title("beta and learning rate")
        axes[2].legend()
        for ax in axes:
            ax.set_xlabel("step")
        fig.tight_layout()
        fig.savefig(model_dir / "training_curves.png", dpi=90)
        plt.close(fig)
        made.append("training_curves.png")
    history = model_dir / "val_history.csv"
    if history.exists():
        with open(history) as fh:
            rows = list(csv.DictReader(fh))
        fig, ax = plt.subplots(figsize=(7, 4))
        for run in dict.fromkeys(r["run"] for r in rows):
            mine = [r for r in rows if r["run"] == run]
            ax.plot([float(r["cumulative_hours"]) for r in mine],
                    [float(r["val_nll_per_char"]) for r in mine], marker="o", ms=3, label=run)
        ax.set_xlabel("cumulative training hours (2-core CPU)")
        ax.set_ylabel("validation NLL (nats/char)")
        ax.set_title("validation NLL against training hours, across continued runs")
        ax.legend()
        fig.tight_layout()
        fig.savefig(model_dir / "nll_vs_hours.png", dpi=90)
        plt.close(fig)
        made.append("nll_vs_hours.png")
    if mu.size and mu.shape[1] >= 2:
        centred = mu - mu.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        xy = centred @ vt[:2].T
        fig, axes = plt.subplots(1, 2, figsize=(12, 5))
        for f in sorted(set(forms)):
            sel = np.asarray(forms) == f
            axes[0].scatter(xy[sel, 0], xy[sel, 1], s=4, alpha=0.6,
                            label=FORM_KEYS[FORM_NAMES[f]])
        axes[0].set_title("test latents (PCA), by form")
        axes[0].legend(markerscale=3)
        for d in sorted(set(dynasties)):
            sel = np.asarray(dynasties) == d
            axes[1].scatter(xy[sel, 0], xy[sel, 1], s=4, alpha=0.6, label=d)
        axes[1].set_title("test latents (PCA), by dynasty")
        axes[1].legend(markerscale=3)
        fig.tight_layout()
        fig.savefig(model_dir / "latents_pca.png", dpi=90)
        plt.close(fig)
        made.append("latents_pca.png")
    if kl_dims.size:
        fig, ax = plt.subplots(figsize=(10, 3.5))
        order = np.argsort(-kl_dims)
        ax.bar(np.arange(len(kl_dims)), kl_dims[order])
        ax.set_title("KL per latent dim (nats, sorted)")
        ax.set_xlabel("latent dim (sorted by KL)")
        fig.tight_layout()
        fig.savefig(model_dir / "kl_per_dim.png", dpi=90)
        plt.close(fig)
        made.append("kl_per_dim.png")
    return made


def compare_runs(runs: dict[str, Path], out_png: Path, title: str) -> dict[str, list[tuple[float, float]]]:
    """Validation NLL against minutes of each run (its val.csv), on one plot: runs that shared a machine
    for the same time compare at equal CPU time. Returns {label: [(minutes, nats/char), ...]}."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = {}
    for label, run in runs.items():
        val = read_log(run / "val.csv")
        if val:
            curves[label] = [(round(s / 60, 1), round(float(v), 4))
                             for s, v in zip(val["elapsed_s"], val["val_nll_per_char"])]
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, points in curves.items():
        ax.plot([m for m, _ in points], [v for _, v in points], marker="o", ms=3, label=label)
    ax.set_xlabel("minutes of this run (one core each, side by side)")
    ax.set_ylabel("validation NLL (nats/char)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_png, dpi=90)
    plt.close(fig)
    return curves
