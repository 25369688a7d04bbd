"""The measures that see meaning: the two-sample classifier separates what differs and not what
does not; the judge's NLL ranks word salad above real text; samples.md is the run, unselected."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from verse.forms import FORMS  # noqa: E402
from verse.vocab import SPECIALS, Vocab  # noqa: E402
from training import meaning  # noqa: E402

CHARS = "山水风月花云日夜春秋江天人心雨雪松竹石泉鸟声远近高低明暗寒暖古今来去"


def poems(n: int, alphabet: str, seed: int, form: str = "五绝") -> list[tuple[str, list[str]]]:
    rng = np.random.default_rng(seed)
    f = FORMS[form]
    return [(form, ["".join(rng.choice(list(alphabet), f.line_len)) for _ in range(f.n_lines)])
            for _ in range(n)]


VOCAB = Vocab(list(SPECIALS) + list(CHARS))


def test_c2st_tells_different_sources_apart():
    real = poems(300, CHARS[:20], seed=1)
    fake = poems(300, CHARS[15:], seed=2)
    assert meaning.c2st(real, fake, VOCAB)["c2st_acc"] > 0.9


def test_c2st_cannot_tell_one_source_from_itself():
    real = poems(300, CHARS, seed=3)
    same = poems(300, CHARS, seed=4)
    result = meaning.c2st(real, same, VOCAB)
    assert result["c2st_acc"] < 0.7
    assert result["c2st_n_per_class"] == 300 and result["c2st_n_test"] == 120


def test_matched_takes_equal_numbers_per_form():
    real = poems(10, CHARS, 0, "五绝") + poems(30, CHARS, 0, "七律")
    gen = poems(20, CHARS, 1, "五绝") + poems(5, CHARS, 1, "七律")
    r, g = meaning.matched(real, gen)
    count = lambda ps, f: sum(p[0] == f for p in ps)  # noqa: E731
    assert count(r, "五绝") == count(g, "五绝") == 10 and count(r, "七律") == count(g, "七律") == 5


def test_judge_scores_word_salad_above_the_text_it_learned(tiny_run_lm):
    lm, vocab, learned, salad = tiny_run_lm
    assert meaning.judge_nll(lm, vocab, salad) > meaning.judge_nll(lm, vocab, learned) + 0.2


@pytest.fixture(scope="module")
def tiny_run_lm():
    """A small character LM fitted to one synthetic poem family, and word salad of its characters."""
    import keras
    import tensorflow as tf

    from model.vae import VAEConfig, build_vae
    from training.train import encode_split, synthetic_corpus

    corpus = synthetic_corpus(400, 0)
    vocab = VOCAB
    keras.utils.set_random_seed(0)
    lm = build_vae(VAEConfig(vocab_size=len(vocab), emb_dim=16, dec_units=32, form_dim=4,
                             word_dropout=0.0, use_latent=False))
    opt = keras.optimizers.Adam(0.01)
    data = encode_split(corpus, vocab, "train")

    @tf.function(reduce_retracing=True)     # eager steps took ~90 s of the suite; traced, a few
    def train_step(tokens, form, step):
        with tf.GradientTape() as tape:
            loss = lm.loss_terms({"tokens": tokens, "form": form}, step, training=True)["loss"]
        opt.apply(tape.gradient(loss, lm.trainable_variables), lm.trainable_variables)

    for step in range(120):
        form = sorted(data)[step % len(data)]
        tokens = data[form][np.random.default_rng(step).choice(len(data[form]), 32)]
        train_step(tf.constant(tokens), tf.fill([32], form), tf.constant(step))
    learned = [(corpus.form[i], corpus.lines[i]) for i in corpus.indices("test")]
    rng = np.random.default_rng(0)
    salad = [(f, ["".join(rng.choice(list(CHARS), len(line))) for line in lines])
             for f, lines in learned]
    return lm, vocab, learned, salad


def test_judge_nll_is_the_lm_test_nll_per_character(tiny_run_lm):
    import tensorflow as tf

    from model.vae import token_nll

    lm, vocab, learned, _ = tiny_run_lm
    same_form = [p for p in learned if p[0] == learned[0][0]]
    tokens = np.array([vocab.encode_lines(lines) for _, lines in same_form], np.int32)
    form = np.full(len(tokens), list(FORMS).index(same_form[0][0]), np.int32)
    logits = lm({"tokens": tokens, "form": form})["logits"]
    expected = float(tf.reduce_sum(token_nll(logits, tokens[:, 1:]))) / tokens[:, 1:].size
    assert meaning.judge_nll(lm, vocab, same_form) == pytest.approx(expected, rel=1e-4)


def test_samples_file_lists_the_first_poems_unselected(tmp_path):
    gen = poems(25, CHARS, 5, "五绝") + poems(25, CHARS, 6, "七律")
    acro = [("五绝", lines, "山水风月") for _, lines in poems(8, CHARS, 7, "五绝")]
    path = meaning.write_samples(tmp_path / "samples.md", gen, acro, "tiny")
    text = path.read_text()
    assert text.count("\n20. ") == 2 and "\n21. " not in text      # 20 per form present
    first = "，".join(gen[0][1][:2])
    assert first in text                                          # in request order
    assert "## 藏头" in text and "「山水风月」" in text


def test_char_embeddings_put_characters_that_share_company_together():
    # Two families of characters that never meet: vectors within a family are closer.
    family_a, family_b = CHARS[:12], CHARS[12:24]
    corpus = [lines for _, lines in poems(400, family_a, 1)] + [lines for _, lines in poems(400, family_b, 2)]
    emb = meaning.char_embeddings(corpus, VOCAB, dim=8)
    a = [VOCAB.id(c) for c in family_a]
    b = [VOCAB.id(c) for c in family_b]
    within = np.mean(emb[a] @ emb[a].T)
    across = np.mean(emb[a] @ emb[b].T)
    assert emb.shape == (len(VOCAB), 8) and within > across + 0.3
