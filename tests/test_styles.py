"""Style adapters (model/styles.py, training/style.py) on the tiny random model."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from model.requests import PoemRequest
from protocol.jobs import E_INVALID, E_UNKNOWN_STYLE, GenerateJob, ValidationError, validate_generate

STYLE_IDS = ("alpha", "beta", "gamma")


@pytest.fixture(scope="module")
def styles_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three random adapters of different ranks, trained (in name) on the tiny model."""
    from search.files import model_version
    from model.styles import random_adapter, save_style

    folder = tmp_path_factory.mktemp("styles")
    for k, sid in enumerate(STYLE_IDS):
        save_style(folder, sid, random_adapter(tiny_model_dir, rank=2 + k, seed=k, scale=0.5),
                   {"title": sid.upper(), "line": f"第{k}种", "base_version": model_version(tiny_model_dir)})
    return folder


@pytest.fixture(scope="module")
def styled(tiny_model_dir: Path, styles_dir: Path):
    from model.decode import Generator

    return Generator.load(tiny_model_dir, novelty=False, styles_dir=styles_dir)


def test_style_field_is_checked_by_the_protocol() -> None:
    with pytest.raises(ValidationError) as err:
        validate_generate(GenerateJob(style="li bai"))
    assert err.value.code == E_INVALID
    with pytest.raises(ValidationError) as err:
        validate_generate(GenerateJob(style="dufu"), styles=["libai", "wangwei"])
    assert err.value.code == E_UNKNOWN_STYLE and "libai, wangwei" in err.value.message
    assert validate_generate(GenerateJob(style="libai"), styles=["libai"]).style == "libai"


def test_bank_skips_adapters_of_another_base_or_shape(tiny_model_dir: Path, styles_dir: Path,
                                                      tmp_path: Path) -> None:
    from search.files import model_version
    from model.styles import StyleBank, load_style, random_adapter, save_style
    from model.vae import CONFIG_FILE, VAEConfig

    config = VAEConfig.from_dict(json.loads((tiny_model_dir / CONFIG_FILE).read_text()))
    version = model_version(tiny_model_dir)
    good = load_style(styles_dir / "alpha.npz")
    save_style(tmp_path, "good", good.arrays, {"base_version": version})
    save_style(tmp_path, "other_base", good.arrays, {"base_version": "0123456789abcdef"})
    wrong = random_adapter(tiny_model_dir)
    wrong["out_b"] = wrong["out_b"][:, :-1]
    save_style(tmp_path, "wrong_shape", wrong, {"base_version": version})
    bank = StyleBank.load(tmp_path, config, version)
    assert bank.ids == ["good"]


def test_every_shipped_style_is_served_by_the_shipped_model() -> None:
    """The styles in model/styles load beside model/pretrained (once, re-saving the same weights
    compressed changed the model's version and silently unloaded all five)."""
    from search.files import model_version
    from model.styles import StyleBank
    from model.vae import CONFIG_FILE, VAEConfig

    root = Path(__file__).resolve().parent.parent
    pretrained, shipped = root / "model" / "pretrained", root / "model" / "styles"
    config = VAEConfig.from_dict(json.loads((pretrained / CONFIG_FILE).read_text()))
    bank = StyleBank.load(shipped, config, model_version(pretrained))
    assert bank.ids == sorted(p.stem for p in shipped.glob("*.npz"))
    assert len(bank.ids) >= 5


def test_the_model_version_is_the_weights_content_not_their_file(tiny_model_dir: Path,
                                                                  tmp_path: Path) -> None:
    """The same arrays saved plain or compressed are one version; one changed value is another."""
    import shutil

    from search.files import model_version

    with np.load(tiny_model_dir / "weights.npz") as z:
        arrays = {k: z[k] for k in z.files}
    plain, packed, changed = (tmp_path / n for n in ("plain", "packed", "changed"))
    for folder in (plain, packed, changed):
        folder.mkdir()
        for name in ("config.json", "vocab.json"):
            shutil.copy(tiny_model_dir / name, folder / name)
    np.savez(plain / "weights.npz", **arrays)
    np.savez_compressed(packed / "weights.npz", **arrays)
    key = next(k for k in arrays if arrays[k].dtype.kind == "f")
    edited = arrays[key].copy()
    edited.flat[0] += 1
    np.savez(changed / "weights.npz", **{**arrays, key: edited})
    assert (plain / "weights.npz").read_bytes() != (packed / "weights.npz").read_bytes()
    assert model_version(plain) == model_version(packed) == model_version(tiny_model_dir)
    assert model_version(changed) != model_version(plain)


