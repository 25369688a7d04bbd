"""Train the poem VAE in PyTorch on a data pack for a wall-clock budget: the lent GPU machine's trainer
(one H100 for 15 minutes, no TensorFlow, results only as a few files under $OUT; docs/model.md).

    python -m training.device_train --pack runs/pack --init model/pretrained --out $OUT --minutes 8
    python -m training.device_train --pack runs/pack --init model/pretrained --bench 20 --batch-size 128,256,512

The run mirrors train.py's: the same batches in the same order (training/schedule.py), the loss of
PoemVAE.loss_terms with the exact softmax, Adam with a global gradient-norm clip, warm-up and cosine
decay of the rate by the larger of steps and minutes used, beta at its maximum from full_beta_from.
It validates every --val-every-minutes on the pack's validation poems with train.py's draws of z (the
figures line up with a model folder's val.csv) and writes the best weights seen into --out each time
they improve, so a run killed at any point still returns its best. `--resume DIR` continues a run
from the folder it wrote (its best weights, its schedule; Adam starts afresh with a short warm-up).
`poembot assemble OUT --out DIR` makes a model folder of the result.

Imports numpy, torch and the TF-free modules only.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from model.vae_config import VAEConfig
from training.device_result import MAX_FILES, PART_LIMIT, RUN_FILE, read_parts, read_run, write_parts
from training.pack import Pack, load_pack
from training.run_files import LOG_FIELDS, VAL_FIELDS, prior_hours
from training.schedule import batch_stream, epoch_batches, learning_rate
from training.torch_vae import TorchPoemVAE, beta_schedule, load_torch_folder
from verse.vocab import PAD

REWARM_STEPS = 100          # a resumed run's fresh Adam eases in over these steps


@dataclass
class RunOptions:
    """One run's settings; the train section of the pack's config fills what is not given."""
    pack: str
    out: str | None = None
    init: str | None = None
    resume: str | None = None
    minutes: float = 8.0
    steps: int | None = None              # stop after this many steps (and plan the schedule by them)
    batch_size: int | None = None
    lr: float | None = None
    optimizer: str = "adam"               # adam (train.py's) | adamw
    weight_decay: float = 0.01            # adamw only
    dec_units: int | None = None          # wider than init's: grown (training/grow.py)
    word_dropout: float | None = None     # the config's share of decoder inputs blanked (run 8: 0)
    val_every_minutes: float = 2.0
    log_every: int = 50
    initial_val: bool = True              # validate before the first step (the starting figure)
    parts_dtype: str = "float32"          # float16 halves what a later --resume must carry
    part_limit: int = PART_LIMIT
    device: str | None = None
    seed: int | None = None
    precision: str = "bf16"               # bf16 autocast on CUDA (float32 logits) | fp32 (TF32 matmuls)
    extra: dict = field(default_factory=dict)


def _device(name: str | None) -> torch.device:
    return torch.device(name or ("cuda" if torch.cuda.is_available() else "cpu"))


def device_name(device: torch.device) -> str:
    """The machine in words, for the figures: they must say which machine gave them."""
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu: {torch.get_num_threads()} threads"


def train_section(pack: Pack, opts: RunOptions) -> dict:
    train = dict(pack.config.get("train", {}))
    if opts.batch_size:
        train["batch_size"] = opts.batch_size
    if opts.lr:
        train["lr"] = opts.lr
    if opts.seed is not None:
        train["seed"] = opts.seed
    return train


def model_config(pack: Pack, opts: RunOptions, resumed: dict | None = None) -> VAEConfig:
    """The pack's model config (as train.py builds it from cfg.model), a wider decoder when asked,
    or a resumed run's own."""
    if resumed is not None:
        return VAEConfig.from_dict(resumed["config"])
    config = VAEConfig.from_dict({**pack.config.get("model", {}), "vocab_size": len(pack.vocab)})
    if opts.dec_units:
        config.dec_units = opts.dec_units
    if opts.word_dropout is not None:
        config.word_dropout = opts.word_dropout
    return config


def build_model(pack: Pack, opts: RunOptions, device: torch.device) -> tuple[TorchPoemVAE, dict | None]:
    """The module to train and the resumed run.json (None for a new run): from --resume's best
    weights, else from --init's (grown or with new layers as the config asks), else fresh."""
    resumed = read_run(opts.resume) if opts.resume else None
    config = model_config(pack, opts, resumed)
    if resumed is not None:
        model = TorchPoemVAE(config)
        model.load_keras_arrays(read_parts(opts.resume))
    elif opts.init:
        model = load_torch_folder(opts.init, config)
    else:
        model = TorchPoemVAE(config)
    return model.to(device), resumed


