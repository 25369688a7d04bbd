"""The 词 model (model/ci.py): its template, the grown model at step 0, and the writer's constraints.

The writer runs over conftest's tiny random poem model grown into a ci model (untrained): what the
constraints guarantee — 句 lengths and marks, a rhyme at every slot in one group per set, the tune's
平仄 at hard tone, kept 句 and acrostics — holds whatever the weights are.
"""
from __future__ import annotations

import numpy as np
import pytest

from model.ci import (_EOS, _KNOWN, _REMAINING, _RHYME_SLOT, TEMPLATE_DIM, CiWriter, Shape, ci_text, corpus_shape,
                      encode, line_starts, template)
from model.requests import E_IMPOSSIBLE, PoemRequest
from verse import prosody, tunes
from verse.vocab import COMMA, EOS, PERIOD


def test_the_template_marks_each_rhyme_slot_each_mark_and_the_end() -> None:
    form = tunes.get("浣溪沙").main
    rows = template(Shape.of_form(form))
    assert rows.shape == (6 * 8 + 1, TEMPLATE_DIM)
    slots = [t for t in range(len(rows)) if rows[t, _RHYME_SLOT]]
    starts = line_starts(form.lengths)
    # Lines 1, 2, 3, 5 and 6 rhyme (7·7·7 / 7·7·7, line 4 free): their last characters, nothing else.
    assert slots == [starts[i] + 6 for i in (0, 1, 2, 4, 5)]
    marks = [t for t in range(len(rows) - 1) if rows[t, _REMAINING]]
    assert marks == [starts[i] + 7 for i in range(6)]
    assert rows[-1, _EOS] == 1 and rows[:-1, _EOS].sum() == 0
    assert rows[:, _KNOWN].all()


def test_a_corpus_ci_off_its_tunes_forms_is_marked_unknown() -> None:
    form = tunes.get("浣溪沙").main
    known = corpus_shape(list(form.lengths), "。。。，。。", [3, 6], [form])
    assert known.known and known.rhyme == Shape.of_form(form).rhyme
    odd = corpus_shape([7, 7, 6], "，，。", [3], [form])
    assert not odd.known and odd.tones is None and not template(odd)[:, _KNOWN].any()


def test_encode_writes_each_mark_as_a_comma_or_a_full_stop(tiny_vocab) -> None:
    ids = encode(["春风", "明月"], "，？", tiny_vocab)
    assert ids[3] == COMMA and ids[6] == PERIOD and ids[-1] == EOS


def test_ci_text_puts_the_two_stanzas_on_two_rows() -> None:
    assert ci_text(["春风", "明月", "人归"], ["，", "。", "。"], 2) == "春风，明月。\n人归。"
    assert ci_text(["春风", "明月"], "，。", None) == "春风，明月。"


def test_the_grown_model_at_step_0_writes_as_the_poem_model(tiny_model_dir) -> None:
    """Every poem weight copied, the template and title layers zero: a poem's logits are unchanged."""
    from model.vae import load_model
    from training.ci import grown_model

    base, vocab, _ = load_model(tiny_model_dir)
    grown, _, config = grown_model(tiny_model_dir)
    tokens = np.array([vocab.encode_lines(["春风明月山", "江天云雨人"])], np.int32)
    z = np.zeros((1, config.latent_dim), np.float32)
    form = np.array([0], np.int32)
    before = base.decode_teacher_forced(tokens[:, :-1], z, form).numpy()
    after = grown.decode_teacher_forced(tokens[:, :-1], z, form,
                                        template=np.ones((1, tokens.shape[1] - 1, TEMPLATE_DIM), np.float32)).numpy()
    np.testing.assert_allclose(after, before, atol=1e-5)


TUNES = ["浣溪沙", "菩萨蛮", "西江月", "如梦令", "清平乐"]


