"""poembot on a real Redis Cluster: three redis-server masters in cluster mode (devtools/procs.py
RedisCluster), the real bot and the real worker pointed at it with a redis+cluster:// URL, one /poem
answered through the emulator. A Lua script, MULTI or multi-key command whose keys sit in different
slots fails on a cluster (CROSSSLOT), so this is what proves the hash tags in protocol/keys.py.
"""
from __future__ import annotations

import socket
import time
from typing import Iterator

import pytest
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

from bot.liveness import replica_problem
from bot.state import State
from botkit import emu, make_config, running_bot, start_worker  # noqa: F401
from devtools.emulator import BotApiEmulator
from devtools.procs import RedisCluster, started
from protocol import keys
from protocol.connections import connect, live_workers

ALICE = BotApiEmulator.user(7001, "Alice")
POEM_TIMEOUT = 240.0     # the first decode traces a tf.function: 100 s seen on a loaded 2-core CPU


@pytest.fixture
def cluster() -> Iterator[RedisCluster]:
    with started(lambda directory: RedisCluster(directory, masters=3), "pbc") as cluster:
        yield cluster


@pytest.fixture
def redis_url(cluster: RedisCluster) -> str:
    """Overrides conftest's: start_worker's workers and the bot below all use the cluster."""
    return cluster.url


async def test_a_poem_is_answered_with_bot_and_worker_on_a_redis_cluster(emu, cluster, start_worker) -> None:
    start_worker()
    async with running_bot(make_config(emu, cluster.url)) as app:
        state: State = app.bot_data["rt"].state
        assert isinstance(state.redis, AsyncRedisCluster)
        since = emu.mark()
        await emu.send_text(ALICE, "/poem 五绝 明月")
        poem = await emu.wait_for_call("sendMessage", since=since, chat_id=ALICE["id"], timeout=POEM_TIMEOUT)
        lines = [line[:-1] for line in poem.text.splitlines() if line.endswith(("，", "。"))]
        assert len(lines) == 4 and all(len(line) == 5 for line in lines) and "明月" in "".join(lines)
        answer = await emu.press_and_answer(ALICE, poem, poem.button("喜欢")["callback_data"])
        assert answer.params["text"] == "已收藏 ❤️"

        client = connect(cluster.url, decode_responses=True)
        try:
            # The MGETs of the health checks: the worker's heartbeat, this replica's liveness record.
            assert [w["worker_id"] for w in live_workers(client)] == ["test-worker-0"]
            assert replica_problem(client, None, socket.gethostname(), time.time()) is None
            # A real cluster: the keys of the run sit on more than one master.
            names = list(client.scan_iter(match=f"{keys.PREFIX}:*"))
            assert keys.user_key(ALICE["id"], "likes") in names and keys.JOBS_STREAM in names
            masters = {client.get_node_from_key(name).port for name in names}
            assert len(masters) > 1, masters
        finally:
            client.close()
