"""The 词 model: the poem VAE continued on the Song ci, told at every step where it stands in the tune.

A ci is one sequence like a poem's — BOS, each 句's characters and its mark (，or 。), EOS — written
by a PoemVAE of its own (model/pretrained/ci, beside the poem model it was grown from) whose form embedding has a fifth row (词)
and whose decoder reads, at each step, the template features of the position it writes: how far the
句 has to run, its length, whether it ends on a rhyme and in which tone, the tune's 平仄 there, where
the 上片 ends. The features come from a TuneForm (verse/tunes.py) when writing, and from the ci's
own lines (with its tune's form where the lengths match) when training.

numpy only down to CiWriter, which holds the model and its decoder.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from verse.vocab import BOS, COMMA, EOS, PERIOD, UNK, Vocab

CI_FORM = "词"                 # PoemRequest.form of a ci; its tune names the shape
FORM_ID = 4                    # the 词 row of the ci model's form embedding (after 五绝 七绝 五律 七律)
N_FORMS = 5
SUBDIR = "ci"                  # a poem model's own ci model: <model dir>/ci (the shipped one: model/pretrained/ci)
MAX_LINE = 11                  # longest 句 the template describes (the tunes' 句 run 1–11 characters)
MAX_TOKENS = 200               # BOS + characters and marks + EOS of the longest ci the model writes
FULL_STOPS = "。？！"           # marks written as PERIOD; the others (，、；：) as COMMA

# Template feature columns (multi-hot, one row per target position).
_REMAINING = 0                 # 12: characters left in the 句 including this one (0 = its mark)
_POSITION = 12                 # 12: this character's place in the 句 (its length at the mark)
_LENGTH = 24                   # 12: the 句's length
_RHYME_SLOT = 36               # this character ends a rhyming 句
_RHYME_TONE = 37               # 3: that rhyme's tone class 平 / 仄 (上去) / 入
_LINE_RHYMES = 40              # the 句 ends on a rhyme (every position of it)
_TONE = 41                     # 3: the tune's tone here 平 / 仄 / 中
_STANZA_FIRST = 44             # the 句 opens a 片
_STANZA_LAST = 45              # the 句 closes a 片
_LAST_LINE = 46                # the ci's last 句
_SECOND = 47                   # the 句 is in the 下片
_KNOWN = 48                    # the tune's rhyme slots and 平仄 are known (always when writing)
_EOS = 49                      # this position ends the ci
_FULL_STOP = 50                # the 句 ends in 。 (a sentence closes), not ，
TEMPLATE_DIM = 51
_TONE_CLASSES = ("平", "仄", "入")
_TONES = ("平", "仄", "中")


@dataclass(frozen=True)
class Shape:
    """A ci's layout as the template reads it: what a TuneForm gives, or what a corpus ci shows."""
    lengths: tuple[int, ...]
    marks: str                               # one mark per 句
    rhyme: tuple[str | None, ...]            # per 句: its rhyme's tone class (平/仄/入), None unrhymed
    tones: tuple[str, ...] | None            # per 句: 平/仄/中 per character; None when unknown
    stanza_break: int | None                 # 句 in the 上片; None for one 片
    known: bool = True                       # rhyme and tones come from the tune

    @classmethod
    def of_form(cls, form) -> "Shape":
        """The shape of a verse.tunes.TuneForm."""
        return cls(tuple(ln.length for ln in form.lines), "".join(ln.mark for ln in form.lines),
                   tuple(ln.rhyme_tone if ln.rhyme else None for ln in form.lines),
                   tuple(ln.tones for ln in form.lines), form.stanza_break)

    @property
    def n_tokens(self) -> int:
        """BOS, every character and mark, EOS."""
        return sum(self.lengths) + len(self.lengths) + 2


def mark_token(mark: str) -> int:
    return PERIOD if mark in FULL_STOPS else COMMA


