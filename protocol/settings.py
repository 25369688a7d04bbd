"""Every environment variable poembot reads, as one pydantic-settings model per role.

BotSettings (`poembot bot`) and WorkerSettings (`poembot worker`) are built from the shared parts:
RedisSettings, LogSettings, PathsSettings (ModelSettings: with what loading the model reads). Each field's alias is the variable's name; README's
configuration table documents the same names (tests/test_settings.py holds the two together, and
checks that every variable the Dockerfile, compose.yaml, .env.example and deploy/k8s set is one).

`Model.from_env()` is the one reader of the environment: a role validates its model at start-up, so a
bad value fails there with ConfigError naming the variable ("POEMBOT_MAX_BATCH: must be a positive
integer, got 'x'"), not at the first job. Constructing a model directly (`BotSettings(token=...)`,
the tests) reads no environment: only the values given and the defaults.
"""
from __future__ import annotations

import logging
import os
import re
import socket
import uuid
from datetime import time as dtime
from pathlib import Path
from typing import Any, Literal, Mapping, TypeVar
from urllib.parse import unquote, urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from protocol.keys import HEARTBEAT_INTERVAL_S
from verse.forms import FORMS

# The packages are siblings, in the repository and in site-packages alike: the shipped model and styles,
# the defaults of POEMBOT_MODEL_DIR and POEMBOT_STYLES_DIR, lie beside this package.
PACKAGES_DIR = Path(__file__).resolve().parent.parent
PRETRAINED_DIR = PACKAGES_DIR / "model" / "pretrained"
SHIPPED_STYLES_DIR = PACKAGES_DIR / "model" / "styles"

DEFAULT_REDIS_URL = "redis://localhost:6379/0"
DEFAULT_API_URL = "https://api.telegram.org"
REDIS_SCHEMES = ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster")   # +cluster: protocol.connections
_TOKEN_RE = re.compile(r"^\d+:[A-Za-z0-9_-]{20,}$")
_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
SECRET = {"secret": True}       # json_schema_extra of a credential: its value never appears in an error

S = TypeVar("S", bound="Settings")


class ConfigError(ValueError):
    """An environment variable is missing or malformed; the message names it (never a secret's value)."""


class Settings(BaseSettings):
    """Base of every settings model: frozen, fields by name or by their variable's name (the alias)."""

    model_config = SettingsConfigDict(frozen=True, validate_by_name=True, validate_by_alias=True,
                                      extra="ignore", case_sensitive=True)

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):
        # Only the values given: from_env() is the one reader of the environment, so a model built in
        # a test never picks up the machine's variables, and a test can pass a mapping instead.
        return (init_settings,)

    @classmethod
    def variables(cls) -> dict[str, str]:
        """Variable name -> field name, for every field."""
        return {field.alias or name: name for name, field in cls.model_fields.items()}

    @classmethod
    def from_env(cls: type[S], env: Mapping[str, str] | None = None) -> S:
        """The model from the environment (or env): by each variable's exact name, surrounding blanks
        stripped, a blank value meaning unset. Raises ConfigError naming every bad variable."""
        source = os.environ if env is None else env
        values = {}
        for variable in cls.variables():
            raw = source.get(variable)
            if raw is not None and raw.strip():
                values[variable] = raw.strip()
        try:
            return cls(**values)
        except ValidationError as exc:
            raise ConfigError(describe(exc, cls)) from None

    def updated(self: S, **values: Any) -> S:
        """A copy with values (by field name) in place of these, validated as from_env validates:
        a command's options over the environment. (model_copy(update=...) would take them unchecked.)"""
        try:
            return type(self)(**{**self.model_dump(), **values})
        except ValidationError as exc:
            raise ConfigError(describe(exc, type(self))) from None


def describe(exc: ValidationError, model: type[Settings]) -> str:
    """One line per error, "VARIABLE: what it must be, got 'value'" (a secret's value left out)."""
    lines = []
    for error in exc.errors():
        field = _field_of(model, error["loc"][0]) if error["loc"] else None
        if field is None:                          # a model-level check: its message names the variables
            lines.append(_reason(error))
            continue
        name, info = field
        variable = info.alias or name
        if error["type"] == "missing":
            lines.append(f"{variable}: is not set")
            continue
        secret = (info.json_schema_extra or {}).get("secret")
        raw = error.get("input")
        got = "" if secret or isinstance(raw, Mapping) else f", got {_shown(raw)!r}"
        lines.append(f"{variable}: {_expectation(error, info)}{got}")
    return "\n".join(lines)


def _field_of(model: type[Settings], key: Any) -> tuple[str, Any] | None:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return name, info
    return None


