"""The bot's pieces one at a time: config, parsing, callback data, rendering, redaction, taste, Redis state."""
from __future__ import annotations

import io
import logging
import subprocess
import sys
from datetime import time as dtime

import pytest

from bot import callbacks
from bot.callbacks import Callback
from protocol.settings import BotSettings, ConfigError
from bot.parsing import ParseError, extract_poem_lines, parse_poem_args, spec_fields
from protocol.spec import SpecError, parse_spec, require
from bot.redact import RedactToken
from bot.render import format_poem, format_similar, keep_keyboard, poem_keyboard
from bot.similar import taste_vector
from bot.state import State
from bot.stores.poems import PoemRecord
from protocol.sampling import CREATIVITY_TEMPERATURES
from protocol.keys import LIKES_CAP
from bot.texts import EN, TEXTS, ZH, error_text, lang_of, t
from devtools.emulator import check_html
from verse.forms import poem_text
from protocol.jobs import E_IMPOSSIBLE, E_UNKNOWN_CHARS
from verse.script import converter, to_simplified, to_traditional
from factories import spec

TOKEN = "4242:AAH-secret_part_abcdefghijklmnop"


# --- config --------------------------------------------------------------------------------------

def test_config_from_env_defaults_and_values() -> None:
    config = BotSettings.from_env({"TELEGRAM_BOT_TOKEN": TOKEN})
    assert config.api_url == "https://api.telegram.org" and config.tz == "Asia/Shanghai"
    assert not config.webhook_mode and config.rate_per_min == 10 and config.daily_chat_id is None
    config = BotSettings.from_env({
        "TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": "http://localhost:8081/", "REDIS_URL": "redis://r:6379/2",
        "DAILY_CHAT_ID": "-100123", "DAILY_TIME": "7:05", "TZ": "Europe/Berlin", "ADMIN_IDS": "1, 2 3",
        "POEMBOT_RATE_PER_MIN": "3", "POEMBOT_QUEUE_CAP": "9", "POEMBOT_DEFAULT_FORM": "五律"})
    assert config.api_url == "http://localhost:8081" and config.redis_url == "redis://r:6379/2"
    assert config.daily_chat_id == -100123 and config.daily_time == dtime(7, 5)
    assert config.zone.key == "Europe/Berlin" and config.admin_ids == {1, 2, 3}
    assert (config.rate_per_min, config.queue_cap, config.default_form) == (3, 9, "五律")


@pytest.mark.parametrize("env, names", [
    ({}, "TELEGRAM_BOT_TOKEN"),
    ({"TELEGRAM_BOT_TOKEN": "nope"}, "TELEGRAM_BOT_TOKEN"),
    ({"DAILY_TIME": "25:00"}, "DAILY_TIME"),
    ({"TZ": "Mars/Olympus"}, "TZ"),
    ({"ADMIN_IDS": "root"}, "ADMIN_IDS"),
    ({"POEMBOT_RATE_PER_MIN": "0"}, "POEMBOT_RATE_PER_MIN"),
    ({"DAILY_CHAT_ID": "@channel"}, "DAILY_CHAT_ID"),
    ({"WEBHOOK_URL": "https://x.example/hook"}, "WEBHOOK_SECRET"),
])
def test_config_errors_name_the_variable_and_never_the_token(env: dict, names: str) -> None:
    full = {"TELEGRAM_BOT_TOKEN": TOKEN, **env} if "TELEGRAM_BOT_TOKEN" not in env and env else env
    with pytest.raises(ConfigError) as info:
        BotSettings.from_env(full)
    assert names in str(info.value) and "secret_part" not in str(info.value)


# --- parsing -------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, form, keywords, acrostic", [
    ("", None, [], ""),
    ("春风", None, ["春风"], ""),
    ("五律 明月", "五律", ["明月"], ""),
    ("明月，清风", None, ["明月", "清风"], ""),
    ("七律 藏头 春夏秋冬", "七律", [], "春夏秋冬"),
    ("藏头:春夏秋冬", None, [], "春夏秋冬"),
    ("五言绝句 山", "五绝", ["山"], ""),
    ("qijue 江", "七绝", ["江"], ""),
    ("五絕 雪", "五绝", ["雪"], ""),
])
def test_parse_poem_args(args: str, form: str | None, keywords: list[str], acrostic: str) -> None:
    request = parse_poem_args(args)
    assert (request.form, request.keywords, request.acrostic) == (form, keywords, acrostic)


