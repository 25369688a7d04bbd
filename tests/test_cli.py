"""The command line a first-time user meets: many poems at once, and no TensorFlow chatter."""
from __future__ import annotations

import io
import subprocess
import sys

import pytest

from devtools.procs import ROOT, child_env

# What TensorFlow's C++ side prints at import and at the first kernel when nobody quiets it.
NATIVE_NOISE = ("cpu_feature_guard", "I0000", "absl::InitializeLog", "oneDNN custom operations", "XLA service")


def test_generate_refuses_n_outside_1_to_1000_before_loading_a_model(tiny_model_dir) -> None:
    from model.generate import generate_cli, job_sizes

    err = io.StringIO()
    assert generate_cli(n=1001, model_dir=tiny_model_dir, err=err) == 2 and "between 1 and 1000" in err.getvalue()
    assert generate_cli(n=0, model_dir=tiny_model_dir, err=io.StringIO()) == 2
    assert job_sizes(25) == [10, 10, 5] and job_sizes(1000) == [10] * 100


def test_generate_writes_more_than_a_job_holds_with_a_progress_bar(tiny_model_dir, tmp_path, monkeypatch) -> None:
    from model.generate import generate_cli

    monkeypatch.setenv("POEMBOT_DATA_DIR", str(tmp_path))      # no corpus: no theme or novelty table
    out, err = io.StringIO(), io.StringIO()
    assert generate_cli(form="五绝", n=23, seed=5, model_dir=tiny_model_dir, novelty=False, out=out, err=err) == 0
    assert out.getvalue().count("  — 五绝") == 23
    assert "23/23" in err.getvalue()                      # tqdm's bar, on stderr


def test_commands_keep_tensorflow_native_logs_quiet(tiny_model_dir, tmp_path) -> None:
    env = child_env(POEMBOT_LOG_FORMAT="text", POEMBOT_DATA_DIR=tmp_path)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)                  # as on a user's terminal
    proc = subprocess.run([sys.executable, "-m", "poembot_cli", "generate", "-n", "2", "--seed", "1",
                           "--model", str(tiny_model_dir)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("  — 七绝") == 2
    assert not [line for line in proc.stderr.splitlines() if any(n in line for n in NATIVE_NOISE)], proc.stderr


def test_generate_takes_style_names_and_aliases_as_the_bot_does(tmp_path) -> None:
    import json

    import typer
    from poembot_cli import style_id_of

    (tmp_path / "libai.json").write_text(json.dumps({"id": "libai", "title": "李白", "aliases": ["太白", "li bai"]}),
                                         encoding="utf-8")
    for name in ("libai", "李白", "李白 ", "太白", "Li Bai", "李白"):
        assert style_id_of(name, tmp_path) == "libai"
    with pytest.raises(typer.Exit) as err:
        style_id_of("杜甫", tmp_path)
    assert err.value.exit_code == 2
