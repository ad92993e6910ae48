"""The beat scheduler: Celery's persistent scheduler, plus one claim in Redis per firing.

Survives a restart
    Each entry's last run is kept in a shelve file under the data home
    (``settings.beat_schedule_path``) and synced after every task sent, so a restarted beat
    neither repeats a firing nor forgets a slot it missed while down (a crontab entry whose slot
    passed fires once on start).

Two beats never fire the same watch twice
    Running a second beat (a standby, a deploy that overlaps, two machines) is safe: before an
    entry is sent, the beat claims ``beat:<entry>:<period end>`` in Redis with ``SET NX``. The
    period end is the next time the entry's schedule fires after now, so every beat that finds
    the entry due within one period names the same firing, whatever its own last run was; the
    first to claim sends, the others log that it was sent and move on. Crontab periods come from
    the crontab itself; interval entries use periods aligned to the epoch. A claim lasts until
    its period ends (plus a margin), then expires by itself.

Claims are taken by the scheduler rather than by the crawl task, so a firing that lost the race
never reaches the queue. A firing whose message cannot be sent gives its claim back.
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime
from typing import Any

from celery.beat import PersistentScheduler, ScheduleEntry
from celery.schedules import crontab
from celery.schedules import schedule as interval

from workers.app import current_settings
from workers.claims import Claims, holder_name

log = logging.getLogger(__name__)

CLAIM_MARGIN_S = 3600.0
"""How long a claim outlives its period: keys are unique per period, so this only needs to
cover clock skew between beats."""

PERIOD_HEADER = "reelwatch_beat_period"
"""Message header naming the period a beat firing serves (an ISO time in UTC)."""


def period_end(schedule: Any, now: datetime) -> datetime | None:
    """The end of the period ``now`` falls in for ``schedule``: when it next fires after now.

    ``None`` for schedule kinds without a well-defined period (solar); those are sent unclaimed.
    """
    if isinstance(schedule, crontab):
        start, delta, _ = schedule.remaining_delta(now)
        return (start + delta).astimezone(UTC)
    if isinstance(schedule, interval):
        every = schedule.run_every.total_seconds()
        if every <= 0:
            return None
        return datetime.fromtimestamp((math.floor(now.timestamp() / every) + 1) * every, UTC)
    return None


class LockingScheduler(PersistentScheduler):
    """See the module docstring; pass it as ``scheduler`` to ``app.Beat``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._claims: Claims | None = kwargs.pop("claims", None)
        self.holder = holder_name()
        # Sync the schedule file after every task sent, not every few minutes: a beat killed
        # right after a firing must not repeat it on restart.
        kwargs.setdefault("sync_every_tasks", 1)
        super().__init__(*args, **kwargs)

    @property
    def claims(self) -> Claims:
        if self._claims is None:
            self._claims = Claims.from_settings(current_settings(), "reelwatch beat")
        return self._claims

    def apply_entry(self, entry: ScheduleEntry, producer: Any = None) -> None:
        """Send ``entry`` unless another beat already sent it for this period."""
        end = period_end(entry.schedule, self.app.now())
        name: str | None = None
        if end is not None:
            name = f"beat:{entry.name}:{end.isoformat()}"
            ttl = (end - self.app.now()).total_seconds() + CLAIM_MARGIN_S
            try:
                claimed = self.claims.claim(name, ttl, holder=self.holder)
            except Exception:
                log.exception("beat: cannot claim %s; not sending it now", entry.name)
                return
            if not claimed:
                log.info(
                    "beat: %s was already sent for the period ending %s by %s",
                    entry.name,
                    end.isoformat(),
                    self.claims.holder(name) or "another beat",
                )
                return
            entry.options = {
                **entry.options,
                "headers": {**entry.options.get("headers", {}), PERIOD_HEADER: end.isoformat()},
            }
        log.info("beat: sending %s (%s)", entry.name, entry.task)
        try:
            self.apply_async(entry, producer=producer, advance=False)
        except Exception:
            log.exception("beat: could not send %s", entry.name)
            if name is not None:
                try:
                    self.claims.release(name)
                except Exception:
                    log.exception("beat: could not give back the claim on %s", entry.name)

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._claims is not None:
                self._claims.close()