@pytest.mark.parametrize("args, key", [
    ("七古 春", "unknown_form"), ("词", "tune_missing"), ("宋词 春", "unknown_form"), ("五言排律 春", "unknown_form"),
    ("春" * 41, "too_long"), ("spring", "not_chinese"), ("春 😀", "not_chinese"),
    ("藏头", "acrostic_missing"), ("五绝 藏头 一二三四五", "acrostic_too_long"),
    ("藏头 一二三四五六七八九", "acrostic_too_long"), ("一 二 三 四 五 六 七", "too_many_keywords"),
])
def test_parse_poem_args_refusals(args: str, key: str) -> None:
    """Refused as typed (ParseError), or as a request once its form is known (protocol.spec)."""
    with pytest.raises(SpecError) as info:
        require(parse_spec(spec_fields(parse_poem_args(args), "七绝")))
    assert info.value.key == key
    assert t(ZH, key, **info.value.values) and t(EN, key, **info.value.values)


def test_acrostic_command_and_form_inference() -> None:
    request = parse_poem_args("春夏 秋冬", acrostic_command=True)
    assert request.acrostic == "春夏秋冬" and request.resolved_form("七绝") == "七绝"
    request = parse_poem_args("一二三四五六", acrostic_command=True)
    assert request.resolved_form("七绝") == "七律" and request.resolved_form("五绝") == "五律"


def test_extract_poem_lines_reads_our_messages_and_pastes() -> None:
    ours = format_poem(["春风吹柳绿", "明月照江流", "山水云风月", "花江天人日"], "五绝", ZH,
                       spec=spec("五绝", keywords=["春风"]), poem={"rhyme_ok": True, "tone_rate": 0.9})
    assert extract_poem_lines(ours) == ["春风吹柳绿", "明月照江流", "山水云风月", "花江天人日"]
    assert extract_poem_lines("山水云风月，花江天人日。") == ["山水云风月", "花江天人日"]
    assert extract_poem_lines("你好") == [] and extract_poem_lines(None) == []


def test_poem_text_lays_out_couplets_for_each_caller() -> None:
    lines = ["一二三四五", "六七八九十", "春风吹柳绿"]
    assert poem_text(lines[:2], "", "", close=False) == "一二三四五，六七八九十。"
    assert poem_text(lines) == "一二三四五，六七八九十。\n春风吹柳绿。"                  # the worker's text
    assert poem_text(lines, "\n", "\n", close=False) == "一二三四五，\n六七八九十。\n春风吹柳绿，"  # a message
    assert poem_text(lines, "", "", close=False) == "一二三四五，六七八九十。春风吹柳绿，"   # a job's like-text
    assert poem_text([]) == ""


def test_script_conversion_is_strict_for_the_bot_and_lenient_for_the_worker() -> None:
    assert to_simplified("春風") == "春风" and to_traditional("春风") == "春風" and to_simplified("") == ""
    assert converter("no-such-config", lenient=True)("風") == "風"      # the worker's text is left as typed
    with pytest.raises(Exception):
        converter("no-such-config")


# --- callback data -------------------------------------------------------------------------------

def test_callback_round_trips_and_stays_under_64_bytes() -> None:
    pid = "Ab3_-xyz0123"
    for data in (callbacks.like(pid), callbacks.another(pid), callbacks.similar(pid), callbacks.keep(pid),
                 callbacks.keep_toggle(pid, 0xFF), callbacks.keep_go(pid, 5), callbacks.keep_cancel(pid),
                 callbacks.setting("script", "t"), callbacks.setting("form", "3"), callbacks.daily(True)):
        assert len(data.encode()) <= 64
        assert callbacks.encode(callbacks.decode(data)) == data
    assert callbacks.decode(callbacks.keep_go(pid, 5)) == Callback("kg", pid, mask=5)


