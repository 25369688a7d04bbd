"""Benchmark: how the couplet model's 下联 compare with the poets' own, on held-out pairs.

On test-split 颔联/颈联 of 五律 and 七律 (never trained on), the best of K constrained samples
against the real 下联, measured alike: the rules (length, opposite 平仄 at the rhythm positions, no
上联 character, mirrored repeats), tone opposition where both characters have one definite tone,
a 平 ending after a 仄 one, how often a position's characters fall in one word class
(model/word_classes.py: numbers, colours, directions, seasons …) — 上联 against 下联, and the
generated 下联 against the real one — held-out NLL, speed; the rules on 上联 of every length 4..11;
春联 written from theme words (the 上联 from the poem model). Prints one JSON object and a one-line
summary; with --sheet DIR also writes a blind-reading sheet and its key there.

    python benchmarks/couplet.py --model model/couplet --n 400
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "model" / "couplet"))
    parser.add_argument("--n", type=int, default=400, help="held-out pairs")
    parser.add_argument("--k", type=int, default=24, help="candidates sampled per 上联")
    parser.add_argument("--spring", type=int, default=24, help="春联 from theme words (0: none)")
    parser.add_argument("--sheet", default=None, help="also write a blind-reading sheet and key here")
    parser.add_argument("--baseline", action="store_true",
                        help="also measure the couplet model alone (no poem model fused in or rescoring)")
    args = parser.parse_args(argv)

    from training.couplet import blind_sheet, evaluate, summary

    load_start = os.getloadavg()[0]
    figures = evaluate(args.model, n=args.n, k=args.k, theme_n=args.spring)
    if args.baseline:
        alone = evaluate(args.model, n=args.n, k=args.k, theme_n=0, poems_dir=None)
        figures["alone"] = {key: alone[key] for key in ("generated", "couplets_per_s", "heldout_nll_generated")}
    figures["load_avg_1min"] = {"start": round(load_start, 2), "end": round(os.getloadavg()[0], 2)}
    if args.sheet:
        sheet, key = blind_sheet(args.model, args.sheet)
        figures["sheet"] = {"sheet": str(sheet), "key": str(key)}
    print(json.dumps(figures, ensure_ascii=False))
    line = summary(figures)
    if args.baseline:
        a = figures["alone"]
        line += (f"; the couplet model alone: word class as the 上联's {a['generated']['class_same_as_first']:.1%}, "
                 f"{a['couplets_per_s']} couplets/s")
    print(line + f" (load {figures['load_avg_1min']['start']}→{figures['load_avg_1min']['end']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
