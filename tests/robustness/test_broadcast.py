"""The daily broadcast at the issue's scale: 10,000 subscribers, and a /poem asked meanwhile.

tests/test_bot_daily.py runs the same check with 1,000 subscribers in `make test`; this one takes about
a minute (every post goes through PTB, HTTP to the in-process emulator and a Redis marker), so it runs
with the load and fault runs.
"""
from __future__ import annotations

import pytest

from botkit import emu, stand_in  # noqa: F401
from test_bot_daily import broadcast_while_asked

pytestmark = pytest.mark.reliability


async def test_ten_thousand_subscribers_get_one_post_each_and_a_poem_reply_does_not_wait(
        emu, redis_url, stand_in, tmp_path, monkeypatch, reliability) -> None:
    monkeypatch.setenv("POEMBOT_FONT_DIR", str(tmp_path))       # text posts: the test is about their order
    figures = await broadcast_while_asked(emu, redis_url, stand_in, 10_000)
    summary = (f"{figures['subscribers']:,} subscribers got one post each in {figures['broadcast_s']} s (no "
               f"rate limit: the emulator takes any pace); a /poem asked once the broadcast had begun was "
               f"answered in {figures['poem_reply_s']} s, after {figures['posts_before_the_reply']:,} posts.")
    reliability.record("Daily broadcast: 10,000 subscribers", {"summary": summary, **figures})
