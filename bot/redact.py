"""A logging filter that removes the bot token from every record before any handler writes it.

httpx logs request URLs and Telegram puts the token in the URL path (/bot<token>/method), so without
this every INFO line of a polling bot would leak the credential.
"""
from __future__ import annotations

import logging
import re
import traceback

REDACTED = "<token>"
# Loggers whose records are most likely to carry request URLs; filtered at the logger too, so the
# token is gone even for handlers attached later (pytest's caplog, a JSON log shipper).
NOISY_LOGGERS = ("httpx", "httpcore", "telegram", "telegram.ext", "apscheduler", "aiohttp")


class RedactToken(logging.Filter):
    def __init__(self, *secrets: str) -> None:
        super().__init__()
        # Also the part after the colon: it is the secret half and appears alone in some errors.
        parts = set()
        for s in secrets:
            if s:
                parts.add(s)
                if ":" in s:
                    parts.add(s.split(":", 1)[1])
        self.secrets = sorted(parts, key=len, reverse=True)
        # Case-insensitive: PTB capitalises error descriptions (str.capitalize lowercases the rest), so a
        # token Telegram echoes in an error reaches the log as "123:abc..." instead of "123:AbC...".
        self._pattern = (re.compile("|".join(re.escape(s) for s in self.secrets), re.IGNORECASE)
                         if self.secrets else None)

    def redact(self, text: str) -> str:
        return self._pattern.sub(REDACTED, text) if self._pattern is not None else text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not lose the record
            message = str(record.msg)
        clean = self.redact(message)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


def install_redaction(*secrets: str) -> RedactToken:
    """Attach one filter to the root logger's handlers and to the loggers that print URLs."""
    flt = RedactToken(*secrets)
    root = logging.getLogger()
    for handler in root.handlers:
        if not any(isinstance(f, RedactToken) and f.secrets == flt.secrets for f in handler.filters):
            handler.addFilter(flt)
    for name in ("", *NOISY_LOGGERS):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactToken) and f.secrets == flt.secrets for f in logger.filters):
            logger.addFilter(flt)
    return flt
