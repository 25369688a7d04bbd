"""protocol/settings.py: one settings model per role, the one reader of the environment.

Every variable a deployment file sets or README names is a field of a role's model, every field is in
README's configuration table with its default, a bad value stops a role at start-up with a line
naming the variable, and the image's /similar finds the index the image ships.
"""
from __future__ import annotations

import re
import subprocess
import sys
from datetime import time as dtime
from pathlib import Path

import pytest
import yaml

from devtools.procs import ROOT, child_env
from protocol.settings import (BotSettings, ConfigError, ReplicaSettings, RedisSettings, WorkerSettings,
                               ROLE_MODELS)

TOKEN = "4242:AAH-secret_part_abcdefghijklmnop"
OUR_PREFIXES = ("POEMBOT_", "REDIS_", "TELEGRAM_")
# Set in the Dockerfile for the image itself (pip, Python, the shell), not for poembot.
IMAGE_ONLY = {"PATH", "PYTHONUNBUFFERED", "PIP_NO_CACHE_DIR", "PIP_DISABLE_PIP_VERSION_CHECK"}
# Read by the deployment files, not by poembot; README says so below its table.
DEPLOY_ONLY = {
    "POEMBOT_ROLE": "docker/entrypoint.sh: the role `poembot health` checks",
    "POEMBOT_BOTS": "compose.yaml: bot replicas",
    "POEMBOT_WORKERS": "compose.yaml: CPU worker replicas",
    "POEMBOT_GPU_WORKERS": "compose.yaml: GPU worker replicas",
    "POEMBOT_VERSION": "compose.yaml: the image tag",
}


def settings_variables() -> dict[str, type]:
    """Every variable a role reads -> the first role model that has it."""
    out: dict[str, type] = {}
    for model in ROLE_MODELS:
        for variable in model.variables():
            out.setdefault(variable, model)
    return out


# --- what the deployment files and README name ----------------------------------------------------

def dockerfile_env(stage: str | None = None) -> dict[str, str]:
    """The ENV instructions of the Dockerfile (of one stage, by its AS name, when given)."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("FROM "):
            current = line.split()[-1] if " AS " in line else None
        elif line.startswith("ENV ") and (stage is None or current == stage):
            env.update(dict(re.findall(r"(\w+)=(\S+)", line)))
    return env


def compose_variables() -> set[str]:
    text = (ROOT / "compose.yaml").read_text()
    names = set(re.findall(r"\$\{(\w+)", text))                   # interpolated by compose itself
    for service in yaml.safe_load(text)["services"].values():
        names |= set(service.get("environment") or {})
    return names


def env_example_variables() -> set[str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    return {line.split("=", 1)[0].strip() for line in lines if "=" in line and not line.startswith("#")}


def k8s_variables() -> set[str]:
    names: set[str] = set()
    for path in sorted((ROOT / "deploy" / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc:
                continue
            if doc["kind"] == "ConfigMap":
                names |= set(doc["data"])
            if doc["kind"] in ("Deployment", "StatefulSet"):
                for container in doc["spec"]["template"]["spec"]["containers"]:
                    names |= {e["name"] for e in container.get("env", [])}
    return names


def readme_table() -> list[tuple[list[str], str]]:
    """README's configuration table: (the variables of a row, its default cell)."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) >= 3:
            rows.append((re.findall(r"`([A-Z][A-Z0-9_]*)`", cells[0]), cells[1]))
    return rows


def test_the_readers_of_the_files_find_what_they_hold() -> None:
    """The parsers below are what the mapping test trusts: each finds names known to be there."""
    assert dockerfile_env("runtime")["POEMBOT_INDEX_PATH"] == "/opt/poembot/index"
    assert {"POEMBOT_DATA_DIR", "PIP_NO_CACHE_DIR"} <= set(dockerfile_env())
    assert {"REDIS_URL", "POEMBOT_MAX_BATCH", "POEMBOT_WORKERS"} <= compose_variables()
    assert {"TELEGRAM_BOT_TOKEN", "TZ"} <= env_example_variables()
    assert {"POEMBOT_QUEUE_CAP", "POEMBOT_CONSUMER_NAME"} <= k8s_variables()
    assert len(readme_table()) > 30 and (["WEBHOOK_LISTEN", "WEBHOOK_PORT"], "`0.0.0.0` / `8443`") in readme_table()


