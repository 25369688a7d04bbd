"""Benchmark: /similar over every regular-form poem — latency of the new index and the quality of
its answers against today's index and TF-IDF, in one run.

Prints one JSON object and a one-line summary. Needs the index built by `poembot index build`
(--index DIR, default: the data dir's index of the shipped model).

Quality, over queries that are poems of a series (same poet, same title with 其一/其二 …), each
asking for 5 answers other than itself:
- hit@5 series: an answer is another poem of the same series; hit@5 poet: one is by the same poet;
- median popularity of the answers (search.popularity's 0..1 score: rank percentile, canon = 1);
- distinct poets per answer of 5 and the share of answers with at least 4.
Rankings: "today" (cosine over the 60,000 poems of highest raw rank, the index before this one),
"tfidf" (character-bigram TF-IDF over all poems), "new" (Index.recommend, as /similar replying to
the poem: cosine + shared imagery + popularity, MMR, one poem per poet).
"""
from __future__ import annotations

import argparse
import json
import re
import time
from collections import Counter
from pathlib import Path

import numpy as np

from search.tfidf import TfidfIndex
from search.index import Index
from search.reasons import BREAKS, QueryPoem

TODAY_SIZE = 60_000
SERIES = re.compile(r"\s*其[一二三四五六七八九十百]+$")
FAMOUS = (("枫桥夜泊", "张继"), ("静夜思", "李白"))


def percentiles(samples: list[float]) -> dict:
    ms = np.array(samples) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3),
            "p99_ms": round(float(np.percentile(ms, 99)), 3)}


def latency(index: Index, queries: int, rng: np.random.Generator) -> dict:
    """recommend() per query as /similar calls it for a user's taste — three poems, their mean
    direction, their lines for the shared-imagery pool and the why line, 50 poems excluded (shown
    before) — and the inverted lists' agreement with an exact scan on the 10 nearest."""
    shown = [index.ids[i] for i in rng.choice(len(index), size=50, replace=False)]
    fast, exact_t, overlap = [], [], []
    for _ in range(queries):
        rows = rng.choice(len(index), size=3, replace=False)
        taste = [QueryPoem(BREAKS.split(str(index.meta[int(r)]["text"])), index.vectors[r], taste=True)
                 for r in rows]
        q = index.vectors[rows].mean(axis=0)
        t = time.perf_counter()
        index.recommend(q, k=5, exclude_ids=shown, query=taste)
        fast.append(time.perf_counter() - t)
        unit = (q / np.linalg.norm(q)).astype(np.float32)
        got, _ = index.nearest(unit, 10)
        t = time.perf_counter()
        want, _ = index.nearest(unit, 10, exact=True)
        exact_t.append(time.perf_counter() - t)
        overlap.append(len(set(got) & set(want)) / 10)
    return {"recommend": percentiles(fast), "exact_scan_top10": percentiles(exact_t),
            "ivf_recall@10": round(float(np.mean(overlap)), 4)}


def series_labels(index: Index) -> list[str | None]:
    """(poet, title without 其N) of each row that names a series part, else None."""
    out = []
    for row in range(len(index)):
        m = index.meta[row]
        title = str(m.get("title") or "")
        out.append(f"{m.get('author')}|{SERIES.sub('', title)}" if SERIES.search(title) else None)
    return out


