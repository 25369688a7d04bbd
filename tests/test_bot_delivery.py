"""Delivering results (bot/delivery.py): a reply whose send outlasts the delivery lease goes out once.

Two real bot replicas against the emulator and real Redis, the stand-in worker for the poems; the
lease's renewal (Deliveries.renew_delivery) against real Redis.
"""
from __future__ import annotations


from bot.state import State
from botkit import emu, eventually, make_config, results_pending, running_bot, stand_in  # noqa: F401
from devtools.emulator import BotApiEmulator
from protocol import keys
from protocol.jobs import Result, result_fields
from streams import results_consumer, run_async

ALICE = BotApiEmulator.user(3001, "Alice")


async def test_a_send_waiting_out_a_429_longer_than_the_lease_goes_out_once(emu, redis_url, stand_in) -> None:
    # Replicas take over results left unacknowledged for a second; the lease lasts its floor of 5 s.
    base = make_config(emu, redis_url, claim_idle_ms=1000)
    retry_after_s = base.delivery_lease_s + 4
    async with running_bot(base.model_copy(update={"consumer_name": "replica-a"})) as a, \
            running_bot(base.model_copy(update={"consumer_name": "replica-b"})):
        state = a.bot_data["rt"].state
        since = emu.mark()
        emu.fail_next("sendMessage", retry_after=retry_after_s)       # the poem's first try: 429
        await emu.send_text(ALICE, "/poem 春风")
        refused = await emu.wait_for_call("sendMessage", since=since, ok=False, chat_id=ALICE["id"], timeout=60)
        # The replica that got the 429 sends the same request again once retry_after is over.
        retried = await emu.wait_for_call("sendMessage", since=refused.seq + 1, timeout=retry_after_s + 20,
                                          where=lambda c: c.raw == refused.raw)
        assert retried.at - refused.at >= base.delivery_lease_s         # the lease would have run out
        job_id = stand_in.jobs[0].job_id
        await eventually(lambda: state.deliveries.is_delivered(job_id), bool, timeout=20)
        await eventually(lambda: results_pending(state), lambda n: n == 0, timeout=20)
        # Nothing left to deliver and the job recorded as sent: no replica can send it again now.
        poems = emu.find_calls("sendMessage", since, chat_id=ALICE["id"])
        assert poems == [retried], [c.text[:20] for c in poems]


async def test_only_the_lease_holder_renews_it_and_keeps_its_results_entry(redis_url) -> None:
    state = State.from_url(redis_url, delivery_lease_s=5)
    try:
        await state.groups.ensure_groups()
        await state.redis.xadd(keys.RESULTS_STREAM, result_fields(Result(job_id="j1", ok=True, reply={})))
        (entry_id, _, _), = await run_async(state.redis, results_consumer("replica-a").read(16, block_ms=10))
        await eventually(lambda: state.redis.xpending_range(keys.RESULTS_STREAM, keys.RESULTS_GROUP, "-", "+", 1),
                         lambda p: p[0]["time_since_delivered"] >= 200)
        assert await state.deliveries.begin_delivery("j1", "replica-a") == "mine"
        await state.redis.pexpire(keys.delivered_key("j1"), 1000)            # as if about to run out
        assert await state.deliveries.renew_delivery("j1", "replica-a", entry_id)
        assert 4000 < await state.redis.pttl(keys.delivered_key("j1")) <= 5000
        pending, = await state.redis.xpending_range(keys.RESULTS_STREAM, keys.RESULTS_GROUP, "-", "+", 1)
        assert pending["consumer"] == "replica-a" and pending["time_since_delivered"] < 200
        assert not await state.deliveries.renew_delivery("j1", "replica-b", entry_id)   # not b's to renew
        await state.deliveries.finish_delivery("j1")
        assert not await state.deliveries.renew_delivery("j1", "replica-a", entry_id)   # sent: nothing to keep
        assert await state.deliveries.is_delivered("j1")
    finally:
        await state.close()


async def test_a_broadcast_claim_is_its_owners_again_and_no_one_elses(redis_url) -> None:
    """The broadcast claims each chat before sending; when the claim's answer is lost (a Redis timeout
    after the SET) the owner's retry must win it, or the chat would never get the poem."""
    state = State.from_url(redis_url)
    try:
        assert await state.subscribers.claim_recipient("j2", 7, "replica-a:1")
        assert await state.subscribers.claim_recipient("j2", 7, "replica-a:1")
        assert not await state.subscribers.claim_recipient("j2", 7, "replica-b:2")
        assert not await state.subscribers.claim_recipient("j2", 7)
        await state.subscribers.release_recipient("j2", 7)                  # a send that failed: anyone may retry
        assert await state.subscribers.claim_recipient("j2", 7, "replica-b:2")
    finally:
        await state.close()


async def test_a_result_read_again_after_its_reply_was_recorded_sent_leaves_the_jobs_in_flight(emu, redis_url) -> None:
    # A replica killed -9 between recording the reply sent and taking the job off the jobs in flight
    # (two writes in different Cluster slots) leaves both the member and an unacknowledged entry.
    # Whoever reads the entry again must clear the member, or it counts against the cap for an hour.
    state = State.from_url(redis_url)
    try:
        await state.groups.ensure_groups()
        await state.redis.set(keys.delivered_key("j-died"), "sent")
        await state.redis.zadd(keys.INFLIGHT_KEY, {"j-died": 1.0})
        reply = {"purpose": "poem", "chat_id": ALICE["id"], "user_id": ALICE["id"], "lang": "zh"}
        await state.redis.xadd(keys.RESULTS_STREAM, result_fields(Result(job_id="j-died", ok=True, reply=reply)))
        since = emu.mark()
        async with running_bot(make_config(emu, redis_url)):
            await eventually(lambda: state.redis.zcard(keys.INFLIGHT_KEY), lambda n: n == 0, timeout=30)
            await eventually(lambda: results_pending(state), lambda n: n == 0, timeout=30)
        assert emu.find_calls("sendMessage", since, chat_id=ALICE["id"]) == []      # not sent again
    finally:
        await state.close()
