"""Constrained decoding with a random-weight model: every hard constraint holds, seeds reproduce,
batches mix, impossible requests are refused. Constraints are checked against verse.prosody directly.
"""
from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from verse import prosody
from model.constraints import NoveltyTable, tone_pattern
from model.decode import LIKE_NOISE
from verse.forms import FORMS, classify
from model.requests import Answer, EncodeRequest, PoemRequest
from protocol.jobs import E_IMPOSSIBLE, E_INVALID, E_UNKNOWN_CHARS, GenerateJob
from worker.request import serve

PING_GROUPS = set(prosody.ping_groups())


def random_request(rng: np.random.Generator, chars: list[str], seed: int) -> PoemRequest:
    """A request with a random mix of constraints, always satisfiable by construction."""
    form = FORMS[rng.choice(list(FORMS))]
    job = PoemRequest(form=form.name, seed=seed, n=int(rng.integers(1, 3)),
                      tone_mode=str(rng.choice(["hard", "soft", "off"])),
                      rhyme=str(rng.choice(["pingshui", "none"], p=[0.8, 0.2])),
                      max_repeat=int(rng.integers(1, 3)),
                      temperature=float(rng.uniform(0.3, 1.5)),
                      top_p=float(rng.choice([1.0, rng.uniform(0.5, 1.0)])), min_p=float(rng.uniform(0.0, 0.05)),
                      novelty=False)
    if rng.random() < 0.5:
        job.acrostic = "".join(rng.choice(chars, size=int(rng.integers(1, form.n_lines + 1)), replace=False))
    if rng.random() < 0.5:
        words = []
        for _ in range(int(rng.integers(1, 3))):
            words.append("".join(rng.choice(chars, size=int(rng.integers(1, 3)), replace=False)))
        job.keywords = words
    if rng.random() < 0.3:
        # Keep line 3 (odd, non-rhyming): any text fits its rhyme; respect the acrostic if there is one.
        line = list(rng.choice(chars, size=form.line_len, replace=False))
        if len(job.acrostic) > 2:
            line[0] = job.acrostic[2]
        job.fixed_lines = {2: "".join(line)}
    return job


def assert_satisfies(job: PoemRequest, poem: dict) -> None:
    form = FORMS[job.form]
    lines = poem["lines_simplified"] if job.traditional else poem["lines"]
    assert classify(lines) == form.name, lines
    assert poem["form"] == form.name
    assert poem["text"].count("\n") == form.n_lines // 2 - 1
    assert not poem["relaxed"]
    forced_counts: Counter = Counter()
    for i, ch in enumerate(job.acrostic):
        assert lines[i][0] == ch, (job.acrostic, lines)
    for i, text in job.fixed_lines.items():
        assert lines[i] == text
        forced_counts.update(text)
    forced_counts.update(job.acrostic)
    for word in job.keywords:
        assert any(word in line for line in lines), (word, lines)
        forced_counts.update(word)
    counts = Counter("".join(lines))
    for ch, n in counts.items():
        assert n <= max(job.max_repeat, forced_counts[ch]), (ch, n, lines)
    if job.rhyme == "pingshui":
        ends = [lines[i][-1] for i in range(1, form.n_lines, 2)]
        shared = set.intersection(*(set(prosody.rhyme_groups(c)) for c in ends)) & PING_GROUPS
        assert shared, ends
        assert len(set(ends)) == len(ends), ends          # no rhyme character twice
        assert poem["rhyme_ok"]
    if job.tone_mode == "hard":
        fixed = {(i, j) for i in job.fixed_lines for j in range(form.line_len)}
        fixed |= {(i, 0) for i in range(len(job.acrostic))}
        for word in job.keywords:
            for i, line in enumerate(lines):
                k = line.find(word)
                if k >= 0:
                    fixed |= {(i, k + d) for d in range(len(word))}
        # The same 2/4/6 positions as prosody's own patterns for this 起.
        qi = poem["pattern"][0]
        reference = prosody.named_patterns(form.name)[f"{qi}起首句不入韵"]
        for i, line in enumerate(lines):
            for j in (1, 3, 5):
                if j < form.line_len and (i, j) not in fixed:
                    assert reference[i][j] in prosody.tones(line[j]), (i, j, line, reference[i])
            if i % 2 == 0 and i > 0 and (i, form.line_len - 1) not in fixed:
                assert prosody.ZE in prosody.tones(line[-1]), (i, line)


