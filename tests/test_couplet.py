"""Couplets (issue 25): the rules and their check, the job, /couplet parsing, the model's answers
on a tiny random couplet model, training on synthetic pairs, the daily 春联 on a fixed clock, and
the 春联 card. No downloaded corpus, never the shipped model.
"""
from __future__ import annotations

import io
import json
from datetime import date, timedelta

import numpy as np
import pytest
from PIL import Image

from bot.couplet import (COMMAND_RE, COUPLET_FORM, couplet_job, couplet_record, format_couplet,
                         parse_couplet_args, request_of_record)
from bot.daily import before_spring_festival, daily_job, spring_festival
from bot.parsing import ParseError
from model.banners import BANNERS, choose_banner
from model.couplet_rules import definite_tone, plan_couplet, rhythm_positions, violations
from model.word_classes import class_agreement
from model.requests import CoupletRequest
from protocol.jobs import (E_COUPLET_LENGTH, E_INVALID, CoupletJob, GenerateJob, ValidationError,
                           job_from_json, job_to_json, validate_couplet)
from verse import prosody
from botkit import card_fonts  # noqa: F401


def tiny_couplet_dir(tmp_path_factory, tiny_vocab):
    """A random couplet model over conftest's tiny vocabulary, saved as a model folder."""
    import keras
    from model.couplet import CoupletConfig, build_couplet_model, save_couplet_model

    keras.utils.set_random_seed(25)
    model = build_couplet_model(CoupletConfig(vocab_size=len(tiny_vocab), emb_dim=16, enc_units=16,
                                              dec_units=32))
    return save_couplet_model(model, tiny_vocab, tmp_path_factory.mktemp("tiny_couplet"))


@pytest.fixture(scope="session")
def couplet_dir(tmp_path_factory, tiny_vocab):
    return tiny_couplet_dir(tmp_path_factory, tiny_vocab)


@pytest.fixture(scope="session")
def writer(couplet_dir, tiny_generator):
    from model.couplet import CoupletWriter
    return CoupletWriter.load(couplet_dir, novelty=False, poems=tiny_generator)


def tiny_line(rng: np.random.Generator, chars: list[str], length: int, doubled: bool = False) -> str:
    """A 上联 of distinct tiny-vocabulary characters; doubled puts 叠字 at positions 2-3."""
    picked = list(rng.choice(chars, size=length, replace=False))
    if doubled and length >= 4:
        picked[2] = picked[1]
    return "".join(picked)


# --- the rules -------------------------------------------------------------------------------------

def test_rhythm_positions_are_every_second_character_and_the_last():
    assert rhythm_positions(5) == [1, 3, 4]
    assert rhythm_positions(7) == [1, 3, 5, 6]
    assert rhythm_positions(4) == [1, 3]
    assert rhythm_positions(11) == [1, 3, 5, 7, 9, 10]


def test_the_check_catches_each_broken_rule():
    # 海阔凭鱼跃 / 天高任鸟飞 keeps them all (阔 仄 / 高 平, 鱼 平 / 鸟 仄, 跃 仄 / 飞 平).
    assert violations("海阔凭鱼跃", "天高任鸟飞") == []
    assert violations("海阔凭鱼跃", "天高任鸟") == ["length"]
    assert "tone@5" in violations("海阔凭鱼跃", "天高任鸟落")          # ends 仄 after a 仄 ending
    assert "tone@2" in violations("海阔凭鱼跃", "天远任鸟飞")          # 阔 仄 against 远 仄
    assert "reuse" in violations("海阔凭鱼跃", "天阔任鸟飞")
    # 叠字 must be mirrored, and a repeat the 上联 does not have is refused.
    assert violations("无边落木萧萧下", "不尽长江滚滚来") == ["tone@2"]   # 尽 is read both ways
    assert any(v.startswith("repeat") for v in violations("无边落木萧萧下", "千秋长江滚流来"))
    assert any(v.startswith("repeat") for v in violations("海阔凭鱼跃", "天天任鸟飞"))


def test_a_first_line_ending_ping_gets_a_note_and_an_answer_ending_ze():
    plan = plan_couplet("白日依山尽黄河")          # 河 平
    assert definite_tone("河") == "平"
    assert plan.notes == ["first_ends_ping"] and plan.want[-1] == "仄"
    assert plan_couplet("海阔凭鱼跃").notes == [] and plan_couplet("海阔凭鱼跃").want[-1] == "平"


