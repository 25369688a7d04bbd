"""Growing a trained decoder wider (training/grow.py): the grown model starts out computing exactly
what the trained one did, and training can reach the new units."""
from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from model.vae import VAEConfig, build_vae, save_model  # noqa: E402
from training.train import init_from_folder  # noqa: E402
from verse.vocab import BOS, SPECIALS, Vocab  # noqa: E402

VOCAB = Vocab(list(SPECIALS) + list("春风明月山水花落江南秋夜"))
SMALL = dict(vocab_size=len(VOCAB), emb_dim=8, enc_units=8, latent_dim=4, form_dim=4,
             title_len=4, title_dim=6)


@pytest.fixture
def trained_dir(tmp_path):
    """A small titled model with every weight random (the zero-initialised title layers too, as
    after training), saved as a model folder."""
    model = build_vae(VAEConfig(dec_units=12, **SMALL))
    rng = np.random.default_rng(0)
    for var in model.weights:
        var.assign(rng.normal(0, 0.5, var.shape).astype(np.float32))
    save_model(model, VOCAB, tmp_path / "trained", dtype="float32")
    return tmp_path / "trained"


def _inputs(rng: np.random.Generator) -> dict:
    tokens = rng.integers(len(SPECIALS), len(VOCAB), size=(3, 9)).astype(np.int32)
    tokens[:, 0] = BOS
    title = rng.integers(len(SPECIALS), len(VOCAB), size=(3, 4)).astype(np.int32)
    return {"tokens": tokens, "form": np.array([0, 1, 3], np.int32), "title": title}


def test_a_wider_decoder_grown_from_a_trained_one_writes_exactly_as_it_did(trained_dir):
    from model.vae import load_model

    trained, _, _ = load_model(trained_dir)
    grown = build_vae(VAEConfig(dec_units=20, **SMALL))
    assert init_from_folder(grown, trained_dir) == []
    inputs = _inputs(np.random.default_rng(1))
    eps = tf.random.normal([3, 4], seed=3)
    want = trained(inputs, eps=eps)["logits"].numpy()
    got = grown(inputs, eps=eps)["logits"].numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # Step by step too (the decoder the writers run), and the new units do hold a state of their own.
    z = tf.zeros([3, 4])
    form = tf.constant(inputs["form"])
    title_vec = grown.title_vector(tf.constant(inputs["title"]), 3)
    s_old = trained.decoder_init(z, form, trained.title_vector(tf.constant(inputs["title"]), 3))
    s_new = grown.decoder_init(z, form, title_vec)
    for t in range(inputs["tokens"].shape[1] - 1):
        token = tf.constant(inputs["tokens"][:, t])
        l_old, s_old = trained.decoder_step(token, s_old, z, form, title_vec=trained.title_vector(
            tf.constant(inputs["title"]), 3))
        l_new, s_new = grown.decoder_step(token, s_new, z, form, title_vec=title_vec)
        np.testing.assert_allclose(l_new.numpy(), l_old.numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(s_new.numpy()[:, :12], s_old.numpy(), rtol=1e-5, atol=1e-5)
    assert np.abs(s_new.numpy()[:, 12:]).max() > 1e-3


def test_training_reaches_the_new_units_through_the_zero_weights(trained_dir):
    grown = build_vae(VAEConfig(dec_units=20, **SMALL))
    init_from_folder(grown, trained_dir)
    inputs = _inputs(np.random.default_rng(2))
    with tf.GradientTape() as tape:
        loss = grown.loss_terms(inputs, step=0)["loss"]
    grad = tape.gradient(loss, grown.out.kernel).numpy()
    assert np.abs(grad[12:]).max() > 0          # the logits' rows for the new units will move
    assert np.all(grown.out.kernel.numpy()[12:] == 0)


def test_a_narrower_decoder_is_refused(trained_dir):
    with pytest.raises(ValueError, match="shape"):
        init_from_folder(build_vae(VAEConfig(dec_units=8, **SMALL)), trained_dir)


def test_runs_side_by_side_are_compared_by_their_validations(tmp_path):
    from training.plots import compare_runs

    for name, vals in (("wider", (4.30, 4.25)), ("continued", (4.28, 4.27))):
        (tmp_path / name).mkdir()
        rows = ["step,elapsed_s,val_rec,val_kl,val_nll_per_char,cumulative_hours"]
        rows += [f"{100 * k},{300 * (k + 1)},180.0,10.0,{v},9.0" for k, v in enumerate(vals)]
        (tmp_path / name / "val.csv").write_text("\n".join(rows) + "\n")
    png = tmp_path / "cmp.png"
    curves = compare_runs({"wider": tmp_path / "wider", "continued": tmp_path / "continued"}, png, "t")
    assert curves == {"wider": [(5.0, 4.30), (10.0, 4.25)], "continued": [(5.0, 4.28), (10.0, 4.27)]}
    assert png.read_bytes()[:4] == b"\x89PNG"