def make_optimizer(model: TorchPoemVAE, opts: RunOptions, lr: float) -> torch.optim.Optimizer:
    # Keras Adam's epsilon (1e-7), as train.py's optimizer; fused kernels on CUDA (one launch a step).
    fused = next(model.parameters()).is_cuda
    if opts.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=lr, eps=1e-7, weight_decay=opts.weight_decay, fused=fused)
    if opts.optimizer != "adam":
        raise ValueError(f"optimizer must be adam or adamw, not {opts.optimizer!r}")
    return torch.optim.Adam(model.parameters(), lr=lr, eps=1e-7, fused=fused)


def _batch(tokens: np.ndarray, forms: np.ndarray, titles: np.ndarray, device: torch.device):
    """(tokens, forms, titles, padded) on the device; padded is found here, on the host, so the
    encoder need not ask the GPU (a sync per step)."""
    return (torch.from_numpy(tokens).to(device, non_blocking=True),
            torch.from_numpy(forms.astype(np.int64)).to(device, non_blocking=True),
            torch.from_numpy(titles.astype(np.int64)).to(device, non_blocking=True),
            bool((tokens == PAD).any()))


def use_amp(model: TorchPoemVAE, pack: Pack, device: torch.device, precision: str) -> bool:
    """Whether steps run under bf16 autocast: asked for, on CUDA, and a forward and backward of two
    poems works there (cuDNN's GRU in bf16 could not be tried before a GPU session; a failure falls
    back to float32 with a warning instead of ending the session)."""
    if precision not in ("bf16", "fp32"):
        raise ValueError(f"precision must be bf16 or fp32, not {precision!r}")
    if precision != "bf16" or device.type != "cuda":
        return False
    form = min(pack.train)
    tokens = torch.from_numpy(pack.train[form][:2]).to(device)
    title = torch.from_numpy(pack.train_titles[form][:2]).to(device) if pack.train_titles is not None else None
    try:
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
            loss = model.loss_terms(tokens, torch.full((2,), form, device=device), title, beta=1.0)["loss"]
        loss.backward()
        ok = bool(torch.isfinite(loss))
    except RuntimeError as error:
        print(f"[device] bf16 autocast failed ({error}); training in float32", file=sys.stderr, flush=True)
        ok = False
    model.zero_grad(set_to_none=True)
    return ok


def train_step(model: TorchPoemVAE, optimizer: torch.optim.Optimizer, batch: tuple, beta: float,
               grad_clip: float, device: torch.device, amp: bool = False) -> dict:
    """One step, under bf16 autocast when amp (the logits stay float32); terms stay on the device."""
    tokens, forms, titles, padded = batch
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
        terms = model.loss_terms(tokens, forms, titles if titles.shape[1] else None, beta=beta, training=True,
                                 padded=padded)
    optimizer.zero_grad(set_to_none=True)
    terms["loss"].backward()
    # Keras' global_clipnorm: the norm of all gradients together.
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return {k: v.detach() for k, v in terms.items()}


@torch.no_grad()
def validate(model: TorchPoemVAE, pack: Pack, device: torch.device, chunk: int = 256) -> dict:
    """train.py's validate: rec and KL per poem at beta 1 on the validation poems, each with train.py's
    draw of z; nll per char = (rec + KL) / characters. Full float32 (no TF32), so the figures compare."""
    was_training = model.training
    model.eval()
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    totals = {"rec": 0.0, "kl": 0.0, "chars": 0.0, "n": 0}
    try:
        for form, matrix in sorted(pack.val.items()):
            for start in range(0, len(matrix), chunk):
                rows = matrix[start:start + chunk]
                tok = torch.from_numpy(rows).to(device)
                forms = torch.full((len(tok),), form, dtype=torch.long, device=device)
                title = (torch.from_numpy(pack.val_titles[form][start:start + chunk]).to(device)
                         if pack.val_titles is not None else None)
                eps = torch.from_numpy(pack.val_eps[form][start:start + chunk]).to(device)
                terms = model.loss_terms(tok, forms, title, beta=1.0, eps=eps, training=False,
                                         padded=bool((rows == PAD).any()))
                totals["rec"] += float(terms["rec"]) * len(tok)
                totals["kl"] += float(terms["kl"]) * len(tok)
                totals["chars"] += float(terms["n_tokens"]) * len(tok)
                totals["n"] += len(tok)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
        model.train(was_training)
    n = max(totals["n"], 1)
    return {"val_rec": totals["rec"] / n, "val_kl": totals["kl"] / n,
            "val_nll_per_char": (totals["rec"] + totals["kl"]) / max(totals["chars"], 1)}