def test_word_classes_count_positions_of_one_class():
    assert class_agreement("三山", "万水") == (2, 2)          # 数 and 地理 on both sides
    assert class_agreement("红花", "绿叶") == (2, 2)
    assert class_agreement("红花", "去了") == (2, 0)


def test_banners_are_four_characters_and_follow_the_couplet():
    assert all(len(b) == 4 for b in BANNERS) and len(set(BANNERS)) == len(BANNERS)
    assert choose_banner(["竹影摇窗户", "梅香入酒杯"], seed=1) in BANNERS
    # Sharing characters wins: 春 and 风 are in 春风得意.
    assert choose_banner(["春风吹大地", "喜气满门庭"], seed=3) in {"春回大地", "喜气盈门", "春风得意", "大地回春"}


# --- the job --------------------------------------------------------------------------------------

def test_couplet_jobs_travel_and_refuse_what_cannot_be_answered():
    job = job_from_json(job_to_json(CoupletJob(first="海阔凭鱼跃，", seed=3)))
    assert isinstance(job, CoupletJob) and validate_couplet(job).first == "海阔凭鱼跃"
    for first, code in (("海阔", E_COUPLET_LENGTH), ("一二三四五六七八九十百千", E_COUPLET_LENGTH),
                        ("hello world", E_INVALID), ("", E_INVALID)):
        with pytest.raises(ValidationError) as caught:
            validate_couplet(CoupletJob(first=first))
        assert caught.value.code == code
    assert validate_couplet(CoupletJob(spring=True, theme=["梅花", " "])).theme == ["梅花"]
    with pytest.raises(ValidationError):
        validate_couplet(CoupletJob(first="海阔凭鱼跃", n=9))
    # Traditional input is read in the model's script.
    from verse.script import to_simplified
    assert validate_couplet(CoupletJob(first="風急天高猿嘯哀"), to_simplified).first == "风急天高猿啸哀"


@pytest.mark.parametrize("length", range(1, 14))
def test_lengths_4_to_11_are_asked_and_others_refused_with_the_length_named(length):
    first = "天地人山水风云雨雪花月春秋"[:length]
    if 4 <= length <= 11:
        assert parse_couplet_args(first).first == first
    else:
        with pytest.raises(ParseError) as caught:
            parse_couplet_args(first)
        assert caught.value.key == "couplet_length" and caught.value.values["n"] == length


def test_parsing_the_command():
    assert parse_couplet_args("海阔凭鱼跃").first == "海阔凭鱼跃"
    assert parse_couplet_args("", replied="欲穷千里目。").first == "欲穷千里目"
    with pytest.raises(ParseError) as caught:
        parse_couplet_args("", replied="白日依山尽，黄河入海流。")
    assert caught.value.key == "couplet_one_line" and caught.value.values["n"] == 2
    with pytest.raises(ParseError) as caught:
        parse_couplet_args("")
    assert caught.value.key == "couplet_usage"
    with pytest.raises(ParseError) as caught:
        parse_couplet_args("海阔凭鱼跃abc")
    assert caught.value.key == "couplet_not_han"
    spring = parse_couplet_args("春 梅花 瑞雪")
    assert spring.spring and spring.theme == ["梅花", "瑞雪"] and spring.first == ""
    assert parse_couplet_args("春").spring and parse_couplet_args("春联").theme == []
    assert parse_couplet_args("春风得意马蹄疾").first == "春风得意马蹄疾"      # a line, not the theme mode
    for text in ("/couplet 海", "/对联 海阔凭鱼跃", "/對聯", "/couplet@poem_bot 海"):
        assert COMMAND_RE.match(text)
    assert not COMMAND_RE.match("/coupletx") and not COMMAND_RE.match("对联")