# --- rendering -----------------------------------------------------------------------------------

def test_rendered_messages_are_valid_telegram_html_even_with_hostile_text() -> None:
    poem = format_poem(["一二三四五"] * 4, "五绝", EN, spec=spec("五绝", keywords=["<b>&"]),
                       poem={"rhyme_ok": False, "tone_rate": 0.5, "form_ok": False})
    assert check_html(poem) is None and "&lt;b&gt;&amp;" in poem
    assert "rhyme imperfect" in poem and "50%" in poem and "irregular" in poem
    note = format_poem(["一二三四五"] * 4, "五绝", ZH,
                       poem={"rhyme_ok": True, "rhyme_group": "一東", "pattern": "仄起", "tone_rate": 0.92})
    assert note.endswith("<i>仄起 · 押平水韵（一東） · 平仄合律 92%</i>")
    hostile = [{"id": "x", "title": "<script>", "author": "A&B", "dynasty": "tang", "text": "a<b"}]
    assert check_html(format_similar(hostile, ZH, True, "similar_title")) is None
    assert check_html("<b>unclosed") and check_html("a < b") and check_html("<div>x</div>")


def test_similar_answers_say_why_in_the_users_language() -> None:
    from bot.render import why_line

    item = {"id": "x", "title": "枫桥夜泊", "author": "张继", "dynasty": "tang", "text": "月落乌啼霜满天，江枫渔火对愁眠。",
            "why": {"words": ["<江枫>", "渔火"], "near": "春风&明月", "liked": True, "canon": "唐诗三百首"}}
    zh = format_similar([item], ZH, False, "similar_poem_title")
    assert check_html(zh) is None
    assert "<i>近你收藏的「春风&amp;明月」 · 共有意象：&lt;江枫&gt;、渔火 · 选入《唐诗三百首》</i>" in zh
    en = why_line(item["why"], EN)
    assert en == "near “春风&明月”, which you liked · shared imagery: <江枫>, 渔火 · in Three Hundred Tang Poems"
    assert why_line({"words": [], "near": None, "canon": None}, ZH) == "意境相近"
    assert why_line({"words": [], "near": "春风", "liked": False, "canon": "千家诗"}, EN) == \
        "near your “春风” · in Poems of a Thousand Masters"
    assert why_line(None, ZH) == "" and "<i>" not in format_similar([{**item, "why": None}], ZH, False, "similar_title")
    assert "選入《唐詩三百首》" in format_similar([item], ZH, True, "similar_title")     # traditional script


async def test_taste_poems_name_likes_first_and_skip_expired_poems() -> None:
    from types import SimpleNamespace

    from bot.similar import taste_poems

    records = {"a": SimpleNamespace(lines=["春风又绿江南岸"]), "b": SimpleNamespace(lines=["明月何时照我还"])}

    async def load(pid: str) -> SimpleNamespace | None:
        return records.get(pid)

    history = [{"pid": "a", "mu": [1.0, 0.0]}, {"pid": "gone", "mu": [0.0, 1.0]}, {"pid": "b", "mu": [0.0, 2.0]}]
    likes = {"b": {"mu": [0.0, 2.0], "at": 5.0}}
    poems = await taste_poems(load, history, likes)
    assert [(p.lines[0], p.liked, p.taste) for p in poems] == [("明月何时照我还", True, True),
                                                              ("春风又绿江南岸", False, True)]
    assert poems[0].vector is not None and abs(float(poems[0].vector[1]) - 1.0) < 1e-6
    assert len(await taste_poems(load, history, likes, limit=1)) == 1


def test_traditional_rendering_and_keyboards() -> None:
    text = format_poem(["春风吹柳绿"] * 4, "五绝", ZH, traditional=True)
    assert "春風吹柳綠" in text
    buttons = [b for row in poem_keyboard("pid12345", EN).inline_keyboard for b in row]
    assert [b.text for b in buttons] == ["❤️ Like", "🔄 Another", "🔍 Similar", "✏️ Keep", "📖 Reading aid", "🖼 Card"]
    rows = keep_keyboard("pid12345", ["一二三四五"] * 8, 0b10000001, ZH).inline_keyboard
    assert len(rows) == 9 and rows[0][0].text.startswith("✅") and rows[1][0].text.startswith("▫️")
    # Each toggle carries the mask after pressing it.
    assert callbacks.decode(rows[0][0].callback_data).mask == 0b10000000
    assert callbacks.decode(rows[1][0].callback_data).mask == 0b10000011


