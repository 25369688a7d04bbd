"""Train the poem VAE and its plain character-LM baseline under a wall-clock budget, with resume.

`poembot train --config training/configs/real.json --out runs/real [--resume] [--init DIR]`.

A run can start from a trained model folder (`--init model/pretrained`, or `--resume` on a folder
that holds weights but no checkpoint): its weights are loaded, the optimizer starts fresh with a
short warm-up, and the cumulative training hours carry over, so later runs keep improving the
same model. `train.num_sampled` > 0 trains with a sampled softmax (about 2x the tokens/s here,
benchmarks/train_step.py) until `train.exact_from` of the budget, then with the exact softmax so
the saved model's normaliser is tuned on the loss it is evaluated with.
"""
from __future__ import annotations

import csv
import json
import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from corpus.reader import VOCAB_FILE as CORPUS_VOCAB_FILE
from corpus.reader import Corpus
from verse.forms import FORM_INDEX, FORM_NAMES, FORMS
from protocol.paths import corpus_dir
from model.folder import weight_key as _weight_key
from training.schedule import batch_stream, epoch_batches, learning_rate  # noqa: F401 (tests)
from training.run_files import (LOG_FIELDS, LOG_FILE, STATE_FILE, VAL_FIELDS,  # noqa: F401 (their home before)
                                 VAL_LOG_FILE, prior_hours)
from training.run_files import read_state as _read_state
from verse.vocab import Vocab

VAL_CHUNK = 256     # validation poems scored at a time; each chunk's draws of z are seeded by its start


def validation_draws(n: int, latent_dim: int, form: int, start: int):
    """The draws of z's noise for validation poems start .. start+n of form: the same at every
    validation (common random numbers), so early stopping compares models, not sampling noise,
    restored best weights score as they did, and the GPU machine's run (training/pack.py carries
    these draws there) scores as this trainer does."""
    import tensorflow as tf

    return tf.random.stateless_normal([n, latent_dim], seed=[form, start])


CONFIG_DIR = Path(__file__).resolve().parent / "configs"
DEFAULT_CONFIG = CONFIG_DIR / "real.json"
TRAIN_CONFIG_FILE = "train_config.json"
LM_DIR = "lm"
# Every validation of a model and of the models it was continued from: (run, hours, nll).
HISTORY_FILE = "val_history.csv"
HISTORY_FIELDS = ("run", "cumulative_hours", "val_nll_per_char")

# Generic characters for the synthetic corpus: a test fixture, not poetry.
SYNTHETIC_CHARS = "山水风月花云日夜春秋江天人心雨雪松竹石泉鸟声远近高低明暗寒暖古今来去"


@dataclass
class TrainConfig:
    model: dict                     # VAEConfig fields except vocab_size
    data: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    lm: dict = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path | None) -> "TrainConfig":
        raw = json.loads(Path(path or DEFAULT_CONFIG).read_text())
        return cls(model=raw.get("model", {}), data=raw.get("data", {}),
                   train=raw.get("train", {}), lm=raw.get("lm", {}))

    def to_dict(self) -> dict:
        return {"model": self.model, "data": self.data, "train": self.train, "lm": self.lm}

    def train_value(self, key: str, default):
        """The train section's value for key, or default."""
        return self.train.get(key, default)