def test_the_message_escapes_and_keeps_the_worker_note():
    poems = [{"first": "海阔凭鱼<b>", "second": "天高任鸟&", "banner": "海阔天空", "notes": ["first_ends_ping"],
              "written_first": False, "seed": 1},
             {"first": "海阔凭鱼<b>", "second": "山长任水飞", "banner": "海阔天空", "notes": []}]
    record = couplet_record(poems, {"kind": "couplet", "first": "海阔凭鱼<b>", "theme": [], "spring": False},
                            7, 7)
    assert record.form == COUPLET_FORM and record.lines == ["海阔凭鱼<b>", "天高任鸟&"]
    text = format_couplet(record, "zh")
    assert "&lt;b&gt;" in text and "天高任鸟&amp;" in text and "山长任水飞" in text and "横批" in text
    assert "平声" in text
    assert "仄" in format_couplet(record, "en") and "level" in format_couplet(record, "en")
    assert request_of_record(record).first == "海阔凭鱼<b>"
    # 🔄 asks again with the record's request: the same 上联, or for a 春联 the same theme.
    job = couplet_job(parse_couplet_args("春 梅花"), chat_id=1, user_id=2, lang="en", traditional=True,
                      reply_to=5)
    assert job.spring and job.theme == ["梅花"] and job.reply["purpose"] == "couplet"
    assert job.reply["request"] == {"kind": "couplet", "first": "", "theme": ["梅花"], "spring": True}


# --- the model --------------------------------------------------------------------------------------

@pytest.mark.parametrize("length", [5, 7])
def test_every_answer_to_five_and_seven_character_lines_keeps_the_rules(writer, tiny_vocab, length):
    chars = [c for c in tiny_vocab.chars[6:] if len(c) == 1]
    rng = np.random.default_rng(length)
    answered = 0
    for k in range(12):
        first = tiny_line(rng, chars, length, doubled=k % 3 == 0)
        result = writer.run_one(CoupletRequest(first=first, n=3, best_of=8, seed=k))
        assert result.ok, result.error_message
        assert 1 <= len(result.poems) <= 3
        seconds = [p["second"] for p in result.poems]
        assert len(set(seconds)) == len(seconds)
        for p in result.poems:
            assert violations(first, p["second"]) == [], (first, p["second"])
            assert p["banner"] in BANNERS
            answered += 1
        scores = [p["score"] for p in result.poems]
        assert scores == sorted(scores, reverse=True)          # the best-scored first
    assert answered >= 12


def test_lengths_4_to_11_are_answered_within_the_rules(writer, tiny_vocab):
    chars = [c for c in tiny_vocab.chars[6:] if len(c) == 1]
    rng = np.random.default_rng(0)
    firsts = [tiny_line(rng, chars, n, doubled=True) for n in range(4, 12)]
    drawn = writer.draw_many(firsts, 6, 0.8, np.random.default_rng(1))
    for first, d in zip(firsts, drawn):
        assert len(d.seconds) == 6
        assert all(violations(first, s) == [] for s in d.seconds), first
        assert all(s[1] == s[2] for s in d.seconds)                       # 叠字 mirrored


def test_the_same_seed_gives_the_same_answer_and_corpus_lines_are_never_returned(writer, tiny_vocab):
    from model.constraints import NoveltyTable

    first = "".join(tiny_vocab.chars[6:13])
    a = writer.run_one(CoupletRequest(first=first, seed=5, best_of=8))
    b = writer.run_one(CoupletRequest(first=first, seed=5, best_of=8))
    assert [p["second"] for p in a.poems] == [p["second"] for p in b.poems]
    # Every answer it just gave is now a "corpus line": none of them may come back.
    saved = writer.novelty
    writer.novelty = NoveltyTable.from_lines(p["second"] for p in a.poems)
    try:
        c = writer.run_one(CoupletRequest(first=first, seed=5, best_of=8))
        assert not {p["second"] for p in c.poems} & {p["second"] for p in a.poems}
    finally:
        writer.novelty = saved


def test_the_poem_model_reads_the_second_line_after_the_first(tiny_generator, tiny_vocab):
    """pair_logp is the poem model's own teacher-forced log-probability of the 下联's characters
    after the 上联 (untitled, at the prior's centre), so it changes with the 上联."""
    import tensorflow as tf
    from verse.forms import FORM_INDEX

    g = tiny_generator
    chars = tiny_vocab.chars
    first, other, second = "".join(chars[6:11]), "".join(chars[20:25]), "".join(chars[11:16])
    got = g.pair_logp([first, other], [second, second])
    tokens = np.array([tiny_vocab.encode_lines([first, second])], np.int32)
    lp = g._alone_fn(tf.constant(tokens), tf.zeros((1, g.latent_dim)), tf.constant([FORM_INDEX["五律"]]),
                     tf.zeros((1, g.title_len), tf.int32)).numpy()[0]
    assert got[0] == pytest.approx(lp[6:11].mean(), abs=1e-5)
    assert got[0] != pytest.approx(got[1], abs=1e-6)