def test_tone_pattern_matches_prosody_patterns() -> None:
    for name, form in FORMS.items():
        for ping_first in (True, False):
            mine = tone_pattern(form, ping_first)
            ref = prosody.named_patterns(name)[f"{'平' if ping_first else '仄'}起首句不入韵"]
            for (i, j), want in mine.items():
                assert ref[i][j] == ("平" if want == 1 else "仄"), (name, i, j)


def test_random_mixed_batch_meets_every_hard_constraint(tiny_generator) -> None:
    rng = np.random.default_rng(7)
    chars = [c for c in tiny_generator.vocab.chars[6:]]
    jobs = [random_request(rng, chars, seed=k) for k in range(80)]
    results = tiny_generator.generate(jobs)
    n_poems = 0
    for job, result in zip(jobs, results):
        assert result.request_id == job.request_id
        assert result.ok, (job, result.error_message)
        assert len(result.poems) == job.n
        for poem in result.poems:
            assert_satisfies(job, poem)
            n_poems += 1
            assert len(poem["mu"]) == 8
    assert n_poems >= 80
    forms = Counter(job.form for job in jobs)
    assert len(forms) == 4                      # the one batch really mixed forms


def test_same_seed_same_poem_alone_or_in_a_mixed_batch(tiny_generator) -> None:
    def req(seed: int) -> PoemRequest:
        return PoemRequest(form="五律", acrostic="春秋", keywords=["风"], seed=seed, n=2, novelty=False)
    alone = tiny_generator.generate([req(5)])[0]
    again = tiny_generator.generate([req(5)])[0]
    mixed = tiny_generator.generate([PoemRequest(form="七绝", seed=1), req(5),
                                     PoemRequest(form="五绝", seed=2, n=3)])[1]
    other = tiny_generator.generate([req(6)])[0]
    texts = lambda r: [p["text"] for p in r.poems]        # noqa: E731
    assert texts(alone) == texts(again) == texts(mixed)
    assert texts(alone) != texts(other)
    assert texts(alone)[0] != texts(alone)[1]            # poems of one request differ


def test_unseeded_requests_report_a_seed_that_reproduces(tiny_generator) -> None:
    first = tiny_generator.generate([PoemRequest(form="七绝", novelty=False)])[0]
    seed = first.poems[0]["seed"]
    assert isinstance(seed, int)
    again = tiny_generator.generate([PoemRequest(form="七绝", seed=seed, novelty=False)])[0]
    assert again.poems[0]["text"] == first.poems[0]["text"]


@pytest.mark.parametrize("job, code", [
    (GenerateJob(form="五绝", acrostic="春夏秋冬风"), E_IMPOSSIBLE),
    (GenerateJob(form="七绝", acrostic="春夏鑫"), E_UNKNOWN_CHARS),
    (GenerateJob(form="七绝", keywords=["龘"]), E_UNKNOWN_CHARS),
    (GenerateJob(form="律诗"), E_INVALID),
    (GenerateJob(form="七绝", latent=[0.0, 1.0]), E_INVALID),
])
def test_impossible_requests_are_refused_before_decoding(tiny_generator, job, code) -> None:
    """Through the worker's checks (worker.request.serve) and the model's own, as a job goes."""
    good = GenerateJob(form="五绝", seed=3)
    results = {r.job_id: r for r in serve([job, good], tiny_generator)}
    assert not results[job.job_id].ok and results[job.job_id].error_code == code
    assert results[job.job_id].error_message
    assert results[good.job_id].ok               # one bad request does not sink the batch


