"""Style adapters as the bot sees them: the registry the workers publish, and telling a style from a theme.

Each worker writes the styles it serves into the Redis hash protocol.keys.STYLES_KEY (style id -> JSON
{id, title, line, line_en, aliases, seen_at}) on every heartbeat; bot/stores/styles.py reads it into a
StyleBook, cached a few seconds, leaving out entries no worker has refreshed for STYLES_FRESH_S.
A word names a style when it matches an id, a title or an alias (case, spaces, hyphens and the
traditional script ignored: 蘇軾 and "Su Shi" find 苏轼). FAMOUS_POETS lets the parser tell that a
word was *meant* as a style even when no such style is served, so /poem 白居易 is answered with the
list of styles rather than written as a poem about the word 白居易. No TensorFlow here.
"""
from __future__ import annotations

import json
import logging
import re
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from bot.texts import EN
from protocol.jobs import MAX_STYLE_CHARS
from protocol.keys import style_entry_fresh
from verse.script import to_simplified

log = logging.getLogger(__name__)

MAX_LINE_CHARS = 200        # a style's one-line description, as shown by /styles
MAX_ALIASES = 16
# Famous poets, by name (simplified) and pinyin, a few by their best-known other names: a word among
# them is meant as a style. Names only, so that an ordinary theme word is never taken for a poet.
FAMOUS_POETS: dict[str, str] = {
    # 先秦 to 南北朝
    "屈原": "quyuan", "曹操": "caocao", "曹植": "caozhi", "陶渊明": "taoyuanming", "陶潜": "taoqian",
    "谢灵运": "xielingyun", "谢朓": "xietiao", "鲍照": "baozhao", "庾信": "yuxin",
    # 唐
    "李白": "libai", "李太白": "litaibai", "杜甫": "dufu", "杜子美": "duzimei", "王维": "wangwei",
    "白居易": "baijuyi", "白乐天": "bailetian", "李商隐": "lishangyin", "杜牧": "dumu",
    "孟浩然": "menghaoran", "王昌龄": "wangchangling", "岑参": "censhen", "高适": "gaoshi",
    "王之涣": "wangzhihuan", "贺知章": "hezhizhang", "刘禹锡": "liuyuxi", "柳宗元": "liuzongyuan",
    "韩愈": "hanyu", "李贺": "lihe", "元稹": "yuanzhen", "贾岛": "jiadao", "孟郊": "mengjiao",
    "温庭筠": "wentingyun", "韦应物": "weiyingwu", "张九龄": "zhangjiuling", "陈子昂": "chenziang",
    "王勃": "wangbo", "杨炯": "yangjiong", "卢照邻": "luzhaolin", "骆宾王": "luobinwang",
    "崔颢": "cuihao", "张继": "zhangji", "刘长卿": "liuchangqing", "王翰": "wanghan",
    "张若虚": "zhangruoxu", "李煜": "liyu",
    # 宋 and after
    "苏轼": "sushi", "苏东坡": "sudongpo", "陆游": "luyou", "辛弃疾": "xinqiji", "李清照": "liqingzhao",
    "杨万里": "yangwanli", "范成大": "fanchengda", "王安石": "wanganshi", "欧阳修": "ouyangxiu",
    "黄庭坚": "huangtingjian", "范仲淹": "fanzhongyan", "晏殊": "yanshu", "柳永": "liuyong",
    "秦观": "qinguan", "周邦彦": "zhoubangyan", "姜夔": "jiangkui", "梅尧臣": "meiyaochen",
    "陈与义": "chenyuyi", "文天祥": "wentianxiang", "朱熹": "zhuxi", "元好问": "yuanhaowen",
    "于谦": "yuqian", "纳兰性德": "nalanxingde", "龚自珍": "gongzizhen", "袁枚": "yuanmei",
}
# Written before a name to say "this is a style" (风格:李白, style:libai) or "this is a theme" (主题:屈原).
STYLE_PREFIXES = ("风格", "style")
THEME_PREFIXES = ("主题", "theme")
TITLE_PREFIXES = ("题", "題", "题目", "題目", "title")
IMITATE = "仿"              # 仿李白: in the manner of 李白
BASE_WORDS = {"无", "none", "base", "本色"}     # 风格:无 asks for the base model explicitly
_FOLD = re.compile(r"[\s\-_·・.．'’]+")
_ID_RE = re.compile(r"^[^\s:]{1,%d}$" % MAX_STYLE_CHARS)
_WARNED: set[str] = set()


def style_key(text: str) -> str:
    """The form in which style names are compared: simplified, NFKC, case-folded, no spaces or hyphens."""
    for _ in range(3):        # folding can make a new NFKC composition (A + ´ -> á): repeat until stable
        key = unicodedata.normalize("NFKC", _FOLD.sub("", to_simplified(unicodedata.normalize("NFKC", text))
                                                      .casefold()))
        if key == text:
            break
        text = key
    return key


