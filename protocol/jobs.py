"""The job protocol between the bot and the workers: messages, their JSON form, and request checks.

No TensorFlow or Redis import here: the bot builds and validates jobs with this module alone.
"""
from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable, Collection, Literal, Union

from verse.forms import FORMS, cut_lines, is_han, normalise_form_name
from protocol.keys import JOB_FIELD, RESULT_FIELD
from protocol.sampling import DEFAULT as SAMPLING

PROTOCOL_VERSION = 1

ToneMode = Literal["hard", "soft", "off"]
RhymeMode = Literal["pingshui", "none"]
TONE_MODES: tuple[str, ...] = ("hard", "soft", "off")
RHYME_MODES: tuple[str, ...] = ("pingshui", "none")

# Limits that keep one request from monopolising a batch or a message.
MAX_N = 10
# Best-of-K: each poem is sampled K times in the same batch and the best candidate kept
# (model/decode.py, Generator._select; the default in protocol/sampling.py); a job may ask for 1
# (fastest) up to MAX_BEST_OF.
DEFAULT_BEST_OF = SAMPLING.best_of
MAX_BEST_OF = 16
MAX_TITLE_CHARS = 24          # a title names an occasion: 送友人归江南, 秋夜, 大雪
MAX_KEYWORDS = 6
MAX_LIKE_TEXTS = 8
MAX_TEXT_CHARS = 400          # one like-text or one encode text
MAX_ENCODE_TEXTS = 64
MAX_REPEAT_RANGE = (1, 8)
TEMPERATURE_RANGE = (0.05, 2.0)
MAX_LATENT_DIM = 1024
MAX_STYLE_CHARS = 32
# Punctuation and spacing users type inside acrostics, keywords and lines; never part of a poem's chars.
TYPED_LINE_BREAKS = "，。、？！；：,.?!;:\n\r"     # where a typed poem's lines end
IGNORED_CHARS = set(" \t\r\n，。、？！；：,.?!;:·「」『』“”\"'《》()（）")

# Error codes carried by Result.error_code; the bot maps them to user messages.
E_INVALID = "invalid_request"       # malformed field values (bad form, n out of range, ...)
E_IMPOSSIBLE = "impossible"         # constraints that no poem of the form can meet
E_UNKNOWN_CHARS = "unknown_chars"   # characters the model cannot write
E_BAD_MESSAGE = "bad_message"       # the stream entry could not be parsed (unknown version, ...)
E_DEAD_LETTER = "dead_letter"       # failed on every delivery; moved to the dead-letter stream
E_INTERNAL = "internal"             # the worker failed while decoding
E_NO_MODEL = "no_model"
E_UNKNOWN_STYLE = "unknown_style"   # a style no worker has (the message lists those it has)
E_COUPLET_LENGTH = "couplet_length"  # a 上联 shorter or longer than COUPLET_LENGTHS
E_NO_COUPLET_MODEL = "no_couplet_model"  # the worker serves poems but has no couplet model


class JobFormatError(ValueError):
    """A message that cannot be read: wrong version, wrong kind or missing fields."""