@pytest.mark.parametrize("source", ["Dockerfile", "compose.yaml", ".env.example", "deploy/k8s", "README.md"])
def test_every_variable_a_file_names_is_a_setting(source: str) -> None:
    readme = (ROOT / "README.md").read_text()
    names = {
        "Dockerfile": lambda: set(dockerfile_env()) - IMAGE_ONLY,
        "compose.yaml": compose_variables,
        ".env.example": env_example_variables,
        "deploy/k8s": k8s_variables,
        "README.md": lambda: set(re.findall(r"`((?:%s)[A-Z0-9_]+)`" % "|".join(OUR_PREFIXES), readme)),
    }[source]()
    assert names
    unknown = sorted(names - set(settings_variables()) - set(DEPLOY_ONLY))
    assert not unknown, f"{source} sets variables no settings model reads: {unknown}"


def test_the_deployment_only_variables_are_documented_as_such() -> None:
    files = (ROOT / "compose.yaml").read_text() + (ROOT / "docker" / "entrypoint.sh").read_text()
    readme = (ROOT / "README.md").read_text()
    note = readme.split("Read by the deployment files only", 1)[1].split("\n\n", 1)[0]
    used = [name for name in DEPLOY_ONLY if name in files]
    assert "POEMBOT_ROLE" in used and "POEMBOT_WORKERS" in used
    for name in used:
        assert f"`{name}`" in note, f"README does not say {name} is for the deployment files only"
    assert not set(DEPLOY_ONLY) & set(settings_variables())


def test_readme_table_documents_exactly_the_settings_with_their_defaults() -> None:
    rows = readme_table()
    documented = [name for names, _ in rows for name in names]
    assert len(documented) == len(set(documented)), "a variable has two rows"
    variables = settings_variables()
    assert sorted(set(documented) - set(variables)) == [], "README documents variables nothing reads"
    assert sorted(set(variables) - set(documented)) == [], "settings README does not document"
    checked = 0
    for names, cell in rows:
        parts = [p.strip() for p in cell.split(" / ")]
        for name, part in zip(names, parts if len(parts) == len(names) else [cell] * len(names)):
            model = variables[name]
            field = model.model_fields[model.variables()[name]]
            default = field.get_default(call_default_factory=True)
            literal = re.fullmatch(r"`([^`]*)`", part)
            if part in ("unset", "empty"):
                assert not default, f"{name}: README says {part}, the default is {default!r}"
            elif default is not None and literal:
                assert literal[1] == shown(default), f"{name}: README says {literal[1]}, the default is {default!r}"
            else:
                continue
            checked += 1
    assert checked > 25


