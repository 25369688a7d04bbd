"""The 词 model's evaluation: form, rhyme and 平仄 per tune, copies, speed, samples and a blind sheet.

`poembot ci evaluate` writes report.md, samples.md, ci_eval.png and the figures into metrics.json of
the ci model's folder; `poembot ci sheet` writes a blind-reading sheet (real Song ci of the test split
against generated ones of the same tunes, shuffled, unlabelled) and its key, which
benchmarks/blind_read.py scores.
"""
from __future__ import annotations

import json
import random
import time
from pathlib import Path

import numpy as np

from model.ci import NOVELTY_MIN_CHARS, ci_text

THEMES = ("春愁", "离别", "秋思", "怀古", "闺怨", "登临", "咏梅", "送别", "元夕", "寄远", "归隐", "重阳")
SAMPLE_TUNES = 10
SAMPLES_PER_TUNE = 10
SHEET_INSTRUCTIONS = """以下是 {n} 首宋词，顺序已打乱，每首标出词牌。其中有的是宋人原作，有的由计算机程序按词谱写成。
请仅凭阅读判断，不查任何资料。对每一首给出：
- label: "real"（宋人原作）或 "generated"（程序所写）
- fluency: 1–5（1 = 不成句；3 = 通顺但平庸或有明显瑕疵；5 = 自然、精工、意脉连贯）
请以 JSON 数组作答：[{{"n": 1, "label": "real", "fluency": 4}}, ...]，然后用几句话说明你的判断依据。
"""


def load_writer(model_dir: str | Path):
    """The ci writer with the poem model's novelty table too, as a worker loads it."""
    from model.ci import CiWriter
    from model.decode import _try_corpus, load_novelty
    from protocol.settings import PRETRAINED_DIR

    return CiWriter.load(model_dir, poem_novelty=load_novelty(PRETRAINED_DIR, _try_corpus))


def requests_for(tunes: list[str], per_tune: int, seed: int, themed: bool = True) -> list:
    """per_tune requests of one ci for each tune at the bot's defaults; every other one with a theme
    word as its title (what `/ci 浣溪沙 春愁` sends), the rest untitled."""
    from model.requests import PoemRequest

    rng = random.Random(seed)
    out = []
    for t, name in enumerate(tunes):
        for k in range(per_tune):
            title = rng.choice(THEMES) if themed and k % 2 == 0 else ""
            out.append(PoemRequest(form="词", tune=name, title=title, seed=seed * 100_003 + t * 1_000 + k))
    return out


def write_all(writer, requests: list, batch: int = 32) -> tuple[list[dict], float]:
    """Every request's first ci (in request order) and the seconds it took."""
    from tqdm import tqdm

    poems: list[dict] = []
    started = time.time()
    with tqdm(total=len(requests), unit="ci", desc="writing ci") as bar:
        for s in range(0, len(requests), batch):
            for answer in writer.generate(requests[s:s + batch]):
                if not answer.ok:
                    raise RuntimeError(answer.error_message)
                poems.append(answer.poems[0])
                bar.update(1)
    return poems, time.time() - started


def figures_of(poems: list[dict], tunes_table, novelty: list) -> dict:
    """Form, rhyme and 平仄 compliance per tune and overall, copies and repeats."""
    from verse import tunes as tune_table

    per_tune: dict[str, dict] = {}
    lines_checked = copies = 0
    for poem in poems:
        form = tunes_table.get(poem["tune"]).main
        v = tune_table.check(poem["lines"], form, tunes_table.rhymes)
        t = per_tune.setdefault(poem["tune"], {"n": 0, "form_ok": 0, "rhyme_ok": 0, "slots": 0, "rhymed": 0,
                                               "tone_fit": 0, "tone_fixed": 0, "relaxed": 0})
        t["n"] += 1
        t["form_ok"] += v.form_ok
        t["rhyme_ok"] += v.rhyme_ok
        t["slots"] += v.rhyme_slots
        t["rhymed"] += v.rhymed_slots
        t["tone_fit"] += v.tone_fit
        t["tone_fixed"] += v.tone_fixed
        t["relaxed"] += bool(poem.get("relaxed"))
        for line in poem["lines"]:
            if len(line) >= NOVELTY_MIN_CHARS:
                lines_checked += 1
                copies += any(line in table for table in novelty)
    total = {k: sum(t[k] for t in per_tune.values()) for k in next(iter(per_tune.values()))}
    text = "".join("".join(p["lines"]) for p in poems)
    bigrams = [a + b for p in poems for line in p["lines"] for a, b in zip(line, line[1:])]
    return {
        "ci": total["n"], "tunes": len(per_tune),
        "form_ok": total["form_ok"] / total["n"], "rhyme_ok": total["rhyme_ok"] / total["n"],
        "rhyme_slots_ok": total["rhymed"] / max(total["slots"], 1),
        "tone_fit": total["tone_fit"] / max(total["tone_fixed"], 1),
        "relaxed": total["relaxed"] / total["n"],
        "copied_lines": copies / max(lines_checked, 1), "lines_checked": lines_checked,
        "distinct_2": len(set(bigrams)) / max(len(bigrams), 1),
        "top20_share": sum(n for _, n in _top(text, 20)) / max(len(text), 1),
        "per_tune": {name: {"n": t["n"], "form_ok": t["form_ok"] / t["n"], "rhyme_ok": t["rhyme_ok"] / t["n"],
                            "tone_fit": round(t["tone_fit"] / max(t["tone_fixed"], 1), 4)}
                     for name, t in per_tune.items()},
    }


