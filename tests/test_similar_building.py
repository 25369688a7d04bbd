"""/similar while `poembot run` still builds its index in the background: the bot says it is being
built, then — the same running bot, no restart — answers from the index once it is published; the
worker's theme prior follows it the same way, and a half-written index is never seen."""
from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from bot.similar import IndexSource, build_running
from search.files import building_marker
from botkit import emu, make_config, running_bot, synthetic_index  # noqa: F401
from devtools.emulator import BotApiEmulator
from run.prepare import write_marker
from factories import random_corpus
from search.files import model_version
from search.index import Index
from model.index_build import build_index, publish
from search.themes import ThemeIndex, ThemeWatch

ALICE = BotApiEmulator.user(1001, "Alice")
BOB = BotApiEmulator.user(1002, "Bob", language_code="en-US")


async def ask(emu: BotApiEmulator, user: dict, text: str) -> str:
    """Send text; the text of the bot's message answering it."""
    since = emu.mark()
    message = await emu.send_text(user, text)
    call = await emu.wait_for_call("sendMessage", since=since, chat_id=message["chat"]["id"])
    return call.text


async def test_similar_is_being_built_then_answers_without_a_restart(emu, redis_url, tiny_model_dir: Path,
                                                                      tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    marker = building_marker(index_dir)
    write_marker(marker, "index build")          # as run.prepare does: this (live) process builds it
    config = make_config(emu, redis_url, model_dir=tiny_model_dir, index_path=index_dir)
    async with running_bot(config) as app:
        rt = app.bot_data["rt"]
        assert rt.index is None and rt.index_source is not None
        # The re-check cache (tested on its own below) would make this test wait for its clock.
        rt.index_source.recheck_s = 0.0
        assert "正在后台建立" in await ask(emu, ALICE, "/similar")
        assert "being built in the background" in await ask(emu, BOB, "/similar")

        # The background job publishes the index (built here the way test_index builds one) and ends.
        corpus = random_corpus(60, seed=5, authors=6)
        await asyncio.to_thread(build_index, tiny_model_dir, index_dir, corpus=corpus,
                                canon_root=tmp_path / "none")
        marker.unlink()

        text = await ask(emu, ALICE, "/similar")
        assert "常被传诵" in text                                 # a new user gets the popular poems
        popular = Index.load(index_dir).popular(5)
        assert all(entry["title"] in text for entry in popular)
        assert rt.index is not None and "Poems close" not in text
        assert "well-loved" in await ask(emu, BOB, "/similar")


async def test_without_a_build_running_similar_is_simply_off(emu, redis_url, tiny_model_dir: Path,
                                                             tmp_path: Path) -> None:
    """A marker whose process is gone (a build killed with the run) does not claim a build."""
    index_dir = tmp_path / "index"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    building_marker(index_dir).write_text(f'{{"pid": {dead.stdout.strip()}, "step": "index build"}}')
    assert not build_running(index_dir)
    async with running_bot(make_config(emu, redis_url, model_dir=tiny_model_dir, index_path=index_dir)):
        assert "not available" in await ask(emu, BOB, "/similar")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_index_source_looks_again_only_after_recheck_s(tmp_path: Path) -> None:
    clock = Clock()
    source = IndexSource(tmp_path / "index", None, recheck_s=5.0, clock=clock)
    assert source.load_now() is None and await source.get() is None
    synthetic_index().save(tmp_path / "index")
    clock.now += 4.0
    assert await source.get() is None                  # looked 4 s ago: not again yet
    clock.now += 1.0
    found = await source.get()
    assert found is not None and len(found) == 24 and await source.get() is found


async def test_a_refused_index_is_not_read_again_until_it_changes(tmp_path: Path) -> None:
    clock = Clock()
    synthetic_index().save(tmp_path / "index")          # version "test"
    source = IndexSource(tmp_path / "index", "another-model", recheck_s=0.0, clock=clock)
    assert source.load_now() is None
    reads = []
    source_load = source.load_now

    def counting() -> object:
        reads.append(1)
        return source_load()
    source.load_now = counting  # type: ignore[method-assign]
    clock.now += 1
    assert await source.get() is None and reads == [1]  # looked, and declined on the same file
    assert source._refused is not None


def test_publish_shows_a_whole_index_or_none(tmp_path: Path) -> None:
    out = tmp_path / "index" / "v1"
    writing, release = threading.Event(), threading.Event()

    def slow_write(directory: Path) -> None:
        synthetic_index().save(directory)
        writing.set()
        assert release.wait(30)

    thread = threading.Thread(target=publish, args=(out, slow_write))
    thread.start()
    try:
        assert writing.wait(30)
        assert not out.exists()                          # half done: nothing where readers look
    finally:
        release.set()
        thread.join(30)
    assert len(Index.load(out)) == 24

    def failing(directory: Path) -> None:
        synthetic_index(n=5).save(directory)
        raise OSError("disk full")
    with pytest.raises(OSError):
        publish(out, failing)
    assert len(Index.load(out)) == 24                    # the old index stands, no leftovers
    assert sorted(p.name for p in out.parent.iterdir()) == ["v1"]
    publish(out, lambda d: synthetic_index(n=7).save(d))     # a stale index is replaced whole
    assert len(Index.load(out)) == 7 and sorted(p.name for p in out.parent.iterdir()) == ["v1"]


def test_the_worker_theme_prior_appears_with_the_index(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text("{}")
    out = tmp_path / "index"
    clock = Clock()
    watch = ThemeWatch(model_dir, out, recheck_s=10.0, clock=clock)
    assert watch.prior(["风"]) is None                  # no index yet: themes by their words only

    rng = np.random.default_rng(0)
    mu = rng.normal(size=(30, 8)).astype(np.float32)
    lines = [["风花雪月山", "水江天云雨"] if k % 2 else ["春夏秋冬人", "归来去明日"] for k in range(30)]
    version = model_version(model_dir)
    index = Index(version, [f"p{k}" for k in range(30)], mu, [{} for _ in range(30)], np.arange(30))
    publish(out, lambda d: (index.save(d, mu=mu), ThemeIndex.build(lines, mu).save(d)))
    assert watch.prior(["风"]) is None                  # looked 0 s ago
    clock.now += 10.0
    prior = watch.prior(["风"])
    np.testing.assert_allclose(prior, mu[1::2][:16].mean(axis=0), atol=5e-3)