@pytest.mark.parametrize("request_, code", [
    (PoemRequest(form="七绝", acrostic="春夏鑫"), E_UNKNOWN_CHARS),
    (PoemRequest(form="律诗"), E_INVALID),
    (PoemRequest(form="七绝", latent=[0.0, 1.0]), E_INVALID),
    (PoemRequest(form="七绝", style="nobody"), "unknown_style"),
])
def test_the_model_refuses_what_only_it_can_know(tiny_generator, request_, code) -> None:
    """A request built in-process meets no worker check: the model still refuses what it cannot write."""
    answers = tiny_generator.generate([request_, PoemRequest(form="五绝", seed=3)])
    assert not answers[0].ok and answers[0].error_code == code and answers[0].error_message
    assert answers[1].ok


def test_fixed_lines_that_cannot_rhyme_are_refused(tiny_generator) -> None:
    vocab = tiny_generator.vocab
    ze = next(c for c in vocab.chars[6:] if prosody.tones(c) == frozenset({prosody.ZE})
              and not (prosody.rhyme_groups(c) & PING_GROUPS))
    line = (vocab.chars[6] * 4) + ze
    result = tiny_generator.generate([PoemRequest(form="五绝", fixed_lines={1: line}, max_repeat=8)])[0]
    assert not result.ok and result.error_code == E_IMPOSSIBLE
    assert "平声" in result.error_message
    ok = tiny_generator.generate([PoemRequest(form="五绝", fixed_lines={1: line}, rhyme="none",
                                              max_repeat=8, novelty=False)])[0]
    assert ok.ok and ok.poems[0]["lines"][1] == line


def test_novelty_redecodes_rows_that_copy_a_corpus_line(tiny_generator) -> None:
    job = lambda: PoemRequest(form="五绝", seed=11, n=4)   # noqa: E731
    before = tiny_generator.generate([job()])[0]
    copied = [p["lines"][0] for p in before.poems]
    tiny_generator.novelty = NoveltyTable.from_lines(copied)
    try:
        after = tiny_generator.generate([job()])[0]
    finally:
        tiny_generator.novelty = None
    for old, new in zip(before.poems, after.poems):
        assert new["novel"] is True
        assert not set(new["lines"]) & set(copied)
        assert new["text"] != old["text"]


def test_novelty_table_round_trip(tmp_path) -> None:
    table = NoveltyTable.from_lines(["白日依山尽", "一二三四五", "一二三四五"])
    table.save(tmp_path / "n.npy")
    loaded = NoveltyTable.load(tmp_path / "n.npy")
    assert len(loaded) == 2 and "白日依山尽" in loaded and "白日依山近" not in loaded


def test_latent_sources_steer_the_poem(tiny_generator) -> None:
    """Each source of the latent is the one used: a given z, a prior draw scaled by latent_scale,
    the mean μ of liked poems. Compared as latents: a tiny random model's words hardly depend on z,
    so two latents can write the same poem."""
    jobs = [PoemRequest(form="七绝", seed=2, latent=[3.0] * 8),
            PoemRequest(form="七绝", seed=2, latent_scale=1.0),
            PoemRequest(form="七绝", seed=2, latent_scale=2.0),
            PoemRequest(form="七绝", seed=2, like_texts=["春风花月夜，秋雪冬风来"])]
    latents, centres = tiny_generator._latents(jobs, [None] * len(jobs))
    given, prior, wide, like = (np.asarray(z[0]) for z in latents)
    assert np.allclose(given, 3.0)
    assert np.allclose(wide, 2.0 * prior)                     # the same draw, twice the spread
    assert not np.allclose(prior, like) and 3 in centres      # liked poems give their own centre
    assert np.linalg.norm(like - centres[3]) < 8 * LIKE_NOISE   # drawn near that centre
    # At latent_scale 0 every seed starts from the centre of the prior: the same poem as z = 0.
    centre = tiny_generator.generate([PoemRequest(form="七绝", seed=2, novelty=False, latent_scale=0.0)])[0]
    centred = tiny_generator.generate([PoemRequest(form="七绝", seed=2, novelty=False,
                                                   latent=[0.0] * 8)])[0]
    assert centre.poems[0]["text"] == centred.poems[0]["text"]