def _shown(raw: Any) -> Any:
    return raw if isinstance(raw, (str, int, float)) else str(raw)


def _reason(error: dict) -> str:
    return error["msg"].removeprefix("Value error, ")


def _expectation(error: dict, info: Any) -> str:
    """What the field needs, in the words of its type and bounds rather than pydantic's."""
    kind = error["type"]
    if kind == "value_error":
        return _reason(error)
    if kind == "literal_error":
        return f"must be one of {error['ctx']['expected']}"
    if kind in ("bool_parsing", "bool_type"):
        return "must be 0 or 1"
    if kind.startswith("float") or (kind.startswith(("greater", "less")) and info.annotation is float):
        low, high = _bounds(info)
        return "must be a number" + (f" from {low:g} to {high:g}" if low is not None and high is not None else "")
    if kind.startswith(("int", "greater", "less")):
        low, high = _bounds(info)
        if low is not None and high is not None:
            return f"must be an integer from {low} to {high}"
        if low == 1:
            return "must be a positive integer"
        if low == 0:
            return "must be a whole number (0 or more)"
        return "must be an integer" + (f" of at least {low}" if low is not None else "")
    return error["msg"][:1].lower() + error["msg"][1:]


def _bounds(info: Any) -> tuple[float | None, float | None]:
    low = high = None
    for meta in info.metadata:
        low = getattr(meta, "ge", None) if getattr(meta, "ge", None) is not None else low
        high = getattr(meta, "le", None) if getattr(meta, "le", None) is not None else high
    return low, high


def _path(value: Any) -> Any:
    return Path(value).expanduser() if isinstance(value, (str, Path)) else value


# --- shared parts ---------------------------------------------------------------------------------

class RedisSettings(Settings):
    # A secret for errors: the URL may carry a password.
    redis_url: str = Field(DEFAULT_REDIS_URL, alias="REDIS_URL", json_schema_extra=SECRET,
                           description="the one shared state: redis://, rediss:// (TLS) or unix:// "
                                       "(poembot run: an embedded server when unset); redis+cluster:// "
                                       "(rediss+cluster://) names a Redis Cluster by any node")

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        scheme = urlparse(value).scheme
        if scheme not in REDIS_SCHEMES:
            raise ValueError(f"must be a redis://, rediss://, unix:// or redis+cluster:// URL, "
                             f"not {scheme or 'no'} scheme")
        return value

    @classmethod
    def from_dsn(cls, dsn: str) -> "RedisSettings":
        """Settings for one Redis URL (like arq's RedisSettings.from_dsn), validated the same way."""
        try:
            return cls(redis_url=dsn)
        except ValidationError as exc:
            raise ConfigError(describe(exc, cls)) from None

    # The parts of the URL, for tools that want them (redis-py itself takes the URL).
    @property
    def host(self) -> str:
        return urlparse(self.redis_url).hostname or "localhost"

    @property
    def port(self) -> int:
        return urlparse(self.redis_url).port or 6379

    @property
    def database(self) -> int:
        parsed = urlparse(self.redis_url)
        path = parsed.path.strip("/") if parsed.scheme != "unix" else ""
        return int(path) if path.isdigit() else 0

    @property
    def password(self) -> str | None:
        secret = urlparse(self.redis_url).password
        return unquote(secret) if secret else None

    @property
    def ssl(self) -> bool:
        return urlparse(self.redis_url).scheme in ("rediss", "rediss+cluster")


class LogSettings(Settings):
    log_level: str = Field("INFO", alias="POEMBOT_LOG_LEVEL",
                           description="log level name (DEBUG, INFO, WARNING, ...)")
    log_format: Literal["json", "text", "auto"] = Field(
        "auto", alias="POEMBOT_LOG_FORMAT", description="json, text, or auto: text on a terminal, else JSON")

    @field_validator("log_level", mode="before")
    @classmethod
    def _level(cls, value: Any) -> Any:
        name = str(value).strip().upper()
        if not isinstance(logging.getLevelName(name), int):
            raise ValueError("must be a level name such as INFO or DEBUG")
        return name

    @field_validator("log_format", mode="before")
    @classmethod
    def _format(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value


class PathsSettings(Settings):
    data_dir: Path = Field(default_factory=lambda: Path.home() / ".cache" / "poembot",
                           alias="POEMBOT_DATA_DIR", description="downloaded and built data")
    model_dir: Path | None = Field(PRETRAINED_DIR, alias="POEMBOT_MODEL_DIR",
                                   description="the model folder (the bot reads its vocabulary)")
    styles_dir: Path | None = Field(SHIPPED_STYLES_DIR, alias="POEMBOT_STYLES_DIR",
                                    description="the style adapters (ID.npz with its card ID.json)")
    index_path: Path | None = Field(None, alias="POEMBOT_INDEX_PATH",
                                    description="the latent and theme indexes (default: "
                                                "$POEMBOT_DATA_DIR/index/<model version>)")
    font_dir: Path | None = Field(None, alias="POEMBOT_FONT_DIR",
                                  description="the card fonts (default: $POEMBOT_DATA_DIR/fonts)")

    _expand = field_validator("data_dir", "model_dir", "styles_dir", "index_path", "font_dir",
                              mode="before")(_path)

    @property
    def fonts(self) -> Path:
        return self.font_dir or self.data_dir / "fonts"


class ModelSettings(PathsSettings):
    """What loading the model reads (model.generate.load_generator: the worker, `poembot generate`)."""

    xla: bool = Field(False, alias="POEMBOT_XLA", description="compile the decoder with XLA")


# --- roles ----------------------------------------------------------------------------------------

def new_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:4]}"