def _top(text: str, k: int) -> list[tuple[str, int]]:
    from collections import Counter
    return Counter(text).most_common(k)


def evaluate(model_dir: str | Path, top: int = 50, per_tune: int = 8, seed: int = 2027) -> dict:
    """Figures over per_tune ci of each of the top tunes; report.md, samples.md and ci_eval.png in model_dir."""
    from verse import tunes as tune_table

    model_dir = Path(model_dir)
    table = tune_table.load()
    writer = load_writer(model_dir)
    names = [t.name for t in table.tunes[:top]]
    poems, seconds = write_all(writer, requests_for(names, per_tune, seed))
    figures = figures_of(poems, table, writer.novelty)
    figures["ci_per_s"] = round(len(poems) / seconds, 2)
    figures["seed"] = seed
    sample_names = names[:SAMPLE_TUNES]
    samples, _ = write_all(writer, requests_for(sample_names, SAMPLES_PER_TUNE, seed + 1))
    write_samples(model_dir / "samples.md", samples, seed + 1)
    plot(model_dir, figures)
    write_report(model_dir, figures)
    from model.folder import merge_metrics
    merge_metrics(model_dir, {"evaluation": {k: v for k, v in figures.items() if k != "per_tune"}})
    return figures


def write_samples(path: Path, poems: list[dict], seed: int) -> None:
    """samples.md: every ci written, unselected, by tune."""
    out = ["# 词 samples (unselected)", "",
           f"`poembot ci evaluate`: {SAMPLES_PER_TUNE} ci for each of the {SAMPLE_TUNES} most common tunes at the "
           f"bot's defaults (seed {seed}); every other one was asked with a theme word as its title. "
           "Nothing was picked by hand.", ""]
    tune = None
    for poem in poems:
        if poem["tune"] != tune:
            tune = poem["tune"]
            out += [f"## {tune}　{poem['pattern']}　{poem['rhyme_kind']}", ""]
        head = f"**{poem['title']}**　" if poem.get("title") else ""
        out.append(f"{head}{ci_text(poem['lines'], poem['marks'], poem['stanza_break']).replace(chr(10), '<br>')}"
                   f"　<sub>押韵 {'✓' if poem['rhyme_ok'] else '✗'} · 合律 {poem['tone_rate']:.0%}</sub>")
        out.append("")
    path.write_text("\n".join(out), encoding="utf-8")


