"""Load with faults: 200 posts through two ``reelwatch worker`` processes on a real Redis
while faults strike at random: the replica refuses a share of all requests (429/503), a
worker is killed (``kill -9``) and restarted twice, and the store is write-locked for 35 s
(past its 30 s busy timeout). Every post ends landed or failed with a reason, none is
missing, no post lands its match twice and no alert is sent twice. The figures (posts,
landed, failed by reason, retries, redeliveries, wall time) are printed and written to
``load-figures.json`` in the test's temporary folder.

``REELWATCH_CHAOS_SEED`` replays a run (which worker is killed, which requests are refused).
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import time
from collections import Counter
from pathlib import Path

import pytest

from crawler.replica.server import Faults, ReplicaServer
from reelwatch.models import AlertStatus, Confidence, match_id
from reelwatch.settings import Settings
from tests.chaos.conftest import (
    Clips,
    RedisServer,
    Workers,
    catalogue,
    make_site,
    needs_redis,
    point_at,
    wait_until_done,
    worker_env,
)
from triage.smtp_sink import SmtpSink
from triage.stores import open_store
from workers import tasks
from workers.app import configure

pytestmark = [pytest.mark.chaos, pytest.mark.redis, needs_redis]

POSTS = 200
FLAKY = 0.1
STORE_PAUSE_S = 35.0
"""Longer than the store's 30 s busy timeout: writes give up waiting and are retried."""
KILLS_AT = (0.15, 0.55)
"""Shares of the posts done at which a worker is killed and restarted."""
PAUSE_AT = 0.35
STALL_S = 40.0
"""No post ending for this long (past the visibility timeout and the longest retry wait)
after the last fault means a step was lost in the broker (see the test)."""


