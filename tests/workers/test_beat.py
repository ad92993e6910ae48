"""Beat: each firing sent once however many beats run, schedules kept across restarts, and a
watch fired by beat alerting its own recipients through a separate worker."""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from celery.schedules import crontab
from celery.schedules import schedule as interval

from reelwatch.models import Confidence, post_key
from reelwatch.settings import Settings
from reelwatch.watches import Watch, load_watches
from tests.workers.conftest import (
    COPY_ID,
    CORRUPT_ID,
    HOSTILE_ID,
    TAG,
    UNRELATED_ID,
    process_env,
    reelwatch_process,
    wait_until_processed,
)
from triage.smtp_sink import SmtpSink
from triage.stores import open_store
from workers.app import configure
from workers.beat import PERIOD_HEADER, LockingScheduler, period_end
from workers.schedule import beat_schedule

LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)
"""A last run before any recent slot: the entry is due now, as after a beat was down."""


def at(hour: int, minute: int, second: float = 0.0) -> datetime:
    whole = int(second)
    return datetime(2026, 3, 2, hour, minute, whole, int((second - whole) * 1e6), tzinfo=UTC)


def test_every_beat_names_a_firing_by_the_end_of_its_period() -> None:
    hourly = crontab(minute="0")
    # On time, late, or after a restart within the hour: the same firing.
    assert period_end(hourly, at(6, 0, 0.3)) == at(7, 0)
    assert period_end(hourly, at(6, 0, 4.0)) == at(7, 0)
    assert period_end(hourly, at(6, 59, 59.0)) == at(7, 0)
    assert period_end(hourly, at(7, 0, 0.1)) == at(8, 0)
    daily = crontab(minute="0", hour="6")
    assert period_end(daily, at(6, 0, 1.0)) == datetime(2026, 3, 3, 6, 0, tzinfo=UTC)
    every_5_min = interval(timedelta(minutes=5))
    assert period_end(every_5_min, at(6, 1, 2.0)) == at(6, 5)
    assert period_end(every_5_min, at(6, 4, 59.0)) == at(6, 5)


WATCH = Watch(
    name="nightly",
    platform="replica",
    hashtags=["starfallstation"],
    schedule="0 * * * *",
    min_confidence="medium",
    recipients=["team@studio.test"],
)
ENTRY = "watch:nightly:starfallstation"


@pytest.fixture
def beat_app(settings: Settings, redis_url: str) -> Iterator[Celery]:
    """The Celery app on a real Redis, as ``reelwatch beat`` configures it."""
    settings.broker_url = redis_url
    settings.beat.sources_check_schedule = ""
    app = configure(settings)
    try:
        yield app
    finally:
        app.conf.beat_schedule = {}
        settings.broker_url = None
        configure(settings)


def open_scheduler(
    app: Celery, settings: Settings, path: Path, watches: list[Watch], last_run: datetime | None
) -> LockingScheduler:
    """A beat's scheduler on its own schedule file (one per machine); ``last_run`` backdates
    every watch entry."""
    app.conf.beat_schedule = beat_schedule(watches, settings)
    scheduler = LockingScheduler(app=app, schedule_filename=str(path))
    if last_run is not None:
        for name, entry in scheduler.schedule.items():
            if name.startswith("watch:"):
                entry.last_run_at = last_run
        scheduler.sync()
    return scheduler


def run_due(scheduler: LockingScheduler) -> None:
    """Let the scheduler send everything due now, as its loop would."""
    for _ in range(20):
        if scheduler.tick() > 0:
            return
    raise AssertionError("the scheduler kept finding work")


def queued(redis_url: str, queue: str = "crawl") -> list[dict[str, Any]]:
    """The task messages waiting on ``queue``: headers and (args, kwargs)."""
    client = redis.Redis.from_url(redis_url)
    found = []
    for raw in client.lrange(queue, 0, -1):
        message = json.loads(raw)
        args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
        found.append({"headers": message["headers"], "args": args, "kwargs": kwargs})
    return found


