"""Fine-tune (微调) the poem VAE on the Song ci: `poembot ci train`.

The ci model starts as a copy of the shipped poem model — every weight, the form embedding grown by
a 词 row (the mean of the four poem rows) and a zero template layer (model/ci.py), so step 0 writes
as the poem model does — and learns the ci with the same loss (sampled-softmax reconstruction plus
the free-bits KL). Its title is a word of the ci itself (a two-character span, or none), so a
request's theme words steer it as a poem's title does. The best held-out weights are kept in the
output folder; a checkpoint and state beside them let `--resume` continue a stopped run.
"""
from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from model.ci import (CI_NOVELTY_FILE, FORM_ID, MAX_LINE, MAX_TOKENS, N_FORMS, TEMPLATE_DIM, corpus_shape, encode,
                      novelty_table, template)
from training.keep_best import KeepBest, lr_share
from verse.vocab import PAD, UNK, Vocab

log = logging.getLogger(__name__)

STATE_FILE = "train_state.json"
CHECKPOINT = "checkpoint"
LOG_FILE = "ci_log.csv"
TITLE_LEN = 16


@dataclass
class CiTrainConfig:
    init: str = ""                 # the poem model folder to start from ("" = the shipped one)
    batch_size: int = 48
    learning_rate: float = 6e-4
    final_lr_share: float = 0.1    # cosine decay over max_minutes down to this share
    num_sampled: int = 1024
    max_minutes: float = 60.0
    max_steps: int | None = None
    eval_every: int = 250
    checkpoint_minutes: float = 5.0
    title_share: float = 0.7       # ci shown one of their own words as the title
    seed: int = 23
    tiny: int = 0                  # train on this many ci only (tests)


@dataclass
class CiExample:
    tokens: np.ndarray             # int32 [T]
    template: np.ndarray           # float32 [T-1, TEMPLATE_DIM]
    lines: list[str]
    split: str


def examples(ci, tunes, vocab: Vocab, max_unknown: int = 2) -> list[CiExample]:
    """Every ci the model can learn from: 句 of 1–MAX_LINE characters, at most MAX_TOKENS tokens,
    no lost character (□), at most max_unknown characters outside the vocabulary."""
    out = []
    for i in range(len(ci)):
        lines = list(ci.lines[i])
        marks = ci.puncts[i]
        if not lines or len(marks) != len(lines) or any(not 1 <= len(ln) <= MAX_LINE for ln in lines):
            continue
        text = "".join(lines)
        if "□" in text or sum(len(ln) + 1 for ln in lines) + 2 > MAX_TOKENS:
            continue
        if sum(1 for c in text if c not in vocab) > max_unknown:
            continue
        tune = tunes.get(ci.tune[i])
        shape = corpus_shape([len(ln) for ln in lines], marks, ci.paragraph_ends(i),
                             tune.forms if tune is not None else ())
        tokens = np.asarray(encode(lines, marks, vocab), np.int32)
        out.append(CiExample(tokens, template(shape), lines, ci.split[i]))
    return out


def theme_title(lines: list[str], vocab: Vocab, rng: np.random.Generator) -> np.ndarray:
    """A two-character span of one of the ci's own 句 as its title ids (PAD-filled)."""
    title = np.full(TITLE_LEN, PAD, np.int32)
    long = [ln for ln in lines if len(ln) >= 2]
    if long:
        line = long[int(rng.integers(len(long)))]
        j = int(rng.integers(len(line) - 1))
        ids = [vocab.id(c) for c in line[j:j + 2]]
        if UNK not in ids:
            title[:2] = ids
    return title


class Batches:
    """Examples bucketed by length (multiples of 16 tokens), so a batch pads little."""

    def __init__(self, items: list[CiExample]) -> None:
        self.buckets: dict[int, list[CiExample]] = {}
        for ex in items:
            self.buckets.setdefault(16 * math.ceil(len(ex.tokens) / 16), []).append(ex)

    def __len__(self) -> int:
        return sum(len(b) for b in self.buckets.values())

    def epoch(self, size: int, rng: np.random.Generator) -> list[list[CiExample]]:
        batches = []
        for members in self.buckets.values():
            order = rng.permutation(len(members))
            batches += [[members[k] for k in order[s:s + size]] for s in range(0, len(order), size)]
        return [batches[k] for k in rng.permutation(len(batches))]


