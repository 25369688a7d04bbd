"""Style adapters (微调 per poet or collection): train one on the frozen base model, and measure it.

`poembot finetune --style libai --poet 李白` trains a low-rank adapter (model/styles.py) on the
poet's regular poems in minutes, with early stopping on held-out ones, and writes
`model/styles/libai.npz` with its card `libai.json`. `--file poems.txt` does the same for any set.
`poembot evaluate --style libai` measures it (measure_style):

- NLL per character of the style's held-out poems (importance-weighted, the base model's encoder)
  under the base decoder and under the adapted one: the adapter must lower it;
- style share: a poet classifier, trained on real poems (the style's own against everyone else's,
  tested on held-out ones), is applied to poems generated at default settings with and without the
  adapter; the share it calls the style's must rise at least 3x over the base model's.

The classifier is a fastText-style bag of characters and character bigrams (Joulin et al. 2017):
for authorship over a few hundred poems it is as good as a recurrent one, and trains in seconds.
"""
from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from verse.forms import FORMS, OTHER, classify

STYLE_CONFIG = Path(__file__).resolve().parent / "configs" / "style.json"
SHIPPED_STYLES = Path(__file__).resolve().parent / "configs" / "styles.json"
MIN_STYLE_POEMS = 100            # fewer cannot hold out a tenth and still show a manner
HELD_OUT_BUCKET = 10             # one poem in ten (by a hash of its text) is held out
SHARE_POEMS = 400                # poems generated per side to measure the style share
SHARE_GOAL = 3.0                 # style share with the adapter over the base model's
CLASSIFIER_NEGATIVES = 4         # other poets' poems per style poem when training the classifier
BIGRAM_BUCKETS = 1 << 16


@dataclass
class StyleSet:
    """A style's poems, split: train (the adapter learns them) and held (early stopping, NLL)."""
    train: list[list[str]]
    held: list[list[str]]


def _held_out(lines: list[str]) -> bool:
    key = "/".join(lines).encode("utf-8")
    return int(hashlib.sha1(key).hexdigest(), 16) % HELD_OUT_BUCKET == 0


def poet_set(corpus: Any, poets: list[str]) -> StyleSet:
    """The regular poems of poets: the corpus's val and test poems and a hashed tenth of its
    train poems are held out (the base model never trained on the former)."""
    wanted = set(poets)
    seen: set[str] = set()
    train, held = [], []
    for i in corpus.indices():
        if corpus.author[i] not in wanted:
            continue
        lines = list(corpus.lines[i])
        key = "/".join(lines)
        if key in seen:
            continue
        seen.add(key)
        (held if corpus.split[i] != "train" or _held_out(lines) else train).append(lines)
    return _checked(StyleSet(train, held), f"the poems of {'、'.join(poets)}")


def file_set(path: Path) -> StyleSet:
    """The poems of a file (one a line), split by hash."""
    from training.finetune import file_poems

    poems = file_poems(path)
    unique = list({"/".join(p): p for p in poems}.values())
    return _checked(StyleSet([p for p in unique if not _held_out(p)], [p for p in unique if _held_out(p)]),
                    str(path))


def _checked(style_set: StyleSet, what: str) -> StyleSet:
    n = len(style_set.train) + len(style_set.held)
    if n < MIN_STYLE_POEMS or not style_set.held:
        raise ValueError(f"{what}: {n} regular poems (五绝 七绝 五律 七律); a style needs at least "
                         f"{MIN_STYLE_POEMS}")
    return style_set


def shipped_style(style_id: str) -> dict | None:
    """The catalogue entry (training/configs/styles.json) of a shipped style, or None."""
    for entry in json.loads(SHIPPED_STYLES.read_text())["styles"]:
        if entry["id"] == style_id:
            return entry
    return None


# --- the adapter's training ---------------------------------------------------------------------

def _encode(poems: list[list[str]], vocab: Any) -> dict[int, np.ndarray]:
    from training.train import encode_by_form

    return encode_by_form(((classify(p), p) for p in poems), vocab)


