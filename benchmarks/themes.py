"""Benchmark: does the theme prior (search/themes.py) make `/poem 明月` more about 明月?

For 50 common themes, poems are written with the theme word forced in (as the bot does), once
with the latent prior from the theme index and once without (z drawn from N(0, I)), same seeds.
Theme fit of a poem: the share of its 10 nearest corpus poems by character-bigram TF-IDF that
contain the theme; reported as the mean over poems and as the share of poems where at least
half do. Also the prior's lookup time. Prints one JSON object and a one-line summary.

Needs the index built by `poembot index build` (--index DIR, default: the data dir's index of
the model).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from search.tfidf import TfidfIndex
from model.requests import PoemRequest

THEMES = ("春风 明月 秋思 送别 边塞 思乡 梅花 落花 江南 故人 黄昏 夕阳 白云 青山 流水 杨柳 芳草 "
          "归雁 寒山 孤舟 渔舟 长安 塞上 烟雨 杏花 桃花 菊花 秋风 秋雨 春雨 夜雨 明月 月夜 "
          "长亭 离别 相思 故乡 天涯 江湖 登高 重阳 清明 中秋 寒食 芭蕉 梧桐 杜鹃 鸿雁 "
          "春草 落叶 钟声").split()
THEMES = tuple(dict.fromkeys(THEMES))[:50]
NEIGHBOURS = 10


def write(generator, themes: tuple[str, ...], per_theme: int, form: str, seed: int) -> list[list[str]]:
    jobs = [PoemRequest(form=form, keywords=[theme], n=per_theme, seed=seed + k, novelty=False)
            for k, theme in enumerate(themes)]
    out: list[list[str]] = []
    for start in range(0, len(jobs), 8):            # batches the size the worker would make
        for result in generator.generate(jobs[start:start + 8]):
            if not result.ok:
                raise RuntimeError(result.error_message)
            out += [p["lines"] for p in result.poems]
    return out


def fit(tfidf: TfidfIndex, texts: list[str], poems: list[list[str]], themes: list[str]) -> dict:
    shares = []
    for lines, theme in zip(poems, themes):
        near = tfidf.nearest(lines, NEIGHBOURS)
        shares.append(np.mean([theme in texts[i] for i in near]))
    shares_a = np.array(shares)
    return {"mean_neighbour_share": round(float(shares_a.mean()), 4),
            "poems_with_half_or_more": round(float((shares_a >= 0.5).mean()), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model folder (default: the shipped one)")
    parser.add_argument("--index", default=None, help="index folder (default: the model's in the data dir)")
    parser.add_argument("--per-theme", type=int, default=8)
    parser.add_argument("--form", default="七绝")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    import os

    from search.files import default_index_dir, model_version
    from search.index import Index
    from protocol.settings import PRETRAINED_DIR
    from search.reasons import BREAKS
    from model.generate import load_generator

    model_dir = Path(args.model) if args.model else PRETRAINED_DIR
    directory = Path(args.index) if args.index else default_index_dir(model_version(model_dir))
    os.environ["POEMBOT_INDEX_PATH"] = str(directory)
    generator = load_generator(model_dir)
    themes_index = generator.themes
    if themes_index is None:
        raise SystemExit(f"no theme index at {directory}: run `poembot index build`")

    lookups = []
    for _ in range(20):
        for theme in THEMES:
            t = time.perf_counter()
            themes_index.prior([theme])
            lookups.append(time.perf_counter() - t)
    us = np.array(lookups) * 1e6

    index = Index.load(directory)
    texts = [str(m["text"]) for m in index.meta]
    tfidf = TfidfIndex([BREAKS.split(t) for t in texts])

    labels = [theme for theme in THEMES for _ in range(args.per_theme)]
    t = time.perf_counter()
    with_prior = write(generator, THEMES, args.per_theme, args.form, args.seed)
    generator.themes = None
    without = write(generator, THEMES, args.per_theme, args.form, args.seed)
    generate_s = time.perf_counter() - t
    result = {"benchmark": "themes", "themes": len(THEMES), "per_theme": args.per_theme, "form": args.form,
              "neighbours": NEIGHBOURS, "corpus_poems": len(texts),
              "prior_lookup_us": {"p50": round(float(np.percentile(us, 50)), 1),
                                  "p99": round(float(np.percentile(us, 99)), 1)},
              "with_prior": fit(tfidf, texts, with_prior, labels),
              "without_prior": fit(tfidf, texts, without, labels),
              "generate_s": round(generate_s, 1)}
    w, wo = result["with_prior"], result["without_prior"]
    result["prior_helps"] = w["mean_neighbour_share"] > wo["mean_neighbour_share"]
    print(json.dumps(result, ensure_ascii=False))
    print(f"themes: theme fit (share of the {NEIGHBOURS} TF-IDF-nearest corpus poems holding the theme) "
          f"{w['mean_neighbour_share']} with the prior vs {wo['mean_neighbour_share']} without, "
          f"{len(labels)} poems each over {len(THEMES)} themes; prior lookup p50 "
          f"{result['prior_lookup_us']['p50']} us, p99 {result['prior_lookup_us']['p99']} us")


if __name__ == "__main__":
    main()
