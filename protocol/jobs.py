"""The job protocol between the bot and the workers: messages, their JSON form, and request checks.

No TensorFlow or Redis import here: the bot builds and validates jobs with this module alone.
"""
from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable, Collection, Literal, Union

from verse.forms import TYPED_LINE_BREAKS, is_han, split_lines  # split_lines: callers find it here
from protocol.keys import JOB_FIELD, RESULT_FIELD
from protocol.sampling import COUPLET_TEMPERATURE, DEFAULT as SAMPLING
# The request's limits and codes are protocol.spec's; imported here too, where callers have long found them.
from protocol.spec import (E_IMPOSSIBLE, E_INVALID, E_UNKNOWN_CHARS, E_UNKNOWN_STYLE, IGNORED_CHARS, MAX_BEST_OF,
                           MAX_KEYWORDS, MAX_LIKE_TEXTS, MAX_STYLE_CHARS, MAX_TEXT_CHARS, MAX_TITLE_CHARS,
                           TEMPERATURE_RANGE, PoemSpec, clean_text, parse_spec)

# 2: a generate job carries its request whole (GenerateJob.spec) and its Result brings it back. A
# version-1 message (flat fields, no spec) still reads; an older build refuses version 2 by name.
PROTOCOL_VERSION = 2
READABLE_VERSIONS = (1, 2)

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
# The request's own limits (title, keywords, example poems, style, sampling) are protocol.spec's.
MAX_ENCODE_TEXTS = 64
MAX_REPEAT_RANGE = (1, 8)
MAX_LATENT_DIM = 1024

# Error codes carried by Result.error_code; the bot maps them to user messages. E_INVALID,
# E_IMPOSSIBLE, E_UNKNOWN_CHARS and E_UNKNOWN_STYLE (a refused request) are protocol.spec's.
E_BAD_MESSAGE = "bad_message"       # the stream entry could not be parsed (unknown version, ...)
E_DEAD_LETTER = "dead_letter"       # failed on every delivery; moved to the dead-letter stream
E_INTERNAL = "internal"             # the worker failed while decoding
E_NO_MODEL = "no_model"
E_COUPLET_LENGTH = "couplet_length"  # a 上联 shorter or longer than COUPLET_LENGTHS
E_NO_COUPLET_MODEL = "no_couplet_model"  # the worker serves poems but has no couplet model
E_NO_CI_MODEL = "no_ci_model"        # the worker serves poems but has no 词 model (model/pretrained/ci)


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
    tune: str = ""                     # a 词牌 (verse.tunes canonical name): a 词 of its main form
    created_at: float = field(default_factory=time.time)
    reply: dict[str, Any] = field(default_factory=dict)  # opaque to the worker; echoed in the Result
    # What the user asked for, whole (protocol.spec, its to_wire()): the worker maps it onto the fields
    # above (worker.request) and echoes it in the Result. None: the fields above are the request.
    spec: dict[str, Any] | None = None

    kind = "generate"


def generate_job(spec: PoemSpec, *, n: int = 1, seed: int | None = None, chat_id: int | None = None,
                 user_id: int | None = None, reply: dict[str, Any] | None = None) -> GenerateJob:
    """The job that asks a worker for n poems of spec (the bot's, the daily poem's, inline mode's)."""
    return GenerateJob(chat_id=chat_id, user_id=user_id, n=n, seed=seed, spec=spec.to_wire(),
                       reply=dict(reply or {}))


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
    temperature: float = COUPLET_TEMPERATURE
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
    spec: dict[str, Any] | None = None                   # the job's spec (protocol.spec wire form), echoed

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
    if version not in READABLE_VERSIONS:
        raise JobFormatError(f"message has protocol version {version!r}; this build reads "
                             f"versions {', '.join(map(str, READABLE_VERSIONS))} (upgrade the older side)")
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
        if job.spec is not None and not isinstance(job.spec, dict):
            raise JobFormatError("spec must be a JSON object")
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

def _check(condition: bool, code: str, message: str) -> None:
    if not condition:
        raise ValidationError(code, message)


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def validate_generate(job: GenerateJob, chars: Callable[[str], bool] | None = None,
                      to_simplified: Callable[[str], str] | None = None,
                      styles: Collection[str] | None = None) -> GenerateJob:
    """Check a job's model settings and, through protocol.spec.parse_spec (the one check of a request),
    its request fields; raise ValidationError with an English message. Returns the job with form name,
    acrostic, keywords, title, fixed lines and example poems normalised.

    chars(c) says whether the model can write character c (e.g. `vocab.__contains__`); without it
    only the shape of the request is checked. to_simplified maps user text to the model's script.
    styles: the style ids that can be served (the worker's adapters); None skips that check.
    """
    # Field types first: a job read from the stream holds whatever JSON its sender wrote, and a
    # wrong type must be refused here, not raise TypeError mid-batch (the worker would then retry
    # the whole batch one job at a time and dead-letter this one only after every delivery).
    _check(isinstance(job.n, int) and 1 <= job.n <= MAX_N, E_INVALID,
           f"n must be between 1 and {MAX_N}")
    _check(job.tone_mode in TONE_MODES, E_INVALID, f"tone_mode must be one of {TONE_MODES}")
    _check(job.rhyme in RHYME_MODES, E_INVALID, f"rhyme must be one of {RHYME_MODES}")
    lo_r, hi_r = MAX_REPEAT_RANGE
    _check(isinstance(job.max_repeat, int) and lo_r <= job.max_repeat <= hi_r, E_INVALID,
           f"max_repeat must be between {lo_r} and {hi_r}")
    _check(job.seed is None or (isinstance(job.seed, int) and 0 <= job.seed < 2**63), E_INVALID,
           "seed must be a non-negative integer")
    if job.latent is not None:
        _check(isinstance(job.latent, list) and 0 < len(job.latent) <= MAX_LATENT_DIM
               and all(isinstance(x, (int, float)) for x in job.latent), E_INVALID,
               "latent must be a list of numbers")
    sampling = {"temperature": job.temperature, "top_p": job.top_p, "min_p": job.min_p, "best_of": job.best_of,
                "latent_scale": job.latent_scale}
    spec = parse_spec({"form": job.form, "title": job.title, "keywords": job.keywords, "acrostic": job.acrostic,
                       "style": job.style, "like_texts": job.like_texts, "kept_lines": job.fixed_lines,
                       "sampling": sampling, "tune": job.tune},
                      chars=chars, to_simplified=to_simplified, styles=styles)
    if not isinstance(spec, PoemSpec):
        raise ValidationError(spec.result_code, spec.message)
    job.form, job.title, job.acrostic, job.tune = spec.form.name, spec.title, spec.acrostic, spec.tune
    job.keywords, job.fixed_lines, job.like_texts = list(spec.keywords), spec.kept, list(spec.like_texts)
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