def stack(batch: list[CiExample], vocab: Vocab, rng: np.random.Generator | None, title_share: float) -> dict:
    """Arrays of one batch: tokens [B, T] PAD-filled, template [B, T-1, F], form, title [B, TITLE_LEN]
    (a theme word for title_share of the rows when rng is given; none otherwise)."""
    T = max(len(ex.tokens) for ex in batch)
    tokens = np.full((len(batch), T), PAD, np.int32)
    tmpl = np.zeros((len(batch), T - 1, TEMPLATE_DIM), np.float32)
    titles = np.full((len(batch), TITLE_LEN), PAD, np.int32)
    for b, ex in enumerate(batch):
        tokens[b, :len(ex.tokens)] = ex.tokens
        tmpl[b, :len(ex.template)] = ex.template
        if rng is not None and rng.random() < title_share:
            titles[b] = theme_title(ex.lines, vocab, rng)
    return {"tokens": tokens, "template": tmpl, "form": np.full(len(batch), FORM_ID, np.int32), "title": titles}


def grown_model(init: Path):
    """The ci model at step 0: the poem model's weights, the form embedding grown by a 词 row (the
    poem rows' mean), a zero template layer. Returns (model, vocab, config)."""
    from model.vae import VAEConfig, build_vae, load_model
    from training.train import _weight_key

    base, vocab, base_config = load_model(init)
    config = VAEConfig.from_dict({**base_config.to_dict(), "n_forms": N_FORMS, "template_dim": TEMPLATE_DIM,
                                  "max_len": MAX_TOKENS, "title_len": TITLE_LEN, "title_dropout": 0.0})
    model = build_vae(config)
    values = {_weight_key(w.path): w.numpy() for w in base.weights}
    for var in model.weights:
        key = _weight_key(var.path)
        value = values.get(key)
        if value is None:
            continue                                    # the template layer: zeros as built
        if key.endswith("form_embed/embeddings"):
            value = np.concatenate([value, value.mean(axis=0, keepdims=True)], axis=0)
        var.assign(value)
    return model, vocab, config