class RunFolder:
    """The output folder: weights parts, run.json, log.csv, val.csv (appended to on resume)."""

    def __init__(self, out: Path, resumed_from: str | None) -> None:
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        for name, fields in (("log.csv", LOG_FIELDS), ("val.csv", VAL_FIELDS)):
            path = out / name
            source = Path(resumed_from) / name if resumed_from else None
            if source is not None and source.exists():
                if source.resolve() != path.resolve():
                    path.write_text(source.read_text())
            else:
                path.write_text(",".join(fields) + "\n")

    def row(self, name: str, values: list) -> None:
        with open(self.out / name, "a", newline="") as fh:
            csv.writer(fh).writerow(values)

    def save_run(self, run: dict) -> None:
        tmp = self.out / (RUN_FILE + ".tmp")
        tmp.write_text(json.dumps(run, indent=1, ensure_ascii=False))
        tmp.replace(self.out / RUN_FILE)

    def check_limits(self, limit: int) -> None:
        files = [p for p in self.out.iterdir() if p.is_file()]
        if len(files) > MAX_FILES:
            print(f"[device] warning: {len(files)} files in {self.out}, the machine returns {MAX_FILES}",
                  file=sys.stderr)
        for p in files:
            if p.stat().st_size > limit:
                print(f"[device] warning: {p.name} is {p.stat().st_size} bytes, over {limit}", file=sys.stderr)