def test_a_fused_draw_carries_the_poem_models_own_likelihood_of_each_candidate(writer, tiny_vocab):
    """The steps that fuse the poem model in already give its log-probability of every 下联: the
    same figure pair_logp gets from a teacher-forced pass, so the ranking need not run that pass."""
    first = "".join(tiny_vocab.chars[6:13])
    drawn = writer.draw(first, 6, 0.8, np.random.default_rng(3))
    assert drawn.poem_logp is not None
    assert drawn.poem_logp == pytest.approx(writer.poems.pair_logp([first] * 6, drawn.seconds), abs=1e-4)


def test_the_rescoring_adds_the_poem_model_and_costs_unattested_pairs(writer, tiny_vocab):
    from model.couplet import POEM_WEIGHT, UNATTESTED_WEIGHT, Drawn
    from model.rescore import PairTable

    first = "".join(tiny_vocab.chars[6:11])
    attested, unattested = "".join(tiny_vocab.chars[11:16]), "".join(tiny_vocab.chars[16:21])
    drawn = Drawn([unattested, attested], np.array([-1.0, -1.0]))
    poem = writer.poems.pair_logp([first] * 2, drawn.seconds)
    saved = writer.poems.pairs
    writer.poems.pairs = PairTable.from_lines([[tiny_vocab.id(c) for c in attested]], len(tiny_vocab), min_count=1)
    try:
        scores = writer.score(first, drawn)
    finally:
        writer.poems.pairs = saved
    assert scores == pytest.approx(-1.0 + POEM_WEIGHT * poem - UNATTESTED_WEIGHT * np.array([1.0, 0.0]))
    # Equal here and in the poem model, the candidate no poet could have written loses.
    drawn_equal = Drawn([unattested, attested], np.array([-1.0, -1.0]) - POEM_WEIGHT * poem)
    writer.poems.pairs = PairTable.from_lines([[tiny_vocab.id(c) for c in attested]], len(tiny_vocab), min_count=1)
    try:
        unattested_score, attested_score = writer.score(first, drawn_equal)
        assert attested_score - unattested_score == pytest.approx(UNATTESTED_WEIGHT)
    finally:
        writer.poems.pairs = saved


def test_a_spring_couplet_is_written_whole_from_theme_words(writer):
    result = writer.run_one(CoupletRequest(theme=["春风"], seed=4, n=2, best_of=8))
    assert result.ok, result.error_message
    poem = result.poems[0]
    assert len(poem["first"]) == 7 and poem["written_first"] and poem["banner"] in BANNERS
    assert violations(poem["first"], poem["second"]) == []


def test_pick_first_prefers_a_line_with_the_theme_ending_ze():
    from model.couplet import pick_first

    poems = [["春风又绿江南岸", "明月何时照我还", "京口瓜洲一水间", "钟山只隔数重山"]]
    assert prosody.tones("岸") == frozenset({"仄"})
    assert pick_first(poems, ["春风"]) == "春风又绿江南岸"
    assert pick_first(poems, ["明月"]) in ("春风又绿江南岸", "明月何时照我还")


def test_save_and_load_give_the_same_likelihoods(couplet_dir, writer):
    from model.couplet import CoupletWriter

    again = CoupletWriter.load(couplet_dir, novelty=False)
    firsts, seconds = ["山水花月明", "云雨风"], ["春秋人日来", "江天雪"]
    assert np.allclose(writer.likelihood(firsts, seconds), again.likelihood(firsts, seconds), atol=1e-4)
    config = json.loads((couplet_dir / "config.json").read_text())
    assert config["emb_dim"] == 16
    with np.load(couplet_dir / "weights.npz") as data:
        assert data["w000"].dtype == np.float16