def template(shape: Shape) -> np.ndarray:
    """float32 [n_tokens - 1, TEMPLATE_DIM]: row t describes target position t+1 (the token the
    decoder writes at step t, after BOS)."""
    rows = np.zeros((shape.n_tokens - 1, TEMPLATE_DIM), np.float32)
    n = len(shape.lengths)
    k = shape.stanza_break
    t = 0
    for i, length in enumerate(shape.lengths):
        first = i == 0 or i == k
        last = i == n - 1 or (k is not None and i == k - 1)
        rhyme = shape.rhyme[i] if shape.known else None
        for j in range(length + 1):
            r = rows[t]
            r[_REMAINING + min(length - j, MAX_LINE)] = 1
            r[_POSITION + min(j, MAX_LINE)] = 1
            r[_LENGTH + min(length, MAX_LINE)] = 1
            if rhyme:
                r[_LINE_RHYMES] = 1
                if j == length - 1:
                    r[_RHYME_SLOT] = 1
                    r[_RHYME_TONE + _TONE_CLASSES.index(rhyme)] = 1
            if shape.known and shape.tones and j < length:
                r[_TONE + _TONES.index(shape.tones[i][j])] = 1
            r[_STANZA_FIRST] = first
            r[_STANZA_LAST] = last
            r[_LAST_LINE] = i == n - 1
            r[_SECOND] = k is not None and i >= k
            r[_KNOWN] = shape.known
            r[_FULL_STOP] = shape.marks[i] in FULL_STOPS
            t += 1
    rows[t, _EOS] = 1
    rows[t, _KNOWN] = shape.known
    return rows


def encode(lines: list[str], marks: str, vocab: Vocab) -> list[int]:
    """BOS, each 句 and its mark, EOS; characters outside the vocabulary are UNK."""
    ids = [BOS]
    for line, mark in zip(lines, marks):
        ids.extend(vocab.index.get(c, UNK) for c in line)
        ids.append(mark_token(mark))
    return ids + [EOS]


def corpus_shape(lengths: list[int], marks: str, paragraph_ends: list[int], forms) -> Shape:
    """A corpus ci's shape: its tune's form where the 句 lengths match one (rhyme slots and 平仄
    known), else its own lengths and marks with the rhyme and tones unknown. forms: the tune's
    TuneForms (empty for a tune too rare to have learned forms)."""
    for form in forms:
        if list(form.lengths) == list(lengths):
            s = Shape.of_form(form)
            return Shape(s.lengths, marks, s.rhyme, s.tones, s.stanza_break)
    ends = [e for e in paragraph_ends if 0 < e < len(lengths)]
    return Shape(tuple(lengths), marks, (None,) * len(lengths), None, ends[0] if len(ends) == 1 else None,
                 known=False)


def find_ci_dir(model_dir: str | Path | None) -> Path | None:
    """The ci model a worker serves: <model dir>/ci beside the poem model, else the shipped one."""
    from model.folder import CONFIG_FILE
    from protocol.settings import PRETRAINED_DIR

    for candidate in ([Path(model_dir) / SUBDIR] if model_dir else []) + [PRETRAINED_DIR / SUBDIR]:
        if (candidate / CONFIG_FILE).exists():
            return candidate
    return None


# --- the decoder's tables and plans ------------------------------------------------------------

RHYME_SETS = 4                 # rhyme sets one 词 may hold (菩萨蛮 and 虞美人 change rhyme three times)


def ci_tables(vocab: Vocab, rhymes, poem_tables):
    """ProsodyTables for ci: per rhyme set, one row per part of the ci rhyme table (a set of one
    tone class narrows by parts) and one per 部 (a set that mixes 平 and 仄, as 西江月's, narrows by
    部, its slots' tones asked separately); the tone, writable and doubling tables are the poems'."""
    from model.constraints import ProsodyTables
    from verse.vocab import N_SPECIALS

    parts = list(rhymes.parts)
    bus = sorted(set(rhymes.bu.values()))
    names = [f"part:{p}" for p in parts] + [f"部{b}" for b in bus]
    member = np.zeros((len(names), len(vocab)), bool)
    for i, char in enumerate(vocab.chars[N_SPECIALS:], start=N_SPECIALS):
        for p in rhymes.parts_of(char):
            member[parts.index(p), i] = True
        for b in rhymes.bu_of(char):
            member[len(parts) + bus.index(b), i] = True
    return ProsodyTables(tone=poem_tables.tone, rhyme=np.tile(member, (RHYME_SETS, 1)),
                         groups=[f"{s}/{n}" for s in range(RHYME_SETS) for n in names],
                         writable=poem_tables.writable, doubles=poem_tables.doubles, sets=RHYME_SETS)