def test_texts_exist_in_both_languages_and_errors_are_localised() -> None:
    assert set(TEXTS[ZH]) == set(TEXTS[EN])
    assert lang_of("en-GB") == EN and lang_of("zh-hant") == ZH and lang_of(None) == ZH
    assert error_text(ZH, E_UNKNOWN_CHARS, "the model cannot write 龘靐: choose other characters") == \
        "模型不会写这些字：龘 靐。换几个字试试。"
    assert "no room" in error_text(EN, E_IMPOSSIBLE, "no room")
    assert error_text(ZH, "something new", None) == t(ZH, "internal")


# --- redaction -----------------------------------------------------------------------------------

def test_redaction_filter_removes_the_token_from_messages_args_and_tracebacks() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("test.redact")
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactToken(TOKEN))
    logger.addHandler(handler)
    try:
        logger.warning("GET https://api.telegram.org/bot%s/getMe", TOKEN)
        try:
            raise RuntimeError(f"failed at /bot{TOKEN}/sendMessage")
        except RuntimeError:
            logger.exception("boom")
        logger.warning("only the secret half: %s", TOKEN.split(":")[1])
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert "secret_part" not in out and out.count("<token>") == 3 and "RuntimeError" in out


def test_install_redaction_covers_root_handlers_in_a_fresh_process() -> None:
    code = (
        "import logging, sys\n"
        "logging.basicConfig(stream=sys.stdout, level=logging.INFO)\n"
        "from bot.redact import install_redaction\n"
        f"install_redaction({TOKEN!r})\n"
        f"logging.getLogger('httpx').info('HTTP Request: POST http://x/bot{TOKEN}/getUpdates')\n"
        f"logging.getLogger('telegram.ext.Updater').info('url /bot{TOKEN}/x')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "secret_part" not in out and out.count("<token>") == 2


def test_bot_modules_do_not_import_tensorflow() -> None:
    code = "import sys, bot.app; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- taste ---------------------------------------------------------------------------------------

def test_taste_vector_weights_likes_and_ignores_bad_vectors() -> None:
    assert taste_vector([], {}) is None
    assert taste_vector([{"mu": None}, {"mu": [0, 0]}], {}) is None
    history = [{"mu": [1.0, 0.0]}, {"mu": [1.0, 0.0]}]
    likes = {"p": {"mu": [0.0, 5.0]}}
    v = taste_vector(history, likes)
    assert v is not None and abs(float((v ** 2).sum()) - 1) < 1e-5
    assert v[1] > v[0]                     # one like (weight 3) outweighs two plain poems
    odd = taste_vector(history + [{"mu": [1.0, 2.0, 3.0]}], {})
    assert odd is not None and odd.shape == (2,)


# --- Redis state ---------------------------------------------------------------------------------

async def test_rate_limit_is_a_sliding_window(redis_url: str) -> None:
    state = State.from_url(redis_url)
    try:
        assert [await state.limits.check_rate(7, 3, now=100.0 + i) for i in range(3)] == [0, 0, 0]
        assert await state.limits.check_rate(7, 3, now=110.0) == pytest.approx(50.0)   # the first expires at 160
        assert await state.limits.check_rate(8, 3, now=110.0) == 0                     # per user
        assert await state.limits.check_rate(7, 3, now=160.5) == 0
    finally:
        await state.close()


async def test_queue_cap_delivery_claims_and_daily_claims(redis_url: str) -> None:
    state = State.from_url(redis_url)
    try:
        assert await state.limits.reserve_slot("j1", 2) and await state.limits.reserve_slot("j2", 2)
        assert not await state.limits.reserve_slot("j3", 2)
        await state.deliveries.finish_delivery("j1")
        assert await state.limits.reserve_slot("j3", 2)
        assert await state.limits.reserve_slot("j4", 2, now=10**10)          # the old entries went stale

        assert await state.deliveries.begin_delivery("j9", "a") == "mine"
        assert await state.deliveries.begin_delivery("j9", "b") == "busy"
        await state.deliveries.abort_delivery("j9")
        assert await state.deliveries.begin_delivery("j9", "b") == "mine"
        await state.deliveries.finish_delivery("j9")
        assert await state.deliveries.begin_delivery("j9", "a") == "sent" and await state.deliveries.is_delivered("j9")

        assert await state.subscribers.claim_daily("2026-05-01", "a")
        assert not await state.subscribers.claim_daily("2026-05-01", "b")
        assert await state.subscribers.claim_recipient("j9", 5) and not await state.subscribers.claim_recipient("j9", 5)
    finally:
        await state.close()


async def test_poems_history_likes_settings(redis_url: str) -> None:
    state = State.from_url(redis_url, poem_ttl_s=120, history_cap=3)
    try:
        record = PoemRecord("pid12345", 7, 7, "五绝", ["一二三四五"] * 4, mu=[0.1, 0.2],
                            spec=spec("五绝", keywords=["春"]))
        await state.poems.save_poem(record)
        assert await state.poems.load_poem("pid12345") == record
        assert 0 < await state.redis.ttl("poembot:bot:poem:pid12345") <= 120
        for i in range(5):
            await state.users.add_history(7, f"p{i}", [float(i)])
        assert [h["pid"] for h in await state.users.history(7)] == ["p4", "p3", "p2"]
        for i in range(LIKES_CAP + 2):
            await state.users.add_like(7, f"l{i}", None)
        likes = await state.users.likes(7)
        assert len(likes) == LIKES_CAP and "l0" not in likes and f"l{LIKES_CAP + 1}" in likes
        assert (await state.users.settings(7)).temperature == CREATIVITY_TEMPERATURES[1]
        await state.users.set_setting(7, "cr", "0")
        await state.users.set_setting(7, "script", "t")
        await state.users.set_setting(7, "form", "bogus")          # ignored on read
        s = await state.users.settings(7)
        assert (s.temperature, s.traditional, s.form) == (CREATIVITY_TEMPERATURES[0], True, None)
    finally:
        await state.close()


# --- model files the bot reads -------------------------------------------------------------------

def test_index_and_vocabulary_are_found_next_to_the_model(tmp_path, monkeypatch) -> None:
    from bot.app import build_application
    from bot.similar import find_index
    from botkit import synthetic_index
    from search.files import default_index_dir, model_version

    monkeypatch.setenv("POEMBOT_DATA_DIR", str(tmp_path / "data"))
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text("{}")
    (model_dir / "vocab.json").write_text('{"version": 1, "chars": ["<pad>", "<bos>", "<eos>", "<unk>", "，", "。", "春", "风"]}')
    assert find_index(model_dir, None) is None                       # not built yet: /similar is off

    index = synthetic_index()
    index.version = model_version(model_dir)
    index.save(default_index_dir(index.version))
    found = find_index(model_dir, None)
    assert found is not None and len(found) == len(index)

    (model_dir / "config.json").write_text('{"changed": true}')      # another model: refuse the index
    assert find_index(model_dir, None) is None
    assert find_index(None, default_index_dir(index.version)) is not None

    config = BotSettings(token=TOKEN, redis_url="redis://localhost:1/0", model_dir=model_dir)
    app = build_application(config)
    assert app.bot_data["rt"].chars == frozenset("春风")


def test_gloss_callbacks_round_trip_and_refuse_forgeries():
    from bot import callbacks

    assert callbacks.decode(callbacks.gloss("AbCdEfGh1234")).action == callbacks.GLOSS
    uuid = "0a1b2c3d-4e5f-6789-abcd-ef0123456789"
    cb = callbacks.decode(callbacks.gloss_corpus(uuid))
    assert (cb.action, cb.key) == (callbacks.GLOSS_CORPUS, uuid)
    for forged in ("gc:", "gc:../x", "gc:" + "a" * 41, "gc:a:b"):
        with pytest.raises(callbacks.CallbackError):
            callbacks.decode(forged)