@pytest.mark.redis
def test_two_beats_on_one_redis_send_a_due_watch_once(
    beat_app: Celery,
    settings: Settings,
    redis_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    first = open_scheduler(beat_app, settings, tmp_path / "a", [WATCH], LONG_AGO)
    second = open_scheduler(beat_app, settings, tmp_path / "b", [WATCH], LONG_AGO)
    try:
        with caplog.at_level(logging.INFO, logger="workers.beat"):
            run_due(first)
            run_due(second)
    finally:
        first.close()
        second.close()
    [message] = queued(redis_url)
    assert message["headers"]["task"] == "reelwatch.crawl"
    assert message["args"] == ["replica", "starfallstation"]
    assert message["kwargs"]["watch"]["recipients"] == ["team@studio.test"]
    assert message["kwargs"]["watch"]["min_confidence"] == "medium"
    assert "was already sent for the period" in caplog.text


@pytest.mark.redis
def test_a_restarted_beat_keeps_its_schedule_and_takes_the_watchlist_as_it_is_now(
    beat_app: Celery, settings: Settings, redis_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "celerybeat-schedule"
    before = open_scheduler(beat_app, settings, path, [WATCH], LONG_AGO)
    run_due(before)
    fired_at = before.schedule[ENTRY].last_run_at
    before.close()
    assert len(queued(redis_url)) == 1

    # Without the claims only the schedule file can stop a repeat: it must.
    client = redis.Redis.from_url(redis_url)
    client.delete(*client.keys("reelwatch:claim:*"))
    changed = WATCH.model_copy(update={"recipients": ["new-team@studio.test"]})
    after = open_scheduler(beat_app, settings, path, [changed], None)
    try:
        run_due(after)
        entry = after.schedule[ENTRY]
        assert entry.last_run_at == fired_at and entry.total_run_count == 1
        assert entry.kwargs["watch"]["recipients"] == ["new-team@studio.test"]
        is_due, _ = entry.is_due()
        assert not is_due
    finally:
        after.close()
    assert len(queued(redis_url)) == 1


def beat_homes(settings: Settings, root: Path, watchlist: Path, count: int) -> list[Path]:
    """Data homes for ``count`` beats, each with a schedule file whose watches are overdue (as
    after a restart that missed a slot), so they fire as soon as the beats start."""
    watches = load_watches(watchlist)
    homes = []
    for i in range(count):
        home = root / f"beat-{i}"
        home.mkdir()
        app = configure(settings)
        scheduler = open_scheduler(app, settings, home / "celerybeat-schedule", watches, LONG_AGO)
        scheduler.close()
        app.conf.beat_schedule = {}
        homes.append(home)
    return homes


def beat_env(settings: Settings, home: Path, watchlist: Path) -> dict[str, str]:
    return process_env(
        settings,
        REELWATCH_HOME=str(home),
        REELWATCH_WATCHLIST=str(watchlist),
        REELWATCH_BEAT__SOURCES_CHECK_SCHEDULE="",
    )


@pytest.mark.redis
@pytest.mark.slow
def test_two_beat_processes_send_each_firing_once(
    beat_app: Celery, settings: Settings, redis_url: str, tmp_path: Path
) -> None:
    """Two ``reelwatch beat`` processes on one Redis, through a restart and a minute boundary."""
    watchlist = tmp_path / "watchlist.yaml"
    watchlist.write_text(
        "watches:\n  - name: often\n    platform: replica\n    hashtags: [starfallstation]\n"
        '    schedule: "* * * * *"\n'
    )
    homes = beat_homes(settings, tmp_path, watchlist, 2)
    logs = [tmp_path / f"beat-{i}.log" for i in range(2)]
    started = datetime.now(UTC)
    boundary = started.replace(second=0, microsecond=0) + timedelta(minutes=1)
    with (
        reelwatch_process(["beat"], beat_env(settings, homes[0], watchlist), logs[0]),
        reelwatch_process(["beat"], beat_env(settings, homes[1], watchlist), logs[1]),
    ):
        # Both fire the overdue watch at start, then again when the minute turns.
        wait_s = (boundary - datetime.now(UTC)).total_seconds() + 10
        time.sleep(max(wait_s, 10))
    output = "\n".join(log.read_text() for log in logs)
    messages = queued(redis_url)
    periods = [m["headers"][PERIOD_HEADER] for m in messages]
    assert len(periods) == len(set(periods)), output
    assert len(periods) >= 2, output
    assert {m["args"][1] for m in messages} == {"starfallstation"}
    assert "was already sent for the period" in output, output


WATCHLIST = f"""\
watches:
  - name: starfall
    platform: replica
    hashtags: [{TAG}]
    schedule: "0 * * * *"
    min_confidence: high
    recipients: [watchers@studio.test, "Legal <legal@studio.test>"]
"""


@pytest.fixture
def worker_env() -> dict[str, str]:
    """Global settings that would alert differently: everyone hears about every low match."""
    return {
        "REELWATCH_ALERTS__MIN_CONFIDENCE": "low",
        "REELWATCH_EMAIL__RECIPIENTS": json.dumps(["everyone@studio.test"]),
    }


@pytest.mark.redis
@pytest.mark.slow
def test_a_watch_fired_by_beat_emails_its_recipients_and_nobody_else(
    worker: Settings, sink: SmtpSink, redis_url: str, tmp_path: Path
) -> None:
    """Done when: a watch with its own recipients and minimum confidence, fired by beat on a
    real Redis with a separate worker process, emails its recipients and nobody else."""
    watchlist = tmp_path / "watchlist.yaml"
    watchlist.write_text(WATCHLIST)
    [home] = beat_homes(worker, tmp_path, watchlist, 1)
    keys = [post_key("replica", i) for i in (COPY_ID, UNRELATED_ID, CORRUPT_ID, HOSTILE_ID)]
    with reelwatch_process(["beat"], beat_env(worker, home, watchlist), tmp_path / "beat.log"):
        try:
            wait_until_processed(worker, keys, timeout=240)
        except BaseException:
            print((tmp_path / "beat.log").read_text()[-3000:])
            print((tmp_path / "worker.log").read_text()[-5000:])
            raise
    with open_store(worker) as store:
        matches = store.list_matches()
    tiers = {m.post_id: m.confidence for m in matches}
    # The worker's own settings alert on low matches; the watch's tier must win.
    assert tiers[UNRELATED_ID] == Confidence.LOW
    highs = [m for m in matches if m.confidence == Confidence.HIGH]
    assert {m.post_id for m in highs} == {COPY_ID, HOSTILE_ID}
    expected = 2 * len(highs)
    deadline = time.monotonic() + 60
    while len(sink.messages) < expected and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1)
    received = sorted(r for mail in sink.received for r in mail.rcpt_tos)
    assert received == sorted(["watchers@studio.test", "legal@studio.test"] * len(highs))
    assert {str(m["X-Reelwatch-Match"]) for m in sink.messages} == {m.id for m in highs}