def quality(answers: list[list[int]], queries: np.ndarray, series: list[str | None],
            authors: list[str], pop: np.ndarray) -> dict:
    hit_series = [any(series[a] == series[q] for a in ans) for q, ans in zip(queries, answers)]
    hit_poet = [any(authors[a] == authors[q] for a in ans) for q, ans in zip(queries, answers)]
    distinct = [len({authors[a] for a in ans}) for ans in answers]
    return {"hit@5_series": round(float(np.mean(hit_series)), 4),
            "hit@5_poet": round(float(np.mean(hit_poet)), 4),
            "median_popularity": round(float(np.median([pop[a] for ans in answers for a in ans])), 4),
            "canon_share": None,
            "distinct_poets_mean": round(float(np.mean(distinct)), 3),
            "answers_with_4plus_poets": round(float(np.mean([d >= 4 for d in distinct])), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", help="index folder (default: the shipped model's, in the data dir)")
    parser.add_argument("--queries", type=int, default=500, help="latency queries")
    parser.add_argument("--series-queries", type=int, default=1000, help="quality queries")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from search.files import default_index_dir, model_version
    from protocol.settings import PRETRAINED_DIR
    directory = Path(args.index) if args.index else default_index_dir(model_version(PRETRAINED_DIR))
    rng = np.random.default_rng(args.seed)
    t = time.perf_counter()
    index = Index.load(directory)
    load_s = time.perf_counter() - t

    famous = {f"{title} {poet}": any(index.meta[r]["title"] == title and index.author(r) == poet
                                    for r in range(len(index))) for title, poet in FAMOUS}
    result: dict = {"benchmark": "similar", "index_size": len(index), "dim": int(index.vectors.shape[1]),
                    "load_s": round(load_s, 2), "famous_in_index": famous,
                    "latency": latency(index, args.queries, rng), "target_p99_ms": 5.0}

    series = series_labels(index)
    sizes = Counter(s for s in series if s)
    eligible = np.array([r for r, s in enumerate(series) if s and sizes[s] >= 2])
    queries = rng.choice(eligible, size=min(args.series_queries, len(eligible)), replace=False)
    authors = [index.author(r) for r in range(len(index))]
    pop = np.asarray(index.popularity)

    today_rows = np.argsort(-np.array([float(index.meta[r].get("rank") or 0) for r in range(len(index))]),
                            kind="stable")[:TODAY_SIZE]
    today_vectors = index.vectors[today_rows]
    lines = [BREAKS.split(str(index.meta[r]["text"])) for r in range(len(index))]
    t = time.perf_counter()
    tfidf = TfidfIndex(lines)
    tfidf_build_s = time.perf_counter() - t

    answers: dict[str, list[list[int]]] = {"today": [], "tfidf": [], "new": []}
    for q in queries:
        scores = today_vectors @ index.vectors[q]
        scores[today_rows == q] = -np.inf
        answers["today"].append([int(today_rows[j]) for j in np.argsort(-scores)[:5]])
        answers["tfidf"].append([int(r) for r in tfidf.nearest(lines[q], 5, exclude=[q])])
        answers["new"].append([index.row[h["id"]] for h in index.recommend(
            index.vectors[q], 5, exclude_ids=[index.ids[q]], query=[QueryPoem(lines[q])])])
    canon = np.asarray(index.canon) if index.canon is not None else np.zeros(len(index))
    result["quality"] = {}
    for name, ans in answers.items():
        q = quality(ans, queries, series, authors, pop)
        q["canon_share"] = round(float(np.mean([canon[a] > 0 for a in sum(ans, [])])), 4)
        result["quality"][name] = q
    result["series_queries"] = int(len(queries))
    result["tfidf_build_s"] = round(tfidf_build_s, 1)
    lat = result["latency"]["recommend"]
    new = result["quality"]["new"]
    result["meets"] = {"size_230k": len(index) >= 230_000, "p99_under_5ms": lat["p99_ms"] < 5.0,
                       "famous": all(famous.values()),
                       "4_poets_per_answer": new["answers_with_4plus_poets"] == 1.0}
    print(json.dumps(result, ensure_ascii=False))
    qt, qf = result["quality"]["today"], result["quality"]["tfidf"]
    print(f"similar: {len(index)} poems, recommend p50 {lat['p50_ms']} ms / p99 {lat['p99_ms']} ms "
          f"(target < 5); hit@5 series today {qt['hit@5_series']} / tfidf {qf['hit@5_series']} / "
          f"new {new['hit@5_series']}; poet {qt['hit@5_poet']} / {qf['hit@5_poet']} / {new['hit@5_poet']}; "
          f"median popularity {qt['median_popularity']} / {qf['median_popularity']} / "
          f"{new['median_popularity']}; distinct poets {qt['distinct_poets_mean']} / "
          f"{qf['distinct_poets_mean']} / {new['distinct_poets_mean']} of 5; famous poems in: "
          f"{all(famous.values())}")


if __name__ == "__main__":
    main()
