"""A Bot API emulator on aiohttp: the real bot talks HTTP to it; tests and the sandbox inject updates.

Answers /bot<token>/<method> like api.telegram.org (long-polled getUpdates, webhooks with the secret header).
"""
from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any, Callable

from aiohttp import ClientSession, ClientTimeout, web

# Parameters PTB JSON-encodes; everything else arrives as a plain form string.
JSON_PARAMS = {"reply_markup", "commands", "entities", "caption_entities", "reply_parameters",
               "link_preview_options", "allowed_updates", "scope", "media", "results", "button"}
INT_PARAMS = {"chat_id", "message_id", "reply_to_message_id", "offset", "limit", "timeout",
              "user_id", "cache_time", "max_connections", "message_thread_id"}
BOOL_PARAMS = {"show_alert", "is_personal", "disable_notification", "drop_pending_updates", "protect_content",
               "allow_sending_without_reply", "disable_web_page_preview"}
HTML_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre",
             "tg-spoiler", "span", "blockquote", "tg-emoji"}
MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64
MAX_INLINE_RESULTS = 50
# Telegram drops an inline query the bot has not answered in about this long ("query is too old").
INLINE_TIMEOUT_S = 10.0

__all__ = ["ApiCall", "ApiError", "BotApiEmulator", "check_html", "png_size", "utf16_len",
           "MAX_TEXT", "MAX_CAPTION", "MAX_CALLBACK_DATA", "INLINE_TIMEOUT_S"]


class ApiError(Exception):
    """Raised inside a method handler to answer {"ok": false} with this code and description."""

    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after


@dataclass
class ApiCall:
    seq: int
    method: str
    params: dict[str, Any]       # decoded: ints, JSON objects, booleans
    raw: dict[str, str]          # as sent
    at: float
    ok: bool = True
    result: Any = None
    error: str | None = None

    def matches(self, method: str, expected: dict[str, Any]) -> bool:
        if self.method != method:
            return False
        for key, want in expected.items():
            have = self.params.get(key)
            if callable(want):
                if not want(have):
                    return False
            elif have != want and self.raw.get(key) != str(want):
                return False
        return True

    @property
    def text(self) -> str:
        return str(self.params.get("text") or self.params.get("caption") or "")

    @property
    def buttons(self) -> list[dict[str, Any]]:
        """Inline keyboard buttons of this call, row by row flattened."""
        markup = self.params.get("reply_markup") or {}
        return [b for row in markup.get("inline_keyboard", []) for b in row]

    def button(self, text_contains: str) -> dict[str, Any]:
        for b in self.buttons:
            if text_contains in b.get("text", ""):
                return b
        raise AssertionError(f"no button containing {text_contains!r} in {self.buttons}")


