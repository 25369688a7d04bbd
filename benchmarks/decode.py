"""Decoding throughput: the batched constrained loop vs a naive eager decode, vs an unconstrained loop,
and vs a large float32 matmul measured in the same run (effective GFLOP/s).

Prints one JSON object, then a one-line summary. `python -m benchmarks.decode --help` for options.
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


REQUEST_CHARS = "春夏秋冬风"


def random_setup(vocab_size: int):
    """A random-weight model at the calibration size, over real characters (so prosody masks bite)."""
    import opencc
    from verse import prosody
    from model.vae import VAEConfig, build_vae
    from verse.vocab import SPECIALS, Vocab

    t2s = opencc.OpenCC("t2s").convert
    table = prosody.load_tone_table(prosody.TONES_PATH)
    # The characters the benchmark's requests use come first; the rest in code point order.
    chars = list(REQUEST_CHARS) + sorted(c for c in table if len(c) == 1 and t2s(c) == c
                                         and c not in REQUEST_CHARS)
    chars = chars[: vocab_size - len(SPECIALS)]
    vocab = Vocab(list(SPECIALS) + chars)
    config = VAEConfig(vocab_size=len(vocab))
    return build_vae(config), vocab, config


def timed(fn, min_seconds: float, min_calls: int = 1) -> float:
    """Seconds per call: one warm-up call, then repeat until min_seconds and min_calls are reached."""
    fn()
    calls, started = 0, time.perf_counter()
    while calls < min_calls or time.perf_counter() - started < min_seconds:
        fn()
        calls += 1
    return (time.perf_counter() - started) / calls


def matmul_gflops(n: int, min_seconds: float) -> float:
    import tensorflow as tf
    a = tf.random.normal([n, n])
    b = tf.random.normal([n, n])
    f = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
    return 2 * n ** 3 / timed(lambda: f().numpy(), min_seconds, 3) / 1e9


def flops_per_poem(config, steps: int) -> float:
    """GRU cell (input and recurrent kernels, 3 gates) plus the output projection, per step."""
    in_dim = config.emb_dim + (config.latent_dim if config.use_latent else 0) + config.form_dim
    h = config.dec_units
    return steps * 2.0 * ((in_dim + h) * 3 * h + h * config.vocab_size)


def unconstrained_loop(model):
    """The same batched while-loop with plain temperature sampling: only the form's punctuation forced."""
    import tensorflow as tf
    from verse.vocab import BOS

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None], tf.int32),
                                  tf.TensorSpec([None, None], tf.int32)])
    def run(z, form, forced):
        B, T = tf.shape(forced)[0], tf.shape(forced)[1]

        def body(t, prev, state, out):
            logits, state = model.decoder_step(prev, state, z, form)
            sampled = tf.cast(tf.random.categorical(logits / 0.8, 1)[:, 0], tf.int32)
            tok = tf.where(forced[:, t] < 0, sampled, forced[:, t])
            return t + 1, tok, state, out.write(t, tok)
        _, _, _, out = tf.while_loop(lambda t, *_: t < T, body,
                                     (0, tf.fill([B], BOS), model.decoder_init(z, form),
                                      tf.TensorArray(tf.int32, size=T)))
        return tf.transpose(out.stack())
    return run


