"""The learned 词谱: the committed table knows the tunes a 词谱 book gives, the learner finds them in a small
committed sample of real ci (tests/data/ci_sample.json: 12 each, as the data gives them, of 浣溪沙, 菩萨蛮, 如梦令, 鹧鸪天, 西江月),
and the rhyme merge groups what ci rhyme together. No corpus needed, except the slow test (POEMBOT_SLOW=1).

Expected patterns are the standard ones (龙榆生《唐宋词格律》): 浣溪沙 7·7·7 / 7·7·7, 平韵 on lines 1 2 3 5 6;
菩萨蛮 7·7·5·5 / 5·5·5·5, two lines a rhyme, 仄 平 仄 平; 如梦令 6·6·5·6·2·2·6, 仄韵 on all but line 3;
鹧鸪天 7·7·7·7 / 3·3·7·7·7, 平韵 on 1 2 4 6 7 9; 西江月 6·6·7·6 / 6·6·7·6, 平韵 on 2 3 6 7, the same 部 in 仄 on 4 8.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from corpus import learn_tunes
from corpus.build_ci import cut_ci
from corpus.learn_tunes import CiSample, PairCounts, learn, merge_groups, stanza_break
from verse import tunes
from verse.tunes import TUNES_PATH, TunesTable

SAMPLE = Path(__file__).parent / "data" / "ci_sample.json"
KNOWN = {
    # name: (pattern, rhyme lines, their rhyme tones, rhyme sets, kind)
    "浣溪沙": ("7·7·7 / 7·7·7", [1, 2, 3, 5, 6], "平平平平平", [0, 0, 0, 0, 0], "平韵"),
    "菩萨蛮": ("7·7·5·5 / 5·5·5·5", [1, 2, 3, 4, 5, 6, 7, 8], "仄仄平平仄仄平平", [0, 0, 1, 1, 2, 2, 3, 3], "平仄转换"),
    "如梦令": ("6·6·5·6·2·2·6", [1, 2, 4, 5, 6, 7], "仄仄仄仄仄仄", [0] * 6, "仄韵"),
    "鹧鸪天": ("7·7·7·7 / 3·3·7·7·7", [1, 2, 4, 6, 7, 9], "平平平平平平", [0] * 6, "平韵"),
    "西江月": ("6·6·7·6 / 6·6·7·6", [2, 3, 4, 6, 7, 8], "平平仄平平仄", [0] * 6, "平仄通叶"),
}


def check_known(table: TunesTable, name: str) -> None:
    pattern, slots, rhyme_tones, sets, kind = KNOWN[name]
    form = table.get(name).main
    assert form.pattern() == pattern
    assert form.rhyme_slots() == slots
    assert "".join(form.lines[k - 1].rhyme_tone for k in slots) == rhyme_tones
    assert [form.lines[k - 1].rhyme_set for k in slots] == sets
    assert form.rhyme_kind == kind


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_the_committed_table_knows_the_standard_patterns(name):
    check_known(tunes.load(), name)


def test_firm_tones_of_the_committed_patterns():
    """Positions every 词谱 fixes: 浣溪沙's lines are 律句 (2nd 4th 6th alternate); the 2-character lines of
    如梦令 are 平仄; 鹧鸪天's 换头 is 平仄仄，仄平平 — learned, not written in."""
    table = tunes.load()
    for line in table.get("浣溪沙").main.lines:
        assert line.tones[1] + line.tones[3] + line.tones[5] in ("平仄平", "仄平仄")
    assert [ln.tones for ln in table.get("如梦令").main.lines[4:6]] == ["平仄", "平仄"]
    assert [ln.tones for ln in table.get("鹧鸪天").main.lines[4:6]] == ["平仄仄", "仄平平"]
    assert table.get("菩萨蛮").main.lines[2].tones[-3:] == "仄平平"


