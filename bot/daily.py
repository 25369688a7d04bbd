"""The daily poem: when it is due, the once-per-day claim, and the job that writes it.

fire_daily() takes the time as an argument so tests (and a replica catching up on a missed slot at
start-up) can call it directly; the JobQueue calls it at DAILY_TIME in TZ.
"""
from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

from lunar_python import Lunar
from telegram.ext import Application, ContextTypes

from bot.occasions import occasion_of
from bot.runtime import Runtime
from verse import tunes
from verse.forms import FORM_NAMES
from protocol.jobs import CoupletJob, GenerateJob, generate_job
from protocol.spec import parse_spec, require

log = logging.getLogger(__name__)

DAILY_JOB_NAME = "daily-poem"
SPRING_DAYS = 7            # the daily post is a 春联 on this many days before the Spring Festival
CI_WEEKDAY = 6             # Sundays the daily post is a 词 (date.weekday(): Monday 0)
DAILY_TUNES = 12           # of the most common tunes, one a week in turn


def slot_on(day: date, rt: Runtime) -> datetime:
    return datetime.combine(day, rt.config.daily_time, tzinfo=rt.config.zone)


def due_slot(rt: Runtime, now: datetime) -> datetime | None:
    """The slot (today's, or yesterday's when the window runs past midnight) that now falls in
    the grace window of, else None."""
    local = now.astimezone(rt.config.zone)
    grace = timedelta(seconds=rt.config.daily_grace_s)
    for day in (local.date(), local.date() - timedelta(days=1)):
        slot = slot_on(day, rt)
        if slot <= local <= slot + grace:
            return slot
    return None


def spring_festival(lunar_year: int) -> date:
    """The Spring Festival (正月初一) of a lunar year, as a solar date (2027: 6 February)."""
    solar = Lunar.fromYmd(lunar_year, 1, 1).getSolar()
    return date(solar.getYear(), solar.getMonth(), solar.getDay())


def before_spring_festival(day: date) -> bool:
    """Whether day is one of the SPRING_DAYS days before the Spring Festival (除夕 included)."""
    return any(1 <= (spring_festival(year) - day).days <= SPRING_DAYS for year in (day.year, day.year + 1))


def daily_job(day: date, forced: bool = False, ci: bool = True) -> GenerateJob | CoupletJob:
    """The day's poem: its form rotates with the date so subscribers see all four over a week,
    and its title is the day's occasion (冬至, 除夕, 中秋; else a title of the season). On Sundays it is a
    词 to the same title, its tune the next of the DAILY_TUNES most common ones week by week. In the week
    before the Spring Festival it is a 春联 instead, sent as a card like the poem. ci=False: the day's 诗
    even on a Sunday (no worker writes 词: bot.delivery asks again so)."""
    if before_spring_festival(day):
        return CoupletJob(spring=True, seed=day.toordinal(),
                          reply={"purpose": "daily", "date": day.isoformat(), "forced": forced,
                                 "request": {"kind": "couplet", "first": "", "theme": [], "spring": True}})
    if ci and day.weekday() == CI_WEEKDAY:
        shape = {"tune": tunes.load().tunes[day.toordinal() // 7 % DAILY_TUNES].name}
    else:
        shape = {"form": FORM_NAMES[day.toordinal() % len(FORM_NAMES)]}
    spec = require(parse_spec({**shape, "title": occasion_of(day).title}))
    return generate_job(spec, reply={"purpose": "daily", "date": day.isoformat(), "forced": forced})


async def fire_daily(rt: Runtime, now: datetime | None = None, force: bool = False) -> bool:
    """Enqueue today's daily poem if it is due and no replica has done so; True if this call did.

    force (the /daily_now command) skips both the time check and the once-per-day claim.
    """
    now = now or datetime.now(rt.config.zone)
    if force:
        day = now.astimezone(rt.config.zone).date()
    else:
        slot = due_slot(rt, now)
        if slot is None:
            return False
        day = slot.date()
        if not await rt.state.subscribers.claim_daily(day.isoformat(), rt.consumer):
            return False
    job = daily_job(day, forced=force)
    await rt.submit(job, None, limited=False)
    log.info("daily poem for %s enqueued as %s", day, job.job_id)
    return True


async def daily_callback(context: ContextTypes.DEFAULT_TYPE) -> None:
    """JobQueue entry point."""
    rt: Runtime = context.application.bot_data["rt"]
    try:
        await fire_daily(rt)
    except Exception:
        log.exception("daily poem could not be scheduled")


def schedule_daily(application: Application, rt: Runtime) -> None:
    job_queue = application.job_queue
    if job_queue is None:
        raise RuntimeError("python-telegram-bot was installed without the job-queue extra")
    for job in job_queue.get_jobs_by_name(DAILY_JOB_NAME):
        job.schedule_removal()
    job_queue.run_daily(daily_callback, time=rt.config.daily_time.replace(tzinfo=rt.config.zone),
                        name=DAILY_JOB_NAME)
