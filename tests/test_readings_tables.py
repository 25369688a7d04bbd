"""The reading aid's generated tables: reading.tables rebuilds them from small synthetic inputs, in
the format reading.meter and reading.lexicon read, and the shipped ones hold what the aid needs."""
from __future__ import annotations

import gzip
import json

from reading import lexicon, meter, tables


def write_corpus(path, lines_by_poem: list[tuple[str, list[str]]]) -> None:
    """A poems.json.gz with the columns reading.tables reads."""
    columns = {"form": [f for f, _ in lines_by_poem], "lines": ["/".join(ls) for _, ls in lines_by_poem]}
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        json.dump({"version": 3, "columns": columns}, fh)


def test_the_lexicon_counts_words_inside_word_spans_not_across_a_caesura(tmp_path, monkeypatch):
    monkeypatch.setattr(tables, "MIN_COUNT", 3)
    # 长江 fills the 3rd-4th span of 唯见长江天际流 three times; 见长 only straddles the caesura.
    poem = ["唯见长江天际流"] * 4
    write_corpus(tmp_path / "poems.json.gz", [("七绝", poem), ("other", ["见长见长见长"] * 4)])
    out = tables.build_lexicon(tmp_path / "poems.json.gz", out=tmp_path / "lexicon.tsv")
    words = lexicon.parse(out.read_text(encoding="utf-8"))
    assert {"长江", "唯见", "天际", "际流", "天际流"} <= set(words)
    assert "见长" not in words and words["长江"] == 2            # floor(log2(4))


def test_the_meter_table_keeps_one_tone_characters_and_ping_groups(tmp_path):
    (tmp_path / "vocab.json").write_text(json.dumps({"chars": list("东风月看")}), encoding="utf-8")
    (tmp_path / "tones.tsv").write_text("# c\n东\t平\n风\t平\n月\t仄\n看\t平仄\n", encoding="utf-8")
    (tmp_path / "pingshui.tsv").write_text(
        "#groups\t一東:平\t六月:入\n东\t一東\t平\tP\n风\t一東\t平\tP\n月\t六月\t入\tP\n", encoding="utf-8")
    out = tables.build_meter(tmp_path / "vocab.json", tmp_path / "tones.tsv", tmp_path / "pingshui.tsv",
                             out=tmp_path / "meter.tsv")
    t = meter.parse_tables(out.read_text(encoding="utf-8"))
    assert t.tone == {"东": "平", "风": "平", "月": "仄"}           # 看 has both tones: no vote
    assert t.groups == {"东": frozenset({"一東"}), "风": frozenset({"一東"})}


def test_the_shipped_tables_know_the_common_cases():
    t = meter.tables()
    assert t.tone["舟"] == "平" and "过" not in t.tone and "看" not in t.tone   # 过, 看: both tones
    assert "七陽" in t.groups["乡"] and "八庚" in t.groups["情"]
    words = lexicon.verse_words()
    assert words["长江"] > words.get("见长", 0) and "明月" in words
