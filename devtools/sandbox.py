"""The sandbox chat of `poembot run` without a token: a terminal stands in for the Telegram app.

Typed lines become private messages to the real bot through the local Bot API emulator; what the bot sends back is printed.
"""
from __future__ import annotations

import asyncio
import html
import re
import sys
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Coroutine, TextIO

from devtools.emulator import ApiCall, BotApiEmulator
from protocol.paths import data_dir

# Well-formed (BotSettings checks the shape) but never valid at api.telegram.org.
SANDBOX_TOKEN = "1000000001:SANDBOX-local-emulator-only_not-a-real-token"
SANDBOX_BOT_ID = 1000000001
SANDBOX_USER_ID = 10001
INJECT_TIMEOUT_S = 10.0
QUIT_WORDS = {"/quit", "/exit", "/q"}
# One lock for every writer of the terminal (the chat, the supervisor's notices): lines never interleave.
_OUTPUT_LOCK = threading.Lock()

BANNER = """\
PoemBot 沙盒 · sandbox chat — 本地模拟的 Telegram，不需要账号 / a local stand-in for Telegram, no account needed
像在 Telegram 里一样发消息 / type messages as you would in Telegram:
  /poem                  随机写一首七绝 / a random 七绝
  /poem 五律 明月         指定诗体和主题 / a form and a theme
  /poem 藏头 春夏秋冬     藏头诗 / an acrostic poem
  /poem 李白 明月         仿李白的风格 / in the manner of 李白 (/styles lists the styles)
  /help                  全部用法 / every command
诗下的按钮有编号：输入编号（如 1）就是按那个按钮 / buttons are numbered: type 1 to press [1]
🖼 诗卡存成图片文件，路径会显示出来 / 🖼 cards are saved as picture files: their paths are shown
/quit、Ctrl-D 或 Ctrl-C 退出 / to leave"""


def say(out: TextIO, text: str) -> None:
    """Print one line (or block) to the chat's terminal from any thread."""
    with _OUTPUT_LOCK:
        out.write(text + "\n")
        out.flush()


def sandbox_user(language_code: str = "zh-hans") -> dict[str, Any]:
    name = "Guest" if language_code.startswith("en") else "游客"
    return BotApiEmulator.user(SANDBOX_USER_ID, name, language_code=language_code)


def sandbox_emulator() -> BotApiEmulator:
    return BotApiEmulator(token=SANDBOX_TOKEN, bot_id=SANDBOX_BOT_ID, username="poembot_sandbox_bot")


def plain_text(text: str) -> str:
    """What Telegram shows for an HTML-formatted message, without the formatting."""
    text = re.sub(r"<br\s*/?>", "\n", text)
    return html.unescape(re.sub(r"<[^>]+>", "", text))


def keyboard_lines(markup: Any) -> list[str]:
    """Inline keyboard rows as text, buttons numbered across rows from 1 ([1] ❤️ 喜欢  [2] 🔄 再来)."""
    if not isinstance(markup, dict):
        return []
    lines, n = [], 0
    for row in markup.get("inline_keyboard", []):
        cells = []
        for button in row:
            n += 1
            cells.append(f"[{n}] {button.get('text', '')}")
        lines.append("  " + "   ".join(cells))
    return lines


def flat_buttons(markup: Any) -> list[dict[str, Any]]:
    if not isinstance(markup, dict):
        return []
    return [b for row in markup.get("inline_keyboard", []) for b in row]