def line_starts(lengths: tuple[int, ...] | list[int]) -> list[int]:
    """Decoder position (after BOS) of each 句's first character; its mark follows its last."""
    starts, t = [], 0
    for length in lengths:
        starts.append(t)
        t += length + 1
    return starts


def plan_ci(request, form, vocab: Vocab, tables, rhymes, rng: np.random.Generator):
    """Lay out one ci of a checked request on form (a verse.tunes.TuneForm): marks, EOS, kept 句,
    the acrostic and keywords forced; the tune's 平仄 as tone targets; each rhyme slot in its set.
    Raises RequestError(E_IMPOSSIBLE) when forced characters cannot meet the rhyme or find room."""
    from model.constraints import FREE, PING, ZE, RowPlan, _ids
    from model.requests import E_IMPOSSIBLE, RequestError
    from verse import tunes as tune_table

    shape = Shape.of_form(form)
    n = len(shape.lengths)
    starts = line_starts(shape.lengths)
    T = shape.n_tokens - 1
    forced = np.full(T, FREE, np.int32)
    for i, length in enumerate(shape.lengths):
        forced[starts[i] + length] = mark_token(shape.marks[i])
    forced[T - 1] = EOS
    if len(request.acrostic) > n:
        raise RequestError(E_IMPOSSIBLE, f"an acrostic of {len(request.acrostic)} characters in a {n}-句 ci")
    for i, line in request.fixed_lines.items():
        if not 0 <= i < n or len(line) != shape.lengths[i]:
            raise RequestError(E_IMPOSSIBLE, f"a kept 句 must be one of the {n} 句 at its own length")
        forced[starts[i]:starts[i] + len(line)] = _ids(vocab, line)
    for i, tok in enumerate(_ids(vocab, request.acrostic)):
        forced[starts[i]] = tok

    tone_on = request.tone_mode != "off"
    tone_req = np.zeros(T, np.int8)
    rhyme_pos = np.zeros(T, bool)
    rhyme_set = np.zeros(T, np.int32)
    sets = sorted({ln.rhyme_set or 0 for ln in form.lines if ln.rhyme})
    if len(sets) > RHYME_SETS:
        raise RequestError(E_IMPOSSIBLE, f"{len(sets)} rhyme sets; the decoder holds {RHYME_SETS}")
    per_set = len(tables.groups) // RHYME_SETS
    groups = np.zeros(len(tables.groups), bool)
    for s, number in enumerate(sets):
        slots = [ln for ln in form.lines if ln.rhyme and (ln.rhyme_set or 0) == number]
        classes = {ln.rhyme_tone for ln in slots}
        for k, name in enumerate(tables.groups[s * per_set:(s + 1) * per_set]):
            row = name.split("/", 1)[1]
            if len(classes) == 1:
                allowed = tune_table.rhyme_classes(next(iter(classes)))
                groups[s * per_set + k] = row.startswith("part:") and row[5:].split(":")[0] in allowed
            else:
                groups[s * per_set + k] = row.startswith("部")
    for i, ln in enumerate(form.lines):
        for j, want in enumerate(ln.tones):
            if tone_on and want in ("平", "仄"):
                tone_req[starts[i] + j] = PING if want == "平" else ZE
        if ln.rhyme and request.rhyme != "none":
            p = starts[i] + ln.length - 1
            rhyme_pos[p] = True
            rhyme_set[p] = sets.index(ln.rhyme_set or 0)
            tone_req[p] = PING if ln.rhyme_tone == "平" else ZE      # part of the rhyme, asked hard
    for p in np.flatnonzero(rhyme_pos & (forced >= 0)):
        groups = _narrow_set(groups, tables, int(forced[p]), int(rhyme_set[p]), per_set, vocab)
    keyword_at: dict[str, tuple[int, int]] = {}
    for word in sorted(request.keywords, key=len, reverse=True):
        text = "".join(vocab.chars[t] if t >= 0 else "|" for t in forced)
        if word in text:
            continue
        ids = _ids(vocab, word)
        spot = _place_ci(shape, starts, ids, forced, rhyme_pos, tone_req, tables, rng,
                         {line for line, _ in keyword_at.values()})
        if spot is None:
            raise RequestError(E_IMPOSSIBLE, f"no room for the keyword {word!r} in this ci")
        line, j = spot
        forced[starts[line] + j:starts[line] + j + len(ids)] = ids
        keyword_at[word] = spot
    return RowPlan(None, forced, tone_req, rhyme_pos, groups, False, keyword_at,
                   rhyme_set=rhyme_set, template=template(shape))


