"""Blind reading: do readers take our poems for poems? The measure that decides what ships.

`make` writes a sheet of 48 poems — 24 held-out real poems (test split, 6 per form) and 24 written
at the shipped defaults (protocol/sampling.py, 6 per form), shuffled and numbered, no labels — and
its key. Every poem carries a title: a real poem its own, a generated one the title it was asked
to write to, drawn from other held-out poems' titles (as a user's `/poem 送友人` gives one). With
--no-titles neither has one (how the sheets before titles were made).

A reader — an expert reader of classical verse who sees the sheet only, uses no references and
judges by reading — answers with JSON: [{"n": 1, "label": "real" | "generated", "fluency": 1-5}, …]
(fluency 1 = word salad … 5 = a coherent, well-made poem), and a few sentences of comments.
`score` reads the answer against the key and prints recognition (the share of generated poems
labelled generated), the mean fluency of each class and their ratio. A fresh reader and a fresh
seed for every sheet; never show a reader the key or another sheet.

    python -m benchmarks.blind_read make --seed 7 --out runs/blind/7
    python -m benchmarks.blind_read score --key runs/blind/7/key.json --answer answer.json
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FORMS = ("五绝", "七绝", "五律", "七律")
PER_FORM = 6
INSTRUCTIONS = """以下是 {n} 首近体诗（五绝、七绝、五律、七律），顺序已打乱。其中一部分是唐宋诗人的真作，另一部分由计算机程序写成。
请仅凭阅读判断，不查任何资料。对每一首给出：
- label: "real"（真作）或 "generated"（程序所作）
- fluency: 1–5（1 = 词语堆砌、不成句；3 = 通顺但平庸或有明显瑕疵；5 = 连贯、精工的好诗）
请以 JSON 数组作答：[{{"n": 1, "label": "real", "fluency": 4}}, ...]，然后用几句话说明你的判断依据。
"""


PER_TITLE = 10
PICK_INSTRUCTIONS = """下面有 {groups} 组诗，每组 {per} 首，都是计算机程序按组名所示的题目和体裁写的。请为每一组挑出一首：
最通顺、句句讲得通、前后连贯、最切题、最像唐宋诗人真作的那一首（若都不好，挑瑕疵最少的）。
请仅凭阅读判断，不查任何资料。先给出一个 JSON 数组，按组的顺序列出每组所选诗的编号（1–{per}），
共 {groups} 个数，例如 [3, 7, ...]；然后可用一两句话说明总体印象。
"""
CANDIDATES_FILE = "candidates.json"


def display_title(title: str) -> str:
    """A title as the sheet shows it: the model's cleaning (no 其三, no 二首), at most 12 characters."""
    from model.titles import clean_title

    return clean_title(title)[:12]


def real_poems(corpus, rng: random.Random) -> tuple[list[dict], list[str]]:
    """PER_FORM test-split poems per form, and a pool of other test-split titles for the
    generated poems to be written to."""
    test = [i for i in corpus.indices("test") if corpus.form[i] in FORMS]
    rng.shuffle(test)
    chosen: list[dict] = []
    used: set[int] = set()
    for form in FORMS:
        rows = [i for i in test if corpus.form[i] == form and "□" not in "".join(corpus.lines[i])]
        for i in rows[:PER_FORM]:
            used.add(i)
            chosen.append({"source": "real", "form": form, "lines": corpus.lines[i],
                           "title": display_title(corpus.title[i]), "id": corpus.id[i],
                           "author": corpus.author[i]})
    titles = [display_title(corpus.title[i]) for i in test if i not in used]
    titles = [t for t in titles if 2 <= len(t) <= 8]
    return chosen, titles


def asked(titles: list[str], seed: int, rng: random.Random, use_titles: bool, n: int = 1) -> list:
    """The PER_FORM requests per form of a sheet, each with one of titles (drawn from rng)."""
    from model.requests import PoemRequest

    return [PoemRequest(form=form, seed=seed * 1000 + f * 100 + k, n=n,
                        title=rng.choice(titles) if use_titles else "")
            for f, form in enumerate(FORMS) for k in range(PER_FORM)]


def written(model_dir: str, jobs: list) -> list:
    """The Answers to jobs at the shipped defaults."""
    from model.generate import load_generator

    results = load_generator(model_dir).generate(jobs)
    for result in results:
        if not result.ok:
            raise SystemExit(f"generation failed: {result.error_message}")
    return results


