"""Best-of-K: quality against throughput for K = 1, 2, 4, 8 (and score weights), in one run.

For each setting it generates n poems per form at default request settings plus acrostics
(training/constrained.py's section), then measures distinct-2, the top-20 character
share, the LM judge's NLL ratio (generated / real) and c2st accuracy with the same classifier.
K=1 is the baseline. Prints one JSON object, then a one-line summary per setting.

`python -m benchmarks.best_of --model model/pretrained --n 400 --settings 1,4,4:0.3,8:0.3,4:0.6:1:1:0.05`
(a setting is K[:rarity weight[:temperature[:top_p[:min_p]]]]; the other score weights are
model.rescore.ScoreWeights' defaults). `--no-c2st` leaves out the classifier,
the one slow measure, for a quick look at a sampler.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "model" / "pretrained"))
    parser.add_argument("--n", type=int, default=400, help="poems per form and setting")
    parser.add_argument("--settings", default="1,2,4,8", help="K[:rarity[:temperature[:top_p[:min_p]]]], comma list")
    parser.add_argument("--no-c2st", action="store_true", help="skip the classifier two-sample test")
    a = parser.parse_args(argv)

    import model.decode as decode
    from model.rescore import ScoreWeights
    import training.constrained as constrained
    from training.evaluate import corpus_for
    from model.requests import PoemRequest
    from model.vae import load_model
    from training import meaning

    root = Path(a.model)
    model, vocab, config = load_model(root)
    corpus = corpus_for(root)
    lm = load_model(root / "lm")[0]
    emb = None if a.no_c2st else meaning.char_embeddings([corpus.lines[i] for i in corpus.indices("train")], vocab)
    train_lines = {line for i in corpus.indices("train") for line in corpus.lines[i]}
    defaults = PoemRequest()
    rows = []
    for spec in a.settings.split(","):
        parts = spec.split(":")
        k = int(parts[0])
        rarity = float(parts[1]) if len(parts) > 1 else ScoreWeights().rarity
        temp = float(parts[2]) if len(parts) > 2 else defaults.temperature
        top_p = float(parts[3]) if len(parts) > 3 else defaults.top_p
        min_p = float(parts[4]) if len(parts) > 4 else defaults.min_p
        decode.ScoreWeights = functools.partial(ScoreWeights, rarity=rarity)
        constrained.PoemRequest = functools.partial(PoemRequest, temperature=temp, top_p=top_p, min_p=min_p)
        m, s = constrained.constrained_section(model, vocab, config, root, corpus, a.n, 0, train_lines,
                                               best_of=k)
        if a.no_c2st:
            gen, real = meaning.judge_nll(lm, vocab, s["generated"]), meaning.judge_nll(lm, vocab, s["reference"])
            mm = {"judge_ratio": gen / real, "c2st_acc": float("nan")}
        else:
            mm = meaning.meaning_metrics(lm, vocab, s["reference"], s["generated"], 0, emb)
        rows.append({"best_of": k, "rarity_weight": rarity, "temperature": temp, "top_p": top_p, "min_p": min_p,
                     "poems_per_s": round(m["constrained_poems_per_second"], 1),
                     "distinct_2": round(m["constrained_distinct_2"], 4),
                     "top20_share": round(m["constrained_top20_char_share"], 4),
                     "copy_rate": m["constrained_line_copy_rate"],
                     "judge_ratio": round(mm["judge_ratio"], 4), "c2st_acc": round(mm["c2st_acc"], 4),
                     "first_poem": "/".join(s["generated"][0][1])})
        print(json.dumps(rows[-1], ensure_ascii=False), file=sys.stderr, flush=True)
    report = {"benchmark": "best_of", "model": str(root), "n_per_form": a.n,
              "load_avg_1min_at_end": round(os.getloadavg()[0], 2), "settings": rows}
    print(json.dumps(report, ensure_ascii=False))
    for r in rows:
        print(f"best_of: K={r['best_of']} rarity={r['rarity_weight']} T={r['temperature']} "
              f"top-p={r['top_p']} min-p={r['min_p']}: "
              f"{r['poems_per_s']} poems/s, c2st {r['c2st_acc']}, judge {r['judge_ratio']}, "
              f"distinct-2 {r['distinct_2']}, top-20 {r['top20_share']}")
    return report


if __name__ == "__main__":
    main()
