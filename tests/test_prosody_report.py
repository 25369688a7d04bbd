"""Tests for corpus/prosody_report.py on a small synthetic corpus, and the slow real-corpus acceptance.

The slow test needs `poembot corpus build` and runs only with POEMBOT_SLOW=1.
"""
from __future__ import annotations

import json
import os

import opencc
import pytest

from verse import prosody
from corpus.reader import Corpus
from verse.forms import FORM_NAMES, classify
from test_prosody import DONG, WU, compose
from corpus.prosody_report import format_reference, prosody_reference

S2T = opencc.OpenCC("s2t")


def _add(corpus: Corpus, pid: str, lines: list[str], split: str = "test", dynasty: str = "tang",
         strains: list[str] | None = None) -> None:
    lines_t = [S2T.convert(x) for x in lines]
    corpus.append(id=pid, dynasty=dynasty, author="甲", title="乙", author_t="甲", title_t="乙",
                  form=classify(lines), split=split, lines=lines, lines_t=lines_t,
                  puncts="".join("，" if i % 2 == 0 else "。" for i in range(len(lines))),
                  strains=strains, rank=0)


@pytest.fixture
def corpus() -> Corpus:
    c = Corpus()
    pattern = "平起首句入韵"
    for k in range(2):
        _add(c, f"q{k}", compose("七绝", pattern, DONG, offset=k),
             strains=prosody.named_patterns("七绝")[pattern])
    broken = compose("七绝", pattern, DONG, offset=7)
    broken[3] = broken[3][:-1] + "花"                     # 六麻: breaks the rhyme
    _add(c, "q-broken", broken)
    _add(c, "l-song", compose("五律", "仄起首句不入韵", DONG), dynasty="song")
    _add(c, "w-ze", compose("五绝", "仄起首句不入韵", WU))
    _add(c, "train-only", compose("七律", pattern, DONG), split="train")
    _add(c, "other", ["天人春花山", "日月水石"])
    return c


def test_reference_rates_per_form(corpus: Corpus):
    ref = prosody_reference(corpus, split="test")
    qi = ref["forms"]["七绝"]
    assert qi["n"] == 3 and qi["rhyme_rate"] == pytest.approx(2 / 3)
    assert qi["jinti_rate"] == pytest.approx(2 / 3) and qi["strains_ping_ends"] == 1.0
    assert [e["id"] for e in qi["not_rhyming_examples"]] == ["q-broken"]
    assert "花" in qi["not_rhyming_examples"][0]["text"]
    assert ref["forms"]["七律"]["n"] == 0                  # train only
    assert ref["forms"]["五绝"]["rhyme_rate"] == 1.0 and ref["forms"]["五绝"]["ping_rhyme_rate"] == 0.0
    assert ref["tang"]["五律"]["n"] == 0 and ref["forms"]["五律"]["n"] == 1
    assert set(ref["real_rhyme_rate"]) == set(FORM_NAMES) == set(ref["real_tone_rate"])
    assert ref["real_rhyme_rate"]["七绝"] == pytest.approx(2 / 3)
    assert ref["real_tone_rate"]["五律"] == 1.0 and ref["tang_rhyme_rate"]["五绝"] == 1.0
    assert ref["forms"]["七绝"]["rhyme_rate_simplified"] == pytest.approx(2 / 3)
    json.dumps(ref, ensure_ascii=False)


def test_reference_on_all_splits_and_simplified_text(corpus: Corpus):
    ref = prosody_reference(corpus, split=None, traditional=False)
    assert ref["forms"]["七律"]["n"] == 1 and ref["forms"]["七律"]["rhyme_rate"] == 1.0
    assert ref["forms"]["七绝"]["rhyme_rate_traditional"] == pytest.approx(2 / 3)
    text = format_reference(ref)
    assert "Tang only" in text and "七绝" in text and "q-broken" in text


def test_corpus_prosody_command_reads_the_built_corpus(corpus: Corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("POEMBOT_DATA_DIR", str(tmp_path))
    corpus.save(tmp_path / "corpus")
    from typer.testing import CliRunner

    from poembot_cli import app

    run = CliRunner().invoke(app, ["corpus", "prosody", "--split", "test", "--json"])
    assert run.exit_code == 0, run.output
    out = json.loads(run.output)
    assert out["forms"]["七绝"]["n"] == 3 and out["split"] == "test"


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("POEMBOT_SLOW") != "1", reason="needs the built corpus; POEMBOT_SLOW=1")
def test_real_corpus_acceptance():
    ref = prosody_reference(Corpus.load(), split="test")
    tang = ref["tang_rhyme_rate"]
    assert tang["七绝"] >= 0.95 and tang["七律"] >= 0.95, tang
    assert tang["五绝"] >= 0.88 and tang["五律"] >= 0.88, tang
    assert all(ref["forms"][f]["n"] > 0 for f in FORM_NAMES)
    # Most of these real poems are 近体 under our judge, and 平 rhymes dominate the 7-character forms.
    assert ref["tang"]["七律"]["ping_share"] >= 0.95 and ref["tang"]["七律"]["jinti_rate"] >= 0.7