def naive_decode(model, plan, z: np.ndarray, form_id: int, rng: np.random.Generator) -> list[int]:
    """One poem, one eager step at a time, sampling in numpy: the baseline the batched loop replaces."""
    import tensorflow as tf
    from verse.vocab import BOS, N_SPECIALS
    zt = tf.constant(z[None, :], tf.float32)
    ft = tf.constant([form_id], tf.int32)
    state = model.decoder_init(zt, ft)
    tok, out = BOS, []
    for t in range(plan.length):
        logits, state = model.decoder_step(tf.constant([tok], tf.int32), state, zt, ft)
        if plan.forced[t] >= 0:
            tok = int(plan.forced[t])
        else:
            x = logits.numpy()[0, N_SPECIALS:] / 0.8
            p = np.exp(x - x.max())
            tok = N_SPECIALS + int(rng.choice(len(p), p=p / p.sum()))
        out.append(tok)
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", help="model folder (default: a random model at the calibration size)")
    ap.add_argument("--vocab-size", type=int, default=6000)
    ap.add_argument("--batches", default="1,16,64,256,1024")
    ap.add_argument("--form", default="七绝")
    ap.add_argument("--min-seconds", type=float, default=1.0, help="measuring time per configuration")
    ap.add_argument("--naive-poems", type=int, default=4)
    ap.add_argument("--matmul", type=int, default=2048)
    ap.add_argument("--xla", action="store_true", help="also time the loop compiled with XLA")
    ap.add_argument("--styles", type=int, default=5,
                    help="style adapters (random, rank 8) for the mixed-style measurement; 0 skips it")
    ap.add_argument("--repeats", type=int, default=3,
                    help="the constrained and plain loops alternate this many times; medians are reported")
    a = ap.parse_args(argv)

    import tensorflow as tf
    from model.constraints import ProsodyTables
    from model.decode import Generator
    from verse.forms import FORM_INDEX, FORMS
    from model.requests import PoemRequest

    if a.model:
        from model.vae import load_model
        model, vocab, config = load_model(a.model)
    else:
        model, vocab, config = random_setup(a.vocab_size)
    tables = ProsodyTables.from_vocab(vocab)
    gens = {"graph": Generator(model, vocab, config, tables=tables)}
    if a.xla:
        gens["xla"] = Generator(model, vocab, config, tables=tables, jit_compile=True)
    form = FORMS[a.form]
    steps = form.seq_len + 1
    fpp = flops_per_poem(config, steps)
    batches = [int(b) for b in a.batches.split(",")]
    gflops_ref = matmul_gflops(a.matmul, a.min_seconds)

    def jobs_for(n: int, constrained: bool) -> list[PoemRequest]:
        # best_of=1: a batch of B rows is B poems, so poems/s here is rows/s of the loop.
        if constrained:
            return [PoemRequest(form=form.name, seed=k, acrostic="春夏秋冬"[: form.n_lines], keywords=["风"],
                                tone_mode="hard", novelty=False, best_of=1) for k in range(n)]
        return [PoemRequest(form=form.name, seed=k, tone_mode="off", rhyme="none", max_repeat=8,
                            novelty=False, best_of=1) for k in range(n)]

    base = gens["graph"]
    plain = unconstrained_loop(model)
    rows_out = []
    for B in batches:
        entry: dict = {"batch": B}
        jobs = jobs_for(B, True)
        entry["end_to_end_poems_s"] = B / timed(lambda: base.generate(jobs_for(B, True)), a.min_seconds)
        for name, gen in gens.items():
            if name != "graph":
                gen.generate(jobs[:1])
                rows = _rows(gen, jobs)
                entry[f"loop_{name}_poems_s"] = B / timed(lambda: gen.decode_rows(rows, [0] * B), a.min_seconds)
        free_rows = _rows(base, jobs_for(B, False))
        entry["loop_graph_no_constraints_poems_s"] = B / timed(lambda: base.decode_rows(free_rows, [0] * B),
                                                          a.min_seconds)
        z = np.random.default_rng(0).standard_normal((B, base.latent_dim)).astype(np.float32)
        forced = np.stack([r.plan.forced for r in free_rows]).astype(np.int32)
        forms = np.full(B, FORM_INDEX[form.name], np.int32)
        # The constraint cost is a ratio of two timings on a machine whose speed drifts (a shared
        # VM's matmul rate moved by 25% between runs here), so the two loops alternate and each
        # reports its median.
        rows = _rows(base, jobs)
        loop, plain_s = [], []
        for _ in range(a.repeats):
            loop.append(B / timed(lambda: base.decode_rows(rows, [0] * B), a.min_seconds))
            plain_s.append(B / timed(lambda: plain(z, forms, forced).numpy(), a.min_seconds))
        entry["loop_graph_poems_s"] = float(np.median(loop))
        entry["unconstrained_poems_s"] = float(np.median(plain_s))
        entry["effective_gflops"] = entry["loop_graph_poems_s"] * fpp / 1e9
        rows_out.append({k: round(v, 2) if isinstance(v, float) else v for k, v in entry.items()})
        print(json.dumps(rows_out[-1], ensure_ascii=False), file=sys.stderr, flush=True)

    rng = np.random.default_rng(0)
    plan_rows = _rows(base, jobs_for(a.naive_poems, False))
    started = time.perf_counter()
    for r in plan_rows:
        naive_decode(model, r.plan, r.z, FORM_INDEX[form.name], rng)
    naive = a.naive_poems / (time.perf_counter() - started)

    styles = (style_mix(model, vocab, config, tables, a.styles, a.repeats, a.min_seconds,
                        batch=min(256, max(batches))) if a.styles else None)

    best = max(rows_out, key=lambda e: e["loop_graph_poems_s"])
    at_256 = next((e for e in rows_out if e["batch"] == 256), best)
    report = {
        "benchmark": "decode", "form": form.name, "steps": steps, "vocab": len(vocab),
        "model": a.model or "random(calibration size)",
        "config": {k: getattr(config, k) for k in ("emb_dim", "dec_units", "latent_dim", "form_dim")},
        "device": "GPU" if tf.config.list_physical_devices("GPU") else "CPU",
        "flops_per_poem": fpp, "matmul_gflops": round(gflops_ref, 2),
        "naive_eager_poems_s": round(naive, 2), "batches": rows_out,
        "best_batch": best["batch"], "best_poems_s": best["loop_graph_poems_s"],
        "speedup_vs_naive": round(best["loop_graph_poems_s"] / naive, 1),
        "effective_gflops_best": round(best["effective_gflops"], 2),
        "share_of_matmul_peak": round(best["effective_gflops"] / gflops_ref, 3),
        "constraint_cost_at_256": round(at_256["unconstrained_poems_s"] / at_256["loop_graph_poems_s"], 2),
        "styles": styles,
    }
    print(json.dumps(report, ensure_ascii=False))
    print(f"decode: best {report['best_poems_s']:.0f} poems/s at batch {report['best_batch']} "
          f"({report['speedup_vs_naive']}x naive eager {naive:.1f}/s); "
          f"{report['effective_gflops_best']:.1f} GFLOP/s = {100 * report['share_of_matmul_peak']:.0f}% of "
          f"matmul {gflops_ref:.0f}; constraints cost {report['constraint_cost_at_256']}x at batch 256"
          + (f"; {styles['n_styles']} styles mixed in one batch at {100 * styles['mixed_vs_single']:.0f}% of "
             f"a single-style batch, a base batch beside styles at {100 * styles['base_with_bank_vs_none']:.0f}%"
             if styles else ""))
    return report