def test_the_50_most_common_tunes_have_a_main_form_shown_by_the_cli():
    table = tunes.load()
    assert len(table) >= 50
    assert [t.poems for t in table.tunes] == sorted((t.poems for t in table.tunes), reverse=True)
    runner = CliRunner()
    from poembot_cli import app

    for tune in table.tunes[:50]:
        assert tune.poems >= 40 and tune.main.share >= max(f.share for f in tune.forms)
        assert all(f.share >= learn_tunes.FORM_MIN_SHARE for f in tune.forms[1:])
        result = runner.invoke(app, ["tunes", "show", tune.name, "--json"])
        assert result.exit_code == 0, result.output
        shown = json.loads(result.output)
        assert shown["name"] == tune.name
        assert [ln["length"] for ln in shown["lines"]] == list(tune.main.lengths)
        assert all(len(ln["tones"]) == ln["length"] and set(ln["tones"]) <= set("平仄中") for ln in shown["lines"])
        assert shown["lines"][-1]["rhyme"] is True          # a ci ends on a rhyme
        assert sum(ln["rhyme"] for ln in shown["lines"]) >= 2


def test_names_aliases_and_traditional_spellings_find_a_tune():
    table = tunes.load()
    assert table.get("酹江月").name == "念奴娇"
    assert table.get("凤栖梧").name == "蝶恋花"
    assert table.get("望江南").name == "忆江南"
    assert table.get("鷓鴣天").name == "鹧鸪天"
    assert table.get("《如夢令》").name == "如梦令"
    assert table.get("木兰花").name == "玉楼春"          # the data's 木兰花・玉楼春
    assert table.get("减字木兰花").name == "减字木兰花"    # an alias never hides a tune's own name
    assert table.get("没有这个词牌") is None
    assert tunes.get("菩萨蛮").name == "菩萨蛮"


def test_cli_list_and_show_in_text():
    from poembot_cli import app

    runner = CliRunner()
    listed = runner.invoke(app, ["tunes", "list"])
    assert listed.exit_code == 0 and listed.output.splitlines()[0].startswith("浣溪沙\t")
    shown = runner.invoke(app, ["tunes", "show", "西江月"])
    assert shown.exit_code == 0 and "平仄通叶" in shown.output and "下片" in shown.output
    missing = runner.invoke(app, ["tunes", "show", "无此调"])
    assert missing.exit_code == 1


def sample() -> list[CiSample]:
    out = []
    for item in json.loads(SAMPLE.read_text(encoding="utf-8")):
        lines, marks, counts = cut_ci(item["paragraphs"])
        ends = [sum(counts[:k + 1]) for k in range(len(counts))]
        out.append(CiSample(item["tune"], lines, ends, marks, item["tune"]))
    return out


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_the_learner_finds_the_patterns_in_a_dozen_real_ci(name):
    """Forms, stanza breaks, rhyme slots and tones learned from the sample, with the committed rhyme parts."""
    table = learn(sample(), min_poems=10, rhyme_table=tunes.load().rhymes)
    check_known(table, name)


def test_the_rhyme_merge_joins_groups_ci_rhyme_freely_and_keeps_others_apart():
    """東 and 冬 characters rhyme in one ci as if one group; 麻 never with them: two parts, not one or three."""
    east, winter, hemp = "东风中红空", "冬农松钟容", "花家沙霞斜"
    counts = PairCounts()
    for k in range(40):
        counts.add([east[k % 5], winter[(k + 1) % 5], east[(k + 2) % 5], winter[(k + 3) % 5]])
        counts.add([hemp[k % 5], hemp[(k + 1) % 5], hemp[(k + 2) % 5]])
    parts = [p for p in merge_groups(counts) if set(p) & {"一東", "二冬", "六麻"}]
    assert parts == [["一東", "二冬"], ["六麻"]]


def test_a_rhyme_set_spans_tones_only_within_one_bu():
    """西江月's 仄 叶 at each stanza's end is the 平 rhyme's 部; 菩萨蛮's 仄 and 平 couplets are other rhymes."""
    table = learn(sample(), min_poems=10, rhyme_table=tunes.load().rhymes)
    xijiang = table.get("西江月").main
    assert {ln.rhyme_set for ln in xijiang.lines if ln.rhyme} == {0}
    assert {ln.rhyme_tone for ln in xijiang.lines if ln.rhyme} == {"平", "仄"}
    rhymes = tunes.load().rhymes
    assert rhymes.rhymes("东", "冬") and not rhymes.rhymes("东", "花")
    assert rhymes.rhymes("东", "动", across_tones=True) and not rhymes.rhymes("东", "动")


