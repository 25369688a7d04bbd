"""Data factories shared by the tests (real objects built from synthetic text, never the corpus)."""
from __future__ import annotations

import random

from corpus.reader import Corpus
from protocol.spec import PoemSpec, parse_spec, require
from verse.forms import FORMS

CHARS = "春夏秋冬风花雪月山水江天云雨人归来去明日"     # all in conftest's tiny vocabulary


def random_corpus(n: int, seed: int, authors: int = 5) -> Corpus:
    """n poems of the four forms cycling, uniform random characters of CHARS, in the train split,
    by `authors` poets in turn, Tang and Song alternating, with a rank growing with the index."""
    rng = random.Random(seed)
    corpus = Corpus()
    names = list(FORMS)
    for k in range(n):
        form = FORMS[names[k % 4]]
        lines = ["".join(rng.choice(CHARS) for _ in range(form.line_len)) for _ in range(form.n_lines)]
        author = f"作者{k % authors}"
        corpus.append(id=f"p{k}", dynasty="tang" if k % 2 else "song", author=author, title=f"题{k}",
                      author_t=author, title_t=f"題{k}", form=form.name, split="train",
                      lines=lines, lines_t=lines, puncts="，。" * (form.n_lines // 2), strains=None,
                      rank=k * 10)
    return corpus


def spec(form: str = "七绝", **fields: object) -> PoemSpec:
    """A checked PoemSpec of form with these fields (protocol.spec.parse_spec's names)."""
    return require(parse_spec({"form": form, **fields}))
