"""Logging set-up shared by every poembot process: JSON lines in production, readable text in a terminal.

POEMBOT_LOG_FORMAT (json | text | auto) and POEMBOT_LOG_LEVEL choose (read through protocol.settings);
the standard library's logging underneath.
"""
from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from typing import Any

from protocol.settings import LogSettings

FORMATS = ("json", "text", "auto")
TEXT_FORMAT = "%(asctime)s %(levelname)s [%(role)s] %(name)s: %(message)s"
# httpx logs every request URL at INFO and Telegram puts the bot token in the URL path.
QUIET_LOGGERS = ("httpx", "httpcore")

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "role"}


def _utc_iso(created: float) -> str:
    return datetime.fromtimestamp(created, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, role, pid, msg, exc, and JSON-serialisable extras."""

    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {"ts": _utc_iso(record.created), "level": record.levelname,
                                "logger": record.name, "role": self.role, "pid": record.process,
                                "msg": record.getMessage()}
        # exc_text first: the token-redaction filter stores its cleaned traceback there.
        exc = record.exc_text or (self.formatException(record.exc_info) if record.exc_info else None)
        if exc:
            body["exc"] = exc
        if record.stack_info:
            body["stack"] = record.stack_info
        for key, value in vars(record).items():
            if key in _STANDARD or key in body or key.startswith("_"):
                continue
            try:
                json.dumps(value)
            except (TypeError, ValueError):
                continue          # an object we cannot write faithfully is left out, not str()-ed
            body[key] = value
        return json.dumps(body, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self, role: str) -> None:
        super().__init__(TEXT_FORMAT)
        self.role = role

    def format(self, record: logging.LogRecord) -> str:
        record.role = self.role
        return super().format(record)


class _PoembotHandler(logging.StreamHandler):
    """Marks the handler setup_logging owns, so a second call reconfigures it instead of adding one."""


def _choose_format(fmt: str | None) -> str:
    choice = (fmt or LogSettings.from_env().log_format).strip().lower() or "auto"
    if choice not in FORMATS:
        raise ValueError(f"POEMBOT_LOG_FORMAT must be one of {', '.join(FORMATS)}, got {choice!r}")
    if choice == "auto":
        # Containers and log shippers get JSON; a person at a terminal gets text.
        isatty = getattr(sys.stderr, "isatty", None)
        return "text" if isatty is not None and isatty() else "json"
    return choice


def _choose_level(level: str | None) -> int:
    name = (level or LogSettings.from_env().log_level).strip().upper() or "INFO"
    value = logging.getLevelName(name)
    if not isinstance(value, int):
        raise ValueError(f"POEMBOT_LOG_LEVEL must be a level name such as INFO or DEBUG, got {name!r}")
    return value


def setup_logging(role: str, level: str | None = None, fmt: str | None = None) -> None:
    """Configure the root logger for a long-running process; calling again reconfigures, never duplicates."""
    chosen, level_no = _choose_format(fmt), _choose_level(level)    # a bad value fails before any change
    root = logging.getLogger()
    handler = next((h for h in root.handlers if isinstance(h, _PoembotHandler)), None)
    if handler is None:
        handler = _PoembotHandler(sys.stderr)
        root.addHandler(handler)
    # Filters already on the handler (bot.redact) are kept: only the formatter changes.
    handler.setFormatter(JsonFormatter(role) if chosen == "json" else TextFormatter(role))
    root.setLevel(level_no)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