class WorkerSettings(RedisSettings, LogSettings, ModelSettings):
    """`poembot worker` (and the worker `poembot run` starts): what one worker.service.Worker runs with.

    max_batch and max_wait_ms left unset are filled in by device when the Worker is built
    (worker.service.default_batching)."""

    max_batch: int | None = Field(None, alias="POEMBOT_MAX_BATCH", ge=1,
                                  description="largest batch (default 64 on CPU, 512 on GPU)")
    max_wait_ms: int | None = Field(None, alias="POEMBOT_MAX_WAIT_MS", ge=0,
                                    description="longest wait to fill a batch (default 25 on CPU, 10 on GPU)")
    visibility_ms: int = Field(60_000, alias="POEMBOT_VISIBILITY_MS", ge=1,
                               description="a job pending this long on a dead worker is reclaimed")
    max_deliveries: int = Field(3, alias="POEMBOT_MAX_DELIVERIES", ge=1,
                                description="failed deliveries before the dead-letter stream")
    metrics_port: int | None = Field(None, alias="POEMBOT_METRICS_PORT", ge=0, le=65535,
                                     description="Prometheus metrics port of the worker (0: any free one)")
    # Random by default: replicas started from one environment must not share a consumer name.
    worker_id: str = Field(default_factory=new_worker_id, alias="POEMBOT_WORKER_ID", min_length=1,
                           description="this worker's consumer name (default host-pid-random)")

    @property
    def beat_s(self) -> float:
        # Touching in-flight jobs well inside the visibility timeout keeps a live worker's jobs its own.
        return min(HEARTBEAT_INTERVAL_S, self.visibility_ms / 3000)


class ReplicaSettings(RedisSettings):
    """What `poembot health --role bot` needs: which bot replica to check."""

    consumer_name: str | None = Field(None, alias="POEMBOT_CONSUMER_NAME",
                                      description="this bot replica's consumer name (default host-pid)")