def train(config: CiTrainConfig, out: str | Path, resume: bool = False, ci=None, tunes=None) -> Path:
    """Train into out (the ci model folder: config, vocab, float16 weights, metrics); returns out."""
    import keras
    import tensorflow as tf
    from tqdm import tqdm

    from model.vae import load_model, save_model
    from protocol.settings import PRETRAINED_DIR

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    state_path = out / STATE_FILE
    state = json.loads(state_path.read_text()) if resume and state_path.exists() else {}
    keras.utils.set_random_seed(config.seed + int(state.get("step", 0)))
    # A stopped run continues from its last checkpoint; a shipped folder (whose checkpoint is not
    # committed) from its best weights.
    source = next((d for d in (out / CHECKPOINT, out) if (d / "weights.npz").exists()), None) if resume else None
    if source is not None:
        model, vocab, mconf = load_model(source)
        log.info("resumed at step %d from %s", state.get("step", 0), source)
    else:
        model, vocab, mconf = grown_model(Path(config.init or PRETRAINED_DIR))
        state = {}
    if ci is None:
        from corpus.ci_reader import CiCorpus
        ci = CiCorpus.load()
    if tunes is None:
        from verse import tunes as tune_table
        tunes = tune_table.load()
    items = examples(ci, tunes, vocab)
    # The 句 a written ci must not copy, shipped with the model so a worker needs no corpus.
    novelty_table(ci).save(out / CI_NOVELTY_FILE)
    rng = np.random.default_rng(config.seed + int(state.get("step", 0)))
    train_items = [ex for ex in items if ex.split == "train"]
    val_items = [ex for ex in items if ex.split == "val"]
    if config.tiny:
        train_items = [train_items[k] for k in rng.permutation(len(train_items))[:config.tiny]]
        val_items = val_items[:max(8, config.tiny // 8)]
    train_b = Batches(train_items)
    log.info("ci training: %d ci, %d held out, %d with a known form", len(train_items), len(val_items),
             sum(1 for ex in train_items if ex.template[0, 48]))
    optimizer = keras.optimizers.Adam(config.learning_rate, clipnorm=1.0)
    spec = {"tokens": tf.TensorSpec([None, None], tf.int32),
            "template": tf.TensorSpec([None, None, TEMPLATE_DIM], tf.float32),
            "form": tf.TensorSpec([None], tf.int32), "title": tf.TensorSpec([None, TITLE_LEN], tf.int32)}

    @tf.function(input_signature=[spec])
    def train_step(inputs):
        with tf.GradientTape() as tape:
            terms = model.loss_terms(inputs, 0, training=True, beta=1.0, num_sampled=config.num_sampled)
        grads = tape.gradient(terms["loss"], model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return terms

    @tf.function(input_signature=[spec, tf.TensorSpec([None, None], tf.float32)])
    def eval_step(inputs, eps):
        return model.loss_terms(inputs, 0, training=False, beta=1.0, eps=eps)

    def held_out() -> float:
        """Nats per token (reconstruction + KL) over the held-out ci, the same draws of z each time."""
        total = tokens = 0.0
        for s in range(0, len(val_items), 64):
            batch = val_items[s:s + 64]
            arrays = stack(batch, vocab, None, 0.0)
            eps = tf.random.stateless_normal([len(batch), mconf.latent_dim], seed=[7, s])
            terms = eval_step({k: tf.constant(v) for k, v in arrays.items()}, eps)
            total += float(terms["rec"] + terms["kl"]) * len(batch)
            tokens += float(terms["n_tokens"]) * len(batch)
        return total / max(tokens, 1.0)

    def keep(val: float, step: int) -> None:
        save_model(model, vocab, out, metrics={"val_nll_per_token": val, "step": step,
                                               "train_ci": len(train_b), "held_out_ci": len(val_items)})

    run = KeepBest(state, started, held_out, keep, unit="nats/token")
    if not run.history:
        val = held_out()
        run.history.append({"step": 0, "train_nll": None, "val_nll": val, "minutes": 0.0})
        log.info("step 0 (the poem model's weights): held-out %.4f nats/token", val)
    deadline = started + 60 * config.max_minutes
    last_checkpoint = time.time()

    def save_state() -> None:
        run.save_state(state_path, asdict(config), history_csv=out / LOG_FILE)

    bar = tqdm(desc="ci training", unit="step", total=config.max_steps)
    done = False
    while not done:
        for batch in train_b.epoch(config.batch_size, rng):
            share = min((time.time() - started) / (60 * config.max_minutes), 1.0)
            if config.max_steps:
                share = max(share, run.step / config.max_steps)
            lr = config.learning_rate * lr_share(share, config.final_lr_share)
            optimizer.learning_rate.assign(lr)
            arrays = stack(batch, vocab, rng, config.title_share)
            terms = train_step({k: tf.constant(v) for k, v in arrays.items()})
            tokens = float(terms["n_tokens"])
            run.losses.append(float(terms["rec"] + terms["kl"]) / max(tokens, 1.0))
            run.step += 1
            bar.update(1)
            bar.set_postfix(nll=f"{np.mean(run.losses[-50:]):.3f}", lr=f"{lr:.1e}")
            if run.step % config.eval_every == 0:
                run.evaluate_and_keep()
                save_state()
            if time.time() - last_checkpoint > 60 * config.checkpoint_minutes:
                save_model(model, vocab, out / CHECKPOINT)
                save_state()
                last_checkpoint = time.time()
            if time.time() > deadline or (config.max_steps is not None and run.step >= config.max_steps):
                done = True
                break
    bar.close()
    if run.losses or not (out / "weights.npz").exists():
        run.evaluate_and_keep()
    save_model(model, vocab, out / CHECKPOINT)
    save_state()
    return out