def style_mix(model, vocab, config, tables, n_styles: int, repeats: int, min_seconds: float,
              batch: int = 256) -> dict:
    """Poems/s of one batch of 七绝 rows at default settings (K=1 rows): every row one style,
    rows cycling through n_styles styles, and base rows, with and without the adapters loaded.
    The timings alternate and each reports its median (the machine drifts)."""
    from model.decode import Generator
    from model.requests import PoemRequest
    from model.styles import Style, StyleBank, random_adapter

    bank = StyleBank([Style(f"s{k}", {}, random_adapter(config, rank=8, seed=k)) for k in range(n_styles)])
    plain = Generator(model, vocab, config, tables=tables)
    styled = Generator(model, vocab, config, tables=tables, styles=bank)

    def rows(gen, style_of):
        return _rows(gen, [PoemRequest(form="七绝", seed=k, style=style_of(k), novelty=False, best_of=1)
                           for k in range(batch)])

    cases = {"no_bank": (plain, rows(plain, lambda k: "")),
             "base_with_bank": (styled, rows(styled, lambda k: "")),
             "single_style": (styled, rows(styled, lambda k: "s0")),
             "mixed_styles": (styled, rows(styled, lambda k: f"s{k % n_styles}"))}
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, (gen, rs) in cases.items():
            times[name].append(batch / timed(lambda: gen.decode_rows(rs, [0] * batch), min_seconds))
    out = {f"{name}_poems_s": round(float(np.median(v)), 1) for name, v in times.items()}
    out.update(n_styles=n_styles, rank=8, batch=batch,
               mixed_vs_single=round(out["mixed_styles_poems_s"] / out["single_style_poems_s"], 3),
               single_vs_no_bank=round(out["single_style_poems_s"] / out["no_bank_poems_s"], 3),
               base_with_bank_vs_none=round(out["base_with_bank_poems_s"] / out["no_bank_poems_s"], 3))
    print(json.dumps(out), file=sys.stderr, flush=True)
    return out


def _rows(gen, jobs):
    """Planned rows for jobs, exactly as Generator.generate builds them."""
    rows, results = gen.plan(jobs)
    assert all(r is None for r in results), [r.error_message for r in results if r is not None]
    return rows


if __name__ == "__main__":
    main()