class BotSettings(ReplicaSettings, LogSettings, PathsSettings):
    """`poembot bot`: what the bot reads."""

    token: str = Field(alias="TELEGRAM_BOT_TOKEN", json_schema_extra=SECRET,
                       description="the bot token; never logged")
    api_url: str = Field(DEFAULT_API_URL, alias="TELEGRAM_API_URL", description="Bot API root")
    webhook_url: str | None = Field(None, alias="WEBHOOK_URL", description="webhook mode when set")
    webhook_secret: str | None = Field(None, alias="WEBHOOK_SECRET", json_schema_extra=SECRET,
                                       description="the webhook's secret token (required with WEBHOOK_URL)")
    webhook_listen: str = Field("0.0.0.0", alias="WEBHOOK_LISTEN", description="the webhook server's address")
    webhook_port: int = Field(8443, alias="WEBHOOK_PORT", ge=1, le=65535,
                              description="the webhook server's port")
    daily_chat_id: int | None = Field(None, alias="DAILY_CHAT_ID",
                                      description="the chat that gets the daily poem")
    daily_time: dtime = Field(dtime(8, 0), alias="DAILY_TIME", description="HH:MM of the daily poem, in TZ")
    tz: str = Field("Asia/Shanghai", alias="TZ", description="time zone of DAILY_TIME")
    daily_grace_s: int = Field(3 * 3600, alias="POEMBOT_DAILY_GRACE_S", ge=0,
                               description="a replica started this long after the slot still posts")
    admin_ids: frozenset[int] = Field(frozenset(), alias="ADMIN_IDS",
                                      description="user ids allowed /daily_now (comma or space separated)")
    rate_per_min: int = Field(10, alias="POEMBOT_RATE_PER_MIN", ge=1,
                              description="generation requests per user per minute")
    queue_cap: int = Field(200, alias="POEMBOT_QUEUE_CAP", ge=1,
                           description="jobs in flight across all bot replicas")
    busy_retry_s: int = Field(20, alias="POEMBOT_BUSY_RETRY_S", ge=1,
                              description='what "try again in N s" says when the queue is full')
    poem_ttl_s: int = Field(7 * 24 * 3600, alias="POEMBOT_POEM_TTL_S", ge=60,
                            description="how long buttons on a poem keep working")
    history_cap: int = Field(50, alias="POEMBOT_HISTORY_CAP", ge=1, description="per-user history length")
    default_form: str = Field("七绝", alias="POEMBOT_DEFAULT_FORM", description="form of a bare /poem")
    vocab_path: Path | None = Field(None, alias="POEMBOT_VOCAB_PATH",
                                    description="characters the model can write (default: the model's vocab.json)")
    typing_max_s: int = Field(120, alias="POEMBOT_TYPING_MAX_S", ge=1,
                              description="stop the typing indicator after this long")
    claim_idle_ms: int = Field(30_000, alias="POEMBOT_CLAIM_IDLE_MS", ge=100,
                               description="work a replica left unfinished this long is taken over")
    poll_timeout_s: int = Field(10, alias="POEMBOT_POLL_TIMEOUT_S", ge=1,
                                description="getUpdates long-poll length (polling mode)")
    card_chat_id: int | None = Field(None, alias="POEMBOT_CARD_CHAT_ID",
                                     description="where cards are uploaded for inline photo results")
    inline_per_min: int = Field(20, alias="POEMBOT_INLINE_PER_MIN", ge=1,
                                description="inline queries per user per minute that may ask for fresh poems")
    inline_wait_s: float = Field(5.0, alias="POEMBOT_INLINE_WAIT_S", ge=0, le=8,
                                 description="how long an inline query waits for fresh poems "
                                             "(Telegram drops answers slower than ~10 s)")
    send_per_s: int = Field(30, alias="POEMBOT_SEND_PER_S", ge=1,
                            description="Bot API sends per second of this replica (Telegram allows a bot "
                                        "about 30); the daily broadcast keeps to two thirds of it")
    metrics_port: int | None = Field(None, alias="POEMBOT_BOT_METRICS_PORT", ge=0, le=65535,
                                     description="Prometheus /metrics port of this replica")

    _expand = field_validator("data_dir", "model_dir", "styles_dir", "index_path", "font_dir",
                              "vocab_path", mode="before")(_path)

    @field_validator("token")
    @classmethod
    def _token(cls, value: str) -> str:
        if not _TOKEN_RE.match(value):
            raise ValueError("does not look like <digits>:<secret>")
        return value

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        value = value.rstrip("/")
        if urlparse(value).scheme not in ("http", "https"):
            raise ValueError("must be an http(s) URL")
        return value

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, value: str | None) -> str | None:
        if value and urlparse(value).scheme not in ("http", "https"):
            raise ValueError("must be an https URL")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: str | None) -> str | None:
        if value and not _SECRET_RE.match(value):
            raise ValueError("may only hold A-Z a-z 0-9 _ - (1-256 characters)")
        return value

    @field_validator("daily_chat_id", "card_chat_id", mode="before")
    @classmethod
    def _chat_id(cls, value: Any) -> Any:
        if isinstance(value, str) and not re.fullmatch(r"-?\d+", value):
            raise ValueError("must be a numeric chat id")
        return value

    @field_validator("daily_time", mode="before")
    @classmethod
    def _daily_time(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        match = re.fullmatch(r"(\d{1,2}):(\d{2})", value)
        if not match or int(match[1]) > 23 or int(match[2]) > 59:
            raise ValueError("must be HH:MM")
        return dtime(int(match[1]), int(match[2]))

    @field_validator("tz")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("is not a known time zone") from None
        return value

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _admin_ids(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        parts = [p for p in re.split(r"[,\s]+", value) if p]
        if not all(re.fullmatch(r"-?\d+", p) for p in parts):
            raise ValueError("must be numeric user ids")
        return frozenset(int(p) for p in parts)

    @field_validator("default_form")
    @classmethod
    def _form(cls, value: str) -> str:
        if value not in FORMS:
            raise ValueError(f"must be one of {', '.join(FORMS)}")
        return value

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> "BotSettings":
        if self.webhook_url and not self.webhook_secret:
            raise ValueError("WEBHOOK_SECRET: is required with WEBHOOK_URL")
        return self

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

    @property
    def delivery_lease_s(self) -> int:
        """How long one replica may hold the right to send a reply before another may try."""
        return max(5, -(-self.claim_idle_ms // 1000))


ROLE_MODELS: tuple[type[Settings], ...] = (BotSettings, WorkerSettings)
