"""Build the training corpus from the raw chinese-poetry files: clean, classify, split, vocabulary.

`poembot corpus build` writes $POEMBOT_DATA_DIR/corpus/{poems.json.gz, vocab.json, tones.tsv, build.json}.
"""
from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from corpus.raw import read_raw
from corpus.reader import FORMAT_VERSION, POEMS_FILE, TONES_FILE, VOCAB_FILE, Corpus
from verse.forms import FORMS, SEPARATORS, classify, cut_lines, normalise
from protocol.paths import corpus_dir, corpus_root
from verse.vocab import Vocab, readable_form

VOCAB_SIZE = 6000
VOCAB_MIN_COUNT = 2


def split_of(poem_id: str) -> str:
    """Deterministic 98/1/1 split from a hash of the id (stable across machines and runs)."""
    bucket = int(hashlib.sha1(poem_id.encode("utf-8")).hexdigest(), 16) % 100
    return "test" if bucket == 0 else "val" if bucket == 1 else "train"


def _align_strains(lines_t: list[str], raw: list[str] | None) -> list[str] | None:
    if not raw:
        return None
    marks, _ = cut_lines(normalise("".join(raw)), SEPARATORS)
    if len(marks) != len(lines_t) or any(len(a) != len(b) for a, b in zip(marks, lines_t)):
        return None
    return marks


def _t2s_many(texts: list[str], converter) -> list[str]:
    """Convert many short strings with one OpenCC call per chunk (per-call overhead dominates)."""
    out: list[str] = []
    chunk = 20000
    for start in tqdm(range(0, len(texts), chunk), desc="simplifying", unit="chunk"):
        block = texts[start:start + chunk]
        converted = converter.convert("\n".join(block)).split("\n")
        if len(converted) != len(block):   # a line break slipped into the data: go one by one
            converted = [converter.convert(t) for t in block]
        out.extend(converted)
    return out


def build(root: Path | None = None, out: Path | None = None) -> dict:
    """Run the whole build; returns the summary written to build.json."""
    import opencc

    started = time.time()
    root = root or corpus_root()
    out = out or corpus_dir()
    raw, strains, rank = read_raw(root)

    cleaned = []
    for poem in tqdm(raw, desc="cleaning", unit="poem"):
        lines, marks = cut_lines(normalise("".join(poem.paragraphs)), SEPARATORS)
        if lines and poem.id:
            cleaned.append((poem, lines, marks))

    converter = opencc.OpenCC("t2s")
    flat = [line for _, lines, _ in cleaned for line in lines]
    flat += [p.author for p, _, _ in cleaned] + [p.title for p, _, _ in cleaned]
    simple = iter(_t2s_many(flat, converter))
    # A rare character that t2s turns into a form outside GBK keeps its traditional spelling.
    simplified_lines = [[readable_form(next(simple), line) for line in lines]
                        for _, lines, _ in cleaned]
    authors = [next(simple) for _ in cleaned]
    titles = [next(simple) for _ in cleaned]

    corpus = Corpus()
    seen: set[str] = set()
    duplicates = 0
    for k, (poem, lines_t, marks) in enumerate(tqdm(cleaned, desc="assembling", unit="poem")):
        lines = simplified_lines[k]
        key = "|".join(lines)
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        corpus.append(id=poem.id, dynasty=poem.dynasty, author=authors[k], title=titles[k],
                      author_t=poem.author, title_t=poem.title, form=classify(lines),
                      split=split_of(poem.id), lines=lines, lines_t=lines_t, puncts=marks,
                      strains=_align_strains(lines_t, strains.get(poem.id)),
                      rank=rank.get((poem.author, poem.title), 0))

    regular = corpus.indices()
    train_text = ("".join(corpus.lines[i]) for i in regular if corpus.split[i] == "train")
    vocab = Vocab.build(train_text, max_size=VOCAB_SIZE, min_count=VOCAB_MIN_COUNT)

    out.mkdir(parents=True, exist_ok=True)
    corpus.save(out)
    vocab.save(out / VOCAB_FILE)
    tones_written = _write_tones(corpus, out / TONES_FILE)

    summary = {
        "raw_poems": len(raw), "poems": len(corpus), "duplicates_dropped": duplicates,
        "by_form": dict(Counter(corpus.form)), "vocab_size": len(vocab),
        "strains_aligned": sum(s is not None for s in corpus.strains),
        "tone_table_chars": tones_written, "seconds": round(time.time() - started, 1),
        "format": FORMAT_VERSION, "source": str(root),
    }
    (out / "build.json").write_text(json.dumps(summary, ensure_ascii=False, indent=1))
    return summary


def is_current(directory: Path | None = None) -> bool:
    """True when a finished build of this format is there (build.json is written last)."""
    directory = directory or corpus_dir()
    try:
        summary = json.loads((directory / "build.json").read_text())
    except (OSError, ValueError):
        return False
    return summary.get("format") == FORMAT_VERSION and (directory / POEMS_FILE).exists()


def _write_tones(corpus: Corpus, path: Path) -> int:
    """Per-character 平仄 votes from the corpus strains (the rule lives in verse.prosody)."""
    from verse import prosody

    pairs = ((line, mark) for lines, marks in zip(corpus.lines_t, corpus.strains)
             if marks is not None for line, mark in zip(lines, marks))
    table = prosody.derive_tones(pairs, poems=corpus.lines_t)
    prosody.write_tone_table(table, path)
    return len(table)


def stats(directory: Path | None = None, with_prosody: bool = True) -> dict:
    """The numbers `poembot corpus stats --json` prints."""
    directory = directory or corpus_dir()
    corpus = Corpus.load(directory)
    vocab = Vocab.load(directory / VOCAB_FILE)
    by_form = Counter(corpus.form)
    regular = corpus.indices()
    total = covered = 0
    for i in regular:
        for line in corpus.lines[i]:
            total += len(line)
            covered += sum(c in vocab for c in line)
    result: dict = {
        "poems": len(corpus),
        "regular_poems": len(regular),
        "by_form": {name: by_form.get(name, 0) for name in (*FORMS, "other")},
        "by_split": dict(Counter(corpus.split)),
        "by_split_regular": dict(Counter(corpus.split[i] for i in regular)),
        "by_dynasty": dict(Counter(corpus.dynasty)),
        "vocab_size": len(vocab),
        "vocab_coverage": round(covered / max(total, 1), 5),
        "strains_aligned": sum(s is not None for s in corpus.strains),
    }
    if with_prosody:
        from corpus.prosody_report import prosody_reference

        result.update(prosody_reference(corpus, split="test"))
    return result
