"""The constrained decoder, what users get, measured: default requests from the prior (and acrostic
ones) through the worker's Generator, scored for form, rhyme, tones, copying, variety and speed, beside
real held-out poems counted the same way.
"""
from __future__ import annotations

import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from corpus.reader import Corpus
from model.requests import Answer, PoemRequest
from protocol.jobs import MAX_N
from verse.forms import FORMS, FORM_NAMES, classify
from verse.vocab import N_SPECIALS, Vocab, in_gbk

if TYPE_CHECKING:
    from model.decode import Generator

CONSTRAINED_BATCH = 256       # rows per compiled decoding call (throughput flattens beyond this)
ACROSTIC_POOL = 300           # acrostic characters come from this many most frequent vocabulary ones
DISTINCT_PER_FORM = 250       # distinct-n sample: 4 x 250 = the 1,000 poems of the human reference
TOP_CHARS = 20
LENGTH_KEYS = {5: "wuyan", 7: "qiyan"}
FORM_KEYS = {"五绝": "wujue", "七绝": "qijue", "五律": "wulv", "七律": "qilv"}    # ASCII suffixes of per-form keys


def line_tone_fits(lines: list[str], form: str, pattern: str | None) -> list[bool | None]:
    """Per line: do its known 2nd/4th/6th characters all fit `pattern` (a prosody pattern name)?

    None for a line with no character of known tone there; every line misses when there is no
    pattern (the poem is not of the form).
    """
    from verse import prosody

    if pattern is None or form not in FORMS or classify(lines) != form:
        return [False] * len(lines)
    pat = prosody.named_patterns(form)[pattern]
    out: list[bool | None] = []
    for i, line in enumerate(lines):
        known = [(p, prosody.tones(line[p])) for p in (1, 3, 5) if p < len(line) - 1]
        known = [(p, t) for p, t in known if t]
        out.append(all(pat[i][p] in t for p, t in known) if known else None)
    return out


def text_stats(poems: list[list[str]]) -> dict[str, float]:
    """distinct-1, distinct-2 (bigrams inside lines) and the share of the 20 most frequent characters."""
    chars = Counter(c for lines in poems for line in lines for c in line)
    bigrams = [line[i:i + 2] for lines in poems for line in lines for i in range(len(line) - 1)]
    total = sum(chars.values())
    return {"distinct_1": len(chars) / max(total, 1),
            "distinct_2": len(set(bigrams)) / max(len(bigrams), 1),
            "top20_char_share": sum(v for _, v in chars.most_common(TOP_CHARS)) / max(total, 1)}


