"""Load: simulated Telegram users against real bot and worker processes, a real Redis and the Bot API
emulator; every request must be answered exactly once. Prints one JSON object, then a one-line summary.

Each user sends its requests one after another (a /poem variant, /similar, or a button on its last
poem) and waits for the answer; all users run at once. `--faults` kills a worker mid-batch, kills and
restarts the bot and restarts Redis as the load runs. The cluster and the load are devtools/load.py,
which tests/robustness/ drives too. `python -m benchmarks.load --help` for options.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devtools.load import Cluster, run_load, standard_faults, summary  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    from protocol.settings import PRETRAINED_DIR

    p = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, default=1000)
    p.add_argument("--per-user", type=int, default=5)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--model-dir", type=Path, default=PRETRAINED_DIR)
    p.add_argument("--index", type=Path, help="latent index dir (default: the model's built index, if any)")
    p.add_argument("--faults", action="store_true", help="kill a worker, the bot and restart Redis mid-load")
    p.add_argument("--max-batch", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=600.0, help="seconds one request may wait")
    a = p.parse_args(argv)

    async def go() -> dict[str, Any]:
        async with Cluster(a.model_dir, a.workers, a.index, max_batch=a.max_batch) as cluster:
            # The baseline, in the same run: one user alone, so the load's cost shows as a ratio.
            idle = await run_load(cluster, 1, a.per_user, seed=a.seed + 1, timeout=a.timeout)
            result = await run_load(cluster, a.users, a.per_user, faults=standard_faults() if a.faults else [],
                                    seed=a.seed, timeout=a.timeout)
        result["baseline_one_user_latency_s"] = idle["latency_s"]
        if idle["latency_s"]["p50"] and result["latency_s"]["p50"]:
            result["p50_vs_one_user"] = round(result["latency_s"]["p50"] / idle["latency_s"]["p50"], 1)
        return result

    result = asyncio.run(go())
    print(json.dumps(result, ensure_ascii=False))
    print(summary(result))
    return 0 if result["unanswered"] == 0 and result["duplicates"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