def test_training_learns_a_mirror_language(tmp_path):
    """Each 上联 character has one fixed mate (春→甲 …): a working pipeline learns it in a few hundred
    steps, from a loss of ln 30 (any of the 30 mates) to almost nothing; a broken one cannot."""
    from model.couplet import CoupletWriter
    from verse.vocab import SPECIALS, Vocab
    from training.couplet import CoupletTrainConfig, Pair, train

    chars = list("春夏秋冬风花雪月山水江天云雨人归来去明日一二三四五六七八九十"
                 "甲乙丙丁戊己庚辛壬癸子丑寅卯辰巳午未申酉戌亥东南西北中上下左右前")
    vocab = Vocab(list(SPECIALS) + chars)
    mate = dict(zip(chars[:30], chars[30:60]))
    rng = np.random.default_rng(0)
    pairs = []
    for i in range(1200):
        first = "".join(rng.choice(chars[:30], size=5, replace=False))
        pairs.append(Pair(first, "".join(mate[c] for c in first), "val" if i < 100 else "train", "corpus"))
    out = train(CoupletTrainConfig(max_steps=240, eval_every=40, batch_size=64, learning_rate=1e-2, init=None,
                                   model={"emb_dim": 16, "enc_units": 16, "dec_units": 32}),
                tmp_path / "run", pairs=pairs, vocab=vocab)
    history = json.loads((out / "train_state.json").read_text())["history"]
    assert history[0]["val_nll"] > 2.0 and history[-1]["val_nll"] < 0.3
    writer = CoupletWriter.load(out, novelty=False)
    first = "春风山水云"
    assert writer.likelihood([first], ["".join(mate[c] for c in first)])[0] > -0.5


def test_pairs_come_from_the_parallel_couplets_and_mengxue_clauses():
    from corpus.reader import Corpus
    from training.couplet import _paragraph_pairs, corpus_pairs, prefix_pairs

    corpus = Corpus()
    lines = ["国破山河在", "城春草木深", "感时花溅泪", "恨别鸟惊心", "烽火连三月", "家书抵万金", "白头搔更短", "浑欲不胜簪"]
    for i, form in enumerate(("五律", "七绝")):
        corpus.append(id=str(i), dynasty="tang", author="杜甫", title="春望", author_t="", title_t="", form=form,
                      split="test", lines=lines if form == "五律" else lines[:4], lines_t=None, puncts="",
                      strains=None, rank=0)
    pairs = corpus_pairs(corpus)
    assert [(p.first, p.second) for p in pairs] == [("感时花溅泪", "恨别鸟惊心"), ("烽火连三月", "家书抵万金")]
    assert all(p.split == "test" for p in pairs)
    found = [(p.first, p.second) for p in _paragraph_pairs(
        "云对雨，雪对风，晚照对晴空。三尺剑，六钧弓，岭北对江东。人间清暑殿，天上广寒宫。"
        "两鬓风霜，途次早行之客；一蓑烟雨，溪边晚钓之翁。")]
    assert ("云", "雨") in found and ("晚照", "晴空") in found and ("三尺剑", "六钧弓") in found
    assert ("人间清暑殿", "天上广寒宫") in found and ("两鬓风霜途次早行之客", "一蓑烟雨溪边晚钓之翁") in found
    sevens = [p for p in pairs] + [type(pairs[0])("两个黄鹂鸣翠柳", "一行白鹭上青天", "train", "corpus")]
    assert [(p.first, p.second) for p in prefix_pairs(sevens, every=1)] == [("两个黄鹂", "一行白鹭")]


# --- the daily 春联 and its card ------------------------------------------------------------------

def test_the_daily_post_is_a_spring_couplet_in_the_seven_days_before_the_spring_festival():
    assert spring_festival(2027) == date(2027, 2, 6)
    for k in range(7):
        day = date(2027, 1, 30) + timedelta(days=k)            # 2027-01-30 … 2027-02-05
        job = daily_job(day)
        assert isinstance(job, CoupletJob) and job.spring and before_spring_festival(day), day
        assert job.reply["purpose"] == "daily" and job.reply["date"] == day.isoformat()
    for day in (date(2027, 1, 29), date(2027, 2, 6), date(2027, 2, 7), date(2026, 12, 6)):
        assert isinstance(daily_job(day), GenerateJob), day
    # Another year, another date: 2026's Spring Festival fell on 17 February.
    assert isinstance(daily_job(date(2026, 2, 16)), CoupletJob)
    assert isinstance(daily_job(date(2026, 2, 9)), GenerateJob)


