"""Evaluate a trained poem VAE against its LM baseline, and the constrained decoder that users get.

Writes report.md, metrics.json and PNG plots into the model folder; `poembot evaluate --model DIR`.
The parts, in the order evaluate() runs them: likelihoods and latents (training/likelihood.py),
neighbours (training/neighbours.py), unconstrained samples (training/sampling.py), the constrained
decoder (training/constrained.py), meaning (training/meaning.py), plots (training/plots.py) and the
report (training/report.py).
"""
from __future__ import annotations

import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from corpus.reader import Corpus
from training.constrained import constrained_section, copy_reference
from training.likelihood import likelihood_metrics, likelihoods
from training.neighbours import neighbour_metrics
from training.plots import make_plots
from training.report import write_report
from training.sampling import generation_metrics, interpolations
from verse.forms import FORM_INDEX
from verse.vocab import Vocab


def corpus_for(model_dir: Path) -> Corpus:
    """The corpus the model was trained on: rebuilt for a synthetic config, else the built one."""
    from training.train import TRAIN_CONFIG_FILE, TrainConfig, load_corpus_and_vocab

    cfg_path = model_dir / TRAIN_CONFIG_FILE
    cfg = TrainConfig.load(cfg_path) if cfg_path.exists() else TrainConfig(model={})
    corpus, _ = load_corpus_and_vocab(cfg)
    return corpus


def held_out_rows(corpus: Corpus, limit: int, seed: int) -> list[int]:
    """The test split, a seeded sample of limit poems when it holds more."""
    rows = corpus.indices("test")
    if len(rows) > limit:
        rng = np.random.default_rng(seed)
        rows = sorted(rng.choice(rows, size=limit, replace=False).tolist())
    return rows


def by_form(corpus: Corpus, vocab: Vocab, rows: list[int]) -> dict[int, tuple[np.ndarray, list[int]]]:
    """{form id: (tokens [N, T], the rows)}: one matrix per form, nothing padded."""
    groups: dict[int, list[int]] = defaultdict(list)
    for i in rows:
        groups[FORM_INDEX[corpus.form[i]]].append(i)
    return {f: (np.asarray([vocab.encode_lines(corpus.lines[i]) for i in rs], np.int32), rs)
            for f, rs in sorted(groups.items())}


def meaning_section(root: Path, vocab: Vocab, samples: dict[str, list], corpus: Corpus,
                    seed: int = 0, judge: Path | None = None, write: bool = True) -> dict:
    """c2st and judge NLL of the constrained poems against the real reference (training/meaning.py);
    writes samples.md into root unless write is False. judge: the LM folder (default root/lm)."""
    from model.vae import load_model
    from training import meaning

    judge = judge or root / "lm"
    lm = load_model(judge)[0] if (judge / "weights.npz").exists() else None
    embeddings = meaning.char_embeddings([corpus.lines[i] for i in corpus.indices("train")], vocab)
    m = meaning.meaning_metrics(lm, vocab, samples["reference"], samples["generated"], seed,
                                embeddings)
    if write:
        meaning.write_samples(root / meaning.SAMPLES_FILE, samples["generated"],
                              samples["acrostics"], title=root.name)
    return m