@pytest.mark.parametrize("name", TUNES)
def test_every_ci_keeps_its_tunes_form_rhyme_and_tones(tiny_ci_writer, name: str) -> None:
    tune = tunes.get(name)
    answer = tiny_ci_writer.generate([PoemRequest(form="词", tune=name, seed=5, n=3, best_of=2, tone_mode="hard",
                                                  novelty=False)])[0]
    assert answer.ok, answer.error_message
    for poem in answer.poems:
        assert [len(x) for x in poem["lines"]] == list(tune.main.lengths)
        assert poem["marks"] == [ln.mark for ln in tune.main.lines]
        assert poem["tune"] == name and poem["stanza_break"] == tune.main.stanza_break
        verdict = tunes.check(poem["lines"], tune.main)
        assert verdict.rhyme_ok, (poem["text"], verdict)
        assert not poem["relaxed"]
        assert verdict.tone_rate == 1.0, (poem["text"], verdict)
        ends = [line[-1] for line, ln in zip(poem["lines"], tune.main.lines) if ln.rhyme]
        assert len(set(ends)) == len(ends), "a rhyme character is never used twice"


def test_a_change_of_rhyme_takes_a_new_group_in_the_new_tone(tiny_ci_writer) -> None:
    """菩萨蛮: two 仄 lines, two 平, two 仄, two 平 — each pair one group of its own tone."""
    form = tunes.get("菩萨蛮").main
    poem = tiny_ci_writer.generate([PoemRequest(form="词", tune="菩萨蛮", seed=9, tone_mode="hard",
                                                novelty=False)])[0].poems[0]
    rhymes = tunes.load().rhymes
    by_set: dict[int, list[str]] = {}
    for line, ln in zip(poem["lines"], form.lines):
        if ln.rhyme:
            by_set.setdefault(ln.rhyme_set, []).append(line[-1])
            want = tunes.rhyme_classes(ln.rhyme_tone)
            assert rhymes.tone_classes(line[-1]) & want, (line, ln.rhyme_tone)
    assert len(by_set) == 4
    for chars in by_set.values():
        assert frozenset.intersection(*(rhymes.parts_of(c) for c in chars)), chars


def test_kept_lines_an_acrostic_and_keywords_are_written_where_asked(tiny_ci_writer) -> None:
    request = PoemRequest(form="词", tune="浣溪沙", acrostic="春夏", keywords=["明月"],
                          fixed_lines={3: "秋冬风花雪月山"}, seed=2, tone_mode="soft", novelty=False)
    poem = tiny_ci_writer.generate([request])[0].poems[0]
    assert poem["lines"][0][0] == "春" and poem["lines"][1][0] == "夏"
    assert poem["lines"][3] == "秋冬风花雪月山"
    assert "明月" in "".join(poem["lines"])


def test_a_kept_end_that_cannot_rhyme_is_refused(tiny_ci_writer) -> None:
    rhymes = tunes.load().rhymes
    ze = next(c for c in tiny_ci_writer.vocab.chars[8:] if rhymes.tone_classes(c) == frozenset({prosody.ZE}))
    request = PoemRequest(form="词", tune="浣溪沙", fixed_lines={0: "春风明月山水" + ze}, seed=1, novelty=False)
    answer = tiny_ci_writer.generate([request])[0]
    assert not answer.ok and answer.error_code == E_IMPOSSIBLE


def test_an_unknown_tune_is_refused_and_the_batch_goes_on(tiny_ci_writer) -> None:
    answers = tiny_ci_writer.generate([PoemRequest(form="词", tune="无此调", novelty=False),
                                       PoemRequest(form="词", tune="如梦令", seed=3, novelty=False)])
    assert not answers[0].ok and answers[1].ok


def test_a_copied_line_is_seen_only_where_the_model_wrote_it(tiny_ci_writer) -> None:
    from model.constraints import FREE, NoveltyTable

    writer = CiWriter(tiny_ci_writer.model, tiny_ci_writer.vocab, tiny_ci_writer.config,
                      novelty=[NoveltyTable.from_lines(["春风明月山水江"])])
    poem = writer.generate([PoemRequest(form="词", tune="浣溪沙", seed=4, novelty=True)])[0].poems[0]
    assert poem["novel"] is True
    plan = type("Plan", (), {"forced": np.full(49, FREE)})()
    lines = ["春风明月山水江"] + poem["lines"][1:]
    assert writer.copied(plan, lines)
    plan.forced[:7] = 0               # the user kept it: not a copy the model made
    assert not writer.copied(plan, lines)


