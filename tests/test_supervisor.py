"""`poembot run`'s supervisor: crashed children come back, a stop reaches every child, Redis embeds."""
from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

from run.child import Child
from run.supervisor import EmbeddedRedis, Supervisor
from conftest import wait_for

CRASHER = """
import pathlib, sys
p = pathlib.Path(sys.argv[1])
p.write_text(str(int(p.read_text()) + 1 if p.exists() else 1))
sys.exit(3)
"""
SLEEPER = """
import pathlib, signal, sys, time
out = pathlib.Path(sys.argv[1])
def bye(*_):
    out.write_text("graceful")
    sys.exit(0)
signal.signal(signal.SIGTERM, bye)
out.write_text("ready")
while True:
    time.sleep(0.05)
"""


def test_crashed_child_is_restarted_and_stop_is_graceful(tmp_path: Path) -> None:
    counter, marker = tmp_path / "count", tmp_path / "marker"
    crasher = Child("crasher", [sys.executable, "-c", CRASHER, str(counter)], {})
    sleeper = Child("sleeper", [sys.executable, "-c", SLEEPER, str(marker)], {})
    supervisor = Supervisor([crasher, sleeper])
    thread = threading.Thread(target=supervisor.run, kwargs={"poll_s": 0.05})
    thread.start()
    try:
        wait_for(lambda: counter.exists() and int(counter.read_text()) >= 2, timeout=20)
        wait_for(lambda: marker.exists() and marker.read_text() == "ready", timeout=20)
        assert crasher.restarts >= 1
        first_pid = sleeper.proc.pid
    finally:
        supervisor.stopping.set()
        thread.join(30)
    assert not thread.is_alive()
    assert marker.read_text() == "graceful"
    assert sleeper.proc.poll() == 0 and sleeper.proc.pid == first_pid   # never restarted


def test_child_logs_to_its_file_stops_with_its_code_and_can_be_killed(tmp_path: Path) -> None:
    """The one Child serves the supervisor and the tests' poembot processes (devtools/procs.poembot_child)."""
    talker = Child("talker", [sys.executable, "-c", "import sys; print('out', flush=True); sys.exit('err')"], {},
                   log_path=tmp_path / "logs" / "talker.log").start()
    talker.proc.wait(30)
    assert not talker.alive and talker.stop() == 1
    assert talker.log().split() == ["out", "err"]           # stdout and stderr, in the one file
    sleeper = Child("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], {}, cwd=tmp_path,
                    new_session=False).start()
    assert sleeper.alive and sleeper.log() == ""
    sleeper.kill()
    assert not sleeper.alive and sleeper.proc.returncode == -9


def test_embedded_redis_is_a_real_server(tmp_path: Path) -> None:
    import redis

    server = EmbeddedRedis(tmp_path / "redis")
    try:
        client = redis.Redis.from_url(server.url)
        client.xadd("s", {"a": "1"})
        assert client.xlen("s") == 1
        assert client.config_get("appendonly")["appendonly"] == "yes"
    finally:
        server.close()


def test_a_oneshot_job_runs_once_at_low_priority_and_its_failure_is_reported(tmp_path: Path, caplog) -> None:
    """The background job of `poembot run`: not restarted when it ends, a failure logged with its log's path."""
    runs = tmp_path / "runs"
    job = ("import os, pathlib, sys; p = pathlib.Path(sys.argv[1]); "
           "p.write_text(p.read_text() + str(os.nice(0)) + ' ' if p.exists() else str(os.nice(0)) + ' '); "
           "sys.exit(4)")
    ended = threading.Event()
    codes: list[int] = []
    failing = Child("prepare", [sys.executable, "-c", job, str(runs)], {}, oneshot=True, nice=7,
                    log_path=tmp_path / "prepare.log", on_exit=lambda code: (codes.append(code), ended.set()))
    # A crashing child is the clock: once it was restarted twice after the job ended, the supervisor
    # went through more than one backoff (the delay before a restart) with the job over.
    crasher = Child("crasher", [sys.executable, "-c", CRASHER, str(tmp_path / "count")], {})
    supervisor = Supervisor([crasher, failing])
    thread = threading.Thread(target=supervisor.run, kwargs={"poll_s": 0.05})
    with caplog.at_level("INFO", logger="poembot.run"):
        thread.start()
        try:
            assert ended.wait(30)
            after = crasher.restarts
            wait_for(lambda: crasher.restarts >= after + 2, timeout=30)
        finally:
            supervisor.stopping.set()
            thread.join(30)
    assert codes == [4] and failing.restarts == 0
    base = os.nice(0)
    assert runs.read_text().split() == [str(min(base + 7, 19))]     # ran once, niced
    assert any("prepare failed with exit code 4" in r.getMessage() and "prepare.log" in r.getMessage()
               and "next `poembot run`" in r.getMessage() for r in caplog.records)
