"""One supervised child process: started with its output in a log file, stopped with a grace period,
restarted by the supervisor (run/supervisor.py); the background job (run/prepare.py) and the test and
benchmark processes (devtools/procs.py) start theirs with it too.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

log = logging.getLogger("poembot.run")

STOP_GRACE_S = 15.0


def poembot_argv(*args: str) -> list[str]:
    """The command line of a poembot subcommand in this interpreter."""
    return [sys.executable, "-m", "poembot_cli", *args]


@dataclass
class Child:
    """One command run as a child process, its output appended to log_path (else this terminal's);
    the supervisor restarts it when it exits, and devtools/procs.poembot_child starts poembot processes
    with it that a test can kill with any signal."""
    name: str
    argv: list[str]
    env: dict[str, str]
    proc: subprocess.Popen | None = None
    restarts: int = 0
    started_at: float = 0.0
    log_path: Path | None = None
    cwd: Path | None = None
    new_session: bool = True          # its own session: a Ctrl-C at the terminal reaches the supervisor alone
    stop_grace_s: float = STOP_GRACE_S
    oneshot: bool = False             # a job that ends: not restarted, its exit reported to on_exit
    nice: int = 0                     # added to its scheduling niceness
    on_exit: Callable[[int], None] | None = None
    exit_code: int | None = None      # a oneshot child's, once it ended

    def start(self) -> "Child":
        out = None
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            out = open(self.log_path, "ab")
        try:
            nice = self.nice
            self.proc = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdout=out,
                                         stderr=subprocess.STDOUT if out is not None else None,
                                         stdin=subprocess.DEVNULL, start_new_session=self.new_session,
                                         preexec_fn=(lambda: os.nice(nice)) if nice else None)
        finally:
            if out is not None:
                out.close()           # the child holds its own descriptor
        self.started_at = time.monotonic()
        log.info("started %s (pid %d)", self.name, self.proc.pid)
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """kill -9: no clean-up at all, as a crash or an OOM kill would leave things."""
        if self.alive:
            self.proc.kill()
            self.proc.wait()

    def stop(self, grace: float | None = None) -> int | None:
        """SIGTERM, then SIGKILL after grace seconds (stop_grace_s by default); the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            grace = self.stop_grace_s if grace is None else grace
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0f s; killing it", self.name, grace)
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def log(self) -> str:
        """What the child wrote to log_path so far ("" without one)."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(encoding="utf-8", errors="replace")