def test_traditional_output_keeps_the_simplified_lines(tiny_ci_writer) -> None:
    poem = tiny_ci_writer.generate([PoemRequest(form="词", tune="如梦令", seed=6, traditional=True,
                                                novelty=False)])[0].poems[0]
    assert "lines_simplified" in poem and len(poem["lines"]) == len(poem["lines_simplified"])


# --- training, the command line and the evaluation's figures, on synthetic ci -----------------------

def synthetic_ci(vocab, n: int = 40, seed: int = 0):
    """n 浣溪沙-shaped ci of the tiny vocabulary's characters (their rhyme arbitrary), split 3:1."""
    from corpus.ci_reader import CiCorpus

    rng = np.random.default_rng(seed)
    chars = [c for c in vocab.chars[8:]]
    ci = CiCorpus()
    for i in range(n):
        lines = ["".join(rng.choice(chars, 7)) for _ in range(6)]
        ci.append(id=f"ci-{i}", author="某", tune="浣溪沙", rhythmic="浣溪沙", split="val" if i % 4 == 0 else "train",
                  puncts="。。。，。。", paras="3,3", tags="")
        ci.lines.append(lines)
    return ci


def test_a_short_training_run_saves_a_loadable_model_and_resumes(tiny_model_dir, tiny_vocab, tmp_path) -> None:
    import json

    from model.ci import CI_NOVELTY_FILE
    from training.ci import STATE_FILE, CiTrainConfig, train

    ci = synthetic_ci(tiny_vocab)
    config = CiTrainConfig(init=str(tiny_model_dir), batch_size=8, max_steps=3, eval_every=2, num_sampled=32)
    out = train(config, tmp_path / "ci", ci=ci)
    state = json.loads((out / STATE_FILE).read_text())
    assert state["step"] == 3 and state["history"][0]["step"] == 0 and (out / CI_NOVELTY_FILE).exists()
    writer = CiWriter.load(out)
    assert writer.generate([PoemRequest(form="词", tune="浣溪沙", seed=1, novelty=False)])[0].ok
    train(CiTrainConfig(init=str(tiny_model_dir), batch_size=8, max_steps=5, eval_every=2, num_sampled=32),
          out, resume=True, ci=ci)
    assert json.loads((out / STATE_FILE).read_text())["step"] == 5


def test_poembot_generate_writes_a_ci_for_a_tune_by_any_spelling(tiny_model_dir, tiny_ci_dir, tmp_path) -> None:
    import io
    import shutil

    from model.generate import generate_cli

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    shutil.copytree(tiny_ci_dir, model_dir / "ci")
    out, err = io.StringIO(), io.StringIO()
    assert generate_cli(tune="浣溪紗", title="春愁", seed=3, novelty=False, model_dir=model_dir, out=out, err=err) == 0
    text = out.getvalue()
    assert text.startswith("【浣溪沙】春愁\n")
    first, second = text.splitlines()[1:3]
    assert first.count("。") == 3 and second.count("，") == 1 and second.count("。") == 2
    assert generate_cli(tune="无此调", model_dir=model_dir, out=out, err=err) == 2
    assert "no tune" in err.getvalue()


def test_the_evaluation_counts_a_broken_rhyme_and_a_copied_line() -> None:
    from model.constraints import NoveltyTable
    from training.ci_evaluate import figures_of

    table = tunes.load()
    good = ["一曲新词酒一杯", "去年天气旧亭台", "夕阳西下几时回", "无可奈何花落去", "似曾相识燕归来", "小园香径独徘徊"]
    bad = good[:5] + ["小园香径独徘去"]
    poems = [{"tune": "浣溪沙", "lines": lines, "relaxed": False} for lines in (good, bad)]
    f = figures_of(poems, table, [NoveltyTable.from_lines(["去年天气旧亭台"])])
    assert f["rhyme_ok"] == 0.5 and f["form_ok"] == 1.0
    assert f["copied_lines"] == 2 / 12
