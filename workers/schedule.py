"""Celery beat schedules built from the watchlist and the settings.

One crawl per (watch, hashtag) on the watch's crontab, carrying the watch's options (limit,
max age, minimum confidence, recipients) in its arguments; a periodic flush of alerts that a
mail server that was away left pending; the re-check of posts whose takedown notice was sent
(``removals:recheck`` every ``settings.removal.schedule_every_s``, see :mod:`workers.removals`);
and, unless turned off, the daily source check that emails when a platform stopped answering
(``settings.beat.sources_check_schedule``).

Beat only *sends* tasks; workers do the work. Watch entries are named
``watch:<name>:<hashtag>`` so a changed watchlist replaces entries instead of piling them up;
:class:`workers.beat.LockingScheduler` keeps them across restarts and sends each firing once
however many beats run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from celery.schedules import crontab

from reelwatch.errors import InputError
from reelwatch.watches import Watch, crontab_of

if TYPE_CHECKING:
    from reelwatch.settings import Settings


def parse_crontab(expr: str, where: str) -> crontab:
    """A Celery crontab from five fields; ``InputError`` naming ``where`` when it is not one."""
    try:
        return crontab_of(expr)
    except ValueError as exc:
        raise InputError(f"{where}: {exc}") from None


def watch_entries(w: Watch) -> dict[str, dict[str, Any]]:
    """The beat entries of one watch: a crawl of each hashtag on the watch's crontab."""
    cron = parse_crontab(w.schedule, f"watch {w.name!r}")
    carried = w.options().task_arg()
    return {
        f"watch:{w.name}:{tag}": {
            "task": "reelwatch.crawl",
            "schedule": cron,
            "args": (w.platform, tag),
            "kwargs": {"watch": carried},
            "options": {"queue": "crawl"},
        }
        for tag in w.hashtags
    }


def beat_schedule(watches: list[Watch], settings: Settings) -> dict[str, dict[str, Any]]:
    """Celery's ``beat_schedule`` for ``watches`` and ``settings.beat`` (``InputError`` for a
    bad crontab)."""
    schedule: dict[str, dict[str, Any]] = {}
    for w in watches:
        schedule.update(watch_entries(w))
    schedule["alerts:flush"] = {
        "task": "reelwatch.flush_alerts",
        "schedule": settings.beat.flush_alerts_every_s,
        "options": {"queue": "land"},
    }
    schedule["removals:recheck"] = {
        "task": "reelwatch.recheck_removals",
        "schedule": settings.removal.schedule_every_s,
        "options": {"queue": "crawl"},  # workers.tasks.RECHECK_QUEUE
    }
    check = settings.beat.sources_check_schedule.strip()
    if check:
        schedule["sources:check"] = {
            "task": "reelwatch.sources_check",
            "schedule": parse_crontab(check, "setting beat.sources_check_schedule"),
            "options": {"queue": "crawl"},
        }
    return schedule
