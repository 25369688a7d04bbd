"""Reading-aid coverage: the share of characters that get an English gloss, in 1,000 generated
poems (250 per form, default settings) and 1,000 real test-split poems, plus how long a gloss
takes. Characters without one are still shown with their pinyin.

The gloss reads each poem whole (rhyme, 平仄 pattern, verse words, context rules: reading.pinyin),
so the time per poem includes choosing among polyphones' readings; the report counts how each
polyphone's reading was chosen and records the machine's load average while it ran.

Prints one JSON object, then a one-line summary. `python -m benchmarks.gloss [--model DIR]`.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def coverage(poems: list[list[str]]) -> dict:
    """Glossed share of characters, time per poem, and how polyphones were read, over `poems`."""
    from reading.gloss import dictionary, gloss
    from reading.pinyin import read_poem

    glossed = total = 0
    missing: Counter = Counter()
    started = time.perf_counter()
    for lines in poems:
        g = gloss(lines)
        a, b = g.coverage()
        glossed, total = glossed + a, total + b
        missing.update(c for row in g.lines for w in row if not w.gloss for c in w.text)
    seconds = time.perf_counter() - started
    # Untimed: why each polyphone read as it did (rhyme, meter, context, word, default).
    words = dictionary()
    reasons: Counter = Counter(c.why for lines in poems
                               for row in read_poem(lines, [words.segment(x) for x in lines])
                               for c in row if c.why != "pypinyin")
    return {"poems": len(poems), "chars": total, "glossed_share": round(glossed / max(total, 1), 4),
            "ms_per_poem": round(1000 * seconds / max(len(poems), 1), 2),
            "unglossed_top": "".join(c for c, _ in missing.most_common(20)),
            "polyphones_by_reason": dict(reasons.most_common())}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "model" / "pretrained"))
    parser.add_argument("--per-form", type=int, default=250)
    a = parser.parse_args(argv)

    import numpy as np

    from corpus.reader import Corpus
    from model.decode import Generator
    from verse.forms import FORM_NAMES
    from model.requests import PoemRequest
    from reading.gloss import warm_up

    warm_up()                      # dictionary and verse tables loaded once, not timed per poem
    corpus = Corpus.load()
    rng = np.random.default_rng(0)
    real = []
    for form in FORM_NAMES:       # the test split, then the validation split (五绝 are few)
        rows = corpus.indices("test", forms=(form,)) + corpus.indices("val", forms=(form,))
        real += [corpus.lines[i] for i in rng.choice(rows, min(a.per_form, len(rows)), replace=False)]
    generator = Generator.load(a.model, novelty=False)
    jobs = [PoemRequest(form=form, seed=k, n=10) for form in FORM_NAMES
            for k in range(a.per_form // 10)]
    generated = [p["lines"] for r in generator.generate(jobs) for p in r.poems]
    report = {"benchmark": "gloss", "model": a.model, "generated": coverage(generated),
              "real": coverage(real), "load_average": [round(x, 2) for x in os.getloadavg()]}
    print(json.dumps(report, ensure_ascii=False))
    g, r = report["generated"], report["real"]
    print(f"gloss: {100 * g['glossed_share']:.1f}% of {g['chars']} generated characters and "
          f"{100 * r['glossed_share']:.1f}% of {r['chars']} real ones have a gloss; "
          f"{g['ms_per_poem']} ms per poem (load average {report['load_average'][0]})")
    return report


if __name__ == "__main__":
    main()