def test_soft_tone_mode_raises_the_tone_rate(tiny_generator) -> None:
    def rate(mode: str) -> float:
        r = tiny_generator.generate([PoemRequest(form="七律", seed=4, n=8, tone_mode=mode, novelty=False,
                                                 temperature=1.0, top_p=1.0)])[0]
        return float(np.mean([p["tone_rate"] for p in r.poems]))
    assert rate("soft") > rate("off") + 0.15
    assert rate("hard") >= 0.99


def test_traditional_output_and_json(tiny_generator) -> None:
    job = PoemRequest(form="五绝", seed=8, traditional=True, novelty=False, keywords=["风"])
    poem = tiny_generator.generate([job])[0].poems[0]
    assert_satisfies(job, poem)
    assert "風" in "".join(poem["lines"])
    json.dumps(poem, ensure_ascii=False)          # JSON-safe for the results stream


def test_encode_job_returns_mu_and_verdict(tiny_generator) -> None:
    res = tiny_generator.run([EncodeRequest(texts=["春风花月夜，秋雪冬风来。山水江天云，明日人归去。"])])
    assert isinstance(res[0], Answer) and res[0].ok and res[0].kind == "encode"
    poem = res[0].poems[0]
    assert poem["form"] == "五绝" and len(poem["mu"]) == 8 and "rhyme_ok" in poem


def test_generate_cli_json(tiny_model_dir, tmp_path, monkeypatch) -> None:
    import io

    from model.generate import generate_cli
    monkeypatch.setenv("POEMBOT_DATA_DIR", str(tmp_path))      # no corpus: no theme or novelty table
    out, err = io.StringIO(), io.StringIO()
    code = generate_cli(form="七绝", acrostic="春夏秋冬", keywords="风", n=2, seed=3, json_out=True,
                        model_dir=tiny_model_dir, out=out, err=err)
    assert code == 0, err.getvalue()
    poems = json.loads(out.getvalue())
    assert len(poems) == 2
    for p in poems:
        assert {"text", "lines", "form", "rhyme_ok", "tone_rate"} <= set(p)
        assert "".join(line[0] for line in p["lines"]) == "春夏秋冬"


def test_generate_cli_refusals(tiny_model_dir, tmp_path, monkeypatch) -> None:
    import io

    from model.generate import generate_cli
    from worker.request import check_poem
    monkeypatch.setenv("POEMBOT_DATA_DIR", str(tmp_path))
    err = io.StringIO()
    assert generate_cli(model_dir=tmp_path / "nowhere", err=err) == 2
    assert "no model at" in err.getvalue()
    err = io.StringIO()
    assert generate_cli(form="五绝", acrostic="春夏秋冬风", model_dir=tiny_model_dir, err=err, check=check_poem) == 1
    assert "acrostic" in err.getvalue()


def test_keyword_theme_latent_comes_from_the_theme_index(tiny_generator) -> None:
    from search.themes import ThemeIndex
    poems = [["春风花月夜", "秋雪冬风来", "山水江天云", "明日人归去"],
             ["山水江天云", "明日人归去", "春风花月夜", "秋雪冬风来"],
             ["明日人归去", "山水江天云", "秋雪冬云来", "春夏花月夜"]]
    mu = tiny_generator.encode_lines(poems, ["五绝"] * 3)
    job = lambda: PoemRequest(form="五绝", seed=9, keywords=["风"], novelty=False)   # noqa: E731
    plain = tiny_generator.generate([job()])[0]
    tiny_generator.themes = ThemeIndex.build(poems, mu)
    try:
        rows, _ = tiny_generator.plan([job()])
        themed = tiny_generator.generate([job()])[0]
    finally:
        tiny_generator.themes = None
    np.testing.assert_allclose(rows[0].theme, mu[:2].mean(axis=0), atol=5e-3)   # the poems with 风
    assert themed.ok and themed.poems[0]["text"] != plain.poems[0]["text"]
    assert "风" in "".join(themed.poems[0]["lines"])