def test_a_mixed_batch_applies_each_rows_own_adapter(tiny_model, styled) -> None:
    """StyleMix (the stacked, masked form) gives every row exactly its style's logits."""
    import tensorflow as tf

    from model.styles import Adapter, StyleMix, stacked_tensors

    bank = styled.styles
    stacked = stacked_tensors(bank)
    rows = np.array([-1, 0, 1, 2, 1, -1], np.int32)
    B = len(rows)
    rng = np.random.default_rng(0)
    token = tf.constant(rng.integers(5, 40, B), tf.int32)
    z = tf.constant(rng.standard_normal((B, tiny_model.config.latent_dim)), tf.float32)
    form = tf.constant(rng.integers(0, 4, B), tf.int32)
    state = tiny_model.decoder_init(z, form)
    mixed, mixed_state = tiny_model.decoder_step(token, state, z, form, StyleMix(stacked, rows))
    for b, s in enumerate(rows):
        one = None if s < 0 else Adapter.constant(bank.styles[s].arrays)
        want, want_state = tiny_model.decoder_step(token[b:b + 1], state[b:b + 1], z[b:b + 1],
                                                   form[b:b + 1], one)
        np.testing.assert_allclose(mixed[b], want[0], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(mixed_state[b], want_state[0], rtol=1e-4, atol=1e-4)
    base, _ = tiny_model.decoder_step(token, state, z, form)
    assert not np.allclose(mixed[1], base[1], atol=1e-3), "a style must change the logits"


def test_styled_poems_are_labelled_valid_and_same_alone_or_mixed(styled) -> None:
    jobs = [PoemRequest(form="五绝", style=s, seed=7, best_of=1) for s in ("", *STYLE_IDS)]
    together = styled.generate(jobs)
    assert all(r.ok for r in together), [r.error_message for r in together]
    for job, result in zip(jobs, together):
        poem = result.poems[0]
        assert poem["style"] == job.style and poem["form_ok"] and poem["rhyme_ok"]
        alone = styled.generate([PoemRequest(form="五绝", style=job.style, seed=7, best_of=1)])[0]
        assert alone.poems[0]["lines"] == poem["lines"]
    texts = {tuple(r.poems[0]["lines"]) for r in together}
    assert len(texts) > 1, "the styles wrote the same poem as the base model"


def test_unknown_style_is_refused_with_the_list(styled) -> None:
    result = styled.generate([PoemRequest(style="nobody", seed=1)])[0]
    assert not result.ok and result.error_code == E_UNKNOWN_STYLE
    assert all(sid in result.error_message for sid in STYLE_IDS)


def test_style_prior_centres_latents_on_the_style(styled) -> None:
    """A styled poem's z is drawn around the style's centre, spread as its poems are."""
    style = styled.styles.get("alpha")
    rows, _ = styled.plan([PoemRequest(style="alpha", seed=s, best_of=1) for s in range(400)])
    z = np.stack([r.z for r in rows])
    se = style.arrays["z_std"] / np.sqrt(len(z))
    assert np.all(np.abs(z.mean(0) - style.arrays["z_mu"]) < 5 * se)
    assert np.all(np.abs(z.std(0) / style.arrays["z_std"] - 1) < 0.25)
    base, _ = styled.plan([PoemRequest(seed=s, best_of=1) for s in range(400)])
    assert np.all(np.abs(np.stack([r.z for r in base]).mean(0)) < 5 / np.sqrt(400))


def test_training_an_adapter_lowers_held_out_nll(tiny_model, tiny_vocab) -> None:
    """On poems with a strong manner (a few characters only), the adapter learns it."""
    from training.style import StyleSet, heldout_iw_nll, train_adapter

    rng = np.random.default_rng(3)
    chars = [c for c in tiny_vocab.chars[8:40]]
    poems = [["".join(rng.choice(chars[:12], 5)) for _ in range(4)] for _ in range(120)]
    style_set = StyleSet(train=poems[:100], held=poems[100:])
    arrays, summary = train_adapter(tiny_model, tiny_vocab, style_set, rank=2, lr=1e-2, batch_size=32,
                                    max_steps=60, max_minutes=2, val_every=20, patience=3)
    assert summary["held_recon_nll_style"] < summary["held_recon_nll_base"] - 0.1
    from model.styles import Adapter
    base = heldout_iw_nll(tiny_model, tiny_vocab, style_set.held, None, k=4)
    mine = heldout_iw_nll(tiny_model, tiny_vocab, style_set.held, Adapter.constant(arrays), k=4)
    assert mine < base
    assert arrays["z_std"].shape == (tiny_model.config.latent_dim,) and np.all(arrays["z_std"] > 0)


def test_a_style_needs_enough_regular_poems(tmp_path: Path) -> None:
    from training.style import file_set

    path = tmp_path / "few.txt"
    path.write_text("床前明月光，疑是地上霜。举头望明月，低头思故乡。\n" * 3, encoding="utf-8")
    with pytest.raises(ValueError, match="at least"):
        file_set(path)


def test_a_bias_only_adapter_serves_beside_low_rank_ones(tiny_model, tiny_model_dir) -> None:
    """Rank 0 (a bias adapter) stacks with the others and shifts the logits by its bias alone."""
    import tensorflow as tf

    from model.styles import Style, StyleBank, StyleMix, random_adapter, stacked_tensors, zero_adapter

    bias_only = zero_adapter(tiny_model.config, 0)
    bias_only["out_bias"] = np.linspace(-1, 1, tiny_model.config.vocab_size).astype(np.float32)
    bank = StyleBank([Style("b", {}, bias_only), Style("r", {}, random_adapter(tiny_model_dir, rank=3))])
    stacked = stacked_tensors(bank)
    token = tf.constant([7, 7], tf.int32)
    z = tf.zeros([2, tiny_model.config.latent_dim])
    form = tf.constant([0, 0], tf.int32)
    state = tiny_model.decoder_init(z, form)
    mixed, _ = tiny_model.decoder_step(token, state, z, form, StyleMix(stacked, np.array([0, -1], np.int32)))
    base, _ = tiny_model.decoder_step(token, state, z, form)
    np.testing.assert_allclose(mixed[0] - base[0], bias_only["out_bias"], atol=1e-5)
    np.testing.assert_allclose(mixed[1], base[1], atol=1e-6)