def evaluate(model_dir: str, n: int = 1000, as_json: bool = False, max_test: int = 2400,
             iw_poems: int = 400, iw_k: int = 50, seed: int = 0, temperature: float = 1.0,
             top_p: float = 0.9, best_of: int | None = None) -> dict:
    """Evaluate the model in model_dir (and its LM baseline in model_dir/lm when present).

    n poems per form are sampled from the prior; the test split is subsampled to max_test poems,
    the importance-weighted bound to iw_poems of them (k = iw_k samples each).
    """
    import keras

    from model.vae import load_model

    t0 = time.monotonic()
    keras.utils.set_random_seed(seed)
    root = Path(model_dir)
    model, vocab, config = load_model(root)
    lm = load_model(root / "lm")[0] if (root / "lm" / "weights.npz").exists() else None
    corpus = corpus_for(root)
    rows = held_out_rows(corpus, max_test, seed)
    data = by_form(corpus, vocab, rows)
    rng = np.random.default_rng(seed + 1)
    iw_rows = set(rng.choice(rows, size=min(iw_poems, len(rows)), replace=False).tolist())
    if not config.use_latent:
        raise ValueError(f"{root} holds a plain LM; evaluate the VAE folder above it")

    titles = poem_titles(corpus, vocab, config, data)
    res = likelihoods(model, lm, data, iw_rows, iw_k, titles=titles)
    metrics = likelihood_metrics(res, iw_k, config.latent_dim, seed, titled=titles is not None,
                                 with_lm=lm is not None)
    metrics["test_subsampled"] = len(rows) < len(corpus.indices("test"))
    test_rows = [int(r) for r in res["rows"]]
    metrics.update(neighbour_metrics(res["mu"], corpus, test_rows))

    train_lines = copy_reference(root, corpus)
    gen, examples = generation_metrics(model, vocab, train_lines, n, seed, temperature, top_p)
    metrics.update(gen)
    constrained, constrained_samples = constrained_section(model, vocab, config, root, corpus, n, seed,
                                                           train_lines, best_of=best_of)
    metrics.update(constrained)
    metrics.update(meaning_section(root, vocab, constrained_samples, corpus, seed))

    interp = interpolations(model, vocab, data, dict(zip(test_rows, res["mu"])), corpus, seed=seed)
    plots = make_plots(root, res["mu"], [int(f) for f in res["form"]],
                       [corpus.dynasty[r] for r in test_rows], res["kl_d"].mean(axis=0))
    metrics["eval_seconds"] = round(time.monotonic() - t0, 1)
    write_report(root, metrics, examples, interp, plots, config, constrained_samples)
    merge_metrics(root, metrics)
    if as_json:
        print(json.dumps(metrics, ensure_ascii=False))
    return metrics


def poem_titles(corpus: Corpus, vocab: Vocab, config, data: dict) -> dict[int, np.ndarray] | None:
    """The test poems' titles as a titled model reads them ({form: [N, title_len]}), None for an untitled one."""
    if not config.title_len:
        return None
    from model.titles import encode_titles

    return {f: encode_titles([corpus.title[i] for i in rs], vocab, config.title_len) for f, (_, rs) in data.items()}


def merge_metrics(root: Path, metrics: dict) -> None:
    """Into the model's metrics.json, beside what training wrote there."""
    from model.vae import METRICS_FILE

    path = root / METRICS_FILE
    merged = json.loads(path.read_text()) if path.exists() else {}
    merged.update(metrics)
    path.write_text(json.dumps(merged, indent=2, ensure_ascii=False))


def evaluate_meaning(model_dir: str, n: int = 1000, seed: int = 0, best_of: int | None = None,
                     judge: str | None = None) -> dict:
    """The constrained section plus c2st and judge NLL; prints JSON and writes nothing — how an
    older model is measured beside a new one (same classifier recipe, same judge)."""
    from model.vae import load_model

    root = Path(model_dir)
    model, vocab, config = load_model(root)
    corpus = corpus_for(root)
    m, samples = constrained_section(model, vocab, config, root, corpus, n, seed, best_of=best_of)
    m.update(meaning_section(root, vocab, samples, corpus, seed, Path(judge) if judge else None,
                             write=False))
    print(json.dumps(m, ensure_ascii=False))
    return m


def evaluate_constrained(model_dir: str, n: int = 1000, seed: int = 0, as_json: bool = False) -> dict:
    """Only the constrained decoder's section (no LM, no likelihoods, nothing written)."""
    from model.vae import load_model

    root = Path(model_dir)
    model, vocab, config = load_model(root)
    try:
        corpus = corpus_for(root)
    except (FileNotFoundError, ValueError) as exc:
        print(f"[evaluate] corpus unavailable ({exc})", file=sys.stderr)
        corpus = None
    m, samples = constrained_section(model, vocab, config, root, corpus, n, seed)
    if as_json:
        shown = {k: v for k, v in samples.items() if k != "lines"}
        print(json.dumps({**m, "samples": shown}, ensure_ascii=False))
    return m