def shown(value: object) -> str:
    """A default as README writes it."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dtime):
        return value.strftime("%H:%M")
    if isinstance(value, Path):
        if value.is_relative_to(ROOT):
            return value.relative_to(ROOT).as_posix()
        if value.is_relative_to(Path.home()):
            return "~/" + value.relative_to(Path.home()).as_posix()
    return str(value)


def test_every_field_has_a_description_and_units_in_its_name() -> None:
    for model in ROLE_MODELS:
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name}"
            if field.alias.endswith(("_S", "_MS")):
                assert name.endswith(("_s", "_ms")), name


# --- the image ------------------------------------------------------------------------------------

def test_the_image_serves_similar_and_themes_from_the_index_it_ships() -> None:
    """`index build --out DIR` writes the latent and theme indexes in the build stage; the runtime
    stage copies DIR somewhere and its ENV must point both roles' settings there (the bot's /similar,
    the worker's theme prior), and at the fonts it copies."""
    text = (ROOT / "Dockerfile").read_text()
    built = re.search(r"poembot index build --out (\S+)", text)
    assert built, "the index stage builds no index"
    copied = re.search(rf"COPY --from=index {re.escape(built[1])} (\S+)", text)
    assert copied, "the runtime stage does not copy the index"
    fonts = re.search(r"COPY --from=index (\S+) /opt/poembot/fonts", text)
    assert fonts and "poembot font fetch" in text
    image = dockerfile_env("runtime")
    bot = BotSettings.from_env({**image, "TELEGRAM_BOT_TOKEN": TOKEN})
    worker = WorkerSettings.from_env(image)
    for role in (bot, worker):
        assert role.index_path == Path(copied[1])
        assert role.fonts == Path("/opt/poembot/fonts")
        assert role.data_dir == Path("/data") and 'VOLUME ["/data"]' in text
        assert role.log_format == "json"
    assert worker.metrics_port == 9100 and "EXPOSE 8443 9100" in text


def test_the_worker_hands_its_settings_to_the_model_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    """run_worker passes the settings it was given (the image's index path among them) to
    load_generator, which finds the theme index there; nothing re-reads the environment."""
    import protocol.logs
    import worker.service

    seen = []

    def load_generator(model_dir, jit_compile=None, settings=None):
        seen.append((Path(model_dir), settings))
        raise FileNotFoundError("stop here: the model itself is not under test")

    monkeypatch.setattr(worker.service, "load_generator", load_generator)
    monkeypatch.setattr(worker.service, "announce_loading", lambda url, worker_id: None)
    monkeypatch.setattr(protocol.logs, "setup_logging", lambda *args, **kwargs: None)
    monkeypatch.setenv("POEMBOT_INDEX_PATH", "/elsewhere")          # must not win over the settings given
    env = WorkerSettings.from_env({**dockerfile_env("runtime"), "POEMBOT_MODEL_DIR": "/models/v5"})
    assert worker.service.run_worker(env) == 2
    assert seen == [(Path("/models/v5"), env)] and env.index_path == Path("/opt/poembot/index")


def test_every_worker_option_is_the_setting_its_help_names() -> None:
    """An option of `poembot worker` overrides the WorkerSettings field of its name: there is one."""
    import typer.main

    from poembot_cli import app

    options = typer.main.get_command(app).commands["worker"].params
    assert len(options) >= 8
    for option in options:
        field = WorkerSettings.model_fields.get(option.name)
        assert field is not None, f"{option.opts[0]} is no WorkerSettings field"
        assert option.help.startswith(field.alias), f"{option.opts[0]}: its help does not name {field.alias}"


