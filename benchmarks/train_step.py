"""Training throughput: today's step (exact 6,000-way softmax, plain tf.function) against the new
one (sampled softmax, XLA), at the shipped model's size, side by side in one run.

Prints one JSON object, then a one-line summary. `python -m benchmarks.train_step --help`.
Tokens/s counts decoder targets (the characters and marks predicted), as training/train.py logs.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The shipped model's sizes (model/pretrained/config.json).
SHIPPED = {"vocab_size": 6000, "emb_dim": 192, "enc_units": 192, "dec_units": 384,
           "latent_dim": 64, "form_dim": 16}
# Real batches hold one form each; the training corpus is 36% 七绝, 30% 七律, 26% 五律, 7% 五绝.
FORM_MIX = ((1, 0.36), (3, 0.30), (2, 0.27), (0, 0.07))


def make_step(config, num_sampled: int, xla: bool):
    """A compiled training step (loss, gradients, Adam) for a fresh model; returns (step, model)."""
    import keras
    import tensorflow as tf

    from model.vae import build_vae

    keras.utils.set_random_seed(0)
    model = build_vae(config)
    optimizer = keras.optimizers.Adam(1e-3, global_clipnorm=5.0)
    optimizer.build(model.trainable_variables)

    @tf.function(jit_compile=xla, reduce_retracing=True)
    def step(tokens, forms, beta):
        with tf.GradientTape() as tape:
            terms = model.loss_terms({"tokens": tokens, "form": forms}, 0, training=True,
                                     beta=beta, num_sampled=num_sampled)
        grads = tape.gradient(terms["loss"], model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return terms["loss"]

    return step


def batches(vocab_size: int, batch_size: int, n: int, seed: int = 0):
    """n token batches of real shapes (one form per batch, forms in corpus proportion), Zipf ids."""
    from verse.forms import FORMS, FORM_NAMES

    rng = np.random.default_rng(seed)
    forms = rng.choice([f for f, _ in FORM_MIX], size=n, p=[p for _, p in FORM_MIX])
    out = []
    for f in forms:
        form = FORMS[FORM_NAMES[f]]
        length = form.n_lines * (form.line_len + 1) + 2
        ids = np.minimum(rng.zipf(1.3, size=(batch_size, length)) + 5, vocab_size - 1)
        ids[:, 0], ids[:, -1] = 1, 2
        out.append((ids.astype(np.int32), np.full(batch_size, f, np.int32)))
    return out


def measure(step, data, min_seconds: float) -> dict:
    """Targets/s and ms per step over data, repeated until min_seconds (after one warm-up pass)."""
    import tensorflow as tf

    tensors = [(tf.constant(t), tf.constant(f)) for t, f in data]
    beta = tf.constant(1.0)
    for t, f in tensors[:8]:                     # compile every form's shape once
        float(step(t, f, beta))
    seen = {int(f[0]) for _, f in data[:8]}
    for t, f in tensors:                         # any form the first 8 missed
        if int(f[0]) not in seen:
            float(step(t, f, beta))
            seen.add(int(f[0]))
    steps = tokens = 0
    started = time.perf_counter()
    while time.perf_counter() - started < min_seconds or steps < len(tensors):
        t, f = tensors[steps % len(tensors)]
        float(step(t, f, beta))
        tokens += int(t.shape[0]) * (int(t.shape[1]) - 1)
        steps += 1
    seconds = time.perf_counter() - started
    return {"steps": steps, "ms_per_step": round(1000 * seconds / steps, 1),
            "tokens_per_s": round(tokens / seconds)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--sampled", type=int, default=512, help="negatives of the new step "
                        "(training/configs/continue.json uses 512)")
    parser.add_argument("--seconds", type=float, default=40.0, help="timed seconds per variant")
    parser.add_argument("--variants", default="today,sampled,xla,new",
                        help="comma list of: today, sampled, xla, new")
    a = parser.parse_args(argv)

    import tensorflow as tf

    from model.vae import VAEConfig

    config = VAEConfig(**SHIPPED)
    data = batches(config.vocab_size, a.batch, 24)
    variants = {"today": (0, False), "sampled": (a.sampled, False), "xla": (0, True),
                "new": (a.sampled, True)}
    rows = {}
    for name in a.variants.split(","):
        num_sampled, xla = variants[name]
        print(f"[train_step] {name}: sampled={num_sampled} xla={xla}", file=sys.stderr)
        rows[name] = {"num_sampled": num_sampled, "xla": xla,
                      **measure(make_step(config, num_sampled, xla), data, a.seconds)}
    report = {"benchmark": "train_step", "batch": a.batch, "config": SHIPPED,
              "device": "GPU" if tf.config.list_physical_devices("GPU") else "CPU",
              "load_avg_1min_at_start": round(os.getloadavg()[0], 2), "variants": rows}
    if "today" in rows and "new" in rows:
        report["speedup_new_vs_today"] = round(rows["new"]["tokens_per_s"]
                                               / rows["today"]["tokens_per_s"], 2)
    print(json.dumps(report, ensure_ascii=False))
    summary = ", ".join(f"{k} {v['tokens_per_s']} tok/s ({v['ms_per_step']} ms)"
                        for k, v in rows.items())
    print(f"train_step: batch {a.batch}: {summary}; new/today "
          f"{report.get('speedup_new_vs_today', 'n/a')}x")
    return report


if __name__ == "__main__":
    main()
