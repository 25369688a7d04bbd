"""`poembot run`'s background job (run/prepare.py): it plans only what is missing, holds the index's
building marker while it works, and a failed step is reported and left for the next run."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

from bot.fonts import ALL_FILES
from bot.similar import build_running
from search.files import building_marker
from run.prepare import Step, plan, run
from search.files import model_version
from search.index import Index


def env_for(tmp_path: Path) -> dict[str, str]:
    model = tmp_path / "model"
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text("{}")
    return {**os.environ, "POEMBOT_DATA_DIR": str(tmp_path / "data"), "POEMBOT_MODEL_DIR": str(model)}


def test_plan_is_everything_on_a_clean_machine_and_nothing_once_built(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    steps = plan(env)
    assert [s.name for s in steps] == ["fonts", "corpus fetch", "corpus build", "index build"]
    version = model_version(tmp_path / "model")
    index_dir = tmp_path / "data" / "index" / version
    assert steps[-1].argv[-2:] == ["--out", str(index_dir)]      # where the bot and the worker look

    fonts = tmp_path / "data" / "fonts"
    fonts.mkdir(parents=True)
    for font in ALL_FILES:
        (fonts / font.name).write_bytes(b"")
    Index(version, ["a"], np.ones((1, 8), np.float32), [{}], np.arange(1)).save(index_dir)
    assert plan(env) == []
    assert [s.name for s in plan({**env, "POEMBOT_INDEX_PATH": str(tmp_path / "elsewhere")})] == [
        "corpus fetch", "corpus build", "index build"]


def step(name: str, group: str, code: str) -> Step:
    return Step(name, [sys.executable, "-c", code], group)


def test_the_job_holds_the_marker_while_building_and_a_failure_is_left_for_the_next_run(
        tmp_path: Path, capfd) -> None:
    marker = building_marker(tmp_path / "index" / "v1")
    seen = tmp_path / "seen"
    # The index step looks at the marker from inside the job, as the bot does from outside.
    look = (f"import json, os, pathlib; m = json.loads(pathlib.Path({str(marker)!r}).read_text()); "
            f"pathlib.Path({str(seen)!r}).write_text(str(m['pid'] == os.getppid()) + ' ' + m['step'])")
    steps = [step("fonts", "fonts", "import sys; sys.exit(2)"),
             step("corpus fetch", "index", "pass"),
             step("index build", "index", look)]
    assert run(steps, os.environ, marker) == 1
    assert seen.read_text() == "True index build"
    assert not marker.exists() and not build_running(marker.parent / "v1")
    out = capfd.readouterr().out
    assert "fonts FAILED (exit 2): it is retried on the next `poembot run`" in out
    assert "index build done" in out and "failed: fonts" in out


def test_a_failed_corpus_step_skips_the_index_and_clears_the_marker(tmp_path: Path, capfd) -> None:
    marker = building_marker(tmp_path / "index" / "v1")
    never = tmp_path / "never"
    steps = [step("corpus fetch", "index", "import sys; sys.exit(1)"),
             step("index build", "index", f"open({str(never)!r}, 'w')")]
    assert run(steps, os.environ, marker) == 1
    assert not never.exists() and not marker.exists()
    assert "index build: skipped" in capfd.readouterr().out


def test_the_marker_names_a_live_process(tmp_path: Path) -> None:
    from run.prepare import write_marker

    index_dir = tmp_path / "index" / "v1"
    write_marker(building_marker(index_dir), "corpus build")
    data = json.loads(building_marker(index_dir).read_text())
    assert data["pid"] == os.getpid() and data["step"] == "corpus build" and build_running(index_dir)
