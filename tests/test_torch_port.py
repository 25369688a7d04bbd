"""The PyTorch port of the poem VAE (training/torch_vae.py) and its GPU-machine trainer
(training/device_train.py): the same numbers as the Keras PoemVAE on the same weights, folders our
Keras loader reads, a grown decoder that starts as its source, and a run on a tiny pack that learns,
returns its weights in parts within the machine's limits and assembles into a model folder."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install torch==2.13.0, CPU build)")
tf = pytest.importorskip("tensorflow", reason="the Keras model to compare with needs TensorFlow")

from model.vae import VAEConfig, beta_at, build_vae, load_model, save_model  # noqa: E402
from model.folder import read_weights  # noqa: E402
from training.torch_vae import TorchPoemVAE, beta_schedule, load_torch_folder, save_torch_folder  # noqa: E402
from verse.vocab import BOS, EOS, PAD, SPECIALS, UNK, Vocab  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PRETRAINED = ROOT / "model" / "pretrained"
VOCAB = Vocab(list(SPECIALS) + list("春风明月山水花落江南秋夜云雨人归来去"))
SMALL = dict(vocab_size=len(VOCAB), emb_dim=8, enc_units=6, dec_units=12, latent_dim=4, form_dim=3,
             title_len=4, title_dim=5, free_bits=0.3, anneal="cyclical", anneal_steps=10)
TOL = 1e-4


def _t(a: np.ndarray) -> "torch.Tensor":
    return torch.from_numpy(np.asarray(a)).long() if np.asarray(a).dtype.kind in "iu" else torch.from_numpy(a)


@pytest.fixture(scope="module")
def small_dir(tmp_path_factory) -> Path:
    """A small titled Keras model with every weight random (the zero-initialised title layers too),
    saved as float32."""
    model = build_vae(VAEConfig(**SMALL))
    rng = np.random.default_rng(0)
    for var in model.weights:
        var.assign(rng.normal(0, 0.5, var.shape).astype(np.float32))
    return save_model(model, VOCAB, tmp_path_factory.mktemp("small") / "model", dtype="float32")


def _inputs(seed: int = 1) -> dict:
    """Three poems of one length, the last PAD after its EOS (the encoder must stop there); titles
    of two, three and no characters."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(len(SPECIALS), len(VOCAB), size=(3, 10)).astype(np.int32)
    tokens[:, 0], tokens[:, -1] = BOS, EOS
    tokens[2, 6], tokens[2, 7:] = EOS, PAD
    title = np.full((3, 4), PAD, np.int32)
    title[0, :2] = rng.integers(len(SPECIALS), len(VOCAB), 2)
    title[1, :3] = rng.integers(len(SPECIALS), len(VOCAB), 3)
    return {"tokens": tokens, "form": np.array([0, 2, 3], np.int32), "title": title}


def _torch_out(module: TorchPoemVAE, inputs: dict, eps: np.ndarray) -> dict:
    with torch.no_grad():
        out = module(_t(inputs["tokens"]), _t(inputs["form"]), _t(inputs["title"]), eps=torch.from_numpy(eps))
    return {k: v.numpy() for k, v in out.items()}


