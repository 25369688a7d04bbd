"""Test-only worker process: the real `poembot worker`, with a model that misbehaves on command.

The production worker (worker/service.py) knows nothing of faults. The tests that need a slow or
failing model start this instead of `python -m poembot_cli worker`:

    python tests/faulty_worker.py [--sleep-s S] [--raise-on JOB_ID ...] -- worker [poembot worker options]

It wraps the loaded generator's run() (the call a batch makes into the model), then hands the rest
of the command line to poembot's own CLI, so everything else is the real worker:

  --sleep-s S        every batch takes S seconds longer, as a slow model would (a real decode is not
                     interrupted by SIGTERM either): the worker holds its jobs and says it is busy, so
                     a test can kill -9 it or SIGTERM it mid-batch.
  --raise-on JOB_ID  any batch holding this job raises, as a model crashing on one input would (the
                     worker then retries the batch's jobs one by one and the job is redelivered).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:       # run as a script: sys.path[0] is tests/, not the repository
    sys.path.insert(0, str(ROOT))


def faulty_run(run: Callable[[Sequence[Any]], list], sleep_s: float, raise_on: set[str]) -> Callable:
    def run_with_faults(requests: Sequence[Any]) -> list:
        if sleep_s:
            time.sleep(sleep_s)
        # A request's id is its job's (worker.request), so raise_on names jobs.
        poisoned = [r.request_id for r in requests if r.request_id in raise_on]
        if poisoned:
            raise RuntimeError(f"injected fault in job {poisoned[0]}")
        return run(requests)
    return run_with_faults


class FaultyGenerator:
    """A generator whose run() misbehaves as faulty_run makes it; every other attribute (styles, the
    vocabulary) is the wrapped generator's. Tests that run a worker on a thread wrap a shared
    generator in one instead of changing it."""

    def __init__(self, generator: Any, sleep_s: float = 0.0, raise_on: Sequence[str] = ()) -> None:
        self._generator = generator
        self.run = faulty_run(generator.run, sleep_s, set(raise_on))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._generator, name)


def main(argv: list[str]) -> None:
    if "--" not in argv:
        raise SystemExit("usage: faulty_worker.py [--sleep-s S] [--raise-on JOB_ID ...] -- worker [options]")
    split = argv.index("--")
    parser = argparse.ArgumentParser(prog="faulty_worker.py")
    parser.add_argument("--sleep-s", type=float, default=0.0)
    parser.add_argument("--raise-on", action="append", default=[])
    faults = parser.parse_args(argv[:split])

    import worker.service as service
    from poembot_cli import app

    real_load = service.load_generator

    def load_faulty_generator(*args: Any, **kwargs: Any) -> Any:
        return FaultyGenerator(real_load(*args, **kwargs), faults.sleep_s, faults.raise_on)

    service.load_generator = load_faulty_generator
    app(argv[split + 1:], prog_name="poembot")


if __name__ == "__main__":
    main(sys.argv[1:])
