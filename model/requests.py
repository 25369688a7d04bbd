"""The model's own requests and answers: what Generator and CoupletWriter take and give back.

Plain dataclasses, no TensorFlow and no wire format: the worker checks a job from the stream once
(protocol.jobs' validate_*), maps it to one of these and maps the Answer back to a Result
(worker.request). Training, the benchmarks and `poembot generate` build them directly. A request
reaching the model is taken as checked; the model refuses only what it alone can know (a character
outside its vocabulary, a latent of the wrong size, a style it does not hold, constraints that no
plan meets) with RequestError.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Union

from protocol.sampling import COUPLET_TEMPERATURE, DEFAULT as SAMPLING

# Error codes of a refused or failed request. The same strings as protocol.jobs' E_* (a test holds
# them equal), so the worker passes them through to the bot unchanged.
E_INVALID = "invalid_request"       # a value the model cannot use (a form it does not write, a latent's size)
E_IMPOSSIBLE = "impossible"         # constraints that no poem of the form can meet
E_UNKNOWN_CHARS = "unknown_chars"   # characters the model cannot write
E_UNKNOWN_STYLE = "unknown_style"   # a style adapter the model does not hold
E_INTERNAL = "internal"             # decoding failed
E_NO_MODEL = "no_model"             # a part of the request needs a model this one lacks

TONE_MODES: tuple[str, ...] = ("hard", "soft", "off")   # index order of the decoder's tone table


class RequestError(ValueError):
    """A request the model refuses; code is one of the E_* above."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def new_request_id() -> str:
    return uuid.uuid4().hex


@dataclass
class PoemRequest:
    """n poems of one form under its constraints (model.constraints.plan_poem lays them out)."""
    request_id: str = field(default_factory=new_request_id)   # opaque: pairs the Answer with its job
    form: str = "七绝"                                   # a name of verse.forms.FORMS
    acrostic: str = ""                                   # 藏头: the first char of line 1, 2, ...
    keywords: list[str] = field(default_factory=list)    # each must appear (a word stays on one line)
    fixed_lines: dict[int, str] = field(default_factory=dict)  # 0-based line index -> kept text
    like_texts: list[str] = field(default_factory=list)  # latent near these poems' mean μ
    latent: list[float] | None = None                    # an explicit z; wins over like_texts
    tone_mode: str = "soft"                              # one of TONE_MODES
    rhyme: str = "pingshui"                              # "pingshui" or "none"
    novelty: bool = True                                 # no line copied from the training corpus
    max_repeat: int = 2                                  # most times one character may appear
    temperature: float = SAMPLING.temperature
    top_p: float = SAMPLING.top_p
    min_p: float = SAMPLING.min_p
    latent_scale: float = SAMPLING.latent_scale          # spread of a latent drawn from the prior
    seed: int | None = None                              # None: the model draws one and reports it
    traditional: bool = False                            # poems shown in traditional characters
    n: int = 1                                           # poems wanted
    best_of: int = SAMPLING.best_of                      # candidates sampled per poem (best kept)
    style: str = ""                                      # a style adapter's id; "" = the base model
    title: str = ""                                      # the poem's occasion (送友人, 秋夜)
    tune: str = ""                                       # a 词牌 (verse.tunes canonical name): a 词 of its main form

    kind = "generate"


@dataclass
class EncodeRequest:
    """The encoder's μ (and a prosody verdict) of each of texts, typed poems."""
    request_id: str = field(default_factory=new_request_id)
    texts: list[str] = field(default_factory=list)

    kind = "encode"


@dataclass
class CoupletRequest:
    """A 下联 for a 上联 (first), or a whole 春联 from theme words (first empty)."""
    request_id: str = field(default_factory=new_request_id)
    first: str = ""                                      # the 上联, simplified; "" asks for one
    theme: list[str] = field(default_factory=list)       # words the written 上联 should hold
    n: int = 3                                           # distinct 下联 wanted, best first
    best_of: int = 24                                    # candidates sampled before rescoring (a job's default)
    temperature: float = COUPLET_TEMPERATURE
    seed: int | None = None

    kind = "couplet"


Request = Union[PoemRequest, EncodeRequest, CoupletRequest]


@dataclass
class Answer:
    """What the model gives back for one request: poems, or why there are none."""
    request_id: str
    ok: bool
    # One dict per poem: text, lines, form, rhyme_ok, tone_rate, form_ok, mu, seed (poems) ...
    poems: list[dict[str, Any]] = field(default_factory=list)
    error_code: str | None = None
    error_message: str | None = None
    kind: str = "generate"                               # the request's kind

    @classmethod
    def error(cls, request_id: str, code: str, message: str, kind: str = "generate") -> "Answer":
        return cls(request_id=request_id, ok=False, error_code=code, error_message=message, kind=kind)