_FAMOUS_KEYS = {style_key(name) for name in FAMOUS_POETS} | set(FAMOUS_POETS.values())


def is_famous_poet(word: str) -> bool:
    return style_key(word) in _FAMOUS_KEYS


def split_prefix(token: str, prefixes: Iterable[str]) -> str | None:
    """The rest of token after one of prefixes and a colon (风格:李白 -> 李白), or None."""
    norm = to_simplified(unicodedata.normalize("NFKC", token))     # NFKC: ： -> :
    for prefix in prefixes:
        if norm.lower().startswith(prefix + ":"):
            return norm[len(prefix) + 1:]
    return None


def valid_style_id(style_id: Any) -> bool:
    return isinstance(style_id, str) and bool(_ID_RE.fullmatch(style_id))   # not match: "$" passes a final \n


@dataclass(frozen=True)
class Style:
    id: str
    title: str                      # the poet or collection, as shown: 李白
    line: str = ""                  # one line in Chinese
    line_en: str = ""               # one line in English
    aliases: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, style_id: str, text: str, now: float | None = None) -> "Style | None":
        """A registry entry, or None when it is not one (logged: the bot never trusts its shape)
        or is stale (protocol.keys.style_entry_fresh, checked when now is given)."""
        try:
            body = json.loads(text)
        except (TypeError, ValueError):
            body = None
        if isinstance(body, dict) and now is not None and not style_entry_fresh(body, now):
            return None
        if not isinstance(body, dict) or not valid_style_id(style_id) or body.get("id", style_id) != style_id:
            if style_id not in _WARNED:        # the registry is re-read every few seconds: say it once
                _WARNED.add(style_id)
                log.warning("ignoring a malformed style entry %r", str(style_id)[:40])
            return None

        def text_of(key: str, limit: int) -> str:
            value = body.get(key)
            return " ".join(value.split())[:limit] if isinstance(value, str) else ""

        aliases = body.get("aliases") if isinstance(body.get("aliases"), list) else []
        return cls(id=style_id, title=text_of("title", MAX_STYLE_CHARS) or style_id,
                   line=text_of("line", MAX_LINE_CHARS), line_en=text_of("line_en", MAX_LINE_CHARS),
                   aliases=tuple(a for a in aliases if isinstance(a, str) and 0 < len(a) <= MAX_STYLE_CHARS)
                   [:MAX_ALIASES])


class StyleBook:
    """The styles served now, in display order (by title), found by id, title or alias."""

    def __init__(self, styles: Iterable[Style] = ()) -> None:
        self.styles = sorted({s.id: s for s in styles}.values(), key=lambda s: (s.title, s.id))
        self._by_id = {s.id: s for s in self.styles}
        self._by_key: dict[str, Style] = {}
        # Ids first, then titles, then aliases: an alias never hides another style's id or title.
        for kind in ("id", "title", "aliases"):
            for style in self.styles:
                for name in style.aliases if kind == "aliases" else (getattr(style, kind),):
                    key = style_key(name)
                    if key:
                        self._by_key.setdefault(key, style)

    @classmethod
    def from_hash(cls, entries: Mapping[str, str], now: float | None = None) -> "StyleBook":
        """From the registry hash (HGETALL of STYLES_KEY), skipping entries that are not styles
        and those no worker has refreshed lately (a style taken out of service)."""
        now = time.time() if now is None else now
        return cls(s for s in (Style.from_json(k, v, now) for k, v in entries.items()) if s is not None)

    @classmethod
    def from_cards(cls, folder: Path) -> "StyleBook":
        """The styles whose cards (`ID.json`, model/styles.py) sit in folder: what this deployment
        ships, named while no worker has published what it serves (a first start, models loading)."""
        cards = sorted(p for p in Path(folder).glob("*.json") if not p.name.startswith(".")) \
            if Path(folder).is_dir() else []
        return cls(s for s in (Style.from_json(p.stem, p.read_text(encoding="utf-8")) for p in cards)
                   if s is not None)

    def find(self, name: str) -> Style | None:
        """The style a user's word names (id, title or alias), or None."""
        return self._by_key.get(style_key(name)) if name else None

    def get(self, style_id: str) -> Style | None:
        return self._by_id.get(style_id)

    def title_of(self, style_id: str) -> str:
        style = self._by_id.get(style_id)
        return style.title if style else style_id

    def __contains__(self, style_id: object) -> bool:
        return style_id in self._by_id

    def __iter__(self) -> Iterator[Style]:
        return iter(self.styles)

    def __len__(self) -> int:
        return len(self.styles)

    def __bool__(self) -> bool:
        return bool(self.styles)


def style_names(styles: Iterable[Style], lang: str) -> str:
    """The list an unknown style is answered with: 李白、杜甫 / 李白 (libai), 杜甫 (dufu)."""
    if lang == EN:
        return ", ".join(s.title if s.title == s.id else f"{s.title} ({s.id})" for s in styles)
    return "、".join(s.title for s in styles)
