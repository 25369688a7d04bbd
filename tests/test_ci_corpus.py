"""The ci corpus file (corpus/build_ci.py, corpus/ci_reader.py) from a synthetic package: cutting by 句,
tune aliases, duplicates, the split rule, the loader, and `corpus build --if-stale`. The slow test
(POEMBOT_SLOW=1) reads the real built file."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from corpus import ci_reader as ci_corpus
from corpus.ci_reader import CI_FILE, UNTITLED, CiCorpus
from corpus.build_ci import build_ci, cut_ci, resolve_tunes
from corpus.build_corpus import split_of

HUANXISHA = ["一曲新词酒一杯。", "去年天气旧亭台。", "夕阳西下几时回。", "无可奈何花落去，似曾相识燕归来。", "小园香径独徘徊。"]


def test_lines_by_ju_keep_their_marks_and_paragraphs():
    lines, marks, counts = cut_ci(["对菱花、与说相思，看谁瘦损。", "", "孤迥。(一作迴)"])
    assert lines == ["对菱花", "与说相思", "看谁瘦损", "孤迥"]
    assert marks == "、，。。"
    assert counts == [3, 1]


def test_aliases_join_their_tune_unless_their_own_ci_have_another_shape():
    shapes = {
        "念奴娇": [(4, 5, 4)] * 6, "酹江月・念奴娇": [(4, 5, 4)] * 3, "酹江月": [(4, 5, 4)] * 5,
        "渔父・渔歌子": [(7, 7, 3)] * 2, "渔歌子": [(7, 7, 3)] * 6, "渔父": [(7, 7, 7, 7)] * 6,
        "重叠金・菩萨蛮": [(7, 7, 5)],
    }
    tune = resolve_tunes(shapes)
    assert tune["酹江月・念奴娇"] == tune["酹江月"] == "念奴娇"
    assert tune["渔父・渔歌子"] == "渔歌子"
    assert tune["渔父"] == "渔父"                    # its own ci have another shape: a tune of its own
    assert tune["重叠金・菩萨蛮"] == "菩萨蛮"


def write_package(root: Path) -> Path:
    songci = root / "package" / "dist" / "songci"
    songci.mkdir(parents=True)
    ci = [
        {"author": "晏殊", "paragraphs": HUANXISHA, "rhythmic": "浣溪沙", "tags": []},
        {"author": "辛弃疾", "paragraphs": ["郁孤台下清江水。", "中间多少行人泪。"], "rhythmic": "重叠金・菩萨蛮"},
        {"author": "无名氏", "paragraphs": ["□□□□。", "春风吹又生。"], "rhythmic": "失调名"},
        {"author": "李從周", "paragraphs": ["夢魂尋遍。", "忽向尊前見。"], "rhythmic": "清平樂"},
    ]
    (songci / "ci.song.0.json").write_text(json.dumps(ci, ensure_ascii=False), encoding="utf-8")
    (songci / "宋词三百首.json").write_text(json.dumps(
        [{"author": "晏殊", "paragraphs": HUANXISHA, "rhythmic": "浣溪沙", "tags": ["宋词三百首"]}],
        ensure_ascii=False), encoding="utf-8")
    rank = root / "package" / "dist" / "rank" / "ci"        # same name pattern, no poems: not read
    rank.mkdir(parents=True)
    (rank / "ci.song.rank.0.json").write_text(json.dumps([{"author": "晏殊", "rhythmic": "浣溪沙", "baidu": 9}]))
    return root


def test_build_writes_its_own_file_and_the_loader_reads_it(tmp_path):
    out = tmp_path / "corpus"
    assert not ci_corpus.is_current(out)
    summary = build_ci(write_package(tmp_path / "dl"), out)
    assert summary["ci"] == 4 and summary["duplicates_dropped"] == 1 and summary["untitled"] == 1
    assert sorted(p.name for p in out.iterdir()) == [CI_FILE]          # poems.json.gz is not touched
    assert ci_corpus.is_current(out)
    corpus = CiCorpus.load(out)
    first = corpus.tune.index("浣溪沙")
    assert corpus.lines[first] == ["一曲新词酒一杯", "去年天气旧亭台", "夕阳西下几时回", "无可奈何花落去",
                                   "似曾相识燕归来", "小园香径独徘徊"]
    assert corpus.paragraph_ends(first) == [1, 2, 3, 5, 6]
    assert corpus.tagged(first) == ["宋词三百首"]                     # the duplicate's tag is kept
    assert corpus.text(first).splitlines()[3] == "无可奈何花落去，似曾相识燕归来。"
    assert all(corpus.split[i] == split_of(corpus.id[i]) for i in range(len(corpus)))
    assert corpus.tune[corpus.rhythmic.index("重叠金・菩萨蛮")] == "菩萨蛮"
    assert "清平乐" in corpus.tune and "梦魂寻遍" in corpus.lines[corpus.tune.index("清平乐")]   # t2s
    assert all(corpus.tune[i] != UNTITLED for i in corpus.indices())
    assert len(corpus.indices(untitled=True)) == 4
    again = build_ci(tmp_path / "dl", tmp_path / "again")
    assert CiCorpus.load(tmp_path / "again").id == corpus.id            # ids (and so splits) are stable
    assert again["by_split"] == summary["by_split"]


def test_corpus_build_if_stale_builds_the_missing_ci_file_only(tmp_path, monkeypatch):
    from poembot_cli import app
    from corpus import build_ci as build_ci_module, build_corpus

    calls = []
    monkeypatch.setattr(build_corpus, "is_current", lambda directory=None: True)
    monkeypatch.setattr(build_corpus, "build", lambda: calls.append("poems") or {})
    monkeypatch.setattr(build_ci_module, "build_ci", lambda: calls.append("ci") or {"ci": 1})
    current = {"ci": False}
    monkeypatch.setattr(ci_corpus, "is_current", lambda directory=None: current["ci"])
    runner = CliRunner()
    assert runner.invoke(app, ["corpus", "build", "--if-stale"]).exit_code == 0
    assert calls == ["ci"]
    current["ci"] = True
    assert runner.invoke(app, ["corpus", "build", "--if-stale"]).exit_code == 0
    assert calls == ["ci"]
    assert runner.invoke(app, ["corpus", "build"]).exit_code == 0
    assert calls == ["ci", "poems", "ci"]


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("POEMBOT_SLOW"), reason="needs the built corpus (POEMBOT_SLOW=1)")
def test_the_real_ci_file():
    corpus = CiCorpus.load()
    assert 21_000 <= len(corpus) <= 21_333
    tunes = {t: corpus.tune.count(t) for t in ("浣溪沙", "水调歌头", "念奴娇")}
    assert tunes["浣溪沙"] >= 776 and tunes["水调歌头"] >= 743 and tunes["念奴娇"] >= 432 + 103
    assert 150 <= sum(s == "test" for s in corpus.split) <= 260