@pytest.mark.parametrize("lengths, expected", [
    ((7, 7, 5, 5, 5, 5, 5, 5), 4),          # 菩萨蛮
    ((7, 7, 7, 7, 3, 3, 7, 7, 7), 4),       # 鹧鸪天
    ((6, 6, 5, 6, 2, 2, 6), None),          # 如梦令, 单调
    ((7, 7, 7, 3, 7), None),                # 忆王孙, 单调
    ((4, 5, 7, 6, 6, 6, 6, 6), 4),          # 清平乐: the halves end alike in one line only
    ((7, 5, 6, 5, 3, 3, 3, 4, 4, 4), 4),    # 诉衷情: not at all
])
def test_stanza_break(lengths, expected):
    assert stanza_break(lengths) == expected


def test_the_committed_merge_is_checked_against_cilin():
    """The learned parts agree with 词林正韵 on most pairs of groups; the file says how well."""
    payload = json.loads(TUNES_PATH.read_text(encoding="utf-8"))
    check = learn_tunes.compare_with_cilin(tunes.load().rhymes)
    assert payload["cilin_check"]["precision"] == check["precision"] >= 0.8
    assert check["recall"] >= 0.7
    assert "poems" not in json.dumps(payload["tunes"][0]["forms"][0]["lengths"])    # patterns, never text
    assert TUNES_PATH.stat().st_size < 200_000


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("POEMBOT_SLOW"), reason="needs the built corpus (POEMBOT_SLOW=1)")
def test_learning_the_real_corpus_gives_the_committed_table():
    samples = learn_tunes.samples_from_corpus()
    table = learn(samples)
    committed = tunes.load()
    assert [t.name for t in table.tunes] == [t.name for t in committed.tunes]
    for mine, theirs in zip(table.tunes, committed.tunes):
        assert mine.main == theirs.main


FAMOUS = {
    # 晏殊: 平韵 on lines 1, 2, 3, 5, 6.
    "浣溪沙": ["一曲新词酒一杯", "去年天气旧亭台", "夕阳西下几时回", "无可奈何花落去", "似曾相识燕归来", "小园香径独徘徊"],
    # 李白 (attr.): 仄 (入声 织碧), 平 (楼愁), 仄 (入声 立急), 平 (程亭) — four changes of rhyme.
    "菩萨蛮": ["平林漠漠烟如织", "寒山一带伤心碧", "暝色入高楼", "有人楼上愁", "玉阶空伫立", "宿鸟归飞急", "何处是归程", "长亭更短亭"],
    # 辛弃疾: 平 and 仄 of one 部 (蝉年 / 片; 前边 / 见).
    "西江月": ["明月别枝惊鹊", "清风半夜鸣蝉", "稻花香里说丰年", "听取蛙声一片", "七八个星天外", "两三点雨山前",
              "旧时茅店社林边", "路转溪桥忽见"],
}


@pytest.mark.parametrize("name", sorted(FAMOUS))
def test_famous_ci_keep_their_tunes_form_and_rhyme(name):
    verdict = tunes.check(FAMOUS[name], tunes.get(name).main)
    assert verdict.form_ok and verdict.rhyme_ok, verdict
    assert verdict.tone_rate >= 0.9, verdict


def test_a_rhyme_slot_out_of_its_set_or_tone_breaks_the_verdict():
    lines = list(FAMOUS["菩萨蛮"])
    lines[3] = "有人楼上去"          # 去 is 仄: the 平 set (楼 / 愁) no longer rhymes
    verdict = tunes.check(lines, tunes.get("菩萨蛮").main)
    assert not verdict.rhyme_ok and verdict.rhymed_slots == verdict.rhyme_slots - 2
    assert not tunes.check(FAMOUS["浣溪沙"][:5], tunes.get("浣溪沙").main).form_ok
