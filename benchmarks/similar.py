"""Benchmark: `/similar` lookup latency of model.index.Index versus plain brute force.

Prints one JSON object and a one-line summary. Uses the real index when given, else a random one of the same size.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from model.index import DEFAULT_SIZE, Index, unit_rows


def brute_force(vectors_f16: np.ndarray, query: np.ndarray, k: int, exclude: set[int]) -> list[int]:
    """The obvious way: cosine against every stored float16 row, full sort, filter."""
    rows = vectors_f16.astype(np.float32)
    scores = rows @ query / (np.linalg.norm(rows, axis=1) * np.linalg.norm(query) + 1e-8)
    return [int(i) for i in np.argsort(-scores) if int(i) not in exclude][:k]


def percentiles(samples: list[float]) -> dict:
    ms = np.array(samples) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3),
            "p99_ms": round(float(np.percentile(ms, 99)), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--index", help="index folder (default: a random index)")
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--k", type=int, default=5)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    if args.index:
        index = Index.load(args.index)
    else:
        vectors = unit_rows(rng.normal(size=(args.size, args.dim)))
        ids = [f"p{i}" for i in range(args.size)]
        index = Index("random", ids, vectors, [{} for _ in ids], np.arange(args.size))
    stored = index.vectors.astype(np.float16)
    queries = rng.normal(size=(args.queries, index.vectors.shape[1])).astype(np.float32)
    # A user's history: 50 poems already shown are excluded from each answer.
    shown = [index.ids[i] for i in rng.choice(len(index), size=50, replace=False)]
    shown_rows = {index.row[i] for i in shown}

    fast, slow, agree = [], [], 0
    for q in queries:
        t = time.perf_counter()
        hits = index.search(q, k=args.k, exclude_ids=shown)
        fast.append(time.perf_counter() - t)
        t = time.perf_counter()
        want = brute_force(stored, q, args.k, shown_rows)
        slow.append(time.perf_counter() - t)
        agree += [index.row[h["id"]] for h in hits] == want
    result = {"benchmark": "similar", "index_size": len(index), "dim": int(index.vectors.shape[1]),
              "queries": args.queries, "k": args.k, "index": percentiles(fast),
              "brute_force": percentiles(slow), "same_answers": agree / args.queries,
              "target_p99_ms": 5.0}
    result["speedup_p50"] = round(result["brute_force"]["p50_ms"] / result["index"]["p50_ms"], 1)
    result["meets_target"] = result["index"]["p99_ms"] < 5.0
    print(json.dumps(result))
    print(f"similar: index p99 {result['index']['p99_ms']} ms vs brute force "
          f"{result['brute_force']['p99_ms']} ms over {len(index)} poems "
          f"({result['speedup_p50']}x at p50; target p99 < 5 ms: "
          f"{'met' if result['meets_target'] else 'NOT met'})")


if __name__ == "__main__":
    main()