def test_characters_outside_the_writable_set_appear_only_where_the_user_typed_them(tiny_generator) -> None:
    """Stands in for characters outside GBK: half the vocabulary is made unwritable."""
    from dataclasses import replace

    from model.decode import Generator

    vocab = tiny_generator.vocab
    writable = tiny_generator.tables.writable.copy()
    banned_ids = [i for i in range(6, len(vocab)) if i % 2 == 0]
    writable[banned_ids] = False
    tables = replace(tiny_generator.tables, writable=writable)
    gen = Generator(tiny_generator.model, vocab, tiny_generator.config, tables=tables)
    banned = {vocab.chars[i] for i in banned_ids}
    typed = next(c for c in sorted(banned) if prosody.tones(c))
    jobs = [PoemRequest(form=f, seed=k, n=5, novelty=False) for k, f in enumerate(FORMS)]
    jobs.append(PoemRequest(form="七绝", seed=9, n=5, keywords=[typed], novelty=False))
    results = gen.generate(jobs)
    assert all(r.ok for r in results), [r.error_message for r in results]
    for job, result in zip(jobs, results):
        for poem in result.poems:
            used = Counter("".join(poem["lines"]))
            allowed = Counter("".join(job.keywords))
            assert all(used[c] <= allowed[c] for c in banned if c in used), (poem["lines"], job)
    assert any(typed in "".join(p["lines"]) for p in results[-1].poems)


def test_best_of_k_keeps_the_best_candidate(tiny_generator) -> None:
    """Candidate 0 of K is the K=1 poem, and the kept poem scores at least as well as it."""
    forms = list(FORMS)
    one = [PoemRequest(form=forms[k % 4], seed=100 + k, best_of=1, novelty=False) for k in range(24)]
    four = [PoemRequest(form=forms[k % 4], seed=100 + k, best_of=4, novelty=False) for k in range(24)]
    r1, r4 = tiny_generator.generate(one), tiny_generator.generate(four)
    assert all(r.poems[0]["score"] is None for r in r1)          # no selection at K=1
    assert all(r.poems[0]["best_of"] == 4 for r in r4)
    for job, result in zip(four, r4):
        assert_satisfies(job, result.poems[0])

    rows, _ = tiny_generator.plan(four)
    decoded = tiny_generator.decode_rows(rows, [0] * len(rows))
    lines = [tiny_generator.vocab.decode_lines(t) for t in decoded.tokens]
    scores = tiny_generator._score(rows, lines, decoded)
    first = {row.job_index: i for i, row in enumerate(rows) if row.candidate == 0}
    assert [lines[first[j]] for j in range(len(four))] == [r.poems[0]["lines"] for r in r1]
    keep, kept_scores = tiny_generator._select(rows, lines, decoded)
    for i, score in zip(keep, kept_scores):
        assert score >= scores[first[rows[i].job_index]] - 1e-6
    assert sum(rows[i].candidate != 0 for i in keep) >= 12        # usually another one wins
    assert [lines[i] for i in keep] == [r.poems[0]["lines"] for r in r4]


def test_best_of_k_is_validated(tiny_generator) -> None:
    for bad in (0, 17, "4"):
        result = serve([GenerateJob(form="五绝", best_of=bad)], tiny_generator)[0]
        assert not result.ok and result.error_code == E_INVALID and "best_of" in result.error_message



def _decoder_sampling(tiny_generator):
    from model.decode import ConstrainedDecoder, exp_noise
    return ConstrainedDecoder(tiny_generator.model, tiny_generator.tables), exp_noise


