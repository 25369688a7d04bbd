"""The sandbox chat of `poembot run`: typed lines reach the real bot, and what it sends is printed.

The REPL runs on a thread reading a pipe, as it reads the terminal; the bot, Redis and worker are real.
"""
from __future__ import annotations

import asyncio
import io
import os
import threading
from pathlib import Path
from typing import AsyncIterator, Callable

import pytest

from devtools.sandbox import SandboxChat, keyboard_lines, plain_text, repl, sandbox_user
from botkit import card_fonts, emu, eventually, make_config, running_bot, stand_in  # noqa: F401
from devtools.emulator import BotApiEmulator
from botkit import start_worker  # noqa: F401
from test_bot_e2e import POEM_TIMEOUT

USER = sandbox_user()


class Transcript(io.StringIO):
    """The terminal: written by the emulator's loop and the REPL thread, read by the test."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            return super().write(text)

    def text(self) -> str:
        with self._lock:
            return self.getvalue()


class Terminal:
    """A person at the sandbox: types lines into the REPL's input and waits for what appears."""

    def __init__(self, emu: BotApiEmulator, card_dir: Path) -> None:
        self.card_dir = card_dir
        read_fd, write_fd = os.pipe()
        self.inp = os.fdopen(read_fd, "r", encoding="utf-8")
        self.keys = os.fdopen(write_fd, "w", encoding="utf-8")
        self.out = Transcript()
        self.emu = emu
        self.task: asyncio.Future | None = None

    def start(self) -> "Terminal":
        self.task = asyncio.ensure_future(
            asyncio.to_thread(repl, self.emu, asyncio.get_running_loop(), self.inp, self.out, user=USER,
                              card_dir=self.card_dir))
        return self

    def type(self, line: str) -> int:
        """Type a line; returns where the transcript stood, so a wait can look only at what follows."""
        mark = len(self.out.text())
        self.keys.write(line + "\n")
        self.keys.flush()
        return mark

    async def wait_for(self, ok: Callable[[str], bool], since: int = 0, timeout: float = 10.0) -> str:
        return await eventually(lambda: asyncio.sleep(0, self.out.text()[since:]), ok, timeout=timeout)

    async def close(self) -> None:
        if not self.keys.closed:
            self.keys.close()           # end of input: the REPL returns
        await asyncio.wait_for(self.task, 10)
        self.inp.close()


@pytest.fixture
async def terminal(emu, tmp_path) -> AsyncIterator[Terminal]:
    term = Terminal(emu, tmp_path / "cards").start()
    try:
        yield term
    finally:
        await term.close()


def poem_lines(shown: str) -> list[str]:
    return [line[:-1] for line in shown.splitlines() if line.endswith(("，", "。"))]


async def test_acrostic_and_like_through_the_sandbox_with_the_real_worker(emu, redis_url, start_worker,
                                                                          terminal) -> None:
    start_worker()
    async with running_bot(make_config(emu, redis_url)):
        assert "/poem 藏头 春夏秋冬" in await terminal.wait_for(lambda s: "/quit" in s)   # the banner

        mark = terminal.type("/start")
        assert "你好，游客" in await terminal.wait_for(lambda s: "你好" in s, mark)

        mark = terminal.type("/poem 藏头 春夏秋冬")
        shown = await terminal.wait_for(lambda s: "[1] ❤️" in s, mark, timeout=POEM_TIMEOUT)
        assert [line[0] for line in poem_lines(shown)] == list("春夏秋冬")
        assert "<b>" not in shown and "&" not in shown          # HTML rendered as a user sees it
        assert "[2] 🔄" in shown

        mark = terminal.type("1")
        pressed = await terminal.wait_for(lambda s: "已收藏 ❤️" in s, mark)
        assert "你按了 / you pressed「❤️ 喜欢」" in pressed

        mark = terminal.type("/quit")
        await asyncio.wait_for(terminal.task, 10)
        assert "再见" in terminal.out.text()[mark:]


async def test_buttons_edits_and_mistyped_numbers_with_a_stand_in_worker(emu, redis_url, stand_in,
                                                                         terminal) -> None:
    async with running_bot(make_config(emu, redis_url)):
        mark = terminal.type("3")
        assert "no buttons to press yet" in await terminal.wait_for(lambda s: "no buttons" in s, mark)

        mark = terminal.type("/poem 五绝 明月")
        shown = await terminal.wait_for(lambda s: "[4] ✏️" in s, mark)
        assert len(poem_lines(shown)) == 4
        assert "正在输入" in shown                               # the typing indicator, once

        mark = terminal.type("9")
        assert "choose 1–6" in await terminal.wait_for(lambda s: "no button 9" in s, mark)

        # 📖 prints the reading aid: the first line again, then its pinyin.
        first = poem_lines(shown)[0]
        mark = terminal.type("5")
        reading = await terminal.wait_for(lambda s: "CC-CEDICT" in s, mark)
        assert first in reading and " — " in reading

        # ✏️ turns the poem's buttons into one toggle per line, renumbered; the toast is printed too.
        mark = terminal.type("4")
        changed = await terminal.wait_for(lambda s: "[6] ↩️" in s and "点选要保留的句子" in s, mark)
        assert "buttons changed" in changed and "[1] ▫️ 1." in changed and "[5] ✅ 重写其余" in changed
        mark = terminal.type("1")                                 # presses the edited keyboard's [1]
        assert "[2] ▫️ 2." in await terminal.wait_for(lambda s: "[1] ✅ 1." in s, mark)

        # Ctrl-D ends the chat.
        terminal.keys.close()
        await asyncio.wait_for(terminal.task, 10)
        assert terminal.out.text().rstrip().endswith("再见 / bye")


async def test_a_card_is_saved_to_a_file_and_its_path_printed(emu, redis_url, stand_in, card_fonts,
                                                             terminal) -> None:
    async with running_bot(make_config(emu, redis_url)):
        mark = terminal.type("/poem 藏头 春夏秋冬")
        await terminal.wait_for(lambda s: "[6] 🖼" in s, mark)
        mark = terminal.type("6")
        shown = await terminal.wait_for(lambda s: "[诗卡 / card]" in s, mark)
        path = Path(shown.split("[诗卡 / card] ", 1)[1].split()[0])
        assert path.parent == terminal.card_dir and path.read_bytes().startswith(b"\x89PNG")


def test_rendering_helpers_and_quit_words() -> None:
    assert plain_text("<b>春</b> &amp; <i>秋</i>&lt;") == "春 & 秋<"
    markup = {"inline_keyboard": [[{"text": "a", "callback_data": "x"}, {"text": "b", "callback_data": "y"}],
                                  [{"text": "c", "callback_data": "z"}]]}
    assert keyboard_lines(markup) == ["  [1] a   [2] b", "  [3] c"]
    loop = asyncio.new_event_loop()
    try:
        chat = SandboxChat(BotApiEmulator(), loop, io.StringIO(), USER)
        assert chat.handle("   ") and not chat.handle("/quit") and not chat.handle("/EXIT")
    finally:
        loop.close()
