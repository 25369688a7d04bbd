"""The poem VAE on a toy vocabulary: shapes per form, loss terms, schedules, free bits, save/load, IW bound.

No corpus needed; each model here is built from a config and a synthetic vocabulary in well under 2 s.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from verse.forms import FORM_INDEX, FORMS  # noqa: E402
import keras  # noqa: E402

from model.vae import (VAEConfig, beta_at, build_vae, dummy_inputs, free_bits_kl,  # noqa: E402
                       kl_per_dim, load_model, log_likelihood_iw, save_model, token_nll)
from verse.vocab import BOS, COMMA, EOS, PERIOD, SPECIALS, UNK, Vocab  # noqa: E402

CHARS = "甲乙丙丁戊己庚辛壬癸子丑寅卯辰巳午未申酉"


def tiny_config(**kw) -> VAEConfig:
    base = dict(vocab_size=len(SPECIALS) + len(CHARS), emb_dim=12, enc_units=10, dec_units=16,
                latent_dim=8, form_dim=4, anneal_steps=10)
    base.update(kw)
    return VAEConfig(**base)


def vocab() -> Vocab:
    return Vocab(list(SPECIALS) + list(CHARS))


def poems(form: str, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    f = FORMS[form]
    v = vocab()
    rows = [v.encode_lines(["".join(rng.choice(list(CHARS), f.line_len)) for _ in range(f.n_lines)])
            for _ in range(n)]
    return np.asarray(rows, np.int32)


@pytest.fixture(scope="module")
def model():
    return build_vae(tiny_config())


def test_config_round_trips():
    m = build_vae(tiny_config())
    assert VAEConfig.from_dict(m.config.to_dict()) == m.config
    with pytest.raises(ValueError):
        tiny_config(anneal="sometimes")


@pytest.mark.parametrize("form", list(FORMS))
def test_shapes_for_each_form(model, form):
    c = model.config
    tokens = poems(form, 3)
    assert tokens.shape == (3, FORMS[form].seq_len + 2)
    f = np.full(3, FORM_INDEX[form], np.int32)
    mu, logvar = model.encode(tokens, f)
    assert mu.shape == (3, c.latent_dim) and logvar.shape == (3, c.latent_dim)
    state = model.decoder_init(mu, f)
    assert state.shape == (3, c.dec_units)
    logits, new_state = model.decoder_step(tf.constant(tokens[:, 0]), state, mu, f)
    assert logits.shape == (3, c.vocab_size) and logits.dtype == tf.float32
    assert new_state.shape == (3, c.dec_units)
    out = model({"tokens": tokens, "form": f})
    assert out["logits"].shape == (3, tokens.shape[1] - 1, c.vocab_size)


def test_stepwise_decoding_in_a_while_loop_matches_teacher_forcing(model):
    tokens = poems("五绝", 4, seed=1)
    f = tf.constant(np.full(4, FORM_INDEX["五绝"], np.int32))
    z = tf.random.normal([4, model.config.latent_dim])
    full = model.decode_teacher_forced(tf.constant(tokens[:, :-1]), z, f).numpy()
    seq = tf.constant(tokens[:, :-1])

    @tf.function
    def run():
        steps = tf.shape(seq)[1]
        acc = tf.TensorArray(tf.float32, size=steps)

        def body(t, state, acc):
            logits, state = model.decoder_step(seq[:, t], state, z, f)
            return t + 1, state, acc.write(t, logits)

        _, _, acc = tf.while_loop(lambda t, *_: t < steps, body,
                                  (tf.constant(0), model.decoder_init(z, f), acc))
        return tf.transpose(acc.stack(), [1, 0, 2])

    np.testing.assert_allclose(run().numpy(), full, atol=1e-5)


def test_latent_changes_the_output(model):
    f = tf.constant([0, 0], tf.int32)
    z = tf.constant(np.stack([np.zeros(8), np.full(8, 3.0)]).astype(np.float32))
    state = model.decoder_init(z, f)
    logits, _ = model.decoder_step(tf.constant([BOS, BOS]), state, z, f)
    assert np.abs(logits[0].numpy() - logits[1].numpy()).max() > 1e-4


def test_reconstruction_nll_matches_a_hand_computed_cross_entropy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 5)).astype(np.float32)
    targets = np.array([[1, 2, 0], [3, 4, 1]], np.int32)   # a PAD (0) target is not counted
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = [-(logp[0, 0, 1] + logp[0, 1, 2]), -(logp[1, 0, 3] + logp[1, 1, 4] + logp[1, 2, 1])]
    np.testing.assert_allclose(token_nll(logits, targets).numpy(), expected, rtol=1e-5)


def test_kl_is_zero_at_the_prior_and_matches_the_closed_form():
    assert float(tf.reduce_sum(kl_per_dim(tf.zeros([2, 4]), tf.zeros([2, 4])))) == 0.0
    mu, logvar = 1.5, math.log(0.25)
    expected = 0.5 * (mu ** 2 + 0.25 - 1 - logvar)
    got = kl_per_dim(tf.constant([[mu]]), tf.constant([[logvar]]))
    assert float(got[0, 0]) == pytest.approx(expected, rel=1e-6)


def test_free_bits_floor_each_dim_and_stop_its_gradient():
    kl = tf.Variable([[0.01, 2.0], [0.03, 4.0]])
    with tf.GradientTape() as tape:
        total = free_bits_kl(kl, 0.5)
    # dim 0 has batch mean 0.02 < 0.5: counted as 0.5 and not pushed further down.
    assert float(total) == pytest.approx(0.5 + 3.0)
    grad = tape.gradient(total, kl).numpy()
    np.testing.assert_allclose(grad[:, 0], [0.0, 0.0])
    np.testing.assert_allclose(grad[:, 1], [0.5, 0.5])
    assert float(free_bits_kl(kl, 0.0)) == pytest.approx(0.02 + 3.0)


def test_annealing_schedules():
    lin = tiny_config(anneal="linear", anneal_steps=100, beta_max=0.8)
    assert [round(float(beta_at(lin, s)), 4) for s in (0, 50, 100, 500)] == [0.0, 0.4, 0.8, 0.8]
    cyc = tiny_config(anneal="cyclical", anneal_steps=100, anneal_ratio=0.5)
    values = [float(beta_at(cyc, s)) for s in (0, 25, 50, 99, 100, 125)]
    assert values == pytest.approx([0.0, 0.5, 1.0, 1.0, 0.0, 0.5])
    assert float(beta_at(tiny_config(anneal="none", beta_max=0.3), 7)) == pytest.approx(0.3)


def test_loss_terms_add_up(model):
    tokens = poems("七绝", 6)
    inputs = {"tokens": tokens, "form": np.full(6, FORM_INDEX["七绝"], np.int32)}
    terms = model.loss_terms(inputs, step=5, training=False)
    assert float(terms["beta"]) == pytest.approx(float(beta_at(model.config, 5)))
    assert float(terms["loss"]) == pytest.approx(
        float(terms["rec"]) + float(terms["beta"]) * float(terms["kl_fb"]), rel=1e-5)
    assert float(terms["kl_fb"]) >= model.config.free_bits * model.config.latent_dim - 1e-4
    assert float(terms["n_tokens"]) == tokens.shape[1] - 1
    fixed = model.loss_terms(inputs, step=5, beta=0.0)
    assert float(fixed["loss"]) == pytest.approx(float(fixed["rec"]))


def test_word_dropout_keeps_structure_tokens(model):
    tokens = tf.constant(np.tile(poems("七律", 1), (200, 1))[:, :-1])
    dropped = model.word_dropout(tokens, 0.25).numpy()
    base = tokens.numpy()
    structural = np.isin(base, [BOS, COMMA, PERIOD, EOS])
    assert np.array_equal(dropped[structural], base[structural])
    changed = dropped[~structural] != base[~structural]
    assert np.all(dropped[~structural][changed] == UNK)
    assert 0.2 < changed.mean() < 0.3


def test_plain_lm_has_no_latent():
    lm = build_vae(tiny_config(use_latent=False))
    tokens = poems("五律", 2)
    out = lm({"tokens": tokens, "form": np.array([2, 2], np.int32)})
    assert out["z"].shape == (2, 0)
    terms = lm.loss_terms({"tokens": tokens, "form": np.array([2, 2], np.int32)}, 0)
    assert float(terms["kl"]) == 0.0 and float(terms["loss"]) == pytest.approx(float(terms["rec"]))
    with pytest.raises(ValueError):
        lm.encode(tokens, np.array([2, 2], np.int32))


def test_save_load_round_trip(tmp_path, model):
    tokens = poems("五绝", 3)
    f = np.zeros(3, np.int32)
    mu = model.encode(tokens, f)[0]
    expect = model.decoder_step(tf.constant(tokens[:, 0]), model.decoder_init(mu, f), mu, f)[0]
    save_model(model, vocab(), tmp_path / "f32", dtype="float32", metrics={"note": 1})
    loaded, v, config = load_model(tmp_path / "f32")
    assert config == model.config and v.chars == vocab().chars
    mu2 = loaded.encode(tokens, f)[0]
    got = loaded.decoder_step(tf.constant(tokens[:, 0]), loaded.decoder_init(mu2, f), mu2, f)[0]
    np.testing.assert_array_equal(got.numpy(), expect.numpy())
    # float16 on disk: fewer bytes (half, less npz overhead), same outputs to within half-precision rounding.
    save_model(model, vocab(), tmp_path / "f16")
    half, _, _ = load_model(tmp_path / "f16")
    assert (tmp_path / "f16" / "weights.npz").stat().st_size < \
        0.75 * (tmp_path / "f32" / "weights.npz").stat().st_size
    mu3 = half.encode(tokens, f)[0]
    got16 = half.decoder_step(tf.constant(tokens[:, 0]), half.decoder_init(mu3, f), mu3, f)[0]
    np.testing.assert_allclose(got16.numpy(), expect.numpy(), atol=2e-2)
    assert (tmp_path / "f32" / "metrics.json").read_text().count("note") == 1


def test_load_rejects_a_mismatched_config(tmp_path, model):
    save_model(model, vocab(), tmp_path)
    text = (tmp_path / "config.json").read_text().replace('"dec_units": 16', '"dec_units": 20')
    (tmp_path / "config.json").write_text(text)
    with pytest.raises(ValueError):
        load_model(tmp_path)


def test_importance_weighted_bound_is_tighter_than_the_elbo():
    m = build_vae(tiny_config())
    # A confident, off-prior posterior makes the ELBO's KL term large: the IW bound must win back
    # most of it, by far more than sampling noise.
    kernel, bias = m.to_posterior.get_weights()
    bias[: m.config.latent_dim] = 2.0
    bias[m.config.latent_dim:] = -4.0
    m.to_posterior.set_weights([kernel * 0.1, bias])
    tokens = poems("七绝", 8, seed=3)
    inputs = {"tokens": tokens, "form": np.full(8, FORM_INDEX["七绝"], np.int32)}
    iw_nll = -float(tf.reduce_mean(log_likelihood_iw(m, inputs, k=50)))
    # Ten posterior samples per poem in one call: each copy of a poem draws its own z.
    tenfold = {name: np.repeat(value, 10, axis=0) for name, value in inputs.items()}
    elbo_nll = float(m.loss_terms(tenfold, 0, beta=1.0)["rec"]) + float(m.loss_terms(inputs, 0)["kl"])
    assert iw_nll < elbo_nll - 1.0

    # On the very same samples, log-mean-exp of the weights is at least their mean (Jensen),
    # and k = 1 is the ordinary single-sample ELBO: twenty copies of each poem, one sample each.
    eps = tf.random.normal([8, 20, m.config.latent_dim])
    iw = log_likelihood_iw(m, inputs, k=20, eps=eps).numpy()
    twentyfold = {name: np.repeat(value, 20, axis=0) for name, value in inputs.items()}
    singles = log_likelihood_iw(m, twentyfold, k=1, eps=tf.reshape(eps, [8 * 20, 1, -1])).numpy()
    singles = singles.reshape(8, 20)
    assert np.all(iw >= singles.mean(axis=1) - 1e-4)
    assert np.all(iw <= singles.max(axis=1) + 1e-4)


def test_log_uniform_candidates_follow_the_zipf_law():
    from model.vae import log_uniform_candidates

    tf.random.set_seed(0)
    vocab = 100
    ids, logq = log_uniform_candidates(200_000, vocab)
    ids = ids.numpy()
    assert ids.min() >= 0 and ids.max() < vocab
    expected = np.log(np.arange(2, vocab + 2) / np.arange(1, vocab + 1)) / np.log(vocab + 1)
    observed = np.bincount(ids, minlength=vocab) / len(ids)
    np.testing.assert_allclose(observed[:5], expected[:5], rtol=0.05)
    np.testing.assert_allclose(np.exp(logq.numpy()[:50]) / 200_000, expected[ids[:50]], rtol=1e-4)


def test_sampled_softmax_training_lowers_the_exact_nll():
    """The estimator is only worth its speed if descending it descends the exact loss."""
    from model.vae import sampled_token_nll, token_nll

    tf.random.set_seed(1)
    rng = np.random.default_rng(1)
    vocab, units = 400, 16
    hidden = tf.constant(rng.normal(size=(32, 6, units)), tf.float32)
    # Targets a fixed linear map would explain, so the exact NLL can fall far below log V.
    truth = rng.normal(size=(units, vocab))
    targets = tf.constant(np.argmax(hidden.numpy() @ truth, axis=-1), tf.int32)
    kernel = tf.Variable(tf.zeros([units, vocab]))
    bias = tf.Variable(tf.zeros([vocab]))

    def exact() -> float:
        logits = tf.einsum("bth,hv->btv", hidden, kernel) + bias
        return float(tf.reduce_mean(token_nll(logits, targets)))

    before = exact()
    opt = keras.optimizers.Adam(0.05)
    for _ in range(150):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(sampled_token_nll(hidden, targets, kernel, bias, 64))
        opt.apply(tape.gradient(loss, [kernel, bias]), [kernel, bias])
    assert np.isfinite(float(loss))
    assert exact() < 0.5 * before


def test_sampled_loss_terms_skip_the_full_projection(model):
    inputs = dummy_inputs(model.config, batch=4, length=10)
    terms = model.loss_terms(inputs, 0, training=True, num_sampled=16)
    assert np.isfinite(float(terms["loss"])) and float(terms["rec"]) > 0
    out = model(inputs, training=False, hidden_only=True)
    assert "logits" not in out and out["hidden"].shape == (4, 9, model.config.dec_units)