def plot(model_dir: Path, figures: dict) -> Path:
    """ci_eval.png: held-out NLL over the fine-tune, and 平仄 fit per tune."""
    import csv

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(13, 4.5))
    log_path = model_dir / "ci_log.csv"
    if log_path.exists():
        rows = list(csv.DictReader(log_path.open()))
        steps = [int(r["step"]) for r in rows]
        a.plot(steps, [float(r["val_nll"]) for r in rows], label="held-out (nats/token)")
        a.plot([s for s, r in zip(steps, rows) if r["train_nll"]],
               [float(r["train_nll"]) for r in rows if r["train_nll"]], label="training (sampled softmax)")
        a.set_ylim(top=min(8.0, max(float(r["val_nll"]) for r in rows)))
        a.set_xlabel("step")
        a.legend()
        a.set_title("ci fine-tune")
    per = figures["per_tune"]
    b.bar(range(len(per)), [t["tone_fit"] for t in per.values()])
    b.axhline(0.9, color="red", lw=1)
    b.set_ylim(0.8, 1.0)
    b.set_xlabel(f"tune (top {len(per)}, most common first)")
    b.set_title("tone (ping/ze) fit at the tunes' fixed positions")
    fig.tight_layout()
    path = model_dir / "ci_eval.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(model_dir: Path, f: dict) -> Path:
    lines = ["# 词 model: evaluation", "",
             f"`poembot ci evaluate` over {f['ci']} ci ({f['tunes']} tunes, seed {f['seed']}) at the bot's defaults.", "",
             "| figure | value |", "|---|---:|",
             f"| 句 lengths and marks as the form | {f['form_ok']:.1%} |",
             f"| every rhyme slot rhymes (per ci) | {f['rhyme_ok']:.1%} |",
             f"| rhyme slots that rhyme | {f['rhyme_slots_ok']:.1%} |",
             f"| 平仄 fit at the tune's fixed positions | {f['tone_fit']:.1%} |",
             f"| constraints relaxed | {f['relaxed']:.1%} |",
             f"| 句 of ≥{NOVELTY_MIN_CHARS} characters copied from the corpus | {f['copied_lines']:.2%} of {f['lines_checked']} |",
             f"| distinct-2 | {f['distinct_2']:.3f} |",
             f"| top-20 character share | {f['top20_share']:.1%} |",
             f"| speed | {f['ci_per_s']} ci/s |", "",
             "![evaluation](ci_eval.png)", "",
             "| tune | ci | form | rhyme | 平仄 fit |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {name} | {t['n']} | {t['form_ok']:.0%} | {t['rhyme_ok']:.0%} | {t['tone_fit']:.1%} |"
              for name, t in f["per_tune"].items()]
    path = model_dir / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def real_ci(ci, table, names: list[str], n: int, rng: random.Random) -> list[dict]:
    """n test-split ci of the tunes in their main form, no lost characters, in a seeded order."""
    rows = [i for i in ci.indices("test") if ci.tune[i] in names and "□" not in "".join(ci.lines[i])
            and [len(x) for x in ci.lines[i]] == list(table.get(ci.tune[i]).main.lengths)]
    rng.shuffle(rows)
    out = []
    for i in rows[:n]:
        form = table.get(ci.tune[i]).main
        out.append({"tune": ci.tune[i], "lines": list(ci.lines[i]), "marks": [ln.mark for ln in form.lines],
                    "stanza_break": form.stanza_break, "source": "real"})
    return out


def blind_sheet(model_dir: str | Path, out: str | Path, seed: int = 31, size: int = 24, top: int = 20
                ) -> tuple[Path, Path]:
    """A sheet of size ci, half real (test split) and half generated for the same tunes, shuffled; its key."""
    from corpus.ci_reader import CiCorpus
    from verse import tunes as tune_table

    rng = random.Random(seed)
    table = tune_table.load()
    names = [t.name for t in table.tunes[:top]]
    real = real_ci(CiCorpus.load(), table, names, size // 2, rng)
    writer = load_writer(model_dir)
    requests = requests_for([r["tune"] for r in real], 1, seed)
    for k, r in enumerate(requests):
        r.title = rng.choice(THEMES)     # a theme steers it; the sheet shows no title for either
        r.seed = seed * 7919 + k
    poems, _ = write_all(writer, requests)
    gen = [{"tune": p["tune"], "lines": p["lines"], "marks": p["marks"], "stanza_break": p["stanza_break"],
            "theme": p["title"], "source": "generated"} for p in poems]
    items = real + gen
    rng.shuffle(items)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    parts = [SHEET_INSTRUCTIONS.format(n=len(items))]
    for n, item in enumerate(items, 1):
        item["n"] = n
        parts.append(f"### {n}　【{item['tune']}】\n\n{ci_text(item['lines'], item['marks'], item['stanza_break'])}\n")
    sheet, key = out / "sheet.md", out / "key.json"
    sheet.write_text("\n".join(parts), encoding="utf-8")
    key.write_text(json.dumps({"seed": seed, "model": str(model_dir), "items": items}, ensure_ascii=False, indent=1),
                   encoding="utf-8")
    return sheet, key


def summary(f: dict) -> str:
    return (f"ci: form {f['form_ok']:.1%}, rhyme {f['rhyme_ok']:.1%}, 平仄 fit {f['tone_fit']:.1%}, relaxed "
            f"{f['relaxed']:.1%}, copied 句 {f['copied_lines']:.2%}, distinct-2 {f['distinct_2']:.3f}, "
            f"{f['ci_per_s']} ci/s over {f['ci']} ci of {f['tunes']} tunes")
