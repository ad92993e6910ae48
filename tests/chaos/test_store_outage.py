"""The store away while posts land: another process holds the SQLite store's write lock
(``BEGIN EXCLUSIVE``) for 45 s, longer than the store's 30 s busy timeout, so writes first
wait, then fail as ``StoreBusyError`` (a ``TransientError``) and are retried with backoff;
when the lock goes, landing catches up: every post lands, none is lost, none twice."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from crawler.replica.server import Faults, ReplicaServer
from reelwatch.settings import Settings
from tests.chaos.conftest import (
    Clips,
    RedisServer,
    Workers,
    assert_every_post_once,
    catalogue,
    make_site,
    needs_redis,
    outcome,
    point_at,
    wait_until_done,
    worker_env,
)
from triage.smtp_sink import SmtpSink
from workers import tasks
from workers.app import configure

pytestmark = [pytest.mark.chaos, pytest.mark.redis, needs_redis]

POSTS = 8
LOCK_S = 45.0


def test_store_locked_for_45_s_landing_retries_and_catches_up(
    broker_settings: Settings,
    clips: Clips,
    redis_server: RedisServer,
    workers: Workers,
    sink: SmtpSink,
    tmp_path: Path,
) -> None:
    settings = broker_settings
    site = make_site(tmp_path / "site", "storeaway", POSTS, clips)
    title_id = catalogue(settings, clips, site.tag)
    with ReplicaServer(site.root, faults=Faults(media_chunk_delay_s=0.2)) as replica:
        point_at(settings, replica)
        env = worker_env(settings, redis_server.url, sink)
        a, b = workers.add("a", env), workers.add("b", env)
        settings.broker_url = redis_server.url
        configure(settings)
        summary = tasks.crawl.delay("replica", site.tag, None, "chaos").get(timeout=120)
        assert sorted(summary["queued"]) == site.keys

        deadline = time.monotonic() + 120
        while "workers.tasks: reelwatch.land " not in a.current_log() + b.current_log():
            assert time.monotonic() < deadline, "nothing reached the land step"
            time.sleep(0.05)
        before = outcome(settings, site.keys).states()
        # The store goes away: another process takes its write lock and keeps it.
        holder = sqlite3.connect(settings.sqlite_path, timeout=30, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        locked_at = time.monotonic()
        try:
            time.sleep(LOCK_S)
        finally:
            holder.execute("COMMIT")
            holder.close()
        assert time.monotonic() - locked_at >= LOCK_S
        got = wait_until_done(settings, site.keys, timeout=240)

    assert before["matched"] < POSTS, "every post had landed before the store went away"
    assert_every_post_once(got, site, title_id)
    busy = [r for r in workers.retries() if "locked" in r[2]]
    assert busy, "no write met the lock: the outage proves nothing"
    assert {step for step, _, _ in busy} <= {
        "reelwatch.download",
        "reelwatch.fingerprint",
        "reelwatch.land",
        "reelwatch.alert",
    }
    # Each high match was emailed once.
    sent = [str(m["X-Reelwatch-Match"]) for m in sink.messages]
    assert len(sent) == len(set(sent))