def generated_poems(model_dir: str, titles: list[str], seed: int, rng: random.Random,
                    use_titles: bool) -> list[dict]:
    """PER_FORM poems per form at the shipped defaults, each asked for with one of titles."""
    jobs = asked(titles, seed, rng, use_titles)
    return [{"source": "generated", "form": job.form, "lines": result.poems[0]["lines"],
             "title": job.title, "seed": result.poems[0]["seed"]}
            for job, result in zip(jobs, written(model_dir, jobs))]


def picked_poems(candidates: dict, picks: list[int], titles: list[str], seed: int, rng: random.Random,
                 use_titles: bool) -> list[dict]:
    """The picked candidate of each title, in the order generated_poems would write them; the
    titles are drawn again from rng, so the candidates must be of this seed (checked)."""
    groups = candidates["groups"]
    if candidates["seed"] != seed:
        raise SystemExit(f"the candidates are of seed {candidates['seed']}, not {seed}")
    if len(picks) != len(groups):
        raise SystemExit(f"{len(picks)} picks for {len(groups)} titles")
    out = []
    for job, group, pick in zip(asked(titles, seed, rng, use_titles), groups, picks):
        if group["title"] != job.title or group["form"] != job.form:
            raise SystemExit(f"candidates for 《{group['title']}》 where the sheet asks 《{job.title}》")
        if not 1 <= pick <= len(group["poems"]):
            raise SystemExit(f"pick {pick} for 《{group['title']}》 is not one of 1..{len(group['poems'])}")
        out.append({"source": "generated", "form": job.form, "lines": group["poems"][pick - 1],
                    "title": job.title, "pick": pick, "of": len(group["poems"])})
    return out


def candidates(args: argparse.Namespace) -> dict:
    """Write candidates.json and the picker's sheet (candidates.md): PER_TITLE poems per title."""
    from corpus.reader import Corpus

    rng = random.Random(args.seed)
    _, titles = real_poems(Corpus.load(), rng)
    jobs = asked(titles, args.seed, rng, not args.no_titles, n=args.per_title)
    groups = [{"form": job.form, "title": job.title, "poems": [p["lines"] for p in result.poems]}
              for job, result in zip(jobs, written(args.model, jobs))]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = {"seed": args.seed, "model": args.model, "groups": groups}
    (out / CANDIDATES_FILE).write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    parts = [PICK_INSTRUCTIONS.format(groups=len(groups), per=args.per_title)]
    for g, group in enumerate(groups, start=1):
        head = f"## 第{g}组" + (f"　《{group['title']}》" if group["title"] else "") + f"（{group['form']}）"
        parts.append("\n".join([head] + [f"{j}. {poem_text(lines).replace(chr(10), '')}"
                                          for j, lines in enumerate(group["poems"], start=1)]) + "\n")
    (out / "candidates.md").write_text("\n".join(parts), encoding="utf-8")
    print(f"blind_read candidates: {len(groups)} titles x {args.per_title} -> {out / 'candidates.md'}")
    return data


def parse_picks(text: str) -> list[int]:
    """The picker's JSON array of numbers, wherever it sits in their answer."""
    match = re.search(r"\[\s*\d+(?:\s*,\s*\d+)*\s*\]", text)
    if not match:
        raise SystemExit("no JSON array of picks found")
    return [int(x) for x in json.loads(match.group(0))]


def poem_text(lines: list[str]) -> str:
    marks = ["，", "。"]
    return "".join(line + marks[k % 2] + ("\n" if k % 2 else "") for k, line in enumerate(lines)).strip()


def make(args: argparse.Namespace) -> dict:
    """Write sheet.md and key.json into args.out."""
    from corpus.reader import Corpus

    rng = random.Random(args.seed)
    out = Path(args.out)
    model = args.model
    real, titles = real_poems(Corpus.load(), rng)
    if args.picks:
        cands = json.loads((out / CANDIDATES_FILE).read_text(encoding="utf-8"))
        picks = parse_picks(Path(args.picks).read_text(encoding="utf-8"))
        gen = picked_poems(cands, picks, titles, args.seed, rng, not args.no_titles)
        model = cands["model"]
    else:
        gen = generated_poems(model, titles, args.seed, rng, not args.no_titles)
    items = real + gen
    rng.shuffle(items)
    out.mkdir(parents=True, exist_ok=True)
    parts = [INSTRUCTIONS.format(n=len(items))]
    for n, item in enumerate(items, start=1):
        item["n"] = n
        head = f"### {n}" + (f"　《{item['title']}》" if item["title"] and not args.no_titles else "")
        parts.append(f"{head}\n\n{poem_text(item['lines'])}\n")
    (out / "sheet.md").write_text("\n".join(parts), encoding="utf-8")
    key = {"seed": args.seed, "model": model, "titles": not args.no_titles, "picks": args.picks,
           "items": items}
    (out / "key.json").write_text(json.dumps(key, ensure_ascii=False, indent=1), encoding="utf-8")
    summary = {"sheet": str(out / "sheet.md"), "key": str(out / "key.json"), "poems": len(items),
               "generated": len(gen), "real": len(real)}
    print(json.dumps(summary, ensure_ascii=False))
    print(f"blind_read make: {len(items)} poems ({len(gen)} generated) -> {out / 'sheet.md'}")
    return summary


