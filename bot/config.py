"""The bot's settings, read once from environment variables into a frozen dataclass.

Config.from_env() validates everything up front so a typo fails at start-up, not at the first message.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import time as dtime
from pathlib import Path
from typing import Mapping
from urllib.parse import urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from verse.forms import FORMS
from protocol.paths import PRETRAINED_DIR, SHIPPED_STYLES_DIR

DEFAULT_API_URL = "https://api.telegram.org"
_TOKEN_RE = re.compile(r"^\d+:[A-Za-z0-9_-]{20,}$")
_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


class ConfigError(ValueError):
    """An environment variable is missing or malformed; the message names it."""


@dataclass(frozen=True)
class Config:
    token: str
    api_url: str = DEFAULT_API_URL
    redis_url: str = "redis://localhost:6379/0"
    webhook_url: str | None = None
    webhook_secret: str | None = None
    webhook_listen: str = "0.0.0.0"
    webhook_port: int = 8443
    daily_chat_id: int | None = None
    daily_time: dtime = dtime(8, 0)
    tz: str = "Asia/Shanghai"
    daily_grace_s: int = 3 * 3600          # a replica started this long after the slot still posts
    admin_ids: frozenset[int] = field(default_factory=frozenset)
    rate_per_min: int = 10                 # generation requests per user per minute
    queue_cap: int = 200                   # jobs in flight across all bot replicas
    busy_retry_s: int = 20                 # what "try again in N s" says when the queue is full
    poem_ttl_s: int = 7 * 24 * 3600        # how long buttons on a poem keep working
    history_cap: int = 50
    default_form: str = "七绝"
    model_dir: Path | None = None          # the workers' model: its vocab.json and matching index
    styles_dir: Path | None = None         # the shipped style cards, named until a worker publishes its own
    index_path: Path | None = None         # latent index for /similar (default: the model's)
    vocab_path: Path | None = None         # characters the model can write (default: model's vocab.json)
    typing_max_s: int = 120                # stop the typing indicator after this long
    consumer_name: str | None = None       # results consumer name; defaults to host-pid
    claim_idle_ms: int = 30_000            # work a replica left unfinished this long is taken over
    poll_timeout_s: int = 10               # getUpdates long-poll length (polling mode)
    card_chat_id: int | None = None        # where cards are uploaded for inline photo results; None: no photos
    inline_per_min: int = 20               # inline queries per user per minute that may ask for fresh poems
    inline_wait_s: float = 5.0             # how long an inline query waits for fresh poems (Telegram allows ~10 s)

    @property
    def delivery_lease_s(self) -> int:
        """How long one replica may hold the right to send a reply before another may try."""
        return max(5, -(-self.claim_idle_ms // 1000))
    metrics_port: int | None = None        # Prometheus /metrics of this replica; None: off

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    @property
    def webhook_mode(self) -> bool:
        return bool(self.webhook_url)

    @property
    def webhook_path(self) -> str:
        """URL path the local webhook server listens on: the path of WEBHOOK_URL without '/'."""
        return urlparse(self.webhook_url or "").path.strip("/")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Config":
        env = os.environ if env is None else env

        def get(name: str) -> str | None:
            value = env.get(name)
            return value.strip() if value and value.strip() else None

        def integer(name: str, default: int, low: int = 0) -> int:
            raw = get(name)
            if raw is None:
                return default
            try:
                value = int(raw)
            except ValueError:
                raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
            if value < low:
                raise ConfigError(f"{name} must be at least {low}, got {value}")
            return value

        token = get("TELEGRAM_BOT_TOKEN")
        if not token:
            raise ConfigError("TELEGRAM_BOT_TOKEN is not set")
        if not _TOKEN_RE.match(token):
            # Never echo the token itself: it is a credential.
            raise ConfigError("TELEGRAM_BOT_TOKEN does not look like <digits>:<secret>")

        api_url = (get("TELEGRAM_API_URL") or DEFAULT_API_URL).rstrip("/")
        if urlparse(api_url).scheme not in ("http", "https"):
            raise ConfigError(f"TELEGRAM_API_URL must be an http(s) URL, got {api_url!r}")

        webhook_url = get("WEBHOOK_URL")
        webhook_secret = get("WEBHOOK_SECRET")
        if webhook_url:
            if urlparse(webhook_url).scheme not in ("http", "https"):
                raise ConfigError(f"WEBHOOK_URL must be an https URL, got {webhook_url!r}")
            if not webhook_secret:
                raise ConfigError("WEBHOOK_SECRET is required with WEBHOOK_URL")
        if webhook_secret and not _SECRET_RE.match(webhook_secret):
            raise ConfigError("WEBHOOK_SECRET may only hold A-Z a-z 0-9 _ - (1-256 characters)")

        daily_chat = get("DAILY_CHAT_ID")
        try:
            daily_chat_id = int(daily_chat) if daily_chat else None
        except ValueError:
            raise ConfigError(f"DAILY_CHAT_ID must be a numeric chat id, got {daily_chat!r}") from None

        card_chat = get("POEMBOT_CARD_CHAT_ID")
        try:
            card_chat_id = int(card_chat) if card_chat else None
        except ValueError:
            raise ConfigError(f"POEMBOT_CARD_CHAT_ID must be a numeric chat id, got {card_chat!r}") from None
        inline_wait_raw = get("POEMBOT_INLINE_WAIT_S") or "5"
        try:
            inline_wait_s = float(inline_wait_raw)
        except ValueError:
            raise ConfigError(f"POEMBOT_INLINE_WAIT_S must be a number, got {inline_wait_raw!r}") from None
        if not 0 <= inline_wait_s <= 8:
            raise ConfigError("POEMBOT_INLINE_WAIT_S must be between 0 and 8 (Telegram drops slower answers)")

        daily_raw = get("DAILY_TIME") or "08:00"
        match = re.fullmatch(r"(\d{1,2}):(\d{2})", daily_raw)
        if not match or int(match[1]) > 23 or int(match[2]) > 59:
            raise ConfigError(f"DAILY_TIME must be HH:MM, got {daily_raw!r}")
        daily_time = dtime(int(match[1]), int(match[2]))

        tz = get("TZ") or "Asia/Shanghai"
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"TZ is not a known time zone: {tz!r}") from None

        admins: set[int] = set()
        for part in re.split(r"[,\s]+", get("ADMIN_IDS") or ""):
            if part:
                try:
                    admins.add(int(part))
                except ValueError:
                    raise ConfigError(f"ADMIN_IDS must be numeric user ids, got {part!r}") from None

        default_form = get("POEMBOT_DEFAULT_FORM") or "七绝"
        if default_form not in FORMS:
            raise ConfigError(f"POEMBOT_DEFAULT_FORM must be one of {', '.join(FORMS)}")

        def path(name: str) -> Path | None:
            raw = get(name)
            return Path(raw).expanduser() if raw else None

        return cls(
            token=token,
            api_url=api_url,
            redis_url=get("REDIS_URL") or "redis://localhost:6379/0",
            webhook_url=webhook_url,
            webhook_secret=webhook_secret,
            webhook_listen=get("WEBHOOK_LISTEN") or "0.0.0.0",
            webhook_port=integer("WEBHOOK_PORT", 8443, 1),
            daily_chat_id=daily_chat_id,
            daily_time=daily_time,
            tz=tz,
            daily_grace_s=integer("POEMBOT_DAILY_GRACE_S", 3 * 3600),
            admin_ids=frozenset(admins),
            rate_per_min=integer("POEMBOT_RATE_PER_MIN", 10, 1),
            queue_cap=integer("POEMBOT_QUEUE_CAP", 200, 1),
            busy_retry_s=integer("POEMBOT_BUSY_RETRY_S", 20, 1),
            poem_ttl_s=integer("POEMBOT_POEM_TTL_S", 7 * 24 * 3600, 60),
            history_cap=integer("POEMBOT_HISTORY_CAP", 50, 1),
            default_form=default_form,
            model_dir=path("POEMBOT_MODEL_DIR") or PRETRAINED_DIR,
            styles_dir=path("POEMBOT_STYLES_DIR") or SHIPPED_STYLES_DIR,
            index_path=path("POEMBOT_INDEX_PATH"),
            vocab_path=path("POEMBOT_VOCAB_PATH"),
            typing_max_s=integer("POEMBOT_TYPING_MAX_S", 120, 1),
            consumer_name=get("POEMBOT_CONSUMER_NAME"),
            claim_idle_ms=integer("POEMBOT_CLAIM_IDLE_MS", 30_000, 100),
            poll_timeout_s=integer("POEMBOT_POLL_TIMEOUT_S", 10, 1),
            card_chat_id=card_chat_id,
            inline_per_min=integer("POEMBOT_INLINE_PER_MIN", 20, 1),
            inline_wait_s=inline_wait_s,
            metrics_port=integer("POEMBOT_BOT_METRICS_PORT", 0) if get("POEMBOT_BOT_METRICS_PORT") else None,
        )
