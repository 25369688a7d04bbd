"""Reference prosody figures of real poems: how often the corpus' own 五绝/七绝/五律/七律 rhyme and keep 平仄.

`poembot corpus prosody [--split test] [--raw DIST]`; `poembot corpus stats --json` embeds it.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from verse import prosody
from corpus.raw import iter_raw_poems
from corpus.reader import Corpus
from verse.forms import FORM_NAMES, classify

N_EXAMPLES = 3


def _rate(flags: list[bool]) -> float:
    return sum(flags) / len(flags) if flags else 0.0


def _strain_ping_ends(strains: list[str] | None) -> bool | None:
    """Whether the strains mark every even line's last character 平 (the calibration figure)."""
    if not strains:
        return None
    ends = [s[-1] for s in strains[1::2] if s]
    return bool(ends) and all(e == prosody.PING for e in ends)


def form_stats(corpus: Corpus, rows: list[int], traditional: bool = True,
               examples: int = N_EXAMPLES) -> dict:
    """Prosody rates of the given rows (all of one form)."""
    verdicts, simple_rhyme, modern_rhyme, strain_ends, bad = [], [], [], [], []
    for i in rows:
        lines = corpus.lines_t[i] if traditional else corpus.lines[i]
        v = prosody.check(lines)
        verdicts.append(v)
        other = corpus.lines[i] if traditional else corpus.lines_t[i]
        simple_rhyme.append(prosody.check(other).rhyme_ok)
        modern_rhyme.append(prosody.check(corpus.lines[i], standard=prosody.XINYUN).rhyme_ok)
        ends = _strain_ping_ends(corpus.strains[i])
        if ends is not None:
            strain_ends.append(ends)
        if not v.rhyme_ok and len(bad) < examples:
            bad.append({"id": corpus.id[i], "text": corpus.text(i, traditional=traditional),
                        "notes": [n for n in v.line_notes if "韵" in n]})
    rhyming = [v for v in verdicts if v.rhyme_ok]
    return {
        "n": len(rows),
        "rhyme_rate": _rate([v.rhyme_ok for v in verdicts]),
        "rhyme_loose_rate": _rate([v.rhyme_loose_ok for v in verdicts]),
        "ping_rhyme_rate": _rate([v.ping_rhyme for v in verdicts]),
        "ping_share": _rate([v.ping_rhyme for v in rhyming]),
        "first_line_rhymes": _rate([v.first_line_rhymes for v in rhyming]),
        "tone_rate": sum(v.tone_rate for v in verdicts) / len(verdicts) if verdicts else 0.0,
        "nian_dui_rate": _rate([v.nian_dui_ok for v in verdicts]),
        "jinti_rate": _rate([v.jinti for v in verdicts]),
        "modern_rhyme_rate": _rate(modern_rhyme),
        ("rhyme_rate_simplified" if traditional else "rhyme_rate_traditional"): _rate(simple_rhyme),
        "strains_ping_ends": _rate(strain_ends) if strain_ends else None,
        "not_rhyming_examples": bad,
    }


def prosody_reference(corpus: Corpus, split: str | None = "test", traditional: bool = True,
                      examples: int = N_EXAMPLES) -> dict:
    """Per form rates on the real poems of a split (None: all), for all poems and for Tang alone.

    Judged on the traditional text by default, since the 平水韵 table is traditional.
    """
    by_form: dict[str, list[int]] = {f: [] for f in FORM_NAMES}
    for i in corpus.indices(split):
        by_form[corpus.form[i]].append(i)
    forms = {f: form_stats(corpus, rows, traditional, examples) for f, rows in by_form.items()}
    tang = {f: form_stats(corpus, [i for i in rows if corpus.dynasty[i] == "tang"], traditional, examples)
            for f, rows in by_form.items()}
    out = {"split": split, "traditional": traditional, "standard": prosody.PINGSHUI,
           "forms": forms, "tang": tang}
    for key in ("rhyme_rate", "rhyme_loose_rate", "tone_rate", "ping_rhyme_rate", "nian_dui_rate",
                "jinti_rate", "modern_rhyme_rate"):
        out[f"real_{key}"] = {f: s[key] for f, s in forms.items()}
        out[f"tang_{key}"] = {f: s[key] for f, s in tang.items()}
    return out


def format_reference(ref: dict) -> str:
    cols = [("n", "n", "{:d}"), ("rhyme_rate", "平水韵押韵", "{:.1%}"), ("rhyme_loose_rate", "含通押", "{:.1%}"),
            ("ping_share", "平韵占比", "{:.1%}"),
            ("tone_rate", "二四六合律", "{:.1%}"), ("nian_dui_rate", "粘对", "{:.1%}"),
            ("jinti_rate", "近体", "{:.1%}"), ("modern_rhyme_rate", "新韵押韵", "{:.1%}"),
            ("strains_ping_ends", "strains偶句平", "{:.1%}")]
    alt = "rhyme_rate_simplified" if ref.get("traditional", True) else "rhyme_rate_traditional"
    cols.insert(2, (alt, "简体押韵" if alt.endswith("simplified") else "繁体押韵", "{:.1%}"))
    out = [f"split={ref['split']} text={'traditional' if ref['traditional'] else 'simplified'}"]
    for scope, label in (("forms", "all dynasties"), ("tang", "Tang only")):
        out.append(f"-- {label}")
        out.append("form  " + "  ".join(h for _, h, _ in cols))
        for form, s in ref[scope].items():
            out.append(form + "  " + "  ".join(fmt.format(s[k]) if s.get(k) is not None else "-"
                                                for k, _, fmt in cols))
    out.append("-- not rhyming (Tang examples)")
    for form, s in ref["tang"].items():
        for ex in s["not_rhyming_examples"]:
            out.append(f"{form} {ex['id']}: {ex['text'].replace(chr(10), ' ')}  {'；'.join(ex['notes'])}")
    return "\n".join(out)


def corpus_from_raw(dist: Path, test_share: float = 0.05) -> Corpus:
    """A Corpus of the four forms straight from the raw tarball, for use before `poembot corpus build`.

    The split here is a hash of the id (test_share each for val and test), not necessarily the built one's.
    """
    import opencc

    t2s = opencc.OpenCC("t2s")
    corpus = Corpus()
    for poem in iter_raw_poems(dist):
        form = classify(poem.lines_t)
        if form not in FORM_NAMES:
            continue
        h = int(hashlib.sha1(poem.id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        split = "test" if h < test_share else "val" if h < 2 * test_share else "train"
        simple = t2s.convert("\n".join(poem.lines_t)).split("\n")
        corpus.append(id=poem.id, dynasty=poem.dynasty, author=t2s.convert(poem.author),
                      title=t2s.convert(poem.title), author_t=poem.author, title_t=poem.title, form=form,
                      split=split, lines=simple, lines_t=poem.lines_t, puncts=poem.puncts,
                      strains=poem.strains, rank=0)
    return corpus