def test_worker_options_override_the_environment_and_reach_the_worker(
        redis_url: str, redis_client, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`poembot worker --max-batch 7 --worker-id cli-w`: the options win, the environment gives the
    rest, the Worker is built with both, and an option is checked as its variable would be."""
    import signal

    from typer.testing import CliRunner

    import protocol.logs
    import worker.service
    from poembot_cli import app
    from protocol import keys

    built = []
    monkeypatch.setattr(worker.service, "load_generator", lambda model_dir, jit_compile=None, settings=None: None)
    monkeypatch.setattr(worker.service.Worker, "run", lambda self: built.append(self.s))  # serving: test_worker
    monkeypatch.setattr(protocol.logs, "setup_logging", lambda *args, **kwargs: None)
    env = {"REDIS_URL": redis_url, "POEMBOT_MAX_BATCH": "5", "POEMBOT_MAX_WAIT_MS": "3",
           "POEMBOT_VISIBILITY_MS": "9000", "POEMBOT_MODEL_DIR": str(tmp_path), "POEMBOT_WORKER_ID": ""}
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:                                          # run_worker points them at its Worker
        given = CliRunner().invoke(app, ["worker", "--max-batch", "7", "--worker-id", "cli-w"], env=env)
        zero = CliRunner().invoke(app, ["worker", "--max-batch", "0"], env=env)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    assert given.exit_code == 0, given.output
    assert zero.exit_code == 2 and "POEMBOT_MAX_BATCH: must be a positive integer, got 0" in zero.output
    [settings] = built
    assert (settings.max_batch, settings.worker_id) == (7, "cli-w")
    assert (settings.max_wait_ms, settings.visibility_ms, settings.model_dir, settings.redis_url) == (
        3, 9000, tmp_path, redis_url)
    assert redis_client.zscore(keys.WORKERS_LOADING_KEY, "cli-w") is not None   # announced under its id


# --- reading the environment ----------------------------------------------------------------------

def test_from_env_strips_values_and_treats_blank_as_unset() -> None:
    config = BotSettings.from_env({"TELEGRAM_BOT_TOKEN": f" {TOKEN} ", "POEMBOT_RATE_PER_MIN": " 3 ",
                                   "POEMBOT_QUEUE_CAP": "  ", "ADMIN_IDS": "1, 2 3",
                                   "POEMBOT_VOCAB_PATH": "~/vocab.json", "POEMBOT_DATA_DIR": "~/data"})
    assert (config.token, config.rate_per_min, config.queue_cap) == (TOKEN, 3, 200)
    assert config.admin_ids == {1, 2, 3}
    assert (config.vocab_path, config.fonts) == (Path.home() / "vocab.json", Path.home() / "data" / "fonts")
    assert WorkerSettings.from_env({"POEMBOT_XLA": "1", "POEMBOT_MAX_WAIT_MS": "0"}).xla is True
    assert WorkerSettings.from_env({"POEMBOT_MAX_WAIT_MS": "0"}).max_wait_ms == 0


def test_a_model_built_with_values_reads_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("POEMBOT_RATE_PER_MIN", "7")
    monkeypatch.setenv("REDIS_URL", "redis://elsewhere:1/0")
    assert BotSettings(token=TOKEN).rate_per_min == 10
    assert BotSettings.from_env().rate_per_min == 7
    assert RedisSettings().redis_url == "redis://localhost:6379/0"
    assert RedisSettings.from_env().redis_url == "redis://elsewhere:1/0"


@pytest.mark.parametrize("model, env, line", [
    (WorkerSettings, {"POEMBOT_MAX_BATCH": "x"}, "POEMBOT_MAX_BATCH: must be a positive integer, got 'x'"),
    (WorkerSettings, {"POEMBOT_MAX_WAIT_MS": "-1"}, "POEMBOT_MAX_WAIT_MS: must be a whole number (0 or more), got '-1'"),
    (WorkerSettings, {"POEMBOT_METRICS_PORT": "70000"}, "POEMBOT_METRICS_PORT: must be an integer from 0 to 65535, got '70000'"),
    (WorkerSettings, {"POEMBOT_XLA": "maybe"}, "POEMBOT_XLA: must be 0 or 1, got 'maybe'"),
    (WorkerSettings, {"POEMBOT_LOG_FORMAT": "xml"}, "POEMBOT_LOG_FORMAT: must be one of 'json', 'text' or 'auto', got 'xml'"),
    (WorkerSettings, {"POEMBOT_LOG_LEVEL": "loud"}, "POEMBOT_LOG_LEVEL: must be a level name such as INFO or DEBUG, got 'loud'"),
    (BotSettings, {"POEMBOT_INLINE_WAIT_S": "9"}, "POEMBOT_INLINE_WAIT_S: must be a number from 0 to 8, got '9'"),
    (BotSettings, {"POEMBOT_POEM_TTL_S": "5"}, "POEMBOT_POEM_TTL_S: must be an integer of at least 60, got '5'"),
    (BotSettings, {"DAILY_TIME": "25:00"}, "DAILY_TIME: must be HH:MM, got '25:00'"),
    (BotSettings, {}, "TELEGRAM_BOT_TOKEN: is not set"),
])
def test_a_bad_value_is_named_with_what_it_must_be(model, env, line) -> None:
    if model is BotSettings and env:
        env = {"TELEGRAM_BOT_TOKEN": TOKEN, **env}
    with pytest.raises(ConfigError) as info:
        model.from_env(env)
    assert str(info.value) == line


def test_errors_never_show_a_secret() -> None:
    cases = [
        (BotSettings, {"TELEGRAM_BOT_TOKEN": "123:secret_part"}, "TELEGRAM_BOT_TOKEN"),
        (BotSettings, {"TELEGRAM_BOT_TOKEN": TOKEN, "WEBHOOK_URL": "https://x.example/hook",
                       "WEBHOOK_SECRET": "secret_part with space"}, "WEBHOOK_SECRET"),
        (ReplicaSettings, {"REDIS_URL": "http://user:secret_part@host:6379/0"}, "REDIS_URL"),
    ]
    for model, env, variable in cases:
        with pytest.raises(ConfigError) as info:
            model.from_env(env)
        assert str(info.value).startswith(f"{variable}: ") and "secret_part" not in str(info.value)


def test_redis_settings_from_a_dsn() -> None:
    redis = RedisSettings.from_dsn("rediss://:p%40ss@cache.example:6380/2")
    assert (redis.host, redis.port, redis.database, redis.password, redis.ssl) == (
        "cache.example", 6380, 2, "p@ss", True)
    assert RedisSettings.from_dsn("rediss+cluster://node-1:7000").ssl
    local = RedisSettings.from_dsn("unix:///tmp/redis.sock")
    assert (local.database, local.ssl, local.password) == (0, False, None)
    with pytest.raises(ConfigError, match="^REDIS_URL: must be a redis://"):
        RedisSettings.from_dsn("localhost:6379")


# --- start-up through the command line ------------------------------------------------------------

@pytest.fixture()
def no_tensorflow(tmp_path: Path) -> str:
    """A PYTHONPATH on which importing TensorFlow ends the process: a role that validates its
    settings first never gets there."""
    package = tmp_path / "tensorflow"
    package.mkdir()
    (package / "__init__.py").write_text('raise SystemExit("tensorflow was imported")\n')
    return f"{tmp_path}:{ROOT}"


@pytest.mark.parametrize("role, env, line", [
    ("worker", {"POEMBOT_MAX_BATCH": "x"}, "poembot worker: POEMBOT_MAX_BATCH: must be a positive integer, got 'x'"),
    ("bot", {"TELEGRAM_BOT_TOKEN": TOKEN, "POEMBOT_RATE_PER_MIN": "0"},
     "poembot bot: POEMBOT_RATE_PER_MIN: must be a positive integer, got '0'"),
    ("bot", {"TELEGRAM_BOT_TOKEN": "123:secret_part"}, "poembot bot: TELEGRAM_BOT_TOKEN: does not look like <digits>:<secret>"),
    # poembot run checks both roles (the bot's in the sandbox, without a token) before starting Redis.
    ("run", {"POEMBOT_MAX_DELIVERIES": "0"}, "poembot run: POEMBOT_MAX_DELIVERIES: must be a positive integer, got '0'"),
    ("run", {"DAILY_TIME": "8h"}, "poembot run: DAILY_TIME: must be HH:MM, got '8h'"),
])
def test_a_role_with_a_bad_variable_exits_2_naming_it_before_loading_anything(
        role: str, env: dict, line: str, no_tensorflow: str, tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "poembot_cli", role], cwd=ROOT, capture_output=True,
                          text=True, timeout=120,
                          env=child_env(PYTHONPATH=no_tensorflow, POEMBOT_DATA_DIR=tmp_path / "data", **env))
    assert (proc.returncode, proc.stderr.strip()) == (2, line), proc.stdout + proc.stderr
    assert not (tmp_path / "data").exists()         # nothing started: `run` would have made its Redis there