def _narrow_set(groups: np.ndarray, tables, tok: int, s: int, per_set: int, vocab: Vocab) -> np.ndarray:
    from model.requests import E_IMPOSSIBLE, RequestError

    rows = slice(s * per_set, (s + 1) * per_set)
    narrowed = groups.copy()
    narrowed[rows] &= tables.rhyme[rows, tok]
    if not narrowed[rows].any():
        raise RequestError(E_IMPOSSIBLE, f"{vocab.chars[tok]!r} cannot end that rhyming 句 of this tune "
                           "(or does not rhyme with the other kept ends)")
    return narrowed


def _place_ci(shape: Shape, starts: list[int], ids: list[int], forced: np.ndarray, rhyme_pos: np.ndarray,
              tone_req: np.ndarray, tables, rng: np.random.Generator, used: set[int]) -> tuple[int, int] | None:
    """The free (句, start) for a keyword with the fewest tone clashes, off rhyme slots, fresh 句 first."""
    from model.constraints import FREE

    best: list[tuple[float, int, int]] = []
    for i, length in enumerate(shape.lengths):
        for j in range(length - len(ids) + 1):
            span = range(starts[i] + j, starts[i] + j + len(ids))
            if any(forced[p] != FREE or rhyme_pos[p] for p in span):
                continue
            cost = sum(2.0 for p, tok in zip(span, ids) if tone_req[p] and not tables.tone[tok] & tone_req[p])
            best.append((cost + (3.0 if i in used else 0.0), i, j))
    if not best:
        return None
    low = min(c for c, _, _ in best)
    choices = [(i, j) for c, i, j in best if c == low]
    return choices[int(rng.integers(len(choices)))]


# --- the writer ----------------------------------------------------------------------------------

NOVELTY_MIN_CHARS = 4          # shorter 句 (归去, 春风里) are every poet's: a copy is a 句 of 4 or more
CI_NOVELTY_FILE = "novelty.npy"


def novelty_table(ci):
    """Every 句 of NOVELTY_MIN_CHARS or more of the ci corpus (any split): what a written ci must not copy."""
    from model.constraints import NoveltyTable

    return NoveltyTable.from_lines(line for i in range(len(ci)) for line in ci.lines[i]
                                   if len(line) >= NOVELTY_MIN_CHARS)