def rate(values: list) -> float | None:
    kept = [bool(v) for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def verdict_fields(poem: dict, form: str) -> tuple[bool, bool, str | None]:
    """(form ok, rhyme ok, pattern name) of a generated poem, from its own verdict when it has one."""
    lines = poem["lines"]
    pattern = (poem.get("prosody") or {}).get("pattern")
    rhyme = poem.get("rhyme_ok")
    if rhyme is None:
        from verse import prosody
        v = prosody.check(lines)
        rhyme, pattern = v.rhyme_ok, v.pattern
    return classify(lines) == form, bool(rhyme), pattern


def constrained_generator(model, vocab: Vocab, config, model_dir: Path, corpus: Corpus | None,
                          max_rows: int = CONSTRAINED_BATCH) -> "Generator":
    """A Generator over an already loaded model, with the novelty table and the pair table a
    worker would use, so evaluation scores candidates as the worker does.

    model_dir/novelty.npy when shipped, else every line of the corpus the model was trained on (the
    worker's fallback is the built corpus: the same lines for a real run, the synthetic ones here).
    """
    from model.constraints import NoveltyTable
    from model.decode import NOVELTY_FILE, Generator
    from model.rescore import load_pairs

    path = model_dir / NOVELTY_FILE
    table = (NoveltyTable.load(path) if path.exists()
             else NoveltyTable.from_corpus(corpus) if corpus is not None else None)
    return Generator(model, vocab, config, novelty=table, max_rows=max_rows,
                     pairs=load_pairs(model_dir, len(vocab)))


def default_jobs(form: str, count: int, rng: np.random.Generator, per_job: int,
          acrostics: list[str] | None = None, best_of: int | None = None) -> list[PoemRequest]:
    """Seeded requests with default settings (best_of: K if given) for count poems, per_job
    (or fewer) each."""
    jobs = []
    for k in range(0, count, per_job):
        job = PoemRequest(form=form, n=min(per_job, count - k), seed=int(rng.integers(2 ** 62)))
        if best_of is not None:
            job.best_of = best_of
        if acrostics is not None:
            job.acrostic = acrostics[k // per_job]
        jobs.append(job)
    return jobs


def poems_of(jobs: list[PoemRequest], results: list[Answer]) -> list[tuple[str, dict | None, str]]:
    """(form, poem or None for a refused job, acrostic) per requested poem."""
    out = []
    for job, res in zip(jobs, results):
        poems = res.poems if res.ok else []
        out += [(job.form, poems[k] if k < len(poems) else None, job.acrostic) for k in range(job.n)]
    return out


def show(form: str, poem: dict, acrostic: str = "") -> str:
    notes = [form, poem.get("pattern") or "", f"押{poem['rhyme_group']}" if poem.get("rhyme_group") else "",
             f"藏头「{acrostic}」" if acrostic else ""]
    return f"{' · '.join(x for x in notes if x)}: {' '.join(poem['text'].splitlines())}"


def constrained_metrics(generator: "Generator", n: int, seed: int = 0, train_lines: set[str] | None = None,
                        reference: list[tuple[str, list[str]]] | None = None,
                        best_of: int | None = None) -> tuple[dict, dict[str, list]]:
    """Quality of the constrained decoder with default PoemRequest settings, keys prefixed constrained_.

    n poems per form from the prior in batches of generator.max_rows, then n // 4 (at least 1) acrostic
    requests per form with random acrostics of frequent characters. train_lines None: the copy rate is
    None. reference: real (form, lines) poems for the same text statistics. Returns the metrics and
    samples {"poems": 2 per form, "acrostic": 1 per form (both as report lines), "lines": every poem's
    lines in request order, form by form (None for a refused one), "generated": (form, lines) of
    every poem, "acrostics": (form, lines, acrostic) of every acrostic}. best_of: K for every
    request (None: the default).
    """
    rng = np.random.default_rng([seed, 2024])
    # One poem per form first, so that tracing the decoding loop does not count against poems/s.
    generator.generate([job for form in FORM_NAMES for job in default_jobs(form, 1, np.random.default_rng(seed), 1)])
    jobs = [job for form in FORM_NAMES for job in default_jobs(form, n, rng, MAX_N, best_of=best_of)]
    t0 = time.monotonic()
    results = generator.generate(jobs)
    seconds = time.monotonic() - t0
    poems = poems_of(jobs, results)

    pool = list(generator.vocab.chars[N_SPECIALS:N_SPECIALS + ACROSTIC_POOL])
    n_acro = max(1, n // 4)
    acro_jobs = []
    for form in FORM_NAMES:
        k = FORMS[form].n_lines
        acrostics = ["".join(rng.choice(pool, size=min(k, len(pool)), replace=False)) for _ in range(n_acro)]
        acro_jobs += default_jobs(form, n_acro, rng, 1, acrostics, best_of=best_of)
    acro = poems_of(acro_jobs, generator.generate(acro_jobs))

    valid, rhyme, line_fit = [], [], []
    by_form: dict[str, list[bool]] = defaultdict(list)
    by_length: dict[int, list[bool]] = defaultdict(list)
    lines_all: list[str] = []
    texts: list[str] = []
    relaxed, novel = [], []
    kept: dict[str, list[list[str]]] = defaultdict(list)
    for form, poem, _ in poems:
        if poem is None:
            valid.append(False)
            rhyme.append(False)
            by_form[form].append(False)
            by_length[FORMS[form].line_len].append(False)
            continue
        ok, rh, pattern = verdict_fields(poem, form)
        valid.append(ok)
        rhyme.append(rh)
        by_form[form].append(rh)
        by_length[FORMS[form].line_len].append(rh)
        line_fit += line_tone_fits(poem["lines"], form, pattern)
        lines_all += poem["lines"]
        texts.append("/".join(poem["lines"]))
        relaxed.append(bool(poem.get("relaxed")))
        novel.append(poem.get("novel"))
        kept[form].append(poem["lines"])

    acro_ok, acro_rhyme = [], []
    for form, poem, acrostic in acro:
        if poem is None:
            acro_ok.append(False)
            acro_rhyme.append(False)
            continue
        ok, rh, _ = verdict_fields(poem, form)
        lines = poem["lines"]
        acro_ok.append(ok and all(lines[i][:1] == c for i, c in enumerate(acrostic)))
        acro_rhyme.append(rh)

    # distinct-n falls as the sample grows: the headline uses as many poems per form as the human
    # reference's 1,000 in all, and the real poems below the same count per form.
    per_form = {f: min(DISTINCT_PER_FORM, len(kept[f])) for f in FORM_NAMES}
    if reference is not None:
        ref_by_form: dict[str, list[list[str]]] = defaultdict(list)
        for form, lines in reference:
            ref_by_form[form].append(lines)
        per_form = {f: min(k, len(ref_by_form[f])) for f, k in per_form.items()}
    sample = [lines for f in FORM_NAMES for lines in kept[f][:per_form[f]]]
    stats_all = text_stats([lines for f in FORM_NAMES for lines in kept[f]])
    stats_sample = text_stats(sample)

    m: dict = {
        "constrained_n_per_form": n,
        "constrained_n_generated": len(poems),
        "constrained_errors": sum(p is None for _, p, _ in poems),
        "constrained_form_valid_rate": rate(valid),
        "constrained_rhyme_rate": rate(rhyme),
    }
    for form in FORM_NAMES:
        m[f"constrained_rhyme_rate_{FORM_KEYS[form]}"] = rate(by_form[form])
    for length, name in LENGTH_KEYS.items():
        m[f"constrained_rhyme_rate_{name}"] = rate(by_length[length])
    m.update({
        "constrained_line_tone_rate": rate(line_fit),
        "constrained_line_copy_rate": (float(np.mean([line in train_lines for line in lines_all]))
                                       if train_lines is not None and lines_all else None),
        "constrained_distinct_1": stats_sample["distinct_1"],
        "constrained_distinct_2": stats_sample["distinct_2"],
        "constrained_distinct_sample": len(sample),
        "constrained_distinct_2_all": stats_all["distinct_2"],
        "constrained_top20_char_share": stats_all["top20_char_share"],
        "constrained_duplicate_rate": 1.0 - len(set(texts)) / max(len(texts), 1),
        "constrained_relaxed_rate": rate(relaxed),
        "constrained_not_novel_rate": rate([None if v is None else not v for v in novel]),
        "constrained_acrostic_n": len(acro),
        "constrained_acrostic_success_rate": rate(acro_ok),
        "constrained_acrostic_rhyme_rate": rate(acro_rhyme),
        "constrained_best_of": jobs[0].best_of if jobs else None,
        "constrained_non_gbk_chars": sum(not in_gbk(c) for _, p, _ in poems + acro if p is not None
                                         for c in "".join(p["lines"])),
        "constrained_poems_per_second": len(poems) / max(seconds, 1e-9),
        "constrained_generate_seconds": round(seconds, 1),
    })
    if reference is not None:
        ref_sample = [lines for f in FORM_NAMES for lines in ref_by_form[f][:per_form[f]]]
        ref_stats = text_stats(ref_sample)
        ref_all = text_stats([lines for _, lines in reference])
        from verse import prosody
        verdicts = [(form, lines, prosody.check(lines)) for form, lines in reference]
        m.update({
            "constrained_ref_n": len(reference),
            "constrained_ref_distinct_1": ref_stats["distinct_1"],
            "constrained_ref_distinct_2": ref_stats["distinct_2"],
            "constrained_ref_top20_char_share": ref_all["top20_char_share"],
            "constrained_ref_rhyme_rate": rate([v.rhyme_ok for _, _, v in verdicts]),
            "constrained_ref_line_tone_rate": rate([x for form, lines, v in verdicts
                                                     for x in line_tone_fits(lines, form, v.pattern)]),
        })
    samples: dict[str, list] = {
        "poems": [], "acrostic": [],
        "lines": [p["lines"] if p is not None else None for _, p, _ in poems],
        "generated": [(f, p["lines"]) for f, p, _ in poems if p is not None],
        "acrostics": [(f, p["lines"], a) for f, p, a in acro if p is not None]}
    for form in FORM_NAMES:
        samples["poems"] += [show(f, p) for f, p, _ in poems if f == form and p is not None][:2]
        samples["acrostic"] += [show(f, p, a) for f, p, a in acro if f == form and p is not None][:1]
    return m, samples


def reference_poems(corpus: Corpus, n: int, seed: int) -> list[tuple[str, list[str]]]:
    """Up to n real held-out poems per form (a seeded sample): test poems, then validation ones.

    The real test split holds only about 160 五绝, fewer than the 250 a distinct-2 comparison needs.
    """
    rng = np.random.default_rng([seed, 77])
    out = []
    for form in FORM_NAMES:
        rows: list[int] = []
        for split in ("test", "val"):
            more = corpus.indices(split, forms=(form,))
            want = n - len(rows)
            if len(more) > want:
                more = sorted(rng.choice(more, size=want, replace=False).tolist())
            rows += more
        out += [(form, list(corpus.lines[i])) for i in rows]
    return out


def copy_reference(root: Path, corpus: Corpus) -> set[str]:
    """Lines a generated poem must not copy: the training split's, and a fine-tune's own set."""
    from training.finetune import FINETUNE_LINES_FILE

    lines = {line for i in corpus.indices("train") for line in corpus.lines[i]}
    if (root / FINETUNE_LINES_FILE).exists():
        lines |= set((root / FINETUNE_LINES_FILE).read_text(encoding="utf-8").split())
    return lines


def constrained_section(model, vocab: Vocab, config, model_dir: Path, corpus: Corpus | None, n: int,
                        seed: int = 0, train_lines: set[str] | None = None,
                        best_of: int | None = None) -> tuple[dict, dict[str, list]]:
    """The constrained decoder's metrics for evaluate(): generator, copy lines and real reference
    (also returned as samples["reference"])."""
    t0 = time.monotonic()
    generator = constrained_generator(model, vocab, config, model_dir, corpus)
    if corpus is not None and train_lines is None:
        train_lines = copy_reference(model_dir, corpus)
    if corpus is None:
        print("[evaluate] no corpus: constrained_line_copy_rate and the real references are None",
              file=sys.stderr)
    reference = reference_poems(corpus, n, seed) if corpus is not None else None
    m, samples = constrained_metrics(generator, n, seed, train_lines, reference, best_of)
    m["constrained_seconds"] = round(time.monotonic() - t0, 1)
    samples["reference"] = reference or []
    return m, samples