def _done(db: Path) -> int:
    """Posts that ended (matched or failed), read without taking any lock."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        row = conn.execute(
            "SELECT count(*) FROM posts WHERE state IN ('matched', 'failed')"
        ).fetchone()
        return int(row[0])
    except sqlite3.Error:
        return 0
    finally:
        conn.close()


def test_200_posts_through_two_workers_with_random_faults(
    broker_settings: Settings,
    clips: Clips,
    redis_server: RedisServer,
    workers: Workers,
    sink: SmtpSink,
    tmp_path: Path,
) -> None:
    settings = broker_settings
    seed = int(os.environ.get("REELWATCH_CHAOS_SEED") or time.time_ns() % 1_000_000)
    rng = random.Random(seed)
    print(f"chaos seed {seed} (REELWATCH_CHAOS_SEED={seed} replays it)")
    site = make_site(tmp_path / "site", "underload", POSTS, clips)
    title_id = catalogue(settings, clips, site.tag)
    faults = Faults(flaky=FLAKY, retry_after="1", seed=seed)
    events: list[str] = []
    with ReplicaServer(site.root, faults=faults) as replica:
        point_at(settings, replica)
        env = worker_env(settings, redis_server.url, sink)
        pair = [workers.add("a", env), workers.add("b", env)]
        settings.broker_url = redis_server.url
        configure(settings)
        started = time.monotonic()
        summary = tasks.crawl.delay("replica", site.tag, POSTS, "load").get(timeout=300)
        assert sorted(summary["queued"]) == site.keys

        kills, paused = list(KILLS_AT), False
        deadline = started + 480
        progress, progress_at, resumed = 0, time.monotonic(), []
        while (done := _done(settings.sqlite_path)) < POSTS:
            assert time.monotonic() < deadline, f"only {done} of {POSTS} posts done"
            if done > progress:
                progress, progress_at = done, time.monotonic()
            elif not kills and paused and not resumed and time.monotonic() - progress_at > STALL_S:
                # Nothing moves although posts are unfinished: a step a killed worker had
                # taken from Redis and not yet recorded is gone. The watch's next crawl (beat
                # fires it on its schedule) finds those posts unfinished and runs them again.
                again = tasks.crawl.delay("replica", site.tag, POSTS, "load").get(timeout=300)
                resumed = list(again["queued"])
                events.append(
                    f"{time.monotonic() - started:.0f}s stalled at {done}; "
                    f"the next crawl ran {len(resumed)} unfinished posts again"
                )
                assert resumed and len(resumed) == POSTS - done
            if kills and done >= kills[0] * POSTS:
                kills.pop(0)
                victim = rng.choice(pair)
                victim.kill()
                events.append(f"{time.monotonic() - started:.0f}s kill -9 {victim.name} at {done}")
                time.sleep(1)
                victim.start()
            elif not paused and done >= PAUSE_AT * POSTS:
                paused = True
                holder = sqlite3.connect(settings.sqlite_path, timeout=30, isolation_level=None)
                holder.execute("BEGIN EXCLUSIVE")
                events.append(f"{time.monotonic() - started:.0f}s store locked at {done}")
                time.sleep(STORE_PAUSE_S)
                holder.execute("COMMIT")
                holder.close()
            time.sleep(0.5)
        got = wait_until_done(settings, site.keys, timeout=60)
        wall = time.monotonic() - started
        highs = [m for m in got.matches if m.confidence == Confidence.HIGH]
        mail_deadline = time.monotonic() + 60
        while len(sink.messages) < len(highs) and time.monotonic() < mail_deadline:
            time.sleep(0.5)
        with open_store(settings) as store:
            alerts = store.list_alerts()

    # The figures.
    states = got.states()
    failed = got.failed()
    retries = workers.retries()
    steps = workers.steps()
    retried = Counter((step, key) for step, key, _ in retries)
    redeliveries = sum(
        max(0, runs - 1 - retried[(step, key)])
        for step, counts in steps.items()
        for key, runs in counts.items()
    )
    figures = {
        "posts": POSTS,
        "landed": states.get("matched", 0),
        "failed": len(failed),
        "failed_by_reason": dict(Counter(why.split(":")[0] for why in failed.values())),
        "retries": len(retries),
        "retries_by_step": dict(Counter(step for step, _, _ in retries)),
        "redeliveries": redeliveries,
        "resumed_by_next_crawl": len(resumed),
        "worker_kills": sum("kill -9" in e for e in events),
        "store_locked_s": STORE_PAUSE_S,
        "replica_refusals": dict(faults.refused),
        "replica_requests_refused_share": FLAKY,
        "matches": len([m for m in got.matches if m.confidence != Confidence.LOW]),
        "alerts_sent": len(sink.messages),
        "alerts_pending": sum(a.status == AlertStatus.PENDING for a in alerts),
        "wall_s": round(wall, 1),
        "seed": seed,
        "events": events,
    }
    (tmp_path / "load-figures.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))

    # Every post accounted for: landed, or failed with its reason; none missing.
    assert states.get("missing", 0) == 0
    assert states.get("matched", 0) + len(failed) == POSTS
    assert all(why.strip() for why in failed.values()), failed
    # No match landed twice: each copy that landed has exactly one match with the title,
    # under its deterministic id, and the unrelated clips none of note.
    notable = [m for m in got.matches if m.confidence != Confidence.LOW]
    landed_copies = [k for k in site.copy_keys if k not in failed]
    assert Counter(m.post_key for m in notable) == Counter(dict.fromkeys(landed_copies, 1))
    assert {m.id for m in notable} == {match_id(k, title_id) for k in landed_copies}
    # No alert sent twice. Every high match has its one alert: sent, or (when a worker was
    # killed in the middle of sending it) pending under that worker's lease, which the next
    # flush retries once the lease (10 min) runs out.
    sent = Counter(str(msg["X-Reelwatch-Match"]) for msg in sink.messages)
    assert set(sent.values()) <= {1}
    assert Counter(a.match_id for a in alerts) == Counter({m.id: 1 for m in highs})
    by_status = {a.match_id: a.status for a in alerts}
    assert set(by_status.values()) <= {AlertStatus.SENT, AlertStatus.PENDING}
    recorded = {mid for mid, st in by_status.items() if st == AlertStatus.SENT}
    assert recorded <= set(sent)
    # A worker killed between the mail server's "accepted" and recording it leaves that alert
    # pending although it went out (the one double send the design admits; see triage.alerts).
    assert set(sent) - recorded <= {mid for mid, st in by_status.items() if st != "sent"}
    assert figures["alerts_pending"] <= figures["worker_kills"]
    # The faults happened.
    assert figures["worker_kills"] == len(KILLS_AT) and paused
    assert sum(faults.refused.values()) > 0 and retries
