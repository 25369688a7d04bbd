"""Samples from the prior with no constraint at all, and greedy decodes along a line between two poems'
latents: what the model itself learnt. The model's own decoder (model/decode.py) enforces form, tones
and rhyme, which would hide exactly this, so sampling here is plain ancestral or nucleus decoding.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from corpus.reader import Corpus
from verse.forms import FORM_NAMES, FORMS, classify
from verse.vocab import BOS, EOS, PAD, UNK, Vocab


def cite(corpus, i: int) -> str:
    return f"《{corpus.title[i]}》 {corpus.author[i]} (corpus id {corpus.id[i]})"


def sample_poems(model, form: int, z: np.ndarray, temperature: float = 1.0, top_p: float = 0.9,
                 greedy: bool = False, seed: int = 0) -> list[list[int]]:
    """Plain ancestral (or nucleus, or greedy) decoding for one form; ids up to EOS per poem.

    No constraint on shape: form validity then measures what the model itself learnt.
    """
    import tensorflow as tf

    n = z.shape[0]
    steps = FORMS[FORM_NAMES[form]].seq_len + 1
    gen = tf.random.Generator.from_seed(seed)
    banned = np.zeros(model.config.vocab_size, np.float32)
    banned[[PAD, BOS, UNK]] = -1e9

    @tf.function(reduce_retracing=True)
    def step(token, state, zt, ft):
        logits, state = model.decoder_step(token, state, zt, ft)
        logits = logits / temperature + banned
        if greedy:
            return tf.argmax(logits, axis=-1, output_type=tf.int32), state
        if top_p < 1.0:
            sorted_logits = tf.sort(logits, direction="DESCENDING", axis=-1)
            cum = tf.cumsum(tf.nn.softmax(sorted_logits), axis=-1, exclusive=True)
            kept = tf.where(cum < top_p, sorted_logits, tf.fill(tf.shape(sorted_logits), 1e9))
            threshold = tf.reduce_min(kept, axis=-1, keepdims=True)
            logits = tf.where(logits < threshold, tf.fill(tf.shape(logits), -1e9), logits)
        seeds = gen.make_seeds(1)[:, 0]
        nxt = tf.random.stateless_categorical(logits, 1, seed=seeds, dtype=tf.int32)[:, 0]
        return nxt, state

    zt = tf.constant(z, tf.float32)
    ft = tf.constant(np.full(n, form, np.int32))
    state = model.decoder_init(zt, ft)
    token = tf.constant(np.full(n, BOS, np.int32))
    out = np.zeros((n, steps), np.int32)
    for t in range(steps):
        token, state = step(token, state, zt, ft)
        out[:, t] = token.numpy()
        if np.all((out[:, :t + 1] == EOS).any(axis=1)):
            break
    return [list(row) for row in out]


def prosody_checker():
    try:
        from verse import prosody
        return prosody.check
    except Exception:      # the checker may be absent or its tables unbuilt: report without it
        return None


def generation_metrics(model, vocab: Vocab, train_lines: set[str], n: int, seed: int,
                       temperature: float, top_p: float) -> tuple[dict, dict[str, list[str]]]:
    check = prosody_checker()
    rng = np.random.default_rng(seed)
    poems: list[tuple[str, list[str]]] = []
    for form in range(len(FORM_NAMES)):
        zdim = model.config.latent_dim if model.config.use_latent else 0
        z = rng.standard_normal((n, zdim)).astype(np.float32)
        for ids in sample_poems(model, form, z, temperature, top_p, seed=seed + form):
            poems.append((FORM_NAMES[form], vocab.decode_lines(ids)))
    valid = [classify(lines) == name for name, lines in poems]
    rhyme, tone = [], []
    if check is not None:
        for (name, lines), ok in zip(poems, valid):
            if ok:
                verdict = check(lines)
                rhyme.append(bool(verdict.rhyme_ok))
                tone.append(float(verdict.tone_rate))
    chars = [c for _, lines in poems for line in lines for c in line]
    bigrams = [line[i:i + 2] for _, lines in poems for line in lines for i in range(len(line) - 1)]
    lines_all = [line for _, lines in poems for line in lines if line]
    texts = ["/".join(lines) for _, lines in poems]
    metrics = {
        "n_generated": len(poems),
        "form_valid_rate": float(np.mean(valid)),
        "rhyme_rate": float(np.mean(rhyme)) if rhyme else None,
        "tone_rate": float(np.mean(tone)) if tone else None,
        "distinct_1": len(set(chars)) / max(len(chars), 1),
        "distinct_2": len(set(bigrams)) / max(len(bigrams), 1),
        "line_copy_rate": float(np.mean([line in train_lines for line in lines_all]))
        if lines_all else 0.0,
        "duplicate_rate": 1.0 - len(set(texts)) / max(len(texts), 1),
        "gen_temperature": temperature, "gen_top_p": top_p,
    }
    examples: dict[str, list[str]] = defaultdict(list)
    for (name, lines), ok in zip(poems, valid):
        if len(examples[name]) < 3:
            examples[name].append(("" if ok else "(not the form) ") + " / ".join(lines))
    return metrics, examples


def interpolations(model, vocab: Vocab, data, mu_by_row: dict[int, np.ndarray], corpus: Corpus,
                   n_pairs: int = 8, seed: int = 0) -> list[dict]:
    """Greedy decodes along the line between two test poems' posterior means, same form."""
    rng = np.random.default_rng(seed)
    pairs = []
    forms = [f for f in data if len(data[f][1]) >= 2]
    for p in range(n_pairs):
        if not forms:
            break
        form = forms[p % len(forms)]
        a, b = rng.choice(data[form][1], size=2, replace=False)
        alphas = np.linspace(0, 1, 5)
        z = np.stack([(1 - t) * mu_by_row[a] + t * mu_by_row[b] for t in alphas]).astype(np.float32)
        decoded = sample_poems(model, form, z, greedy=True)
        # The report is committed with the model, so the real poems are cited, not copied.
        pairs.append({"form": FORM_NAMES[form], "a": cite(corpus, a), "b": cite(corpus, b),
                      "steps": [(float(t), " / ".join(vocab.decode_lines(ids)))
                                for t, ids in zip(alphas, decoded)]})
    return pairs
