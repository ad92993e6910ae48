"""Celery beat schedules built from the watchlist: one crawl per (watch, hashtag) on the
watch's crontab, plus a periodic flush of alerts a mail server that was away left pending.

Beat only *sends* ``reelwatch.crawl`` tasks; workers do the work. Each entry is named
``watch:<name>:<hashtag>`` so a changed watchlist replaces entries instead of piling them up.
"""

from __future__ import annotations

from typing import Any

from celery.schedules import crontab

from reelwatch.errors import InputError
from reelwatch.watches import Watch

FLUSH_ALERTS_EVERY_S = 300.0
"""How often pending alerts (SMTP was down) are retried."""


def parse_crontab(expr: str, where: str) -> crontab:
    """A Celery crontab from five fields (minute hour day-of-month month day-of-week)."""
    fields = expr.split()
    if len(fields) != 5:
        raise InputError(f"{where}: schedule {expr!r} needs 5 crontab fields")
    minute, hour, day_of_month, month_of_year, day_of_week = fields
    try:
        return crontab(
            minute=minute,
            hour=hour,
            day_of_month=day_of_month,
            month_of_year=month_of_year,
            day_of_week=day_of_week,
        )
    except (ValueError, TypeError) as exc:
        raise InputError(f"{where}: schedule {expr!r} is not a valid crontab ({exc})") from None


def beat_schedule(watches: list[Watch]) -> dict[str, dict[str, Any]]:
    """Celery's ``beat_schedule`` for ``watches`` (``InputError`` for a bad crontab)."""
    schedule: dict[str, dict[str, Any]] = {}
    for w in watches:
        cron = parse_crontab(w.schedule, f"watch {w.name!r}")
        for tag in w.hashtags:
            schedule[f"watch:{w.name}:{tag}"] = {
                "task": "reelwatch.crawl",
                "schedule": cron,
                "args": (w.platform, tag),
                "kwargs": {"limit": w.limit, "watch": w.name},
                "options": {"queue": "crawl"},
            }
    schedule["alerts:flush"] = {
        "task": "reelwatch.flush_alerts",
        "schedule": FLUSH_ALERTS_EVERY_S,
        "options": {"queue": "land"},
    }
    return schedule