# --- data ------------------------------------------------------------------------------------
def synthetic_corpus(n_poems: int, seed: int = 0) -> Corpus:
    """Random poems of all four forms over a small character set, with learnable structure:
    each poem draws its characters from one of a few overlapping 'themes', and each theme
    belongs to one 'poet', so latents and neighbours have something to find."""
    rng = random.Random(seed)
    n_themes = 6
    themes = [SYNTHETIC_CHARS[(k * 5) % len(SYNTHETIC_CHARS):][:12] or SYNTHETIC_CHARS[:12]
              for k in range(n_themes)]
    corpus = Corpus()
    for i in range(n_poems):
        form = FORMS[FORM_NAMES[i % len(FORM_NAMES)]]
        theme = rng.randrange(n_themes)
        chars = themes[theme]
        lines = []
        for k in range(form.n_lines):
            # A repeated last character every second line: a stand-in for rhyme.
            line = [rng.choice(chars) for _ in range(form.line_len)]
            if k % 2 == 1:
                line[-1] = chars[0]
            lines.append("".join(line))
        split = "test" if i % 10 == 0 else ("val" if i % 10 == 1 else "train")
        corpus.append(id=f"syn{i}", dynasty="tang" if theme % 2 == 0 else "song",
                      author=f"poet{theme}", title=f"t{i}", author_t=f"poet{theme}",
                      title_t=f"t{i}", form=form.name, split=split, lines=lines, lines_t=lines,
                      puncts="，。" * (form.n_lines // 2), strains=None, rank=0)
    return corpus


def load_corpus_and_vocab(cfg: TrainConfig) -> tuple[Corpus, Vocab]:
    """The corpus named by the config's data section, and its vocabulary."""
    data = cfg.data
    if data.get("source", "corpus") == "synthetic":
        corpus = synthetic_corpus(int(data.get("n_poems", 400)), int(data.get("seed", 0)))
        train_rows = corpus.indices("train")
        vocab = Vocab.build(("".join(corpus.lines[i]) for i in train_rows), min_count=1)
        return corpus, vocab
    directory = Path(data["corpus_dir"]) if data.get("corpus_dir") else corpus_dir()
    corpus = Corpus.load(directory)
    vocab_path = directory / CORPUS_VOCAB_FILE
    if vocab_path.exists():
        vocab = Vocab.load(vocab_path)
    else:
        rows = corpus.indices("train")
        vocab = Vocab.build(("".join(corpus.lines[i]) for i in rows),
                            max_size=int(data.get("vocab_max", 6000)))
    return corpus, vocab


def split_rows(corpus: Corpus, split: str, limit: int | None = None, seed: int = 0) -> list[int]:
    """The split's regular poems, or a seeded sample of limit of them, in corpus order."""
    rows = corpus.indices(split)
    if limit is not None and len(rows) > limit:
        rows = sorted(random.Random(seed).sample(rows, limit))
    return rows


def encode_split(corpus: Corpus, vocab: Vocab, split: str, limit: int | None = None,
                 seed: int = 0) -> dict[int, np.ndarray]:
    """Token matrices per form id: {form_id: [N_f, seq_len + 2] int32}, BOS..EOS, no padding."""
    rows = split_rows(corpus, split, limit, seed)
    return encode_by_form(((corpus.form[i], corpus.lines[i]) for i in rows), vocab)


def encode_split_titles(corpus: Corpus, vocab: Vocab, split: str, title_len: int,
                        limit: int | None = None, seed: int = 0) -> dict[int, np.ndarray]:
    """The titles of encode_split's poems, row for row: {form_id: [N_f, title_len] int32}."""
    from model.titles import encode_titles

    rows = split_rows(corpus, split, limit, seed)
    by_form: dict[int, list[str]] = {}
    for i in rows:
        by_form.setdefault(FORM_INDEX[corpus.form[i]], []).append(corpus.title[i])
    return {f: encode_titles(titles, vocab, title_len) for f, titles in by_form.items()}


def encode_by_form(poems: Iterable[tuple[str, list[str]]], vocab: Vocab) -> dict[int, np.ndarray]:
    """{form_id: [N_f, seq_len + 2] int32} for (form name, lines) pairs, BOS..EOS, no padding."""
    by_form: dict[int, list[list[int]]] = {f: [] for f in range(len(FORM_NAMES))}
    for form, lines in poems:
        by_form[FORM_INDEX[form]].append(vocab.encode_lines(lines))
    return {f: np.asarray(seqs, np.int32).reshape(len(seqs), -1)
            for f, seqs in by_form.items() if seqs}


# --- the loop --------------------------------------------------------------------------------
def _setup_tf(seed: int):
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    gpu = bool(tf.config.list_physical_devices("GPU"))
    if gpu:
        keras.mixed_precision.set_global_policy("mixed_float16")
    return tf, keras, gpu


def _learning_rate(cfg: TrainConfig, progress: float) -> float:
    """The schedule's rate at progress (training/schedule.py's learning_rate)."""
    return learning_rate(cfg.train, progress)


def _write_state(path: Path, state: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(path)


def write_history(out_dir: Path, init: Path | None) -> Path:
    """val_history.csv in out_dir: init's history (or its val.csv), then this run's val.csv.

    The validation poems are the same across continued runs (train.val_seed), so the file is the
    curve of validation NLL against cumulative training hours the model card shows."""
    rows: list[tuple[str, float, float]] = []
    if init is not None and (init / HISTORY_FILE).exists():
        with open(init / HISTORY_FILE) as fh:
            rows += [(r["run"], float(r["cumulative_hours"]), float(r["val_nll_per_char"]))
                     for r in csv.DictReader(fh)]
    elif init is not None and (init / VAL_LOG_FILE).exists():
        with open(init / VAL_LOG_FILE) as fh:
            rows += [(init.name, float(r["elapsed_s"]) / 3600, float(r["val_nll_per_char"]))
                     for r in csv.DictReader(fh)]
    with open(out_dir / VAL_LOG_FILE) as fh:
        mine = list(csv.DictReader(fh))
    run = _read_state(out_dir / STATE_FILE).get("run_name", out_dir.name)
    rows += [(run, float(r["cumulative_hours"]) if r.get("cumulative_hours")
              else float(r["elapsed_s"]) / 3600, float(r["val_nll_per_char"])) for r in mine]
    path = out_dir / HISTORY_FILE
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(HISTORY_FIELDS)
        writer.writerows((r, f"{h:.4f}", f"{v:.4f}") for r, h, v in rows)
    return path


def init_from_folder(model, source: Path) -> list[str]:
    """Load a saved model's weights into model (same vocabulary), matched by name; returns the
    names of model's weights the source lacks (new layers, e.g. the title's), left as built. A
    model with a wider decoder than the source's grows from it (training/grow.py)."""
    from model.folder import read_config, read_weights
    from training.grow import grown_arrays

    config = read_config(source)
    if config["vocab_size"] != model.config.vocab_size:
        raise ValueError(f"{source}: vocabulary of {config['vocab_size']}, the corpus has "
                         f"{model.config.vocab_size}; rebuild with the same vocabulary")
    saved = read_weights(source)
    variables = {_weight_key(var.path): var for var in model.weights}
    values = grown_arrays(saved, {k: var.numpy() for k, var in variables.items()},
                          grow=model.config.dec_units > int(config["dec_units"]), where=str(source))
    for key, var in variables.items():
        var.assign(values[key])
    return [var.path for key, var in variables.items() if key not in saved]


def train_phase(cfg: TrainConfig, use_latent: bool, out_dir: Path, train_data: dict,
                val_data: dict, vocab: Vocab, resume: bool, max_steps: int | None,
                max_minutes: float, init: Path | None = None,
                train_titles: dict | None = None, val_titles: dict | None = None) -> dict:
    """Train one model (VAE or LM) into out_dir; returns its final state dict.

    init: a saved model folder to start from when there is no checkpoint to resume.
    train_titles, val_titles: the poems' titles (encode_split_titles), for a model whose config
    has title_len; without them such a model trains as if every poem were untitled.
    """
    phase = Phase(cfg, use_latent, out_dir, vocab)
    phase.start(resume, init)
    return phase.run(train_data, val_data, max_steps, max_minutes, train_titles, val_titles)


class PhaseLogs:
    """log.csv (a row every log_every steps) and val.csv (a row per validation), appended to on resume."""

    def __init__(self, out_dir: Path) -> None:
        self.log_fh, self.log = self._open(out_dir / LOG_FILE, LOG_FIELDS)
        self.val_fh, self.val = self._open(out_dir / VAL_LOG_FILE, VAL_FIELDS)

    @staticmethod
    def _open(path: Path, fields: tuple[str, ...]):
        new = not path.exists()
        fh = open(path, "a", newline="")
        writer = csv.writer(fh)
        if new:
            writer.writerow(fields)
        return fh, writer

    def step_row(self, state: dict, epoch_share: float, mean: dict, lr: float, tokens_per_s: float) -> None:
        self.log.writerow([state["step"], f"{epoch_share:.3f}", f"{state['elapsed_s']:.1f}",
                           f"{mean['loss']:.4f}", f"{mean['rec']:.4f}", f"{mean['kl']:.4f}",
                           f"{mean['kl_fb']:.4f}", f"{mean['beta']:.4f}", f"{lr:.6f}",
                           f"{(mean['rec'] + mean['kl']) / max(mean['n_tokens'], 1):.4f}",
                           f"{tokens_per_s:.0f}"])
        self.log_fh.flush()

    def val_row(self, state: dict, hours: float, v: dict) -> None:
        self.val.writerow([state["step"], f"{state['elapsed_s']:.1f}",
                           *(f"{v[k]:.4f}" for k in ("val_rec", "val_kl", "val_nll_per_char")),
                           f"{hours:.4f}"])
        self.val_fh.flush()

    def close(self) -> None:
        self.log_fh.close()
        self.val_fh.close()


class StepMeans:
    """The loss terms summed over the steps since the last log row, and the tokens they read."""
    TERMS = ("loss", "rec", "kl", "kl_fb", "beta", "n_tokens")

    def __init__(self) -> None:
        self.sums = {k: 0.0 for k in self.TERMS}
        self.n, self.tokens, self.t0 = 0, 0, time.monotonic()

    def add(self, terms: dict, tokens: np.ndarray) -> None:
        for k in self.sums:
            self.sums[k] += float(terms[k])
        self.n += 1
        self.tokens += tokens.shape[0] * (tokens.shape[1] - 1)

    def mean(self) -> dict:
        return {k: v / self.n for k, v in self.sums.items()}

    def tokens_per_s(self, now: float) -> float:
        return self.tokens / max(now - self.t0, 1e-9)


class Phase:
    """One model (the VAE, or its LM baseline) trained into out_dir within a budget of steps and minutes:
    built, started (resumed from its checkpoint, or from another model's weights), run, saved."""

    def __init__(self, cfg: TrainConfig, use_latent: bool, out_dir: Path, vocab: Vocab) -> None:
        self.tf, keras, self.gpu = _setup_tf(int(cfg.train_value("seed", 1234)) + (0 if use_latent else 1))
        from model.vae import VAEConfig, build_vae

        tf = self.tf
        self.cfg, self.use_latent, self.out_dir, self.vocab = cfg, use_latent, out_dir, vocab
        self.name = "vae" if use_latent else "lm"
        out_dir.mkdir(parents=True, exist_ok=True)
        overrides = {} if use_latent else cfg.lm.get("model_overrides", {})
        self.mconf = VAEConfig.from_dict({**cfg.model, **overrides, "vocab_size": len(vocab),
                                          "use_latent": use_latent})
        self.model = build_vae(self.mconf)
        optimizer = keras.optimizers.Adam(learning_rate=float(cfg.train_value("lr", 1e-3)),
                                          global_clipnorm=float(cfg.train_value("grad_clip", 5.0)))
        if self.gpu:
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        optimizer.build(self.model.trainable_variables)
        self.optimizer = optimizer
        self.step_var = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.ckpt = tf.train.Checkpoint(model=self.model, optimizer=optimizer, step=self.step_var)
        self.manager = tf.train.CheckpointManager(self.ckpt, str(out_dir / "ckpt"), max_to_keep=2)
        self.state_path = out_dir / STATE_FILE
        self.state: dict = {"step": 0, "epoch": 0, "position": 0, "elapsed_s": 0.0, "done": False}
        self.n_batches = 1

    # --- starting: resume this phase's checkpoint, or a new run (from init's weights) ---------------
    def start(self, resume: bool, init: Path | None) -> None:
        if resume and self.manager.latest_checkpoint and self.state_path.exists():
            self.ckpt.restore(self.manager.latest_checkpoint).expect_partial()
            self.state.update(_read_state(self.state_path))
            print(f"[train] resumed {self.out_dir} at step {self.state['step']}", file=sys.stderr)
            return
        if resume and init is None and (self.out_dir / "weights.npz").exists():
            init = self.out_dir
        if init is not None:
            self._start_from(init)
        for name in (LOG_FILE, VAL_LOG_FILE):
            (self.out_dir / name).unlink(missing_ok=True)

    def _start_from(self, init: Path) -> None:
        """A new run on a trained model: a new schedule, hours carried over. When the source is a run
        folder with its checkpoint, take the float32 weights and Adam's moments from it: the shipped
        float16 weights and a fresh optimizer made earlier restarts spend their first ~15 minutes
        climbing back to where the last run ended."""
        source_ckpt = self.tf.train.latest_checkpoint(str(init / "ckpt"))
        if source_ckpt and self._grows(init):
            source_ckpt = None      # its optimizer's moments have the narrower shapes: weights only
        if source_ckpt:
            self.ckpt.restore(source_ckpt).expect_partial()
            self.step_var.assign(0)
            print(f"[train] weights and optimizer state from {source_ckpt}", file=sys.stderr)
        else:
            new = init_from_folder(self.model, init)
            if new:
                print(f"[train] new weights, not in {init}: {', '.join(new)}", file=sys.stderr)
        self.state["base_hours"] = prior_hours(init)
        self.state["init_from"] = str(init)
        print(f"[train] starting from the weights of {init} "
              f"({self.state['base_hours']:.2f} h of training so far)", file=sys.stderr)

    def _grows(self, init: Path) -> bool:
        """Whether this run's decoder is wider than init's (training/grow.py)."""
        from model.folder import CONFIG_FILE
        from model.vae import VAEConfig
        source = VAEConfig.from_dict(json.loads((init / CONFIG_FILE).read_text()))
        return self.model.config.dec_units > source.dec_units

    @property
    def base_hours(self) -> float:
        return float(self.state.get("base_hours", 0.0))

    @property
    def hours(self) -> float:
        return self.base_hours + self.state["elapsed_s"] / 3600

    # --- the compiled steps -------------------------------------------------------------------------
    def _compile(self, titled: bool) -> None:
        """train steps (sampled softmax, and exact for the last stretch) and the validation step.

        One signature for every form's length and batch size: each function is traced once per phase,
        not once or twice per shape (tracing was most of a short run's time). XLA still compiles per
        concrete shape when it is on."""
        tf, cfg, model, optimizer, gpu = self.tf, self.cfg, self.model, self.optimizer, self.gpu
        batch_spec = (tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None], tf.int32),
                      tf.TensorSpec([None, None], tf.int32))

        def batch_inputs(tokens, forms, titles) -> dict:
            inputs = {"tokens": tokens, "form": forms}
            if titled:
                inputs["title"] = titles
            return inputs

        def make_train_step(num_sampled: int):
            @tf.function(input_signature=(*batch_spec, tf.TensorSpec([], tf.int64), tf.TensorSpec([], tf.float32)),
                         jit_compile=bool(cfg.train_value("xla", False)))
            def train_step(tokens, forms, titles, step, beta):
                with tf.GradientTape() as tape:
                    terms = model.loss_terms(batch_inputs(tokens, forms, titles), step, training=True,
                                             beta=beta, num_sampled=num_sampled)
                    loss = terms["loss"]
                    if gpu:
                        loss = optimizer.scale_loss(loss)
                grads = tape.gradient(loss, model.trainable_variables)
                optimizer.apply(grads, model.trainable_variables)
                return terms
            return train_step

        @tf.function(input_signature=(*batch_spec, tf.TensorSpec([None, None], tf.float32)))
        def eval_step(tokens, forms, titles, eps):
            return model.loss_terms(batch_inputs(tokens, forms, titles), 0, training=False, beta=1.0,
                                    eps=eps)

        num_sampled = int(cfg.train_value("num_sampled", 0))
        self.sampled_step = make_train_step(num_sampled)
        self.exact_step = make_train_step(0) if num_sampled > 0 else self.sampled_step
        self.eval_step = eval_step

    # --- validation and checkpoints -----------------------------------------------------------------
    def validate(self, val_data: dict, val_titles: dict | None) -> dict:
        tf = self.tf
        totals = {"rec": 0.0, "kl": 0.0, "chars": 0.0, "n": 0}
        for form, matrix in sorted(val_data.items()):
            for start in range(0, len(matrix), VAL_CHUNK):
                tok = matrix[start:start + VAL_CHUNK]
                eps = validation_draws(len(tok), self.mconf.latent_dim, form, start)
                titles = (val_titles[form][start:start + VAL_CHUNK] if val_titles is not None
                          else np.zeros((len(tok), 0), np.int32))
                terms = self.eval_step(tf.constant(tok), tf.constant(np.full(len(tok), form, np.int32)),
                                       tf.constant(titles), eps)
                totals["rec"] += float(terms["rec"]) * len(tok)
                totals["kl"] += float(terms["kl"]) * len(tok)
                totals["chars"] += float(terms["n_tokens"]) * len(tok)
                totals["n"] += len(tok)
        n = max(totals["n"], 1)
        return {"val_rec": totals["rec"] / n, "val_kl": totals["kl"] / n,
                "val_nll_per_char": (totals["rec"] + totals["kl"]) / max(totals["chars"], 1)}

    def checkpoint(self, final: bool = False) -> None:
        from model.vae import save_model

        state = self.state
        state["cumulative_hours"] = round(self.hours, 4)
        self.manager.save(checkpoint_number=int(state["step"]))
        _write_state(self.state_path, state)
        if final:
            save_model(self.model, self.vocab, self.out_dir,
                       dtype=str(self.cfg.train_value("save_dtype", "float16")),
                       metrics={"train_steps": state["step"], "train_minutes":
                                round(state["elapsed_s"] / 60, 2), "epochs":
                                state["epoch"] + state["position"] / max(1, self.n_batches),
                                "cumulative_train_hours": state["cumulative_hours"]})

    # --- the run ------------------------------------------------------------------------------------
    def run(self, train_data: dict, val_data: dict, max_steps: int | None, max_minutes: float,
            train_titles: dict | None = None, val_titles: dict | None = None) -> dict:
        """Step until the planned steps or the minutes run out (or early stopping), then validate,
        keep the best weights seen (early stopping), save; returns the state."""
        from tqdm import tqdm

        from model.vae import beta_at

        tf, cfg, state, mconf = self.tf, self.cfg, self.state, self.mconf
        if not mconf.title_len:
            train_titles = val_titles = None
        self._compile(bool(mconf.title_len))
        batch_size = int(cfg.train_value("batch_size", 128))
        seed = int(cfg.train_value("seed", 1234))
        self.n_batches = len(epoch_batches(train_data, batch_size, seed, 0))
        log_every = int(cfg.train_value("log_every", 50))
        ckpt_every_s = float(cfg.train_value("ckpt_every_minutes", 5)) * 60
        budget_s = max_minutes * 60
        planned = max_steps or int(cfg.train_value("planned_steps", 10**9))
        exact_from = float(cfg.train_value("exact_from", 0.9))
        final_beta_from = float(cfg.train_value("full_beta_from", 0.8)) if self.use_latent else 2.0
        # Early stopping (fine-tuning): validate every val_every_steps, keep the best weights, stop
        # after `patience` validations without improvement.
        val_every = int(cfg.train_value("val_every_steps", 0))
        patience = int(cfg.train_value("patience", 0))

        logs = PhaseLogs(self.out_dir)
        bar = tqdm(total=max_steps or None, initial=int(state["step"]), desc=self.name, mininterval=10,
                   file=sys.stderr, unit="step")
        stream = batch_stream(train_data, batch_size, seed, int(state["epoch"]), int(state["position"]),
                              titles=train_titles)
        started = time.monotonic() - float(state["elapsed_s"])
        last_ckpt = time.monotonic()
        means = StepMeans()
        best: dict = {"nll": math.inf, "weights": None, "step": 0, "stale": 0}

        def validated() -> dict:
            state["elapsed_s"] = time.monotonic() - started
            return self.validate(val_data, val_titles)

        try:
            while True:
                elapsed = time.monotonic() - started
                if state["step"] >= planned or elapsed >= budget_s:
                    break
                progress = max(state["step"] / planned if planned < 10**9 else 0.0, elapsed / budget_s)
                lr = _learning_rate(cfg, progress)
                self.optimizer.learning_rate.assign(lr)
                # The last stretch runs at full beta so the saved model is a proper ELBO optimum,
                # whatever phase of the annealing cycle the budget ends in.
                beta = (mconf.beta_max if progress >= final_beta_from
                        else float(beta_at(mconf, state["step"])))
                epoch, position, tokens, forms, titles = next(stream)
                step_fn = self.exact_step if progress >= exact_from else self.sampled_step
                terms = step_fn(tf.constant(tokens), tf.constant(forms), tf.constant(titles),
                                tf.constant(state["step"], tf.int64), tf.constant(beta, tf.float32))
                state["step"] += 1
                state["epoch"], state["position"] = epoch, position
                self.step_var.assign(state["step"])
                means.add(terms, tokens)
                bar.update(1)
                if not math.isfinite(float(terms["loss"])):
                    raise FloatingPointError(f"loss is {float(terms['loss'])} at step {state['step']}")
                if state["step"] % log_every == 0:
                    now = time.monotonic()
                    state["elapsed_s"] = now - started
                    mean = means.mean()
                    logs.step_row(state, epoch + position / self.n_batches, mean, lr, means.tokens_per_s(now))
                    bar.set_postfix(rec=f"{mean['rec']:.1f}", kl=f"{mean['kl']:.1f}",
                                    beta=f"{mean['beta']:.2f}", refresh=False)
                    means = StepMeans()
                if val_every and state["step"] % val_every == 0:
                    v = validated()
                    logs.val_row(state, self.hours, v)
                    if self._no_better(v, best, patience):
                        break
                if time.monotonic() - last_ckpt >= ckpt_every_s:
                    v = validated()
                    logs.val_row(state, self.hours, v)
                    self.checkpoint()
                    last_ckpt = time.monotonic()
            self._finish(validated(), best, logs, val_data, val_titles)
        finally:
            bar.close()
            logs.close()
        print(f"[train] {self.name} done: {state['step']} steps, {state['elapsed_s'] / 60:.1f} min, "
              f"val nll/char {state.get('val_nll_per_char', float('nan')):.4f}", file=sys.stderr)
        return state

    def _no_better(self, v: dict, best: dict, patience: int) -> bool:
        """Early stopping's bookkeeping: keep the best weights; True when patience has run out."""
        if v["val_nll_per_char"] < best["nll"] - 1e-4:
            best.update(nll=v["val_nll_per_char"], step=self.state["step"], stale=0,
                        weights=[w.numpy() for w in self.model.weights])
            return False
        best["stale"] += 1
        if patience and best["stale"] >= patience:
            print(f"[train] early stop at step {self.state['step']}: no better than step "
                  f"{best['step']} for {patience} validations", file=sys.stderr)
            return True
        return False

    def _finish(self, v: dict, best: dict, logs: PhaseLogs, val_data: dict, val_titles: dict | None) -> None:
        """The best weights seen back in place when the last ones are worse; the model saved."""
        state = self.state
        if best["weights"] is not None and v["val_nll_per_char"] > best["nll"]:
            for var, value in zip(self.model.weights, best["weights"]):
                var.assign(value)
            v = self.validate(val_data, val_titles)
            state["best_step"] = best["step"]
        logs.val_row(state, self.hours, v)
        state["done"] = True
        state.update(v)
        self.checkpoint(final=True)
        if self.use_latent:
            init_dir = Path(state["init_from"]) if state.get("init_from") else None
            write_history(self.out_dir, init_dir)


def training_data(cfg: TrainConfig, init: str | Path | None = None
                  ) -> tuple[Vocab, dict, dict, dict | None, dict | None]:
    """(vocab, train, val, train titles, val titles) as a run of cfg (from init, when given) trains on;
    the titles are None for a model without them. The data pack for the GPU machine
    (training/pack.py) is written from this too, so both trainers see the same poems."""
    t0 = time.monotonic()
    corpus, vocab = load_corpus_and_vocab(cfg)
    if init:
        # A continued model keeps its vocabulary (its ids are its weights' rows), with characters
        # outside GBK renamed to the readable forms the corpus now spells them with.
        vocab, renames = Vocab.load(Path(init) / CORPUS_VOCAB_FILE).readable()
        if renames:
            print(f"[train] {len(renames)} characters renamed to readable forms", file=sys.stderr)
    seed = int(cfg.train_value("seed", 1234))
    train_data = encode_split(corpus, vocab, "train")
    # val_seed fixes the validation poems across runs, so the curves of continued runs line up.
    val_data = encode_split(corpus, vocab, "val", limit=int(cfg.train_value("val_poems", 1024)),
                            seed=int(cfg.train_value("val_seed", seed)))
    title_len = int(cfg.model.get("title_len", 0))
    train_titles = val_titles = None
    if title_len:
        train_titles = encode_split_titles(corpus, vocab, "train", title_len)
        val_titles = encode_split_titles(corpus, vocab, "val", title_len,
                                         limit=int(cfg.train_value("val_poems", 1024)),
                                         seed=int(cfg.train_value("val_seed", seed)))
    del corpus
    n_train = sum(len(m) for m in train_data.values())
    print(f"[train] {n_train} training poems, vocab {len(vocab)}, data ready in "
          f"{time.monotonic() - t0:.1f} s", file=sys.stderr)
    return vocab, train_data, val_data, train_titles, val_titles


def train(config_path: str | None, out_dir: str, resume: bool = False,
          max_steps: int | None = None, init: str | None = None) -> Path:
    """Train the VAE into out_dir and the plain LM baseline into out_dir/lm; returns out_dir.

    The LM gets the same number of steps (same batches, same order) as the VAE did, unless the
    config's lm.steps says otherwise, within its own lm.max_minutes.
    """
    cfg = TrainConfig.load(config_path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / TRAIN_CONFIG_FILE).write_text(json.dumps(cfg.to_dict(), indent=2, ensure_ascii=False))
    vocab, train_data, val_data, train_titles, val_titles = training_data(cfg, init)
    vae_state = train_phase(cfg, True, out, train_data, val_data, vocab, resume, max_steps,
                            float(cfg.train_value("max_minutes", 60)), init=Path(init) if init else None,
                            train_titles=train_titles, val_titles=val_titles)
    if cfg.lm.get("enabled", True):
        lm_steps = cfg.lm.get("steps", "match")
        steps = int(vae_state["step"]) if lm_steps == "match" else int(lm_steps)
        if max_steps is not None:
            steps = min(steps, max_steps)
        train_phase(cfg, False, out / LM_DIR, train_data, val_data, vocab, resume, steps,
                    float(cfg.lm.get("max_minutes", cfg.train_value("max_minutes", 60))))
    return out