def test_the_spring_card_is_red_scrolls_under_a_banner(card_fonts):
    from bot.couplet import spring_card_of
    from bot.spring_card import RED, WALL, png_bytes

    record = couplet_record([{"first": "春回大地千山秀", "second": "福满人间万户欢", "banner": "五福临门"}],
                            {"kind": "couplet", "first": "", "theme": [], "spring": True}, None, 0)
    image = Image.open(io.BytesIO(png_bytes(spring_card_of(record, day=date(2027, 2, 5)), card_fonts)))
    width, height = image.size
    assert height > width > 400                                       # two tall scrolls, readable on a phone
    pixels = image.convert("RGB")
    assert pixels.getpixel((5, 5)) == WALL
    # The right scroll (上联) and the left one (下联) are red paper at their middle's edge, the banner too.
    reds = [pixels.getpixel((x, height // 2)) for x in range(width)]
    assert reds.count(RED) > width // 5
    assert RED in [pixels.getpixel((width // 2, y)) for y in range(height // 8)]
    traditional = Image.open(io.BytesIO(png_bytes(spring_card_of(record, traditional=True), card_fonts)))
    assert traditional.size[0] == width


def test_a_worker_without_a_couplet_model_says_so_and_still_writes_poems(redis_url, tiny_generator):
    from bot.texts import error_text
    from protocol.jobs import E_NO_COUPLET_MODEL
    from protocol.settings import WorkerSettings
    from worker.service import Worker

    worker = Worker(WorkerSettings(redis_url=redis_url, max_batch=8, max_wait_ms=5, worker_id="w"), tiny_generator)
    poem, couplet = GenerateJob(form="五绝", seed=1), CoupletJob(first="春风明月山", reply={"lang": "zh"})
    results = {r.job_id: r for r in worker._serve([poem, couplet])}
    assert results[poem.job_id].ok and len(results[poem.job_id].poems[0]["lines"]) == 4
    refused = results[couplet.job_id]
    assert not refused.ok and refused.error_code == E_NO_COUPLET_MODEL and refused.kind == "couplet"
    assert refused.reply == {"lang": "zh"}
    assert error_text("zh", refused.error_code, refused.error_message) == "对对联的模型还没准备好，请稍后再试。"


def test_a_couplet_sheet_is_scored_with_its_duizhang():
    from benchmarks.blind_read import score

    key = {"seed": 1, "items": [{"n": 1, "source": "real"}, {"n": 2, "source": "generated"},
                                {"n": 3, "source": "generated"}]}
    answers = [{"n": 1, "label": "real", "fluency": 4, "duizhang": 5},
               {"n": 2, "label": "generated", "fluency": 2, "duizhang": 3},
               {"n": 3, "label": "real", "fluency": 3, "duizhang": 2}]
    got = score(key, answers)
    assert (got["generated_recognised"], got["generated"], got["recognition"]) == (1, 2, 0.5)
    assert (got["fluency_generated"], got["duizhang_generated"], got["duizhang_real"]) == (2.5, 2.5, 5.0)
    # The first sheets' keys were the items alone, labelled.
    old = [{"n": i["n"], "label": i["source"]} for i in key["items"]]
    assert score(old, answers)["recognition"] == 0.5


def test_couplets_are_drawn_at_the_temperature_the_blind_sheets_read():
    """The bot's default creativity, a job's default, the model request's and the sheets' are one."""
    import inspect

    from model.requests import CoupletRequest
    from protocol.sampling import (COUPLET_TEMPERATURE, CREATIVITY_TEMPERATURES, DEFAULT, DEFAULT_CREATIVITY,
                                   couplet_temperature)
    from training.couplet import blind_sheet

    assert couplet_temperature(CREATIVITY_TEMPERATURES[DEFAULT_CREATIVITY]) == COUPLET_TEMPERATURE == 0.8
    assert CoupletJob().temperature == CoupletRequest().temperature == COUPLET_TEMPERATURE
    assert inspect.signature(blind_sheet).parameters["temperature"].default == COUPLET_TEMPERATURE
    low, _, high = (couplet_temperature(t) for t in CREATIVITY_TEMPERATURES)
    assert low < COUPLET_TEMPERATURE < high and DEFAULT.temperature == CREATIVITY_TEMPERATURES[DEFAULT_CREATIVITY]