def run(opts: RunOptions) -> dict:
    """Train until --minutes (or --steps) are used; returns run.json's content."""
    if not opts.out:
        raise ValueError("--out is needed to train")
    device = _device(opts.device)
    pack = load_pack(opts.pack)
    train = train_section(pack, opts)
    seed = int(train.get("seed", 1234))
    torch.manual_seed(seed)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    model, resumed = build_model(pack, opts, device)
    config = model.config
    state = (dict(resumed["state"], done=False) if resumed else
             {"step": 0, "epoch": 0, "position": 0, "elapsed_s": 0.0, "base_hours": prior_hours(Path(opts.init)) if opts.init else 0.0,
              "init_from": opts.init})
    best = dict(resumed["best"]) if resumed else {"val_nll_per_char": math.inf, "step": None}
    batch_size = int(train.get("batch_size", 128))
    grad_clip = float(train.get("grad_clip", 5.0))
    final_beta_from = float(train.get("full_beta_from", 0.8))
    planned = opts.steps or None
    budget_s = opts.minutes * 60
    out = RunFolder(Path(opts.out), opts.resume)
    n_batches = max(1, len(epoch_batches(pack.train, batch_size, seed, 0)))
    amp = use_amp(model, pack, device, opts.precision)
    where = device_name(device) + (", bf16 autocast" if amp else ", float32")
    print(f"[device] {where}; {sum(p.numel() for p in model.parameters()):,} parameters; dec_units "
          f"{config.dec_units}; batch {batch_size}; {opts.minutes} min", file=sys.stderr, flush=True)

    def hours() -> float:
        return float(state.get("base_hours", 0.0)) + state["elapsed_s"] / 3600

    def run_json() -> dict:
        return {"config": config.to_dict(), "vocab": pack.vocab.chars, "train": train, "state": state,
                "best": best, "device": where, "torch": torch.__version__, "options": asdict(opts),
                "pack": {k: v for k, v in pack.meta.items() if k != "config"}}

    def validated(started: float) -> None:
        state["elapsed_s"] = time.monotonic() - started
        v = validate(model, pack, device)
        state["cumulative_hours"] = round(hours(), 4)
        out.row("val.csv", [state["step"], f"{state['elapsed_s']:.1f}",
                            *(f"{v[k]:.4f}" for k in ("val_rec", "val_kl", "val_nll_per_char")),
                            f"{hours():.4f}"])
        improved = v["val_nll_per_char"] < best["val_nll_per_char"]
        if improved:
            best.update(v, step=state["step"])
            write_parts(model.keras_arrays(), out.out, generation=state["step"], limit=opts.part_limit,
                        dtype=opts.parts_dtype)
        out.save_run(run_json())
        print(f"[device] step {state['step']} val nll/char {v['val_nll_per_char']:.4f} (rec {v['val_rec']:.2f}, "
              f"kl {v['val_kl']:.2f}){' best, saved' if improved else ''}", file=sys.stderr, flush=True)

    optimizer = make_optimizer(model, opts, learning_rate(train, 0.0))
    stream = batch_stream(pack.train, batch_size, seed, int(state["epoch"]), int(state["position"]),
                          titles=pack.train_titles)
    model.train()
    started = time.monotonic() - float(state["elapsed_s"])
    first_step = int(state["step"])
    if opts.initial_val and not resumed:
        validated(started)
    elif resumed and Path(opts.resume).resolve() != out.out.resolve():
        # A run resumed into a new folder (the next session's $OUT) returns its best weights even if
        # it finds none better.
        write_parts(model.keras_arrays(), out.out, generation=state["step"], limit=opts.part_limit,
                    dtype=opts.parts_dtype)
        out.save_run(run_json())
    last_val = time.monotonic()
    sums: dict[str, torch.Tensor] = {}
    n_sum, tokens_seen, t_log = 0, 0, time.monotonic()
    while True:
        elapsed = time.monotonic() - started
        if (planned and state["step"] >= planned) or elapsed >= budget_s:
            break
        progress = max(state["step"] / planned if planned else 0.0, elapsed / budget_s)
        lr = learning_rate(train, progress)
        if resumed:
            lr *= min(1.0, (state["step"] - first_step + 1) / REWARM_STEPS)
        for group in optimizer.param_groups:
            group["lr"] = lr
        # The last stretch at full beta, as train.py: the saved model is a proper ELBO optimum.
        beta = config.beta_max if progress >= final_beta_from else beta_schedule(config, state["step"])
        epoch, position, tokens, forms, titles = next(stream)
        terms = train_step(model, optimizer, _batch(tokens, forms, titles, device), beta, grad_clip, device, amp)
        state["step"] += 1
        state["epoch"], state["position"] = epoch, position
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + v.float()      # summed on the device: no sync per step
        n_sum += 1
        tokens_seen += tokens.shape[0] * (tokens.shape[1] - 1)
        if state["step"] % opts.log_every == 0:
            mean = {k: float(v) / n_sum for k, v in sums.items()}
            if not math.isfinite(mean["loss"]):
                raise FloatingPointError(f"loss is {mean['loss']} by step {state['step']}")
            now = time.monotonic()
            state["elapsed_s"] = now - started
            tps = tokens_seen / max(now - t_log, 1e-9)
            per_char = (mean["rec"] + mean["kl"]) / max(mean["n_tokens"], 1)
            out.row("log.csv", [state["step"], f"{epoch + position / n_batches:.3f}", f"{state['elapsed_s']:.1f}",
                                *(f"{mean[k]:.4f}" for k in ("loss", "rec", "kl", "kl_fb", "beta")),
                                f"{lr:.6f}", f"{per_char:.4f}", f"{tps:.0f}"])
            print(f"[device] step {state['step']} {state['elapsed_s'] / 60:.1f} min loss {mean['loss']:.2f} "
                  f"rec {mean['rec']:.2f} kl {mean['kl']:.2f} nll/char {per_char:.4f} lr {lr:.2e} "
                  f"{tps:,.0f} tok/s", file=sys.stderr, flush=True)
            sums, n_sum, tokens_seen, t_log = {}, 0, 0, now
        if time.monotonic() - last_val >= opts.val_every_minutes * 60:
            validated(started)
            last_val = time.monotonic()
    if state["step"] > first_step or best["step"] is None:
        validated(started)
    state["done"] = True
    out.save_run(run_json())
    out.check_limits(opts.part_limit)
    print(f"[device] done: {state['step']} steps, {state['elapsed_s'] / 60:.1f} min, best val nll/char "
          f"{best['val_nll_per_char']:.4f} at step {best['step']}", file=sys.stderr, flush=True)
    return run_json()