class ValidationError(ValueError):
    """A request refused before decoding; code is one of the E_* constants."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def new_job_id() -> str:
    return uuid.uuid4().hex


@dataclass
class GenerateJob:
    job_id: str = field(default_factory=new_job_id)
    chat_id: int | None = None
    user_id: int | None = None
    form: str = "七绝"
    acrostic: str = ""                                   # 藏头: the first char of line 1, 2, ...
    keywords: list[str] = field(default_factory=list)    # each must appear (a word stays on one line)
    fixed_lines: dict[int, str] = field(default_factory=dict)  # 0-based line index -> kept text
    like_texts: list[str] = field(default_factory=list)  # latent near these poems' mean μ
    latent: list[float] | None = None                    # an explicit z; wins over like_texts
    tone_mode: ToneMode = "soft"
    rhyme: RhymeMode = "pingshui"
    novelty: bool = True                                 # no line copied from the training corpus
    max_repeat: int = 2                                  # most times one character may appear
    # Sampling: the defaults are protocol/sampling.py's. Truncation: min-p keeps tokens at least
    # min_p times as likely as the best (one compare per step); top-p < 1 adds the nucleus, a
    # histogram that costs a fifth of a step.
    temperature: float = SAMPLING.temperature
    top_p: float = SAMPLING.top_p
    min_p: float = SAMPLING.min_p
    latent_scale: float = SAMPLING.latent_scale          # spread of a latent drawn from the prior
    seed: int | None = None                              # None: the worker draws one and reports it
    traditional: bool = False                            # reply in traditional characters
    n: int = 1                                           # poems wanted
    best_of: int = DEFAULT_BEST_OF                       # candidates sampled per poem (best kept)
    style: str = ""                    # a style adapter's id (model/styles/ID.npz); "" = the base
    title: str = ""                    # the poem's occasion (送友人, 秋夜); a titled model writes to it
    created_at: float = field(default_factory=time.time)
    reply: dict[str, Any] = field(default_factory=dict)  # opaque to the worker; echoed in the Result

    kind = "generate"


@dataclass
class EncodeJob:
    job_id: str = field(default_factory=new_job_id)
    texts: list[str] = field(default_factory=list)
    created_at: float = field(default_factory=time.time)
    reply: dict[str, Any] = field(default_factory=dict)

    kind = "encode"


# Couplets (对联): a 上联 of 4 to 11 characters; shorter is a phrase, longer is prose.
COUPLET_LENGTHS = (4, 11)
MAX_COUPLET_N = 5                 # 下联 candidates returned for one 上联
MAX_COUPLET_SAMPLES = 64          # candidates sampled before rescoring (best_of)
DEFAULT_COUPLET_SAMPLES = 24
MAX_COUPLET_THEME = 4             # theme words of a /couplet 春 … request


@dataclass
class CoupletJob:
    """A 下联 for a 上联 (first), or a whole 春联 from theme words (first empty): both lines and a 横批."""
    job_id: str = field(default_factory=new_job_id)
    first: str = ""                                      # the 上联; "" asks the worker to write one
    theme: list[str] = field(default_factory=list)       # words the written 上联 should hold (春 mode)
    spring: bool = False                                 # a 春联: the 上联 written from theme words
    n: int = 3                                           # distinct 下联 wanted, best first
    best_of: int = DEFAULT_COUPLET_SAMPLES               # candidates sampled before rescoring
    temperature: float = SAMPLING.temperature
    seed: int | None = None
    traditional: bool = False
    created_at: float = field(default_factory=time.time)
    reply: dict[str, Any] = field(default_factory=dict)

    kind = "couplet"


Job = Union[GenerateJob, EncodeJob, CoupletJob]
JOB_KINDS: dict[str, type] = {"generate": GenerateJob, "encode": EncodeJob, "couplet": CoupletJob}


@dataclass
class Result:
    job_id: str
    ok: bool
    # One dict per poem: text, lines, form, rhyme_ok, tone_rate, form_ok, mu, seed (generate) ...
    poems: list[dict[str, Any]] = field(default_factory=list)
    error_code: str | None = None
    error_message: str | None = None
    worker_id: str | None = None
    finished_at: float = field(default_factory=time.time)
    kind: str = "generate"
    reply: dict[str, Any] = field(default_factory=dict)  # the job's reply metadata, echoed

    @classmethod
    def error(cls, job_id: str, code: str, message: str, **extra: Any) -> "Result":
        return cls(job_id=job_id, ok=False, error_code=code, error_message=message, **extra)


# ---------------------------------------------------------------------------------------------
# Serialisation: JSON with a version field "v" and a "kind" field.

def _payload(obj: Any, kind: str | None) -> str:
    body = asdict(obj)
    body["v"] = PROTOCOL_VERSION
    if kind is not None:
        body["kind"] = kind
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def _read(text: str | bytes) -> dict[str, Any]:
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise JobFormatError(f"message is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise JobFormatError("message is not a JSON object")
    version = body.pop("v", None)
    if version != PROTOCOL_VERSION:
        raise JobFormatError(f"message has protocol version {version!r}; this build reads "
                             f"version {PROTOCOL_VERSION} (upgrade the older side)")
    return body


def _build(cls: type, body: dict[str, Any]) -> Any:
    known = {f.name for f in fields(cls)}
    # Unknown fields are dropped so a newer producer can add optional fields within one version.
    kwargs = {k: v for k, v in body.items() if k in known}
    if "job_id" in known and not isinstance(kwargs.get("job_id"), str):
        raise JobFormatError("message has no job_id")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise JobFormatError(f"bad {cls.__name__}: {exc}") from None


def job_to_json(job: Job) -> str:
    return _payload(job, job.kind)


def job_from_json(text: str | bytes) -> Job:
    body = _read(text)
    kind = body.pop("kind", None)
    if kind not in JOB_KINDS:
        raise JobFormatError(f"unknown job kind {kind!r}")
    job = _build(JOB_KINDS[kind], body)
    if not isinstance(job.reply, dict):       # the bot routes the result by it: unreadable otherwise
        raise JobFormatError("reply must be a JSON object")
    if isinstance(job, GenerateJob):
        # JSON object keys are strings; the line index is an int.
        try:
            job.fixed_lines = {int(k): str(v) for k, v in (job.fixed_lines or {}).items()}
        except (TypeError, ValueError, AttributeError):
            raise JobFormatError("fixed_lines must map line numbers to text") from None
    return job


def result_to_json(result: Result) -> str:
    # Result.kind is the kind of job it answers ("generate" | "encode" | "couplet").
    return _payload(result, None)


def result_from_json(text: str | bytes) -> Result:
    return _build(Result, _read(text))


def job_fields(job: Job) -> dict[str, str]:
    """Fields for XADD to the jobs stream."""
    return {JOB_FIELD: job_to_json(job)}


def result_fields(result: Result) -> dict[str, str]:
    """Fields for XADD to the results stream."""
    return {RESULT_FIELD: result_to_json(result)}


def _field(entry: dict, name: str) -> str | bytes:
    value = entry.get(name, entry.get(name.encode()))
    if value is None:
        raise JobFormatError(f"stream entry has no {name!r} field")
    return value


def job_from_fields(entry: dict) -> Job:
    """Parse a jobs-stream entry (str or bytes keys, as redis-py returns them)."""
    return job_from_json(_field(entry, JOB_FIELD))


def result_from_fields(entry: dict) -> Result:
    return result_from_json(_field(entry, RESULT_FIELD))


def job_id_from_fields(entry: dict) -> str | None:
    """Best-effort job_id of an entry that may not parse, so its sender can still get an error."""
    try:
        raw = _field(entry, JOB_FIELD)
        body = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        job_id = body.get("job_id") if isinstance(body, dict) else None
        return job_id if isinstance(job_id, str) else None
    except (JobFormatError, ValueError, UnicodeDecodeError):
        return None


def reply_from_fields(entry: dict) -> dict[str, Any]:
    """Best-effort reply metadata of an entry that may not parse."""
    try:
        raw = _field(entry, JOB_FIELD)
        body = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        reply = body.get("reply") if isinstance(body, dict) else None
        return reply if isinstance(reply, dict) else {}
    except (JobFormatError, ValueError, UnicodeDecodeError):
        return {}


# ---------------------------------------------------------------------------------------------
# Validation: cheap checks the bot runs before enqueueing and the worker runs again before decoding.

def split_lines(text: str) -> list[str]:
    """A poem typed with any punctuation or line breaks → its lines (spaces inside a line dropped)."""
    typed = "".join(c for c in text if c.strip() or c in "\n\r")
    lines, _ = cut_lines(typed, TYPED_LINE_BREAKS)
    return [clean for line in lines if (clean := clean_text(line))]


def clean_text(text: str) -> str:
    """Characters of text with user punctuation and spaces dropped."""
    return "".join(c for c in text if c not in IGNORED_CHARS)


def _check(condition: bool, code: str, message: str) -> None:
    if not condition:
        raise ValidationError(code, message)


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def validate_generate(job: GenerateJob, chars: Callable[[str], bool] | None = None,
                      to_simplified: Callable[[str], str] | None = None,
                      styles: Collection[str] | None = None) -> GenerateJob:
    """Normalise and check a request; raise ValidationError with a user-facing message.

    chars(c) says whether the model can write character c (e.g. `vocab.__contains__`); without it
    only the shape of the request is checked. to_simplified maps user text to the model's script.
    styles: the style ids that can be served (the worker's adapters); None skips that check.
    Returns the job with form name, acrostic, keywords and fixed lines normalised.
    """
    conv = to_simplified or (lambda s: s)
    # Field types first: a job read from the stream holds whatever JSON its sender wrote, and a
    # wrong type must be refused here, not raise TypeError mid-batch (the worker would then retry
    # the whole batch one job at a time and dead-letter this one only after every delivery).
    _check(isinstance(job.acrostic, str), E_INVALID, "acrostic must be text")
    _check(_strings(job.keywords), E_INVALID, "keywords must be a list of words")
    _check(_strings(job.like_texts), E_INVALID, "like_texts must be a list of poems")
    _check(isinstance(job.fixed_lines, dict), E_INVALID, "fixed_lines must map line numbers to text")
    form_name = normalise_form_name(str(job.form)) if job.form is not None else None
    _check(form_name is not None, E_INVALID,
           f"unknown form {job.form!r}; choose one of {', '.join(FORMS)}")
    form = FORMS[form_name]
    job.form = form_name
    _check(isinstance(job.n, int) and 1 <= job.n <= MAX_N, E_INVALID,
           f"n must be between 1 and {MAX_N}")
    _check(isinstance(job.best_of, int) and 1 <= job.best_of <= MAX_BEST_OF, E_INVALID,
           f"best_of must be between 1 and {MAX_BEST_OF}")
    _check(job.tone_mode in TONE_MODES, E_INVALID, f"tone_mode must be one of {TONE_MODES}")
    _check(job.rhyme in RHYME_MODES, E_INVALID, f"rhyme must be one of {RHYME_MODES}")
    lo, hi = TEMPERATURE_RANGE
    _check(isinstance(job.temperature, (int, float)) and lo <= job.temperature <= hi, E_INVALID,
           f"temperature must be between {lo} and {hi}")
    _check(isinstance(job.top_p, (int, float)) and 0.0 < job.top_p <= 1.0, E_INVALID,
           "top_p must be in (0, 1]")
    _check(isinstance(job.min_p, (int, float)) and 0.0 <= job.min_p < 1.0, E_INVALID,
           "min_p must be in [0, 1)")
    lo_r, hi_r = MAX_REPEAT_RANGE
    _check(isinstance(job.max_repeat, int) and lo_r <= job.max_repeat <= hi_r, E_INVALID,
           f"max_repeat must be between {lo_r} and {hi_r}")
    _check(job.seed is None or (isinstance(job.seed, int) and 0 <= job.seed < 2**63), E_INVALID,
           "seed must be a non-negative integer")
    _check(isinstance(job.style, str) and len(job.style) <= MAX_STYLE_CHARS
           and not any(c.isspace() for c in job.style), E_INVALID,
           f"style must be a name of at most {MAX_STYLE_CHARS} characters without spaces")
    if styles is not None and job.style:
        _check(job.style in styles, E_UNKNOWN_STYLE,
               f"no style {job.style!r}; the styles are: {', '.join(sorted(styles)) or 'none'}")
    _check(isinstance(job.latent_scale, (int, float)) and 0.0 <= job.latent_scale <= 2.0, E_INVALID,
           "latent_scale must be between 0 and 2")
    _check(isinstance(job.title, str), E_INVALID, "title must be text")
    job.title = conv(clean_text(job.title))
    _check(len(job.title) <= MAX_TITLE_CHARS, E_INVALID,
           f"a title has at most {MAX_TITLE_CHARS} characters")
    if job.latent is not None:
        _check(isinstance(job.latent, list) and 0 < len(job.latent) <= MAX_LATENT_DIM
               and all(isinstance(x, (int, float)) for x in job.latent), E_INVALID,
               "latent must be a list of numbers")

    job.acrostic = conv(clean_text(job.acrostic or ""))
    _check(len(job.acrostic) <= form.n_lines, E_IMPOSSIBLE,
           f"an acrostic of {len(job.acrostic)} characters needs more than the "
           f"{form.n_lines} lines of a {form.name}")

    _check(len(job.keywords) <= MAX_KEYWORDS, E_INVALID, f"at most {MAX_KEYWORDS} keywords")
    keywords = [conv(clean_text(k)) for k in job.keywords]
    job.keywords = [k for k in keywords if k]
    for k in job.keywords:
        _check(len(k) <= form.line_len, E_IMPOSSIBLE,
               f"keyword {k!r} is longer than a line of a {form.name} ({form.line_len} characters)")

    fixed: dict[int, str] = {}
    for index, text in (job.fixed_lines or {}).items():
        try:
            i = int(index)
        except (TypeError, ValueError):
            raise ValidationError(E_INVALID, f"fixed line number {index!r} is not a number") from None
        _check(0 <= i < form.n_lines, E_IMPOSSIBLE,
               f"a {form.name} has lines 1..{form.n_lines}; there is no line {i + 1}")
        line = conv(clean_text(str(text)))
        _check(len(line) == form.line_len, E_IMPOSSIBLE,
               f"fixed line {i + 1} {line!r} has {len(line)} characters; a {form.name} line has "
               f"{form.line_len}")
        fixed[i] = line
    job.fixed_lines = fixed
    _check(len(fixed) < form.n_lines or not job.keywords, E_IMPOSSIBLE,
           "every line is fixed: there is no room for keywords")
    for i, ch in enumerate(job.acrostic):
        if i in fixed:
            _check(fixed[i][0] == ch, E_IMPOSSIBLE,
                   f"line {i + 1} is fixed as {fixed[i]!r} but the acrostic wants it to start with {ch!r}")

    free_chars = sum(form.line_len - (1 if i < len(job.acrostic) else 0)
                     for i in range(form.n_lines) if i not in fixed)
    kw_chars = sum(len(k) for k in job.keywords)
    _check(kw_chars <= free_chars, E_IMPOSSIBLE,
           f"the keywords need {kw_chars} characters but only {free_chars} are free")

    _check(len(job.like_texts) <= MAX_LIKE_TEXTS, E_INVALID, f"at most {MAX_LIKE_TEXTS} example poems")
    job.like_texts = [conv(str(t)) for t in job.like_texts]
    for t in job.like_texts:
        _check(len(t) <= MAX_TEXT_CHARS, E_INVALID,
               f"an example poem may have at most {MAX_TEXT_CHARS} characters")

    if chars is not None:
        wanted = job.acrostic + "".join(job.keywords) + "".join(fixed.values())
        unknown = sorted({c for c in wanted if not chars(c)})
        _check(not unknown, E_UNKNOWN_CHARS,
               f"the model cannot write {''.join(unknown)}: choose other characters")
        if job.like_texts:
            _check(any(any(chars(c) for c in clean_text(t)) for t in job.like_texts), E_UNKNOWN_CHARS,
                   "the example poems have no characters the model knows")
    return job


def validate_encode(job: EncodeJob) -> EncodeJob:
    _check(_strings(job.texts) and 0 < len(job.texts) <= MAX_ENCODE_TEXTS, E_INVALID,
           f"encode between 1 and {MAX_ENCODE_TEXTS} texts")
    for t in job.texts:
        _check(isinstance(t, str) and 0 < len(t) <= MAX_TEXT_CHARS, E_INVALID,
               f"each text must have 1..{MAX_TEXT_CHARS} characters")
    return job


def is_han_text(text: str) -> bool:
    """Only CJK ideographs (what a 上联 may hold once punctuation and spaces are dropped)."""
    return bool(text) and all(is_han(c) for c in text)


def validate_couplet(job: CoupletJob, to_simplified: Callable[[str], str] | None = None) -> CoupletJob:
    """Normalise and check a couplet request; raise ValidationError with a user-facing message."""
    conv = to_simplified or (lambda s: s)
    _check(isinstance(job.first, str), E_INVALID, "first must be text")
    _check(_strings(job.theme) and len(job.theme) <= MAX_COUPLET_THEME, E_INVALID,
           f"at most {MAX_COUPLET_THEME} theme words")
    _check(isinstance(job.spring, bool), E_INVALID, "spring must be true or false")
    _check(isinstance(job.n, int) and 1 <= job.n <= MAX_COUPLET_N, E_INVALID,
           f"n must be between 1 and {MAX_COUPLET_N}")
    _check(isinstance(job.best_of, int) and job.n <= job.best_of <= MAX_COUPLET_SAMPLES, E_INVALID,
           f"best_of must be between n and {MAX_COUPLET_SAMPLES}")
    lo, hi = TEMPERATURE_RANGE
    _check(isinstance(job.temperature, (int, float)) and lo <= job.temperature <= hi, E_INVALID,
           f"temperature must be between {lo} and {hi}")
    _check(job.seed is None or (isinstance(job.seed, int) and 0 <= job.seed < 2**63), E_INVALID,
           "seed must be a non-negative integer")
    job.first = conv(clean_text(job.first))
    job.theme = [w for w in (conv(clean_text(w)) for w in job.theme) if w]
    if job.first:
        _check(is_han_text(job.first), E_INVALID,
               f"a 上联 is written in Chinese characters only, not {job.first!r}")
        shortest, longest = COUPLET_LENGTHS
        _check(shortest <= len(job.first) <= longest, E_COUPLET_LENGTH,
               f"a 上联 has {shortest} to {longest} characters; this one has {len(job.first)}")
    else:
        _check(job.spring, E_INVALID, "give a 上联, or ask for a 春联 with theme words")
        for w in job.theme:
            _check(is_han_text(w) and len(w) <= 4, E_INVALID,
                   f"a theme word is one to four Chinese characters, not {w!r}")
    return job


def validate_job(job: Job, chars: Callable[[str], bool] | None = None,
                 to_simplified: Callable[[str], str] | None = None) -> Job:
    if isinstance(job, GenerateJob):
        return validate_generate(job, chars, to_simplified)
    if isinstance(job, CoupletJob):
        return validate_couplet(job, to_simplified)
    return validate_encode(job)
