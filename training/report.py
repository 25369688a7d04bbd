"""report.md: the targets the evaluation is held to, met or not, every metric, and the samples, plots
and interpolations it made.
"""
from __future__ import annotations

import json
from pathlib import Path

from model.requests import PoemRequest

REPORT_FILE = "report.md"
HUMAN_DISTINCT_2 = 0.845      # CCPC, 1,000 poems (shared/README.md)
HUMAN_TOP20_SHARE = 0.133


def fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def target_table(m: dict) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) for the project's aims."""
    def met(cond):
        return None if cond is None else bool(cond)
    lm_ratio = m.get("iw_vs_lm_ratio")
    return [
        ("KL >= 8 nats/poem", fmt(m["kl_nats"]), met(m["kl_nats"] >= 8)),
        ("MI >= 3 nats", fmt(m["mutual_info_nats"]), met(m["mutual_info_nats"] >= 3)),
        (">= 50% active units at 0.2", f"{m['active_units_02']}/{m['latent_dim']}",
         met(m["active_units_02"] >= 0.5 * m["latent_dim"])),
        ("IW-NLL within 3% of LM", fmt(lm_ratio) if lm_ratio else "no LM",
         met(lm_ratio <= 1.03) if lm_ratio else None),
        ("neighbour_same_form@10 above TF-IDF",
         f"{m['neighbour_same_form@10']:.3f} vs {m['tfidf_neighbour_same_form@10']:.3f}",
         met(m["neighbour_same_form@10"] > m["tfidf_neighbour_same_form@10"])),
    ] + meaning_targets(m)


def meaning_targets(m: dict) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) for the measures of training/meaning.py present in m."""
    rows = []
    if "c2st_acc" in m:
        rows.append(("c2st_acc <= 0.75 (0.5: real and generated cannot be told apart)",
                     f"{m['c2st_acc']:.3f} on {m['c2st_n_test']} held-out poems",
                     m["c2st_acc"] <= 0.75))
    if m.get("judge_nll_gen") is not None:
        rows.append(("judge_nll_gen within ±5% of judge_nll_real",
                     f"{m['judge_nll_gen']:.3f} vs {m['judge_nll_real']:.3f} "
                     f"({100 * (m['judge_ratio'] - 1):+.1f}%)", abs(m["judge_ratio"] - 1) <= 0.05))
    if "constrained_non_gbk_chars" in m:
        rows.append(("no character outside GBK", str(m["constrained_non_gbk_chars"]),
                     m["constrained_non_gbk_chars"] == 0))
    return rows


def constrained_target_table(m: dict) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) for the issue's quality aims of the constrained decoder."""
    def row(name: str, key: str, cond) -> tuple[str, str, bool | None]:
        v = m.get(key)
        return name, fmt(v), (None if v is None else bool(cond(v)))
    return [
        row("form validity 100%", "constrained_form_valid_rate", lambda v: v >= 1.0),
        row("七言 rhyme (平水韵) >= 97%", "constrained_rhyme_rate_qiyan", lambda v: v >= 0.97),
        row("五言 rhyme (平水韵) >= 95%", "constrained_rhyme_rate_wuyan", lambda v: v >= 0.95),
        row("lines whose 2/4/6 fit the pattern >= 95%", "constrained_line_tone_rate", lambda v: v >= 0.95),
        row("verbatim training lines <= 0.5%", "constrained_line_copy_rate", lambda v: v <= 0.005),
        row(f"distinct-2 >= 0.80 (human {HUMAN_DISTINCT_2})", "constrained_distinct_2", lambda v: v >= 0.80),
        row(f"top-20 characters <= 15% of text (human {HUMAN_TOP20_SHARE:.1%})",
            "constrained_top20_char_share", lambda v: v <= 0.15),
        row("acrostic requests succeed 100%", "constrained_acrostic_success_rate", lambda v: v >= 1.0),
        row("acrostic rhyme >= 95%", "constrained_acrostic_rhyme_rate", lambda v: v >= 0.95),
    ]