def bench(opts: RunOptions, steps: int, batch_sizes: list[int]) -> list[dict]:
    """Time `steps` training steps (after 3 untimed) per batch size; prints tokens/s so a device
    session picks its batch size in seconds. Nothing is written."""
    device = _device(opts.device)
    pack = load_pack(opts.pack)
    results = []
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    for batch_size in batch_sizes:
        model, _ = build_model(pack, RunOptions(**{**asdict(opts), "resume": None}), device)
        amp = use_amp(model, pack, device, opts.precision)
        optimizer = make_optimizer(model, opts, 1e-4)
        stream = batch_stream(pack.train, batch_size, 0, 0, 0, titles=pack.train_titles)
        model.train()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        t0, n_tokens = time.perf_counter(), 0
        for k in range(3 + steps):
            if k == 3:
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                t0, n_tokens = time.perf_counter(), 0
            _, _, tokens, forms, titles = next(stream)
            terms = train_step(model, optimizer, _batch(tokens, forms, titles, device), 1.0, 5.0, device, amp)
            if k >= 3:
                n_tokens += tokens.shape[0] * (tokens.shape[1] - 1)
        float(terms["loss"])
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - t0
        row = {"device": device_name(device), "amp": amp, "batch_size": batch_size, "dec_units": model.config.dec_units,
               "steps": steps, "ms_per_step": round(1000 * seconds / steps, 1),
               "tokens_per_s": round(n_tokens / seconds),
               "peak_mib": round(torch.cuda.max_memory_allocated(device) / 2**20) if device.type == "cuda" else None}
        print(json.dumps(row), flush=True)
        results.append(row)
        del model, optimizer
    return results


def parse(argv: list[str] | None = None) -> tuple[RunOptions, int, list[int]]:
    p = argparse.ArgumentParser(prog="python -m training.device_train", description=__doc__.split("\n")[0])
    p.add_argument("--pack", required=True, help="the data pack folder (poembot corpus pack)")
    p.add_argument("--out", help="output folder ($OUT on the device machine)")
    p.add_argument("--init", help="model folder to start from (e.g. model/pretrained)")
    p.add_argument("--resume", help="an output folder of an earlier run to continue")
    p.add_argument("--minutes", type=float, default=8.0, help="wall-clock budget of the run's schedule")
    p.add_argument("--steps", type=int, help="stop after this many steps")
    p.add_argument("--batch-size", default=None, help="batch size (bench: a comma-separated list)")
    p.add_argument("--lr", type=float)
    p.add_argument("--optimizer", default="adam", choices=("adam", "adamw"))
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--dec-units", type=int, help="grow the decoder to this many units")
    p.add_argument("--word-dropout", type=float, help="share of decoder inputs blanked while training "
                   "(default: the pack's config; run 8 trained with 0)")
    p.add_argument("--val-every-minutes", type=float, default=2.0)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--no-initial-val", action="store_true")
    p.add_argument("--parts-dtype", default="float32", choices=("float32", "float16"))
    p.add_argument("--device")
    p.add_argument("--precision", default="bf16", choices=("bf16", "fp32"),
                   help="bf16: autocast on CUDA (logits in float32); fp32: float32 with TF32 matmuls")
    p.add_argument("--seed", type=int)
    p.add_argument("--bench", type=int, default=0, help="time this many steps per batch size and exit")
    a = p.parse_args(argv)
    sizes = [int(s) for s in str(a.batch_size).split(",")] if a.batch_size else []
    opts = RunOptions(pack=a.pack, out=a.out, init=a.init, resume=a.resume, minutes=a.minutes, steps=a.steps,
                      batch_size=sizes[0] if sizes else None, lr=a.lr, optimizer=a.optimizer,
                      weight_decay=a.weight_decay, dec_units=a.dec_units, word_dropout=a.word_dropout,
                      val_every_minutes=a.val_every_minutes,
                      log_every=a.log_every, initial_val=not a.no_initial_val, parts_dtype=a.parts_dtype,
                      device=a.device, seed=a.seed, precision=a.precision)
    return opts, a.bench, sizes


def main(argv: list[str] | None = None) -> None:
    opts, bench_steps, sizes = parse(argv)
    if bench_steps:
        pack_batch = int(load_pack(opts.pack).config.get("train", {}).get("batch_size", 128))
        bench(opts, bench_steps, sizes or [pack_batch])
        return
    run(opts)


if __name__ == "__main__":
    main()