def parse_answer(text: str) -> list[dict]:
    """The reader's JSON array, wherever it sits in their answer."""
    match = re.search(r"\[\s*\{.*?\}\s*\]", text, re.S)
    if not match:
        raise SystemExit("no JSON array of answers found")
    return json.loads(match.group(0))


def score(key: dict | list, answers: list[dict]) -> dict:
    """Recognition of generated poems, mean fluency per class and their ratio (and 对仗 for a
    couplet sheet, `poembot couplet sheet`, whose readers rate it too)."""
    if isinstance(key, list):                   # the first couplet sheets' keys: the items alone
        key = {"seed": None, "items": [{**item, "source": item["label"]} for item in key]}
    by_n = {int(a["n"]): a for a in answers}
    stats = {"real": {"n": 0, "called_generated": 0, "fluency": 0.0, "duizhang": 0.0},
             "generated": {"n": 0, "called_generated": 0, "fluency": 0.0, "duizhang": 0.0}}
    missing = 0
    for item in key["items"]:
        answer = by_n.get(item["n"])
        if answer is None:
            missing += 1
            continue
        s = stats[item["source"]]
        s["n"] += 1
        s["called_generated"] += answer["label"] == "generated"
        s["fluency"] += float(answer["fluency"])
        s["duizhang"] += float(answer.get("duizhang", 0.0))
    gen, real = stats["generated"], stats["real"]
    fl_gen = gen["fluency"] / max(gen["n"], 1)
    fl_real = real["fluency"] / max(real["n"], 1)
    return {"seed": key["seed"], "answered": gen["n"] + real["n"], "missing": missing,
            "generated_recognised": gen["called_generated"], "generated": gen["n"],
            "recognition": round(gen["called_generated"] / max(gen["n"], 1), 3),
            "real_called_generated": real["called_generated"], "real": real["n"],
            "fluency_generated": round(fl_gen, 2), "fluency_real": round(fl_real, 2),
            "fluency_ratio": round(fl_gen / fl_real, 3) if fl_real else None,
            **({"duizhang_generated": round(gen["duizhang"] / max(gen["n"], 1), 2),
                "duizhang_real": round(real["duizhang"] / max(real["n"], 1), 2)}
               if any(s["duizhang"] for s in stats.values()) else {})}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make", help="write a sheet and its key")
    m.add_argument("--seed", type=int, required=True)
    m.add_argument("--out", required=True)
    m.add_argument("--model", default=str(ROOT / "model" / "pretrained"))
    m.add_argument("--no-titles", action="store_true", help="no poem shows a title")
    m.add_argument("--picks", help="the picker's answer: the generated poems are the picked ones "
                                   "of --out's candidates.json (written by `candidates`)")
    c = sub.add_parser("candidates", help="a picker's sheet: PER_TITLE poems for each of a sheet's titles")
    c.add_argument("--seed", type=int, required=True)
    c.add_argument("--out", required=True)
    c.add_argument("--model", default=str(ROOT / "model" / "pretrained"))
    c.add_argument("--no-titles", action="store_true")
    c.add_argument("--per-title", type=int, default=PER_TITLE)
    s = sub.add_parser("score", help="score a reader's answer against the key")
    s.add_argument("--key", required=True)
    s.add_argument("--answer", required=True, help="the reader's reply (JSON array inside)")
    args = parser.parse_args(argv)
    if args.cmd == "make":
        return make(args)
    if args.cmd == "candidates":
        return candidates(args)
    key = json.loads(Path(args.key).read_text(encoding="utf-8"))
    result = score(key, parse_answer(Path(args.answer).read_text(encoding="utf-8")))
    print(json.dumps(result, ensure_ascii=False))
    print(f"blind_read: {result['generated_recognised']}/{result['generated']} generated recognised "
          f"({result['recognition']:.0%}), fluency {result['fluency_generated']} vs "
          f"{result['fluency_real']} real (ratio {result['fluency_ratio']})")
    return result


if __name__ == "__main__":
    main()