def write_report(root: Path, m: dict, examples: dict, interp: list[dict], plots: list[str],
                  config, constrained_samples: dict[str, list[str]] | None = None) -> None:
    lines: list[str] = [f"# Evaluation of {root.name}", "",
             f"Model: BiGRU-{config.enc_units} encoder, GRU-{config.dec_units} decoder, "
             f"emb {config.emb_dim}, latent {config.latent_dim}, free bits {config.free_bits}, "
             f"word dropout {config.word_dropout}, anneal {config.anneal} "
             f"({config.anneal_steps} steps).", "",
             f"Test poems: {m['n_test']}" + (" (subsampled)" if m["test_subsampled"] else "")
             + f"; importance-weighted bound on {m['n_test_iw']} of them with k={m['iw_k']}. "
             "NLL per char counts every predicted token (characters, punctuation, EOS).", ""]
    for name, folder in (("VAE", root), ("LM baseline", root / "lm")):
        path = folder / "metrics.json"
        if path.exists():
            t = json.loads(path.read_text())
            if "train_steps" in t:
                lines.append(f"- {name}: {t['train_steps']} steps, {t.get('train_minutes')} min, "
                             f"{t.get('epochs', 0):.2f} epochs of the training split.")
    lines += ["", "## Targets", "", "| target | measured | met |", "|---|---|---|"]
    for name, value, ok in target_table(m):
        lines.append(f"| {name} | {value} | {'yes' if ok else ('n/a' if ok is None else 'no')} |")
    if "constrained_form_valid_rate" in m:
        lines += constrained_report(m, constrained_samples or {})
    if (root / "samples.md").exists():
        lines += ["", "Unselected samples at default settings: [samples.md](samples.md)."]
    lines += ["", "## All metrics", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {fmt(v)} |" for k, v in m.items()]
    lines += ["", f"## Samples from the prior (temperature {m['gen_temperature']}, "
              f"top-p {m['gen_top_p']}, no constraints)", ""]
    for form, texts in examples.items():
        for t in texts:
            lines.append(f"- {form}: {t}")
    lines += ["", "## Interpolations (greedy decoding along z between two test poems)", ""]
    for k, pair in enumerate(interp, 1):
        lines += [f"### {k}. {pair['form']}", f"- A: {pair['a']}", f"- B: {pair['b']}"]
        lines += [f"  - {t:.2f}: {text}" for t, text in pair["steps"]]
        lines.append("")
    lines += ["## Plots", ""] + [f"![{p}]({p})" for p in plots]
    (root / REPORT_FILE).write_text("\n".join(lines) + "\n")


def constrained_report(m: dict, samples: dict[str, list[str]]) -> list[str]:
    """Targets table and samples of the constrained decoder (default settings, prior latent)."""
    n = m["constrained_n_per_form"]
    d = PoemRequest()
    lines = ["", "## Targets: constrained decoder (what users get)", "",
             f"Default request settings (tones {d.tone_mode}, rhyme {d.rhyme}, novelty "
             f"{'on' if d.novelty else 'off'}, temperature {d.temperature}, top-p {d.top_p}, max repeat "
             f"{d.max_repeat}), z from the prior; {n} poems per form"
             + ("" if n >= 1000 else " (the issue asks for 1,000)")
             + f", {m['constrained_acrostic_n']} acrostic requests; "
             f"{m['constrained_poems_per_second']:.0f} poems/s. distinct-n on "
             f"{m['constrained_distinct_sample']} poems (the human reference counts 1,000).", "",
             "| target | measured | met |", "|---|---|---|"]
    for name, value, ok in constrained_target_table(m):
        lines.append(f"| {name} | {value} | {'yes' if ok else ('n/a' if ok is None else 'no')} |")
    if m.get("constrained_ref_n"):
        lines += ["", f"Real held-out poems ({m['constrained_ref_n']}, test then validation split): "
                  f"distinct-2 {m['constrained_ref_distinct_2']:.3f} on the same count per form, top-20 share "
                  f"{m['constrained_ref_top20_char_share']:.3f}, rhyme {fmt(m['constrained_ref_rhyme_rate'])}, "
                  f"lines fitting the pattern {fmt(m['constrained_ref_line_tone_rate'])}."]
    lines += ["", "## Constrained samples (default settings)", ""]
    lines += [f"- {t}" for t in samples.get("poems", [])]
    lines += ["", "## Acrostic samples", ""]
    lines += [f"- {t}" for t in samples.get("acrostic", [])]
    return lines
