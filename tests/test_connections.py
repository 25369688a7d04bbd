"""The one Redis client factory (protocol.connections): bot and worker clients time out on a dead peer."""
from __future__ import annotations

import asyncio
import socket
from typing import Iterator

import pytest
import redis

from protocol import connections
from protocol.connections import connect, connect_async


@pytest.fixture
def black_hole() -> Iterator[str]:
    """A TCP peer that accepts connections and never answers: a half-open Redis."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    try:
        yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    finally:
        server.close()


@pytest.mark.parametrize("make", [connect, connect_async], ids=["worker", "bot"])
def test_both_clients_get_timeouts_a_health_check_and_retries(make):
    client = make("redis://127.0.0.1:1/0")
    options = client.connection_pool.connection_kwargs
    assert options["socket_timeout"] == connections.SOCKET_TIMEOUT_S
    assert options["socket_connect_timeout"] == connections.CONNECT_TIMEOUT_S
    assert options["health_check_interval"] == connections.HEALTH_CHECK_S
    assert options["retry"] is not None


async def test_the_bots_client_gives_up_on_a_half_open_connection(black_hole, monkeypatch):
    """Before, the bot's client had no timeout: this PING waited forever (the outer 20 s caught it)."""
    monkeypatch.setattr(connections, "SOCKET_TIMEOUT_S", 0.3)
    client = connect_async(black_hole)
    try:
        with pytest.raises(redis.exceptions.TimeoutError):
            await asyncio.wait_for(client.ping(), timeout=20)
    finally:
        await client.aclose()


def test_the_workers_client_gives_up_on_a_half_open_connection(black_hole, monkeypatch):
    monkeypatch.setattr(connections, "SOCKET_TIMEOUT_S", 0.3)
    client = connect(black_hole)
    with pytest.raises(redis.exceptions.TimeoutError):
        client.ping()
    client.close()