def test_histogram_nucleus_keeps_the_top_p_mass_and_no_more(tiny_generator) -> None:
    """The nucleus holds at least top_p of the mass, and dropping its least likely bin would not."""
    import tensorflow as tf
    decoder, _ = _decoder_sampling(tiny_generator)
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 2.5, (64, 3000)).astype(np.float32)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    top_p = rng.uniform(0.3, 0.99, 64).astype(np.float32)
    keep = decoder._nucleus(tf.constant(p), tf.constant(top_p)).numpy()
    for row, q, kept in zip(p, top_p, keep):
        mass = row[kept].sum() / row.sum()
        assert mass >= q - 1e-5
        assert row[kept].min() >= row[~kept].max()                 # the likeliest tokens
        bins = row.view(np.int32) >> 20                              # 8 bins per octave
        boundary = bins[kept].min()
        assert row[bins > boundary].sum() / row.sum() < q            # the boundary bin was needed
        assert 9 / 8 * row[bins == boundary].min() >= row[bins == boundary].max()
    everything = decoder._nucleus(tf.constant(p), tf.ones(64)).numpy()
    assert everything.all()


def test_exponential_race_draws_from_p_and_depends_on_the_row_seed_only(tiny_generator) -> None:
    """argmax(p / E) with the hashed noise draws from p; a row's noise ignores its batch neighbours."""
    import tensorflow as tf
    decoder, exp_noise = _decoder_sampling(tiny_generator)
    V = decoder.vocab_size
    p = np.zeros(V, np.float32)
    p[[5, 6, 7, 8]] = [0.5, 0.25, 0.15, 0.10]
    draws = 4000
    seeds = np.random.default_rng(0).integers(0, 2**32, (draws, 2), dtype=np.uint64).astype(np.uint32)
    counts = Counter()
    for step in range(4):
        noise = exp_noise(decoder.keys, tf.constant(seeds), tf.constant(step)).numpy()
        counts.update(np.argmax(p[None, :] * noise, axis=1).tolist())
    freq = np.array([counts[k] for k in (5, 6, 7, 8)]) / (4 * draws)
    assert sum(counts.values()) == 4 * draws and set(counts) == {5, 6, 7, 8}
    assert np.abs(freq - [0.5, 0.25, 0.15, 0.10]).max() < 0.016    # 4 sigma at 16,000 draws (fixed seeds)
    alone = exp_noise(decoder.keys, tf.constant(seeds[:1]), tf.constant(2)).numpy()
    batched = exp_noise(decoder.keys, tf.constant(seeds[:9]), tf.constant(2)).numpy()
    assert np.array_equal(alone[0], batched[0])
    other = exp_noise(decoder.keys, tf.constant(seeds[:1]), tf.constant(3)).numpy()
    assert not np.array_equal(alone[0], other[0])


def test_min_p_keeps_tokens_near_the_best_and_combines_with_top_p(tiny_generator) -> None:
    import tensorflow as tf
    decoder, _ = _decoder_sampling(tiny_generator)
    p = tf.constant([[1.0, 0.5, 0.05, 0.001, 0.0], [0.2, 1.0, 0.9, 0.3, 0.1]])
    keep = decoder._keep(p, tf.ones(2), tf.constant([0.04, 0.25]), tf.constant(False)).numpy()
    assert keep.tolist() == [[True, True, True, False, False], [False, True, True, True, False]]
    keep = decoder._keep(p, tf.constant([0.6, 1.0]), tf.constant([0.04, 0.25]), tf.constant(True)).numpy()
    assert keep.tolist() == [[True, False, False, False, False], [False, True, True, True, False]]
    keep = decoder._keep(p, tf.ones(2), tf.zeros(2), tf.constant(False)).numpy()
    assert keep.tolist() == [[True, True, True, True, True], [True, True, True, True, True]]


def test_the_xla_compiled_loop_meets_every_hard_constraint_too(tiny_model_dir) -> None:
    """POEMBOT_XLA=1 compiles the same loop with XLA (bisection nucleus, static shapes)."""
    from model.decode import Generator
    generator = Generator.load(tiny_model_dir, novelty=False, jit_compile=True)
    rng = np.random.default_rng(11)
    jobs = [random_request(rng, list(generator.vocab.chars[6:]), seed=k) for k in range(12)]
    jobs[0].top_p = 0.8                                   # the nucleus path runs in the batch
    for job, result in zip(jobs, generator.generate(jobs)):
        assert result.ok, result.error_message
        for poem in result.poems:
            assert_satisfies(job, poem)