class SandboxChat:
    """One user's private chat with the bot: renders the bot's calls and turns typed lines into updates.

    The emulator runs on `loop` (possibly another thread); handle() is called from the reading thread.
    """

    def __init__(self, emu: BotApiEmulator, loop: asyncio.AbstractEventLoop, out: TextIO,
                 user: dict[str, Any] | None = None, card_dir: Path | None = None) -> None:
        self.emu = emu
        self.card_dir = card_dir or data_dir() / "sandbox"
        self.loop = loop
        self.out = out
        self.user = user or sandbox_user()
        self.chat_id = self.user["id"]
        self._with_buttons: list[int] = []      # bot message ids that were shown with buttons, oldest first
        self._queries: set[str] = set()         # callback queries this chat pressed
        self._typing = False                    # the typing line is printed once per burst, not every 5 s

    # --- output ---------------------------------------------------------------------------
    def write(self, text: str) -> None:
        say(self.out, text)

    def on_call(self, call: ApiCall) -> None:
        """Emulator listener (on the emulator's loop): print what this chat's user would now see."""
        if not call.ok:
            return      # Telegram refused it, so the user sees nothing
        method, params = call.method, call.params
        if method == "answerCallbackQuery":
            if params.get("callback_query_id") in self._queries and params.get("text"):
                mark = "⚠️" if params.get("show_alert") else "💬"
                self.write(f"{mark} {params['text']}")
            return
        if params.get("chat_id") != self.chat_id:
            return
        if method == "sendChatAction":
            if not self._typing:
                self._typing = True
                self.write("… PoemBot 正在输入 / typing …")
            return
        result = call.result if isinstance(call.result, dict) else {}
        message_id = result.get("message_id") or params.get("message_id")
        if method in ("sendMessage", "sendPhoto"):
            self._typing = False
            photo = f"[诗卡 / card] {self.save_photo(result)}\n" if method == "sendPhoto" else ""
            self._show(f"PoemBot:\n{photo}", call.text, params.get("reply_markup"), message_id)
        elif method == "editMessageText":
            self._show("PoemBot（已修改 / edited）:\n", call.text, params.get("reply_markup"), message_id)
        elif method == "editMessageReplyMarkup":
            self._show("PoemBot（按钮已更新 / buttons changed）:", "", params.get("reply_markup"),
                       message_id)
        elif method == "deleteMessage":
            self.write("PoemBot（删除了一条消息 / deleted a message）")

    def save_photo(self, message: dict[str, Any]) -> str:
        """Write a photo the bot sent to a file (a terminal cannot show it); its path, to open it."""
        sizes = message.get("photo") or []
        if not sizes:
            return "?"
        data = self.emu.photo_bytes(sizes[-1]["file_id"])
        self.card_dir.mkdir(parents=True, exist_ok=True)
        suffix = ".png" if data.startswith(b"\x89PNG") else ".jpg"
        path = self.card_dir / f"card-{message.get('message_id', 0)}{suffix}"
        path.write_bytes(data)
        return str(path)

    def _show(self, header: str, text: str, markup: Any, message_id: Any) -> None:
        lines = keyboard_lines(markup)
        if lines and isinstance(message_id, int):
            self._with_buttons.append(message_id)
        body = plain_text(text) if text else ""
        self.write("\n" + header + body + ("\n" + "\n".join(lines) if lines else ""))

    # --- input ----------------------------------------------------------------------------
    def _run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        future: Future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(INJECT_TIMEOUT_S)

    def _latest_keyboard(self) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """The newest message that still has buttons (an edit may have taken them away)."""
        for message_id in reversed(self._with_buttons):
            message = self.emu.messages.get((self.chat_id, message_id))
            buttons = flat_buttons(message.get("reply_markup")) if message else []
            if buttons:
                return message, buttons
        return None

    async def _press(self, message: dict[str, Any], data: str) -> None:
        # Registered on the emulator's loop before the bot can answer, so the answer is never missed.
        query_id = await self.emu.press(self.user, message, data)
        self._queries.add(query_id)

    def press(self, number: int) -> None:
        latest = self._latest_keyboard()
        if latest is None:
            self.write("（还没有可以按的按钮 / no buttons to press yet）")
            return
        message, buttons = latest
        if not 1 <= number <= len(buttons):
            self.write(f"（没有按钮 {number}，可选 1–{len(buttons)} / no button {number}: "
                       f"choose 1–{len(buttons)}）")
            return
        button = buttons[number - 1]
        if button.get("url"):
            self.write(f"（链接 / link: {button['url']}）")
            return
        self.write(f"（你按了 / you pressed「{button.get('text', '')}」）")
        self._run(self._press(message, str(button.get("callback_data") or "")))

    def handle(self, line: str) -> bool:
        """Act on one typed line; False when the person asked to leave."""
        line = line.strip()
        if not line:
            return True
        if line.lower() in QUIT_WORDS:
            return False
        if line.isdigit():
            self.press(int(line))
        else:
            self._run(self.emu.send_text(self.user, line))
        return True


def repl(emu: BotApiEmulator, loop: asyncio.AbstractEventLoop, inp: TextIO, out: TextIO, *,
         user: dict[str, Any] | None = None, note: str = "", card_dir: Path | None = None) -> None:
    """Read lines from inp until /quit, end of input or Ctrl-C; the bot's side of the chat goes to out.

    Blocking: run it on a thread other than the emulator loop's.
    """
    chat = SandboxChat(emu, loop, out, user, card_dir)
    chat.write(BANNER + (f"\n{note}" if note else ""))
    emu.listeners.append(chat.on_call)
    try:
        while True:
            try:
                line = inp.readline()
            except UnicodeDecodeError:
                chat.write("（无法识别的输入编码，请用 UTF-8 / input is not UTF-8）")
                continue
            if not line or not chat.handle(line):
                break
    except KeyboardInterrupt:
        pass
    finally:
        emu.listeners.remove(chat.on_call)
        chat.write("再见 / bye")


class EmulatorThread:
    """The sandbox's emulator on its own event loop in a daemon thread, so the terminal can block on input."""

    def __init__(self, emu: BotApiEmulator | None = None) -> None:
        self.emu = emu or sandbox_emulator()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="bot-api-emulator", daemon=True)

    def start(self) -> str:
        self._thread.start()
        return asyncio.run_coroutine_threadsafe(self.emu.start(), self.loop).result(INJECT_TIMEOUT_S)

    def env(self) -> dict[str, str]:
        """What the bot process needs to talk to this emulator instead of api.telegram.org."""
        return {"TELEGRAM_BOT_TOKEN": self.emu.token, "TELEGRAM_API_URL": self.emu.url}

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        try:
            asyncio.run_coroutine_threadsafe(self.emu.stop(), self.loop).result(INJECT_TIMEOUT_S)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(INJECT_TIMEOUT_S)
            if not self._thread.is_alive():
                self.loop.close()


class TerminalSandbox:
    """The sandbox `poembot run` hands its supervisor (run.supervisor.Sandbox) when there is no token:
    the emulator on its own thread for the bot, and this terminal as the chat."""

    # Well-formed stand-ins that check_settings gives the bot instead of the user's (unset) token.
    settings_env = {"TELEGRAM_BOT_TOKEN": SANDBOX_TOKEN, "TELEGRAM_API_URL": "", "WEBHOOK_URL": ""}

    def __init__(self) -> None:
        self.emulator = EmulatorThread()

    def start(self) -> dict[str, str]:
        self.emulator.start()
        return self.emulator.env()

    def chat(self, note: str) -> None:
        repl(self.emulator.emu, self.emulator.loop, sys.stdin, sys.stdout, note=note)

    def say(self, text: str) -> None:
        say(sys.stdout, text)

    def stop(self) -> None:
        self.emulator.stop()
