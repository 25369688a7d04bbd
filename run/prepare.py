"""The background job of `poembot run`: what serving /poem can do without — the card fonts, the corpus,
and the latent index behind /similar and the worker's theme prior — fetched and built at low priority
while the bot and the worker already serve.

Each step is the poembot command a person would type, planned only when its result is missing, so a run
after a failed or interrupted one takes up where it stopped (the index is published whole by
model/index_build.publish, the corpus build writes build.json last, each font file is renamed into
place). While the index is being made this process holds its building marker
(search.files.building_marker), so /similar answers "being built" rather than "not available".
`python -m run.prepare` runs it by hand; its lines go to `$POEMBOT_DATA_DIR/logs/prepare.log` in
the sandbox.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from search.files import building_marker
from run.child import poembot_argv

STEP_STOP_GRACE_S = 10.0


@dataclass(frozen=True)
class Step:
    """One command of the job; group: steps of a group need the ones before them (corpus → index)."""
    name: str
    argv: list[str]
    group: str


def index_target(env: Mapping[str, str]) -> tuple[Path, Path, str]:
    """(model dir, index dir, model version) as the bot and the worker will look for them."""
    from search.files import model_version
    from protocol.settings import PRETRAINED_DIR, PathsSettings

    paths = PathsSettings.from_env(dict(env))
    model_dir = paths.model_dir or PRETRAINED_DIR
    version = model_version(model_dir)
    # search.files.default_index_dir, but under env's data dir (run's children get env, not os.environ).
    return model_dir, paths.index_path or paths.data_dir / "index" / version, version


def plan(env: Mapping[str, str]) -> list[Step]:
    """The steps still needed: none once the fonts and an index for this model are there."""
    from bot.fonts import missing
    from search.files import is_current
    from protocol.settings import PathsSettings

    steps = []
    if missing(PathsSettings.from_env(dict(env)).fonts):
        steps.append(Step("fonts", poembot_argv("font", "fetch"), "fonts"))
    model_dir, directory, version = index_target(env)
    if (model_dir / "config.json").exists() and not is_current(directory, version):
        steps += [Step("corpus fetch", poembot_argv("corpus", "fetch"), "index"),
                  Step("corpus build", poembot_argv("corpus", "build", "--if-stale"), "index"),
                  Step("index build", poembot_argv("index", "build", "--if-stale", "--model", str(model_dir),
                                                   "--out", str(directory)), "index")]
    return steps


def write_marker(path: Path, step: str) -> None:
    """Say (atomically) that this process is building the index, now at step."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}")
    tmp.write_text(json.dumps({"pid": os.getpid(), "step": step, "since": time.time()}), encoding="utf-8")
    tmp.replace(path)


def say(text: str) -> None:
    """One progress line (the log file's reader follows the job by them)."""
    print(f"[prepare {time.strftime('%H:%M:%S')}] {text}", flush=True)


def run_step(step: Step, env: Mapping[str, str]) -> int:
    """Run one step to its end; a stop (SIGTERM) of this job stops the step too, not leaving it orphaned."""
    proc = subprocess.Popen(step.argv, env=dict(env), stdin=subprocess.DEVNULL)
    try:
        return proc.wait()
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(STEP_STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def run(steps: Sequence[Step], env: Mapping[str, str], marker: Path | None) -> int:
    """Run the steps, a group stopping at its first failure; 0 when every step succeeded."""
    failed: set[str] = set()
    started = time.monotonic()
    try:
        if marker is not None:
            write_marker(marker, "starting")
        for k, step in enumerate(steps, 1):
            if step.group in failed:
                say(f"{k}/{len(steps)} {step.name}: skipped (an earlier step of {step.group} failed)")
                continue
            if marker is not None and step.group == "index":
                write_marker(marker, step.name)
            say(f"{k}/{len(steps)} {step.name}: {' '.join(step.argv[2:])}")
            t = time.monotonic()
            code = run_step(step, env)
            if code != 0:
                failed.add(step.group)
                say(f"{step.name} FAILED (exit {code}): it is retried on the next `poembot run`")
            else:
                say(f"{step.name} done in {time.monotonic() - t:.0f} s")
            if marker is not None and step.group == "index" and step is _last(steps, "index"):
                marker.unlink(missing_ok=True)     # the index is published: no longer "being built"
    finally:
        if marker is not None:
            marker.unlink(missing_ok=True)
    say(("all done" if not failed else f"failed: {', '.join(sorted(failed))}")
        + f" in {time.monotonic() - started:.0f} s")
    return 1 if failed else 0


def _last(steps: Sequence[Step], group: str) -> Step | None:
    return next((s for s in reversed(steps) if s.group == group), None)


def _stop(*_: object) -> None:
    raise SystemExit(143)


def main() -> int:
    """Plan from the environment and run what is missing."""
    signal.signal(signal.SIGTERM, _stop)      # the finally clauses clean up: step stopped, marker gone
    env = dict(os.environ)
    steps = plan(env)
    if not steps:
        say("nothing to do: the fonts and the index are there")
        return 0
    marker = building_marker(index_target(env)[1]) if any(s.group == "index" for s in steps) else None
    return run(steps, env, marker)


if __name__ == "__main__":
    sys.exit(main())