def _posteriors(model: Any, data: dict[int, np.ndarray]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """The frozen encoder's (μ, σ) of every poem: computed once, not every step."""
    import tensorflow as tf

    out = {}
    for form, matrix in data.items():
        mus, sds = [], []
        for start in range(0, len(matrix), 256):
            tok = matrix[start:start + 256]
            mu, logvar = model.encode(tf.constant(tok), tf.constant(np.full(len(tok), form, np.int32)))
            mus.append(mu.numpy())
            sds.append(np.exp(0.5 * logvar.numpy()))
        out[form] = (np.concatenate(mus), np.concatenate(sds))
    return out


def latent_prior(post: dict[int, tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and per-dim spread of the aggregate posterior of a set of poems (a Gaussian fit)."""
    mu = np.concatenate([m for m, _ in post.values()])
    sd = np.concatenate([s for _, s in post.values()])
    return mu.mean(0), np.sqrt(mu.var(0) + (sd ** 2).mean(0))


def train_adapter(model: Any, vocab: Any, style_set: StyleSet, rank: int, lr: float,
                  batch_size: int, max_steps: int, max_minutes: float, val_every: int,
                  patience: int, seed: int = 0) -> tuple[dict[str, np.ndarray], dict]:
    """Adam on the adapter alone, the base model frozen; returns (arrays, training summary) with
    the arrays of the best validation, which early stopping keeps."""
    import keras
    import tensorflow as tf
    from tqdm import tqdm

    from model.styles import Adapter, zero_adapter
    from model.vae import token_nll

    rng = np.random.default_rng(seed)
    tf.random.set_seed(seed)
    train, held = _encode(style_set.train, vocab), _encode(style_set.held, vocab)
    post_train, post_held = _posteriors(model, train), _posteriors(model, held)
    init = zero_adapter(model.config, rank)
    # LoRA's start: A random, B zero, so step 0 is the base model exactly.
    init["in_a"] = (rng.standard_normal(init["in_a"].shape) / math.sqrt(init["in_a"].shape[0])).astype(np.float32)
    init["out_a"] = (rng.standard_normal(init["out_a"].shape) / math.sqrt(init["out_a"].shape[0])).astype(np.float32)
    trained = ("in_a", "in_b", "in_bias", "out_a", "out_b", "out_bias")
    variables = {k: keras.Variable(init[k], name=k) for k in trained}
    adapter = Adapter(variables)
    optimizer = keras.optimizers.Adam(learning_rate=lr)
    weights = [variables[k] for k in trained]
    optimizer.build(weights)

    def nll_terms(tokens, form, z, with_adapter):
        logits = model.decode_teacher_forced(tokens[:, :-1], z, form,
                                             adapter=adapter if with_adapter else None)
        nll = token_nll(logits, tokens[:, 1:])
        chars = tf.reduce_sum(tf.cast(tokens[:, 1:] > 0, tf.float32), axis=1)
        return nll, chars

    @tf.function(reduce_retracing=True)
    def step(tokens, form, z):
        with tf.GradientTape() as tape:
            nll, chars = nll_terms(tokens, form, z, True)
            loss = tf.reduce_sum(nll) / tf.reduce_sum(chars)
        optimizer.apply(tape.gradient(loss, weights), weights)
        return loss

    @tf.function(reduce_retracing=True)
    def held_nll(tokens, form, z, with_adapter):
        return nll_terms(tokens, form, z, with_adapter)

    def validate(with_adapter: bool = True) -> float:
        """Reconstruction NLL per character of the held-out poems at their posterior means."""
        total = chars = 0.0
        for form, matrix in held.items():
            mu, _ = post_held[form]
            for start in range(0, len(matrix), 256):
                n, c = held_nll(tf.constant(matrix[start:start + 256]),
                                tf.constant(np.full(len(matrix[start:start + 256]), form, np.int32)),
                                tf.constant(mu[start:start + 256]), with_adapter)
                total += float(tf.reduce_sum(n))
                chars += float(tf.reduce_sum(c))
        return total / max(chars, 1.0)

    # Batches of one form each (no padding), drawn in proportion to the forms' counts.
    forms = sorted(train)
    weights_by_form = np.array([len(train[f]) for f in forms], np.float64)
    weights_by_form /= weights_by_form.sum()
    base_val = validate(False)
    best = {"nll": validate(), "arrays": {k: v.numpy() for k, v in variables.items()}, "step": 0}
    stale, steps, started = 0, 0, time.monotonic()
    history = [(0, best["nll"])]
    bar = tqdm(total=max_steps, desc="style", unit="step", mininterval=5, file=sys.stderr)
    while steps < max_steps and time.monotonic() - started < max_minutes * 60:
        form = forms[rng.choice(len(forms), p=weights_by_form)]
        rows = rng.choice(len(train[form]), size=min(batch_size, len(train[form])), replace=False)
        mu, sd = post_train[form]
        z = mu[rows] + sd[rows] * rng.standard_normal(mu[rows].shape).astype(np.float32)
        loss = step(tf.constant(train[form][rows]), tf.constant(np.full(len(rows), form, np.int32)),
                    tf.constant(z.astype(np.float32)))
        steps += 1
        bar.update(1)
        if steps % val_every == 0:
            v = validate()
            history.append((steps, v))
            bar.set_postfix(loss=f"{float(loss):.3f}", held=f"{v:.3f}", base=f"{base_val:.3f}",
                            refresh=False)
            if v < best["nll"] - 1e-4:
                best = {"nll": v, "arrays": {k: var.numpy() for k, var in variables.items()},
                        "step": steps}
                stale = 0
            else:
                stale += 1
                if stale >= patience:
                    break
    bar.close()
    arrays = {**init, **best["arrays"]}
    arrays["z_mu"], arrays["z_std"] = latent_prior(post_train)
    summary = {"steps": steps, "best_step": best["step"], "minutes": round((time.monotonic() - started) / 60, 2),
               "held_recon_nll_base": round(base_val, 4), "held_recon_nll_style": round(best["nll"], 4),
               "val_history": history}
    return arrays, summary


# --- measuring a style ----------------------------------------------------------------------------

def _features(poems: list[list[str]], vocab: Any) -> list[np.ndarray]:
    """Character ids plus hashed character-bigram ids (offset past the vocabulary), per poem."""
    out = []
    V = len(vocab)
    for lines in poems:
        ids = [vocab.id(c) for line in lines for c in line]
        bigrams = [V + (a * 7919 + b) % BIGRAM_BUCKETS
                   for line in lines for a, b in zip(map(vocab.id, line), map(vocab.id, line[1:]))]
        out.append(np.array(ids + bigrams, np.int32))
    return out


class PoetClassifier:
    """One style's poems against everyone else's: mean of character and bigram vectors → logistic."""

    def __init__(self, vocab: Any, dim: int = 32, seed: int = 0) -> None:
        import keras

        self.vocab = vocab
        keras.utils.set_random_seed(seed)
        inputs = keras.Input(shape=(None,), dtype="int32")
        x = keras.layers.Embedding(len(vocab) + BIGRAM_BUCKETS, dim, mask_zero=True)(inputs)
        x = keras.layers.GlobalAveragePooling1D()(x)
        outputs = keras.layers.Dense(1, activation="sigmoid")(x)
        self.model = keras.Model(inputs, outputs)
        self.model.compile(optimizer=keras.optimizers.Adam(5e-3), loss="binary_crossentropy")

    def _matrix(self, poems: list[list[str]]) -> np.ndarray:
        feats = _features(poems, self.vocab)
        width = max(len(f) for f in feats)
        out = np.zeros((len(feats), width), np.int32)     # 0 is PAD: masked
        for i, f in enumerate(feats):
            out[i, :len(f)] = f
        return out

    def fit(self, positive: list[list[str]], negative: list[list[str]], epochs: int = 8) -> None:
        x = self._matrix(positive + negative)
        y = np.array([1] * len(positive) + [0] * len(negative), np.float32)
        # Balanced classes: a poem is called the style's when it is more like its poems than not.
        weight = {0: 0.5 * len(y) / max(len(negative), 1), 1: 0.5 * len(y) / max(len(positive), 1)}
        self.model.fit(x, y, epochs=epochs, batch_size=64, class_weight=weight, verbose=0, shuffle=True)

    def prob(self, poems: list[list[str]]) -> np.ndarray:
        return self.model.predict(self._matrix(poems), batch_size=512, verbose=0)[:, 0]


def other_poems(corpus: Any, poets: list[str], n: int, seed: int, split: str) -> list[list[str]]:
    """n regular poems by anyone but poets, from the train (split="train") or held-out splits."""
    wanted = set(poets)
    pool = [i for i in corpus.indices() if corpus.author[i] not in wanted
            and ((corpus.split[i] == "train") == (split == "train"))]
    rng = np.random.default_rng([seed, 17])
    return [list(corpus.lines[i]) for i in rng.choice(pool, size=min(n, len(pool)), replace=False)]


def heldout_iw_nll(model: Any, vocab: Any, poems: list[list[str]], adapter: Any = None,
                   k: int = 20, seed: int = 0) -> float:
    """Importance-weighted NLL per character (every predicted token) of poems."""
    import tensorflow as tf

    from model.vae import log_likelihood_iw

    fn = tf.function(lambda t, f, e: log_likelihood_iw(model, {"tokens": t, "form": f}, k=k, eps=e,
                                                         adapter=adapter), reduce_retracing=True)
    rng = np.random.default_rng([seed, 3])
    total = chars = 0.0
    for form, matrix in _encode(poems, vocab).items():
        for start in range(0, len(matrix), 64):
            tok = matrix[start:start + 64]
            eps = rng.standard_normal((len(tok), k, model.config.latent_dim)).astype(np.float32)
            ll = fn(tf.constant(tok), tf.constant(np.full(len(tok), form, np.int32)), tf.constant(eps))
            total -= float(np.sum(ll.numpy()))
            chars += float(np.sum(tok[:, 1:] > 0))
    return total / max(chars, 1.0)


def form_mix(poems: list[list[str]]) -> list[str]:
    """The forms of poems, as a list to draw generation requests from (the style's own mix)."""
    return [classify(p) for p in poems if classify(p) != OTHER]


def generated(generator: Any, style: str, forms: list[str], n: int, seed: int) -> list[list[str]]:
    """n poems at default settings in the given style ("" = base), forms drawn from forms."""
    from model.requests import PoemRequest

    rng = np.random.default_rng([seed, 23])
    jobs = [PoemRequest(form=str(rng.choice(forms)), style=style, seed=seed * 100_000 + i)
            for i in range(n)]
    results = generator.generate(jobs)
    return [r.poems[0]["lines"] for r in results if r.ok]


def measure_style(generator: Any, corpus: Any, style_id: str, poets: list[str] | None,
                  style_set: StyleSet, n: int = SHARE_POEMS, seed: int = 0) -> dict:
    """Held-out NLL with and without the adapter, the classifier's own held-out accuracy, and the
    style share of generated poems with and without it (module doc)."""
    from verse.forms import poem_text
    from model.styles import Adapter

    style = generator.styles.get(style_id)
    if style is None:
        raise ValueError(f"no style {style_id!r} in the generator's styles ({', '.join(generator.styles.ids)})")
    model, vocab = generator.model, generator.vocab
    nll_base = heldout_iw_nll(model, vocab, style_set.held, None, seed=seed)
    nll_style = heldout_iw_nll(model, vocab, style_set.held, Adapter.constant(style.arrays), seed=seed)

    authors = poets or []
    neg_train = other_poems(corpus, authors, CLASSIFIER_NEGATIVES * len(style_set.train), seed, "train")
    neg_test = other_poems(corpus, authors, CLASSIFIER_NEGATIVES * len(style_set.held), seed, "held")
    clf = PoetClassifier(vocab, seed=seed)
    clf.fit(style_set.train, neg_train)
    p_pos, p_neg = clf.prob(style_set.held), clf.prob(neg_test)
    forms = form_mix(style_set.train)
    base = generated(generator, "", forms, n, seed)
    styled = generated(generator, style_id, forms, n, seed)
    share_base = float(np.mean(clf.prob(base) > 0.5))
    share_style = float(np.mean(clf.prob(styled) > 0.5))
    return {
        "style": style_id, "held_out_poems": len(style_set.held),
        "heldout_nll_base": round(nll_base, 4), "heldout_nll_style": round(nll_style, 4),
        "classifier_recall": round(float(np.mean(p_pos > 0.5)), 3),
        "classifier_specificity": round(float(np.mean(p_neg <= 0.5)), 3),
        "share_base": round(share_base, 3), "share_style": round(share_style, 3),
        "share_ratio": round(share_style / max(share_base, 1.0 / n), 2),
        "generated_per_side": n,
        "samples": [poem_text(p, couplet_break="") for p in styled[:6]],
    }


def finetune_style(style_id: str, base_dir: str | Path, styles_dir: str | Path,
                   poets: list[str] | None = None, file: str | None = None,
                   card: dict | None = None, config: str | None = None,
                   max_steps: int | None = None, measure: bool = True,
                   corpus: Any = None) -> Path:
    """Train, save and (with measure) measure one style; returns the adapter's path."""
    from corpus.reader import Corpus
    from model.decode import Generator
    from search.files import model_version
    from model.styles import save_style
    from model.vae import load_model

    if not poets and not file:
        raise ValueError("a style needs --poet NAME (one or more) or --file poems.txt")
    cfg = json.loads(Path(config or STYLE_CONFIG).read_text())["train"]
    if corpus is None and (poets or measure):
        corpus = Corpus.load()
    style_set = poet_set(corpus, poets) if poets else file_set(Path(file))
    model, vocab, _ = load_model(base_dir)
    print(f"[style] {style_id}: {len(style_set.train)} poems to learn, {len(style_set.held)} held out",
          file=sys.stderr)
    arrays, summary = train_adapter(model, vocab, style_set, rank=int(cfg["rank"]), lr=float(cfg["lr"]),
                                    batch_size=int(cfg["batch_size"]),
                                    max_steps=int(max_steps or cfg["max_steps"]),
                                    max_minutes=float(cfg["max_minutes"]),
                                    val_every=int(cfg["val_every_steps"]), patience=int(cfg["patience"]),
                                    seed=int(cfg.get("seed", 0)))
    meta = {**(card or {}), "base_version": model_version(base_dir), "rank": int(cfg["rank"]),
            "data": {"poets": poets or [], "file": file, "train_poems": len(style_set.train),
                     "held_out_poems": len(style_set.held),
                     "by_form": {f: sum(classify(p) == f for p in style_set.train) for f in FORMS}},
            "training": summary}
    path = save_style(styles_dir, style_id, arrays, meta)
    if measure:
        generator = Generator.load(base_dir, styles_dir=styles_dir)
        meta["metrics"] = measure_style(generator, corpus, style_id, poets, style_set)
        save_style(styles_dir, style_id, arrays, meta)
        print(json.dumps(meta["metrics"], ensure_ascii=False, indent=1), file=sys.stderr)
        write_styles_report(styles_dir)
    return path


def evaluate_style(style_id: str, base_dir: str | Path, styles_dir: str | Path) -> dict:
    """`poembot evaluate --style ID`: measure a saved style again, on the data its card names, and
    write the figures into its card."""
    from corpus.reader import Corpus
    from model.decode import Generator
    from model.styles import load_style, save_style

    path = Path(styles_dir) / f"{style_id}.npz"
    if not path.exists():
        raise FileNotFoundError(f"no style {style_id!r} in {styles_dir}")
    style = load_style(path)
    data = style.card.get("data", {})
    poets, file = data.get("poets") or None, data.get("file")
    corpus = Corpus.load()
    style_set = poet_set(corpus, poets) if poets else file_set(Path(file))
    generator = Generator.load(base_dir, styles_dir=styles_dir)
    metrics = measure_style(generator, corpus, style_id, poets, style_set)
    style.card["metrics"] = metrics
    save_style(styles_dir, style_id, style.arrays, style.card)
    write_styles_report(styles_dir)
    return metrics


STYLES_REPORT = "STYLES.md"


def write_styles_report(styles_dir: str | Path) -> Path:
    """STYLES.md in the styles folder: every style's data, training and measures in one table,
    then a few of its poems, unedited (the first of a seeded run at default settings)."""
    from model.styles import load_style

    styles_dir = Path(styles_dir)
    cards = [load_style(p).card for p in sorted(styles_dir.glob("*.npz")) if not p.name.startswith(".")]
    rows = ["| style | poems (train / held out) | rank | steps (best) | held-out NLL base → style "
            "| classifier recall / specificity | style share base → style | ratio (goal ≥ 3) |",
            "|---|---:|---:|---:|---|---|---|---:|"]
    samples = []
    for c in cards:
        d, t, m = c.get("data", {}), c.get("training", {}), c.get("metrics", {})
        rows.append(
            f"| {c.get('title', c['id'])} (`{c['id']}`) | {d.get('train_poems', '?')} / {d.get('held_out_poems', '?')} "
            f"| {c.get('rank', '?')} | {t.get('steps', '?')} ({t.get('best_step', '?')}) "
            f"| {m.get('heldout_nll_base', '?')} → {m.get('heldout_nll_style', '?')} "
            f"| {m.get('classifier_recall', '?')} / {m.get('classifier_specificity', '?')} "
            f"| {m.get('share_base', '?')} → {m.get('share_style', '?')} | {m.get('share_ratio', '?')} |")
        if m.get("samples"):
            samples += [f"### {c.get('title', c['id'])}", "", *[f"- {x}" for x in m["samples"]], ""]
    text = "\n".join([
        "# Style adapters", "",
        "Each style is a low-rank adapter on the frozen base model (`model/styles.py`), trained by "
        "`poembot finetune --style ID` and measured by `poembot evaluate --style ID` "
        "(`training/style.py`): held-out NLL per character (importance-weighted, k=20) of the "
        "style's held-out poems under the base decoder and the adapted one; and the share of "
        f"{SHARE_POEMS} poems generated at default settings (best-of-4, the style's own mix of forms) "
        "that a poet classifier trained on real poems (the style's own against 4× as many by others; "
        "recall and specificity on held-out real poems) calls the style's, without and with the adapter.",
        "", *rows, "", "## Poems (unselected)", "", *samples])
    path = styles_dir / STYLES_REPORT
    path.write_text(text + "\n", encoding="utf-8")
    return path