class _HtmlCheck(HTMLParser):
    """Rejects what Telegram's HTML parse mode rejects: unknown tags and unbalanced nesting."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.error: str | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag not in HTML_TAGS:
            self.error = self.error or f"unsupported start tag \"{tag}\""
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.error = self.error or f"unexpected end tag \"{tag}\""
        else:
            self.stack.pop()


def check_html(text: str) -> str | None:
    """Why Telegram would refuse text as HTML, or None when it parses."""
    if re.search(r"<(?![a-zA-Z/])", text):
        return "can't parse entities: unescaped '<'"
    if re.search(r"&(?!(lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);)", text):
        return "can't parse entities: unescaped '&'"
    parser = _HtmlCheck()
    parser.feed(text)
    parser.close()
    if parser.error:
        return f"can't parse entities: {parser.error}"
    if parser.stack:
        return f"can't parse entities: unclosed tag \"{parser.stack[-1]}\""
    return None


def command_entities(text: str) -> list[dict[str, Any]]:
    """The entities Telegram attaches to a text that starts with a /command (its first word)."""
    return [{"type": "bot_command", "offset": 0, "length": utf16_len(text.split()[0])}]


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's header, or None when data is not a PNG."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return None
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


class BotApiEmulator:
    """One fake Telegram server for one bot token; start() binds a free port on 127.0.0.1."""

    def __init__(self, token: str = "123456789:TEST-token_abcdefghijklmnopqrstuvwxyz",
                 bot_id: int = 123456789, username: str = "poem_test_bot") -> None:
        self.token = token
        self.bot = {"id": bot_id, "is_bot": True, "first_name": "PoemBot", "username": username,
                    "can_join_groups": True, "can_read_all_group_messages": False,
                    "supports_inline_queries": True}
        self.calls: list[ApiCall] = []
        # Called on the emulator's loop with each recorded call (the sandbox prints them as they come).
        self.listeners: list[Callable[[ApiCall], None]] = []
        self.commands: dict[str, list[dict[str, Any]]] = {}
        self.webhook: dict[str, Any] = {}
        self.webhook_posts: list[int] = []          # HTTP status of each webhook delivery
        self.blocked_chats: set[int] = set()        # chats that answer 403 (user blocked the bot)
        self.messages: dict[tuple[int, int], dict[str, Any]] = {}
        self.files: dict[str, bytes] = {}
        self.photo_sizes: dict[str, tuple[int, int]] = {}   # file_id -> (width, height)
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._message_ids: dict[int, itertools.count] = {}
        self._callback_ids = itertools.count(1)
        self._inline_ids = itertools.count(1)
        self._inline_asked: dict[str, float] = {}     # open inline query id -> when it was asked
        self.inline_timeout_s = INLINE_TIMEOUT_S
        self._failures: dict[str, list[ApiError]] = {}
        self._changed = asyncio.Condition()
        self._mark = 0
        self._closing = False
        self.waiting_polls = 0                     # getUpdates calls currently held open
        self._runner: web.AppRunner | None = None
        self.url = ""

    # --- lifecycle -------------------------------------------------------------------------
    async def start(self) -> str:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_get("/file/bot{token}/{path:.*}", self._file)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        async with self._changed:
            self._closing = True         # long polls return at once instead of holding shutdown
            self._changed.notify_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> "BotApiEmulator":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- people and chats ------------------------------------------------------------------
    @staticmethod
    def user(user_id: int, first_name: str = "Li", language_code: str | None = "zh-hans",
             username: str | None = None) -> dict[str, Any]:
        user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
        if language_code:
            user["language_code"] = language_code
        if username:
            user["username"] = username
        return user

    @staticmethod
    def private_chat(user: dict[str, Any]) -> dict[str, Any]:
        return {"id": user["id"], "type": "private", "first_name": user["first_name"]}

    @staticmethod
    def group_chat(chat_id: int, title: str = "诗社") -> dict[str, Any]:
        return {"id": chat_id, "type": "supergroup" if chat_id < -10**12 else "group", "title": title}

    # --- injecting updates -----------------------------------------------------------------
    def _next_message_id(self, chat_id: int) -> int:
        counter = self._message_ids.setdefault(chat_id, itertools.count(1))
        return next(counter)

    def _message(self, chat: dict[str, Any], sender: dict[str, Any], **content: Any) -> dict[str, Any]:
        message = {"message_id": self._next_message_id(chat["id"]), "date": int(time.time()),
                   "chat": chat, "from": sender, **content}
        self.messages[(chat["id"], message["message_id"])] = message
        return message

    async def send_text(self, user: dict[str, Any], text: str, chat: dict[str, Any] | None = None,
                        reply_to: dict[str, Any] | None = None) -> dict[str, Any]:
        """Inject a text message from user (a command when it starts with '/'); returns the message."""
        chat = chat or self.private_chat(user)
        content: dict[str, Any] = {"text": text}
        if text.startswith("/"):
            content["entities"] = command_entities(text)
        if reply_to is not None:
            content["reply_to_message"] = reply_to
        message = self._message(chat, user, **content)
        await self.inject({"message": message})
        return message

    async def send_sticker(self, user: dict[str, Any], chat: dict[str, Any] | None = None) -> dict[str, Any]:
        chat = chat or self.private_chat(user)
        sticker = {"file_id": "sticker-1", "file_unique_id": "s1", "type": "regular",
                   "width": 512, "height": 512, "is_animated": False, "is_video": False, "emoji": "🌸"}
        message = self._message(chat, user, sticker=sticker)
        await self.inject({"message": message})
        return message

    async def edit_text(self, message: dict[str, Any], text: str) -> dict[str, Any]:
        """Inject an edited_message update: the user changed the text of one of their messages."""
        edited = dict(message, text=text, edit_date=int(time.time()))
        if text.startswith("/"):
            edited["entities"] = command_entities(text)
        self.messages[(message["chat"]["id"], message["message_id"])] = edited
        await self.inject({"edited_message": edited})
        return edited

    async def press(self, user: dict[str, Any], message: dict[str, Any] | ApiCall,
                    data: str) -> str:
        """Inject a callback query: user pressed a button whose callback_data is data on message.

        Returns the query id; wait for its answer with wait_for_call("answerCallbackQuery",
        callback_query_id=...).
        """
        if isinstance(message, ApiCall):
            message = message.result
        query_id = f"cq{next(self._callback_ids)}"
        current = self.messages.get((message["chat"]["id"], message["message_id"]), message)
        await self.inject({"callback_query": {"id": query_id, "from": user, "message": current,
                                              "chat_instance": f"ci{current['chat']['id']}",
                                              "data": data}})
        return query_id

    async def inline_query(self, user: dict[str, Any], query: str, chat_type: str = "sender") -> str:
        """Inject an inline query: user typed "@bot query" in some chat. Returns the query id; wait for
        the answer with wait_for_call("answerInlineQuery", inline_query_id=...)."""
        query_id = f"iq{next(self._inline_ids)}"
        self._inline_asked[query_id] = time.monotonic()
        await self.inject({"inline_query": {"id": query_id, "from": user, "query": query, "offset": "",
                                            "chat_type": chat_type}})
        return query_id

    async def inject(self, update: dict[str, Any]) -> dict[str, Any]:
        update = {"update_id": next(self._update_ids), **update}
        async with self._changed:
            self._mark = len(self.calls)
        if self.webhook.get("url"):
            await self._post_webhook(update)
        else:
            async with self._changed:
                self._updates.append(update)
                self._changed.notify_all()
        return update

    async def _post_webhook(self, update: dict[str, Any]) -> None:
        headers = {"Content-Type": "application/json"}
        if self.webhook.get("secret_token"):
            headers["X-Telegram-Bot-Api-Secret-Token"] = self.webhook["secret_token"]
        async with ClientSession(timeout=ClientTimeout(total=10)) as session:
            async with session.post(self.webhook["url"], data=json.dumps(update), headers=headers) as r:
                self.webhook_posts.append(r.status)

    async def press_and_answer(self, user: dict[str, Any], message: dict[str, Any] | ApiCall,
                               data: str, timeout: float = 10.0) -> ApiCall:
        """Press a button and return the bot's answerCallbackQuery for exactly that press."""
        since = self.mark()
        query_id = await self.press(user, message, data)
        return await self.wait_for_call("answerCallbackQuery", since=since, timeout=timeout,
                                        callback_query_id=query_id)

    # --- failures --------------------------------------------------------------------------
    def fail_next(self, method: str, code: int = 429, description: str | None = None,
                  retry_after: int | None = 1, count: int = 1) -> None:
        """Make the next count calls of method fail (429 Too Many Requests by default)."""
        if description is None:
            description = (f"Too Many Requests: retry after {retry_after}" if code == 429
                           else "Internal Server Error")
        for _ in range(count):
            self._failures.setdefault(method, []).append(
                ApiError(code, description, retry_after if code == 429 else None))

    # --- waiting on calls ------------------------------------------------------------------
    def mark(self) -> int:
        """Index of the next call; pass it as since= to wait only for calls made after now."""
        return len(self.calls)

    def find_calls(self, method: str, since: int = 0, ok: bool | None = True,
                   **params: Any) -> list[ApiCall]:
        """Calls of method since `since`; only successful ones unless ok is False (failed) or None (all)."""
        return [c for c in self.calls[since:]
                if c.matches(method, params) and (ok is None or c.ok == ok)]

    async def wait_for_call(self, method: str, *, timeout: float = 10.0, since: int | None = None,
                            where: Callable[[ApiCall], bool] | None = None, ok: bool | None = True,
                            **params: Any) -> ApiCall:
        """The first call of method with these params made since the mark (default: the last injection).

        Only successful calls count unless ok is False (failed calls) or None (any).
        Waits on the emulator's condition until one arrives; AssertionError after timeout.
        """
        start = self._mark if since is None else since

        def first() -> ApiCall | None:
            return next((call for call in self.calls[start:]
                         if call.matches(method, params) and (ok is None or call.ok == ok)
                         and (where is None or where(call))), None)

        def failure() -> str:
            seen = [(c.method, {k: v for k, v in c.params.items() if k != "reply_markup"})
                    for c in self.calls[start:]][-12:]
            return f"no {method} {params} within {timeout}s; calls seen: {seen}"
        return await self._wait_until(first, timeout, failure)

    async def wait_for_calls(self, method: str, n: int, *, timeout: float = 10.0, since: int = 0,
                             ok: bool | None = True, **params: Any) -> list[ApiCall]:
        """Wait until at least n matching calls were made since `since`."""
        def enough() -> list[ApiCall] | None:
            found = self.find_calls(method, since, ok, **params)
            return found if len(found) >= n else None

        def failure() -> str:
            return f"{len(self.find_calls(method, since, ok, **params))} of {n} {method} {params} within {timeout}s"
        return await self._wait_until(enough, timeout, failure)

    async def _wait_until(self, find: Callable[[], Any], timeout: float, failure: Callable[[], str]) -> Any:
        """find()'s first answer that is not None, checked at each change of the calls; AssertionError
        with failure() after timeout seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with self._changed:
            while True:
                found = find()
                if found is not None:
                    return found
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise AssertionError(failure())
                try:
                    await asyncio.wait_for(self._changed.wait(), remaining)
                except TimeoutError:
                    pass

    # --- HTTP ------------------------------------------------------------------------------
    async def _params(self, request: web.Request) -> tuple[dict[str, Any], dict[str, str]]:
        raw: dict[str, str] = dict(request.query)
        files: dict[str, bytes] = {}
        if request.content_type == "application/json":
            body = await request.json() if request.can_read_body else {}
            decoded = dict(body or {})
            raw.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in decoded.items()})
            return decoded, raw
        if request.can_read_body:
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, str):
                    raw[key] = value
                else:
                    files[key] = value.file.read()
        decoded = {k: self._decode(k, v) for k, v in raw.items()}
        for key, content in files.items():
            decoded[key] = content
        return decoded, raw

    @staticmethod
    def _decode(key: str, value: str) -> Any:
        if key in JSON_PARAMS:
            try:
                return json.loads(value)
            except json.JSONDecodeError:
                return value
        if key in INT_PARAMS and re.fullmatch(r"-?\d+", value):
            return int(value)
        if key in BOOL_PARAMS and value in ("true", "false"):
            return value == "true"
        return value

    async def _handle(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"},
                                     status=401)
        method = request.match_info["method"]
        params, raw = await self._params(request)
        call = ApiCall(seq=len(self.calls), method=method, params=params, raw=raw, at=time.time())
        try:
            failures = self._failures.get(method)
            if failures:
                raise failures.pop(0)
            handler = getattr(self, f"_api_{method}", None)
            if handler is None:
                raise ApiError(404, "Not Found: method not found")
            call.result = await handler(params)
        except ApiError as exc:
            call.ok, call.error = False, exc.description
            if method != "getUpdates":
                await self._record(call)
            body: dict[str, Any] = {"ok": False, "error_code": exc.code, "description": exc.description}
            if exc.retry_after is not None:
                body["parameters"] = {"retry_after": exc.retry_after}
            return web.json_response(body, status=exc.code)
        if method != "getUpdates":     # polling would drown the record; tests wait on other calls
            await self._record(call)
        return web.json_response({"ok": True, "result": call.result})

    async def _record(self, call: ApiCall) -> None:
        async with self._changed:
            call.seq = len(self.calls)
            self.calls.append(call)
            self._changed.notify_all()
        for listener in self.listeners:
            listener(call)

    async def _file(self, request: web.Request) -> web.Response:
        content = self.files.get(request.match_info["path"])
        if content is None or request.match_info["token"] != self.token:
            return web.Response(status=404)
        return web.Response(body=content)

    # --- methods ---------------------------------------------------------------------------
    def _chat(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = params.get("chat_id")
        if not isinstance(chat_id, int):
            raise ApiError(400, "Bad Request: chat not found")
        if chat_id in self.blocked_chats:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        if chat_id > 0:
            return {"id": chat_id, "type": "private", "first_name": "User"}
        return {"id": chat_id, "type": "group", "title": "Group"}

    @staticmethod
    def _check_markup(params: dict[str, Any]) -> None:
        markup = params.get("reply_markup")
        if not isinstance(markup, dict):
            return
        for row in markup.get("inline_keyboard", []):
            for button in row:
                data = button.get("callback_data")
                if data is not None and not 1 <= len(data.encode()) <= MAX_CALLBACK_DATA:
                    raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
                if not button.get("text"):
                    raise ApiError(400, "Bad Request: text buttons are unallowed in the inline keyboard")

    @staticmethod
    def _check_text(text: Any, parse_mode: Any, limit: int = MAX_TEXT) -> None:
        if not isinstance(text, str) or not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if utf16_len(text) > limit:
            raise ApiError(400, "Bad Request: message is too long")
        if parse_mode == "HTML":
            problem = check_html(text)
            if problem:
                raise ApiError(400, f"Bad Request: {problem}")
        elif parse_mode not in (None, ""):
            raise ApiError(400, f"Bad Request: unsupported parse_mode {parse_mode}")

    async def _api_getMe(self, params: dict[str, Any]) -> dict[str, Any]:
        return self.bot

    async def _api_logOut(self, params: dict[str, Any]) -> bool:
        return True

    async def _api_close(self, params: dict[str, Any]) -> bool:
        return True

    async def _api_getUpdates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        if self.webhook.get("url"):
            raise ApiError(409, "Conflict: can't use getUpdates method while webhook is active")
        offset = int(params.get("offset") or 0)
        limit = int(params.get("limit") or 100)
        timeout = float(params.get("timeout") or 0)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with self._changed:
            while True:
                if offset:
                    # Telegram forgets confirmed updates once a later offset is requested.
                    self._updates = [u for u in self._updates if u["update_id"] >= offset]
                if self._updates or timeout <= 0:
                    return self._updates[:limit]
                remaining = deadline - loop.time()
                if remaining <= 0 or self._closing:
                    return []
                self.waiting_polls += 1
                try:
                    await asyncio.wait_for(self._changed.wait(), remaining)
                except TimeoutError:
                    return []
                finally:
                    self.waiting_polls -= 1

    async def _api_setWebhook(self, params: dict[str, Any]) -> bool:
        url = params.get("url") or ""
        secret = params.get("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(secret)):
            raise ApiError(400, "Bad Request: secret token contains unallowed characters")
        self.webhook = {"url": url, "secret_token": secret} if url else {}
        return True

    async def _api_deleteWebhook(self, params: dict[str, Any]) -> bool:
        self.webhook = {}
        if params.get("drop_pending_updates"):
            self._updates.clear()
        return True

    async def _api_getWebhookInfo(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"url": self.webhook.get("url", ""), "has_custom_certificate": False,
                "pending_update_count": len(self._updates)}

    async def _api_setMyCommands(self, params: dict[str, Any]) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list) or not commands:
            raise ApiError(400, "Bad Request: commands must be a non-empty list")
        for c in commands:
            if not re.fullmatch(r"[a-z0-9_]{1,32}", c.get("command", "")) or not c.get("description"):
                raise ApiError(400, f"Bad Request: BOT_COMMAND_INVALID {c}")
        self.commands[str(params.get("language_code") or "")] = commands
        return True

    async def _api_getMyCommands(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        return self.commands.get(str(params.get("language_code") or ""), [])

    async def _api_deleteMyCommands(self, params: dict[str, Any]) -> bool:
        self.commands.pop(str(params.get("language_code") or ""), None)
        return True

    async def _api_sendChatAction(self, params: dict[str, Any]) -> bool:
        self._chat(params)
        if params.get("action") not in {"typing", "upload_photo", "record_video", "upload_document",
                                        "choose_sticker", "find_location", "record_voice"}:
            raise ApiError(400, "Bad Request: wrong parameter action in request")
        return True

    def _bot_message(self, params: dict[str, Any], **content: Any) -> dict[str, Any]:
        chat = self._chat(params)
        message = self._message(chat, self.bot, **content)
        if isinstance(params.get("reply_markup"), dict):
            message["reply_markup"] = params["reply_markup"]
        reply = params.get("reply_parameters") or {}
        reply_to = reply.get("message_id") if isinstance(reply, dict) else None
        reply_to = reply_to or params.get("reply_to_message_id")
        if reply_to:
            original = self.messages.get((chat["id"], int(reply_to)))
            if original is None and not (isinstance(reply, dict) and reply.get("allow_sending_without_reply")):
                raise ApiError(400, "Bad Request: message to be replied not found")
            if original is not None:
                message["reply_to_message"] = original
        return message

    async def _api_sendMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        self._check_text(params.get("text"), params.get("parse_mode"))
        self._check_markup(params)
        return self._bot_message(params, text=params["text"])

    async def _api_sendPhoto(self, params: dict[str, Any]) -> dict[str, Any]:
        photo = params.get("photo")
        if not photo:
            raise ApiError(400, "Bad Request: there is no photo in the request")
        if params.get("caption"):
            self._check_text(params["caption"], params.get("parse_mode"), limit=MAX_CAPTION)
        self._check_markup(params)
        self._chat(params)
        file_id = self._photo_file(photo)
        width, height = self.photo_sizes[file_id]
        sizes = [{"file_id": file_id, "file_unique_id": file_id, "width": width, "height": height}]
        content: dict[str, Any] = {"photo": sizes}
        if params.get("caption"):
            content["caption"] = params["caption"]
        return self._bot_message(params, **content)

    def _photo_file(self, photo: Any) -> str:
        """The file_id of an uploaded picture (stored) or of one sent before (reused)."""
        if isinstance(photo, bytes):
            size = png_size(photo) or (512, 512)
            if size[0] + size[1] > 10000 or max(size) > 20 * min(size):
                raise ApiError(400, "Bad Request: PHOTO_INVALID_DIMENSIONS")
            file_id = f"photo{len(self.files) + 1}"
            self.files[f"photos/{file_id}.jpg"] = photo
            self.photo_sizes[file_id] = size
            return file_id
        if str(photo) in self.photo_sizes:
            return str(photo)
        raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")

    def photo_bytes(self, file_id: str) -> bytes:
        """What was uploaded as file_id."""
        return self.files[f"photos/{file_id}.jpg"]

    async def _api_getFile(self, params: dict[str, Any]) -> dict[str, Any]:
        file_id = str(params.get("file_id"))
        path = f"photos/{file_id}.jpg"
        if path not in self.files:
            raise ApiError(400, "Bad Request: invalid file_id")
        return {"file_id": file_id, "file_unique_id": file_id, "file_size": len(self.files[path]),
                "file_path": path}

    def _stored(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self._chat(params)
        message = self.messages.get((chat["id"], int(params.get("message_id") or 0)))
        if message is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        if message.get("from", {}).get("id") != self.bot["id"]:
            raise ApiError(400, "Bad Request: message can't be edited")
        return message

    async def _api_editMessageText(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self._stored(params)
        self._check_text(params.get("text"), params.get("parse_mode"))
        self._check_markup(params)
        markup = params.get("reply_markup") if isinstance(params.get("reply_markup"), dict) else None
        if message.get("text") == params["text"] and message.get("reply_markup") == markup:
            raise ApiError(400, "Bad Request: message is not modified")
        message["text"] = params["text"]
        message["edit_date"] = int(time.time())
        message.pop("reply_markup", None)
        if markup:
            message["reply_markup"] = markup
        return message

    async def _api_editMessageReplyMarkup(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self._stored(params)
        self._check_markup(params)
        markup = params.get("reply_markup") if isinstance(params.get("reply_markup"), dict) else None
        if message.get("reply_markup") == markup:
            raise ApiError(400, "Bad Request: message is not modified")
        message.pop("reply_markup", None)
        if markup:
            message["reply_markup"] = markup
        return message

    async def _api_deleteMessage(self, params: dict[str, Any]) -> bool:
        chat = self._chat(params)
        if self.messages.pop((chat["id"], int(params.get("message_id") or 0)), None) is None:
            raise ApiError(400, "Bad Request: message to delete not found")
        return True

    async def _api_answerCallbackQuery(self, params: dict[str, Any]) -> bool:
        if not params.get("callback_query_id"):
            raise ApiError(400, "Bad Request: query is too old and response timeout expired")
        if len(str(params.get("text") or "")) > 200:
            raise ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
        return True

    async def _api_answerInlineQuery(self, params: dict[str, Any]) -> bool:
        asked = self._inline_asked.pop(str(params.get("inline_query_id") or ""), None)
        if asked is None or time.monotonic() - asked > self.inline_timeout_s:
            raise ApiError(400, "Bad Request: query is too old and response timeout expired or query ID is invalid")
        results = params.get("results")
        if not isinstance(results, list) or len(results) > MAX_INLINE_RESULTS:
            raise ApiError(400, "Bad Request: RESULTS_TOO_MUCH")
        ids = [str(r.get("id") or "") for r in results]
        if len(set(ids)) != len(ids) or not all(1 <= len(i.encode()) <= 64 for i in ids):
            raise ApiError(400, "Bad Request: RESULT_ID_DUPLICATE or RESULT_ID_INVALID")
        for result in results:
            self._check_inline_result(result)
        button = params.get("button")
        if isinstance(button, dict) and not button.get("text"):
            raise ApiError(400, "Bad Request: BUTTON_TEXT_INVALID")
        return True

    def _check_inline_result(self, result: dict[str, Any]) -> None:
        kind = result.get("type")
        if kind == "article":
            content = result.get("input_message_content") or {}
            if not result.get("title"):
                raise ApiError(400, "Bad Request: RESULT_TITLE_EMPTY")
            self._check_text(content.get("message_text"), content.get("parse_mode"))
        elif kind == "photo":
            if result.get("photo_file_id"):
                if result["photo_file_id"] not in self.photo_sizes:
                    raise ApiError(400, "Bad Request: MEDIA_INVALID")
            elif not str(result.get("photo_url", "")).startswith("http") or not result.get("thumbnail_url"):
                raise ApiError(400, "Bad Request: PHOTO_INVALID (needs photo_url and thumbnail_url)")
            if result.get("caption"):
                self._check_text(result["caption"], result.get("parse_mode"), limit=MAX_CAPTION)
        else:
            raise ApiError(400, f"Bad Request: result type {kind} is not supported here")
        if isinstance(result.get("reply_markup"), dict):
            self._check_markup({"reply_markup": result["reply_markup"]})

    async def _api_getChat(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._chat(params)