class CiWriter:
    """The ci model with its vocabulary, tables and decoder: PoemRequests with a tune in, Answers out."""

    def __init__(self, model, vocab: Vocab, config, tunes=None, novelty: list | None = None, pairs=None,
                 max_rows: int = 256) -> None:
        from model.constraints import ProsodyTables
        from model.decode import ConstrainedDecoder
        from verse import tunes as tune_table

        self.model, self.vocab, self.config = model, vocab, config
        self.tunes = tunes or tune_table.load()
        poem_tables = ProsodyTables.from_vocab(vocab)
        if pairs is not None:
            poem_tables.doubles = pairs.doubles()
        self.tables = ci_tables(vocab, self.tunes.rhymes, poem_tables)
        self.decoder = ConstrainedDecoder(model, self.tables)
        self.novelty = [t for t in (novelty or []) if t is not None]
        self.pairs = pairs
        self.max_rows = max_rows
        self.latent_dim = int(config.latent_dim)
        self.title_len = int(config.title_len or 0)

    @classmethod
    def load(cls, directory: str | Path, poem_novelty=None, **kwargs) -> "CiWriter":
        """The ci model in directory with its own novelty table (ci 句) and poem_novelty (the poem
        model's, so a ci copies no poem line either); the pair table beside it or the shipped poem model's."""
        from model.constraints import NoveltyTable
        from model.rescore import PAIRS_FILE, load_pairs
        from model.vae import load_model
        from protocol.settings import PRETRAINED_DIR

        directory = Path(directory)
        model, vocab, config = load_model(directory)
        own = directory / CI_NOVELTY_FILE
        novelty = [NoveltyTable.load(own) if own.exists() else None, poem_novelty]
        pairs_dir = directory if (directory / PAIRS_FILE).exists() else PRETRAINED_DIR
        return cls(model, vocab, config, novelty=novelty, pairs=load_pairs(pairs_dir, len(vocab)), **kwargs)

    def form_of(self, request):
        """The TuneForm a request asks for (the tune's main form), or RequestError."""
        from model.requests import E_INVALID, RequestError

        tune = self.tunes.get(request.tune)
        if tune is None:
            raise RequestError(E_INVALID, f"no tune {request.tune!r} among the {len(self.tunes)} this model writes")
        return tune, tune.main

    def generate(self, requests: list) -> list:
        """One Answer per PoemRequest with a tune; every row of every request decodes together."""
        import secrets

        from model.decode import Row, best_candidates
        from model.requests import E_INTERNAL, Answer, RequestError
        from model.titles import encode_title

        answers: list = [None] * len(requests)
        rows: list[Row] = []
        forms: dict[int, tuple] = {}
        for ji, request in enumerate(requests):
            try:
                if request.seed is None:
                    request.seed = secrets.randbits(63)
                forms[ji] = self.form_of(request)
                theme = request.title or "".join(request.keywords)
                title = (encode_title(_simplified(theme), self.vocab, self.title_len)
                         if theme and self.title_len else None)
                for k in range(request.n):
                    rng = np.random.default_rng([request.seed, k, 7])
                    z = (np.asarray(request.latent, np.float32) if request.latent is not None
                         else float(request.latent_scale) * rng.standard_normal(self.latent_dim).astype(np.float32))
                    plan = plan_ci(request, forms[ji][1], self.vocab, self.tables, self.tunes.rhymes,
                                   np.random.default_rng([request.seed, k, 11]))
                    rows += [Row(ji, k, plan, z, request.max_repeat, float(request.temperature), float(request.top_p),
                                 float(request.min_p), request.tone_mode, request.seed, request.novelty,
                                 candidate=c, best_of=request.best_of, title=title)
                             for c in range(max(1, request.best_of))]
            except RequestError as exc:
                answers[ji] = Answer.error(request.request_id, exc.code, exc.message)
        if rows:
            tokens, relaxed, logp = self._decode(rows, [0] * len(rows))
            lines = [self._lines(t, r.plan) for t, r in zip(tokens, rows)]
            scores = self._scores(rows, lines, relaxed, logp)
            keep = best_candidates(rows, scores)
            self._renew_copies([rows[i] for i in keep], lines, relaxed, keep)
            by_job: dict[int, list] = {}
            for i in keep:
                r = rows[i]
                by_job.setdefault(r.job_index, []).append(
                    self._poem(requests[r.job_index], forms[r.job_index], r, lines[i], bool(relaxed[i]),
                               float(scores[i])))
            for ji, poems in by_job.items():
                answers[ji] = Answer(request_id=requests[ji].request_id, ok=True, poems=poems)
        return [a if a is not None else Answer.error(requests[i].request_id, E_INTERNAL, "no result")
                for i, a in enumerate(answers)]

    def _decode(self, rows: list, attempts: list[int], with_logp: bool | None = None):
        """model.decode.decode_rows with the 词 form id: tokens, relaxed, mean log-probability per row."""
        from model.decode import decode_rows

        decoded = decode_rows(self.decoder, rows, attempts, with_logp, self.max_rows, self.latent_dim,
                              self.title_len, lambda row: FORM_ID)
        return decoded.tokens, decoded.relaxed, decoded.logp

    def _lines(self, tokens: np.ndarray, plan) -> list[str]:
        return self.vocab.decode_lines(tokens[:plan.length])

    def _scores(self, rows: list, lines: list[list[str]], relaxed: np.ndarray, logp: np.ndarray) -> np.ndarray:
        """Best-of-K's score as for 诗 (model.rescore.ScoreWeights): the mean log-probability, less
        the share of character pairs no poet wrote and a little per repeated character; relaxed or
        copying candidates lose to any other."""
        from model.decode import COPY_PENALTY, RELAXED_PENALTY
        from model.rescore import ScoreWeights, unattested_share

        w = ScoreWeights()
        scores = logp.astype(np.float64).copy()
        for i, ls in enumerate(lines):
            text = "".join(ls)
            scores[i] -= w.repeat * (len(text) - len(set(text)))
            if self.pairs is not None and w.unattested:
                scores[i] -= w.unattested * unattested_share(self.pairs, [[self.vocab.id(c) for c in ln] for ln in ls])
            if relaxed[i]:
                scores[i] -= RELAXED_PENALTY
            if self.copied(rows[i].plan, ls):
                scores[i] -= COPY_PENALTY
        return scores

    def copied(self, plan, lines: list[str]) -> bool:
        """A 句 of NOVELTY_MIN_CHARS or more, not all of it kept by the user, that the corpus holds."""
        from model.constraints import FREE

        starts = line_starts([len(x) for x in lines])
        for line, start in zip(lines, starts):
            if len(line) >= NOVELTY_MIN_CHARS and (plan.forced[start:start + len(line)] == FREE).any():
                if any(line in table for table in self.novelty):
                    return True
        return False

    def _renew_copies(self, kept: list, lines: list, relaxed: np.ndarray, keep: list[int], retries: int = 4) -> None:
        """Re-decode kept rows that still copy a corpus 句, with fresh draws (lines and relaxed in place)."""
        bad = [k for k, r in enumerate(kept) if r.novelty and self.copied(r.plan, lines[keep[k]])]
        for attempt in range(1, retries + 1):
            if not bad:
                return
            tokens, rel, _ = self._decode([kept[k] for k in bad], [attempt] * len(bad), with_logp=False)
            for k, t, flag in zip(bad, tokens, rel):
                lines[keep[k]] = self._lines(t, kept[k].plan)
                relaxed[keep[k]] = flag
            bad = [k for k in bad if self.copied(kept[k].plan, lines[keep[k]])]

    def _poem(self, request, tune_form: tuple, row, lines: list[str], relaxed: bool, score: float) -> dict:
        from verse import tunes as tune_table

        tune, form = tune_form
        verdict = tune_table.check(lines, form, self.tunes.rhymes)
        shown = [_traditional(x) for x in lines] if request.traditional else lines
        marks = [ln.mark for ln in form.lines]
        out = {"text": ci_text(shown, marks, form.stanza_break), "lines": shown, "marks": marks,
               "form": CI_FORM, "tune": tune.name, "stanza_break": form.stanza_break,
               "pattern": form.pattern(), "rhyme_kind": form.rhyme_kind,
               "seed": request.seed, "index": row.poem_index,
               "novel": (not self.copied(row.plan, lines)) if request.novelty else None,
               "relaxed": relaxed, "form_ok": verdict.form_ok, "rhyme_ok": verdict.rhyme_ok,
               "tone_rate": round(verdict.tone_rate, 4),
               "score": round(score, 4) if request.best_of > 1 else None, "best_of": request.best_of,
               "style": "", "title": _traditional(request.title) if request.traditional else request.title,
               "mu": []}
        if request.traditional:
            out["lines_simplified"] = lines
        return out


def ci_text(lines: list[str], marks: list[str] | str, stanza_break: int | None) -> str:
    """A ci as text: each 句 with its mark, the 上片 and the 下片 on two rows."""
    head = "".join(x + m for x, m in zip(lines[:stanza_break], marks[:stanza_break])) if stanza_break else ""
    tail_from = stanza_break or 0
    tail = "".join(x + m for x, m in zip(lines[tail_from:], marks[tail_from:]))
    return f"{head}\n{tail}" if head else tail


def _simplified(text: str) -> str:
    from verse import script
    return script.to_simplified(text, lenient=True)


def _traditional(text: str) -> str:
    from verse import script
    return script.to_traditional(text, lenient=True)
