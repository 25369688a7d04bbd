"""An operation on Redis written once for both clients: a generator that yields the commands it needs
and receives their replies; run() drives it with a redis client (the worker's), run_async() with a
redis.asyncio one (the bot's). A Redis error is thrown back into the generator, which may handle it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generator, TypeVar, Union

from redis.exceptions import RedisError

T = TypeVar("T")


@dataclass(frozen=True)
class Command:
    """One call of a redis-py client method, e.g. Command("xack", (stream, group, entry_id))."""
    name: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Lua:
    """One run of a Lua script (loaded by its digest, sent once when the server lacks it)."""
    script: str
    keys: list[str]
    args: list[Any]


# A list of Commands is sent as one pipeline (one round trip); its reply is the list of theirs.
Step = Union[Command, Lua, list[Command]]
Op = Generator[Step, Any, T]


def text(value: str | bytes) -> str:
    """A reply value as text, whether the client decodes responses or not."""
    return value.decode() if isinstance(value, bytes) else value


def run(client: Any, op: Op[T]) -> T:
    """Execute op with a synchronous redis (or RedisCluster) client."""
    reply: Any = None
    error: RedisError | None = None
    while True:
        try:
            step = op.send(reply) if error is None else op.throw(error)
        except StopIteration as done:
            return done.value
        try:
            reply, error = _execute(client, step), None
        except RedisError as exc:
            reply, error = None, exc


async def run_async(client: Any, op: Op[T]) -> T:
    """Execute op with a redis.asyncio (or asyncio RedisCluster) client."""
    reply: Any = None
    error: RedisError | None = None
    while True:
        try:
            step = op.send(reply) if error is None else op.throw(error)
        except StopIteration as done:
            return done.value
        try:
            reply, error = await _execute_async(client, step), None
        except RedisError as exc:
            reply, error = None, exc


def _execute(client: Any, step: Step) -> Any:
    if isinstance(step, Lua):
        return client.register_script(step.script)(keys=step.keys, args=step.args)
    if isinstance(step, list):
        pipe = client.pipeline(transaction=False)
        for command in step:
            getattr(pipe, command.name)(*command.args, **command.kwargs)
        return pipe.execute()
    return getattr(client, step.name)(*step.args, **step.kwargs)


async def _execute_async(client: Any, step: Step) -> Any:
    if isinstance(step, Lua):
        return await client.register_script(step.script)(keys=step.keys, args=step.args)
    if isinstance(step, list):
        async with client.pipeline(transaction=False) as pipe:
            for command in step:
                getattr(pipe, command.name)(*command.args, **command.kwargs)
            return await pipe.execute()
    return await getattr(client, step.name)(*step.args, **step.kwargs)