def _max_err(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape
    return float(np.abs(a - b).max())


def test_logits_and_posterior_equal_the_keras_models_on_a_small_titled_config(small_dir):
    keras_model, _, config = load_model(small_dir)
    module = load_torch_folder(small_dir).eval()
    inputs = _inputs()
    eps = np.random.default_rng(2).normal(size=(3, config.latent_dim)).astype(np.float32)
    want = keras_model(inputs, eps=tf.constant(eps))
    got = _torch_out(module, inputs, eps)
    for key in ("mu", "logvar", "z", "logits"):
        assert _max_err(got[key], want[key].numpy()) < TOL, key
    # The PAD-tailed poem is encoded as its own length, not as if PAD were characters.
    padded = {**inputs, "tokens": inputs["tokens"].copy()}
    padded["tokens"][2, 7:] = len(SPECIALS)
    assert np.abs(_torch_out(module, padded, eps)["mu"][2] - got["mu"][2]).max() > 1e-3


def _real_inputs(vocab: Vocab) -> dict:
    poems = [("五绝", 0, ["白日依山尽", "黄河入海流", "欲穷千里目", "更上一层楼"], "登鹳雀楼"),
             ("五绝", 0, ["床前明月光", "疑是地上霜", "举头望明月", "低头思故乡"], "静夜思"),
             ("五绝", 0, ["春眠不觉晓", "处处闻啼鸟", "夜来风雨声", "花落知多少"], ""),
             ("五绝", 0, ["千山鸟飞绝", "万径人踪灭", "孤舟蓑笠翁", "独钓寒江雪"], "江雪")]
    from model.titles import encode_titles
    return {"tokens": np.array([vocab.encode_lines(lines) for _, _, lines, _ in poems], np.int32),
            "form": np.array([f for _, f, _, _ in poems], np.int32),
            "title": encode_titles([t for *_, t in poems], vocab, 16)}


def test_the_shipped_model_gives_the_same_logits_in_both(record_property):
    keras_model, vocab, config = load_model(PRETRAINED)
    module = load_torch_folder(PRETRAINED).eval()
    inputs = _real_inputs(vocab)
    assert (inputs["tokens"] != UNK).all() and (inputs["title"][0] != PAD).sum() == 4
    eps = np.zeros((4, config.latent_dim), np.float32)           # z = mu in both
    want = keras_model(inputs, eps=tf.constant(eps))
    got = _torch_out(module, inputs, eps)
    errors = {k: _max_err(got[k], want[k].numpy()) for k in ("mu", "logvar", "logits")}
    record_property("shipped_max_abs_errors", errors)
    print("shipped model, max abs errors:", errors)
    assert all(e < TOL for e in errors.values()), errors
    assert np.abs(want["logits"].numpy()).max() > 10           # a real scale, not all near zero


@pytest.mark.parametrize("dropout", [False, True])
def test_loss_terms_equal_keras_loss_terms(small_dir, dropout):
    """Without dropout, and with word and title dropout at rate 1 (every droppable character <unk>,
    every title blank: the same masks in both), at a fixed beta and at the schedule's."""
    _, _, config = load_model(small_dir)
    if dropout:
        config.word_dropout, config.title_dropout = 1.0, 1.0
    keras_model = build_vae(config)
    from model.folder import load_weights
    load_weights(keras_model, small_dir)
    module = load_torch_folder(small_dir, config)
    inputs = _inputs(3)
    eps = np.random.default_rng(4).normal(size=(3, config.latent_dim)).astype(np.float32)
    results = []
    for beta, step in ((0.7, 0), (None, 7)):
        want = keras_model.loss_terms(inputs, step, training=dropout, beta=beta, eps=tf.constant(eps))
        with torch.no_grad():
            got = module.loss_terms(_t(inputs["tokens"]), _t(inputs["form"]), _t(inputs["title"]), step=step,
                                    beta=beta, eps=torch.from_numpy(eps), training=dropout)
        for key in ("loss", "rec", "kl", "kl_fb", "beta", "n_tokens"):
            assert abs(float(got[key]) - float(want[key])) < TOL * max(1.0, abs(float(want[key]))), key
        results.append(float(got["loss"]))
    assert float(beta_at(config, 7)) == pytest.approx(beta_schedule(config, 7)) and beta_schedule(config, 7) != 0.7
    if dropout:    # the masks did change what the decoder read
        with torch.no_grad():
            plain = module.loss_terms(_t(inputs["tokens"]), _t(inputs["form"]), _t(inputs["title"]),
                                      beta=0.7, eps=torch.from_numpy(eps), training=False)
        assert abs(float(plain["loss"]) - results[0]) > 1e-3


def test_beta_schedules_agree():
    for anneal in ("cyclical", "linear", "none"):
        config = VAEConfig(vocab_size=10, anneal=anneal, anneal_steps=8, anneal_ratio=0.5, beta_max=0.9)
        for step in (0, 3, 4, 7, 8, 13, 30):
            assert beta_schedule(config, step) == pytest.approx(float(beta_at(config, step)), abs=1e-6)


def test_a_saved_torch_model_loads_in_keras_and_computes_the_same(small_dir, tmp_path):
    module = TorchPoemVAE(VAEConfig(**SMALL))           # fresh torch weights, titles' zero layers moved
    with torch.no_grad():
        module.title_in.weight.normal_(0, 0.3)
        module.title_init.weight.normal_(0, 0.3)
    folder = save_torch_folder(module.eval(), VOCAB, tmp_path / "saved", dtype="float32")
    keras_model, vocab, config = load_model(folder)       # our Keras loader: names, order, shapes
    assert vocab.chars == VOCAB.chars and config.dec_units == SMALL["dec_units"]
    inputs = _inputs(5)
    eps = np.random.default_rng(6).normal(size=(3, config.latent_dim)).astype(np.float32)
    got = _torch_out(module, inputs, eps)["logits"]
    assert _max_err(got, keras_model(inputs, eps=tf.constant(eps))["logits"].numpy()) < TOL
    # And back: the folder read into torch again holds the same weights.
    again = load_torch_folder(folder)
    for key, value in module.keras_arrays().items():
        np.testing.assert_array_equal(again.keras_arrays()[key], value)
    # The weight names are the ones a Keras-written folder of this config holds.
    from model.folder import weight_key
    assert list(read_weights(folder)) == [weight_key(w.path) for w in build_vae(config).weights]


def test_a_grown_torch_model_computes_what_its_source_did(small_dir, tmp_path):
    keras_model, _, config = load_model(small_dir)
    wider = VAEConfig(**{**SMALL, "dec_units": 20})
    grown = load_torch_folder(small_dir, wider).eval()
    inputs = _inputs(7)
    eps = np.random.default_rng(8).normal(size=(3, config.latent_dim)).astype(np.float32)
    want = keras_model(inputs, eps=tf.constant(eps))["logits"].numpy()
    assert _max_err(_torch_out(grown, inputs, eps)["logits"], want) < TOL
    # The new units have states of their own (nothing reads them yet), and the grown folder loads in Keras.
    with torch.no_grad():
        hidden = grown.decode_hidden(_t(inputs["tokens"])[:, :-1], torch.zeros(3, 4), _t(inputs["form"]),
                                     _t(inputs["title"]))
    assert hidden.shape[-1] == 20 and hidden[..., 12:].abs().max() > 1e-3
    folder = save_torch_folder(grown, VOCAB, tmp_path / "grown", dtype="float32")
    assert _max_err(load_model(folder)[0](inputs, eps=tf.constant(eps))["logits"].numpy(), want) < TOL
    with pytest.raises(ValueError, match="shrink"):
        load_torch_folder(small_dir, VAEConfig(**{**SMALL, "dec_units": 8}))


def test_the_ci_model_is_refused():
    with pytest.raises(ValueError, match="template_dim"):
        TorchPoemVAE(VAEConfig(vocab_size=10, template_dim=3))


# --- the pack, the device trainer and the assembled folder -------------------------------------------
@pytest.fixture(scope="module")
def tiny_pack(tmp_path_factory) -> Path:
    """A pack of the synthetic corpus for training/configs/tiny.json's model, titled."""
    from training.pack import write_pack
    from training.train import CONFIG_DIR

    cfg = json.loads((CONFIG_DIR / "tiny.json").read_text())
    cfg["model"].update(title_len=4, title_dim=6)
    cfg["train"].update(lr=0.01, warmup_fraction=0.0, full_beta_from=0.0)
    root = tmp_path_factory.mktemp("pack")
    (root / "config.json").write_text(json.dumps(cfg))
    return write_pack(root / "config.json", root / "pack")


def test_the_pack_holds_what_train_py_trains_on(tiny_pack):
    from training.pack import load_pack
    from training.train import TrainConfig, training_data

    pack = load_pack(tiny_pack)
    cfg = TrainConfig.load(tiny_pack.parent / "config.json")
    vocab, train, val, train_titles, val_titles = training_data(cfg)
    assert pack.vocab.chars == vocab.chars
    for mine, theirs in ((pack.train, train), (pack.val, val), (pack.train_titles, train_titles),
                         (pack.val_titles, val_titles)):
        assert sorted(mine) == sorted(theirs)
        for form in theirs:
            np.testing.assert_array_equal(mine[form], theirs[form])
    # train.py's validation draws: each form's first chunk is seeded [form, 0].
    form = min(val)
    want = tf.random.stateless_normal([len(val[form][:256]), 32], seed=[form, 0]).numpy()
    np.testing.assert_array_equal(pack.val_eps[form][:256], want)


def test_device_modules_import_without_tensorflow():
    code = ("import sys, training.device_train, training.torch_vae, training.pack, training.device_result; "
            "bad = [m for m in ('tensorflow', 'keras', 'pydantic') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_the_logs_have_train_py_columns():
    from training import device_train, train
    assert device_train.LOG_FIELDS == train.LOG_FIELDS and device_train.VAL_FIELDS == train.VAL_FIELDS


def _keras_validation(folder: Path, pack_dir: Path) -> float:
    """val nll/char of a model folder as train.py's validate computes it (its eval step, its draws)."""
    from training.pack import load_pack

    model, _, _ = load_model(folder)
    pack = load_pack(pack_dir)
    rec = kl = chars = n = 0.0
    for form, matrix in sorted(pack.val.items()):
        for start in range(0, len(matrix), 256):
            tok = matrix[start:start + 256].astype(np.int32)
            eps = tf.random.stateless_normal([len(tok), model.config.latent_dim], seed=[form, start])
            terms = model.loss_terms({"tokens": tok, "form": np.full(len(tok), form, np.int32),
                                      "title": pack.val_titles[form][start:start + 256].astype(np.int32)},
                                     0, training=False, beta=1.0, eps=eps)
            rec += float(terms["rec"]) * len(tok)
            kl += float(terms["kl"]) * len(tok)
            chars += float(terms["n_tokens"]) * len(tok)
            n += len(tok)
    return (rec + kl) / chars


def test_a_device_run_learns_returns_parts_and_assembles(tiny_pack, tmp_path):
    from training.device_result import MAX_FILES, assemble, read_parts
    from training.device_train import RunOptions, bench, run

    limit = 40_000                                  # small parts: the tiny model must come in several
    out = tmp_path / "out"
    result = run(RunOptions(pack=str(tiny_pack), out=str(out), steps=40, minutes=10, log_every=5,
                            val_every_minutes=1e6, part_limit=limit, seed=3, device="cpu"))
    rows = [r.split(",") for r in (out / "log.csv").read_text().splitlines()[1:]]
    assert [int(r[0]) for r in rows] == list(range(5, 45, 5))
    per_char = [float(r[9]) for r in rows]         # forms differ in length: per character compares
    assert np.mean(per_char[-2:]) < np.mean(per_char[:2]) - 0.1, per_char
    vals = (out / "val.csv").read_text().splitlines()
    assert len(vals) == 3                           # header, the starting figure, the end's
    start_nll, end_nll = (float(v.split(",")[4]) for v in vals[1:])
    assert end_nll < start_nll and result["best"]["val_nll_per_char"] == pytest.approx(end_nll, abs=1e-4)
    files = sorted(p.name for p in out.iterdir())
    parts = [p for p in out.iterdir() if p.name.startswith("weights.part")]
    assert len(parts) >= 2 and all(p.stat().st_size <= limit for p in parts)
    assert len(files) <= MAX_FILES and not any(".tmp" in f for f in files), files
    # The assembled folder loads in Keras and validates there as the run did.
    folder = assemble(out, tmp_path / "model", dtype="float32")
    assert _keras_validation(folder, tiny_pack) == pytest.approx(result["best"]["val_nll_per_char"], abs=1e-4)
    assert load_model(folder)[2].title_len == 4
    assert json.loads((folder / "train_state.json").read_text())["best_step"] == result["best"]["step"] == 40
    # A resumed run continues the schedule from there, into a folder of its own.
    resumed = run(RunOptions(pack=str(tiny_pack), out=str(tmp_path / "more"), resume=str(out), steps=50,
                             minutes=10, log_every=5, val_every_minutes=1e6, device="cpu"))
    assert resumed["state"]["step"] == 50
    assert (tmp_path / "more" / "log.csv").read_text().count("\n") == len(rows) + 1 + 2
    assert set(read_parts(tmp_path / "more")) == set(read_parts(out))
    # And the bench times steps without writing anything.
    rows = bench(RunOptions(pack=str(tiny_pack), device="cpu"), 2, [8, 16])
    assert [r["batch_size"] for r in rows] == [8, 16] and all(r["tokens_per_s"] > 0 for r in rows)


def test_parts_split_large_arrays_and_refuse_mixed_sets(tmp_path):
    import shutil

    from training.device_result import read_parts, write_parts

    arrays = {"a/kernel": np.arange(100_000, dtype=np.float32).reshape(100, 1000),   # 400 kB: cut in pieces
              "b/bias": np.ones(7, np.float32)}
    paths = write_parts(arrays, tmp_path, generation=1, limit=300_000)
    assert len(paths) >= 2 and all(p.stat().st_size <= 300_000 for p in paths)
    back = read_parts(tmp_path)
    assert list(back) == list(arrays)
    for k in arrays:
        np.testing.assert_array_equal(back[k], arrays[k])
    # A part left from another save is refused, not mixed in.
    shutil.copyfile(paths[1], tmp_path / "old.npz")
    write_parts({k: v + 1 for k, v in arrays.items()}, tmp_path, generation=2, limit=300_000)
    shutil.copyfile(tmp_path / "old.npz", paths[1])
    with pytest.raises(ValueError, match="different saves"):
        read_parts(tmp_path)
    # Fewer parts next time: the stale ones go.
    write_parts({"b/bias": np.ones(7, np.float32)}, tmp_path, generation=3, limit=300_000)
    assert list(read_parts(tmp_path)) == ["b/bias"] and not (tmp_path / "weights.part1.npz").exists()


def test_the_bf16_step_runs_and_keeps_the_logits_float32():
    """The CUDA path's autocast, tried with the CPU's (the same code; no GPU here)."""
    from training.device_train import train_step

    module = TorchPoemVAE(VAEConfig(**SMALL))
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
    inputs = _inputs(9)
    batch = (_t(inputs["tokens"]), _t(inputs["form"]), _t(inputs["title"]), True)
    before = module.logits.weight.detach().clone()
    terms = train_step(module, optimizer, batch, 1.0, 5.0, torch.device("cpu"), amp=True)
    assert torch.isfinite(terms["loss"]) and not torch.equal(before, module.logits.weight)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        out = module(*batch[:3])
    assert out["logits"].dtype == torch.float32


def test_the_cli_packs_and_assembles(tiny_pack, tmp_path):
    from typer.testing import CliRunner

    from poembot_cli import app
    from training.device_train import RunOptions, run

    runner = CliRunner()
    result = runner.invoke(app, ["corpus", "pack", "--fresh", "--config", str(tiny_pack.parent / "config.json"),
                                 "--out", str(tmp_path / "pack")])
    assert result.exit_code == 0, result.output
    assert "pack written to" in result.output
    assert (tmp_path / "pack" / "pack.npz").read_bytes() == (tiny_pack / "pack.npz").read_bytes()
    run(RunOptions(pack=str(tmp_path / "pack"), out=str(tmp_path / "out"), steps=2, log_every=1, device="cpu"))
    result = runner.invoke(app, ["assemble", str(tmp_path / "out"), "--out", str(tmp_path / "model")])
    assert result.exit_code == 0, result.output
    model, vocab, config = load_model(tmp_path / "model")
    assert config.title_len == 4 and len(vocab) == config.vocab_size
    result = runner.invoke(app, ["assemble", str(tmp_path / "nothing"), "--out", str(tmp_path / "m2")])
    assert result.exit_code != 0


def test_word_dropout_is_an_option_and_the_pack_keeps_its_own(tiny_pack):
    from training.device_train import model_config, parse
    from training.pack import load_pack

    pack = load_pack(tiny_pack)
    opts, _, _ = parse(["--pack", str(tiny_pack), "--word-dropout", "0"])
    assert opts.word_dropout == 0.0 and model_config(pack, opts).word_dropout == 0.0
    default, _, _ = parse(["--pack", str(tiny_pack)])
    assert model_config(pack, default).word_dropout == pack.config["model"]["word_dropout"] > 0


def test_an_assembled_folder_continues_its_starting_models_curve(tiny_pack, tmp_path):
    import csv
    import shutil

    from training.device_result import assemble
    from training.device_train import RunOptions, run

    start = tmp_path / "start"
    start.mkdir()
    (start / "val_history.csv").write_text("run,cumulative_hours,val_nll_per_char\nrun 1,0.5000,6.0000\n")
    out = tmp_path / "out"
    run(RunOptions(pack=str(tiny_pack), out=str(out), steps=3, log_every=1, device="cpu"))
    state = json.loads((out / "run.json").read_text())
    state["state"]["init_from"] = str(start)
    (out / "run.json").write_text(json.dumps(state))
    folder = assemble(out, tmp_path / "model", name="run 2 (gpu)")
    with open(folder / "val_history.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0] == {"run": "run 1", "cumulative_hours": "0.5000", "val_nll_per_char": "6.0000"}
    assert len(rows) == 3 and {r["run"] for r in rows[1:]} == {"run 2 (gpu)"}
    shutil.rmtree(start)
    assert not (assemble(out, tmp_path / "again") / "val_history.csv").exists()
