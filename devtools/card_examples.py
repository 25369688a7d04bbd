"""`poembot card examples`: the example cards in docs/cards, drawn from poems the model writes.

Each example is a fixed request with a fixed seed, so running the command again gives the same
poems (with the same model) and the same PNGs.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

from bot.card import png_bytes, poem_card
from model.requests import PoemRequest
from protocol.spec import parse_spec, require

EXAMPLE_DAY = date(2026, 12, 1)


@dataclass(frozen=True)
class Example:
    name: str
    form: str
    keywords: tuple[str, ...] = ()
    acrostic: str = ""
    traditional: bool = False


EXAMPLES = (
    Example("wujue", "五绝", keywords=("明月",)),
    Example("qijue", "七绝", keywords=("春风",)),
    Example("wulv", "五律", keywords=("秋山",)),
    Example("qilv", "七律", keywords=("江南",)),
    Example("acrostic", "七绝", acrostic="春夏秋冬"),
    Example("traditional", "七律", keywords=("故园",), traditional=True),
)


def write_examples(out: Path, model_dir: Path, seed: int = 2026) -> list[Path]:
    """Write one PNG per example into out; returns their paths."""
    from model.generate import load_generator      # TensorFlow: only this command needs it

    generator = load_generator(model_dir)
    jobs = [PoemRequest(form=e.form, keywords=list(e.keywords), acrostic=e.acrostic, seed=seed + i)
            for i, e in enumerate(EXAMPLES)]
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for example, job, result in zip(EXAMPLES, jobs, generator.generate(jobs)):
        if not result.ok:
            raise RuntimeError(f"{example.name}: {result.error_message}")
        spec = require(parse_spec({"form": example.form, "keywords": list(example.keywords),
                                   "acrostic": example.acrostic}))
        card = poem_card(result.poems[0]["lines"], example.form, spec, example.traditional, EXAMPLE_DAY)
        path = out / f"{example.name}.png"
        path.write_bytes(png_bytes(card))
        paths.append(path)
    return paths
