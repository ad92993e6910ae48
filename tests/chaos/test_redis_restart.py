"""Redis killed (``kill -9``) and started again while posts wait in its queues: with AOF on
(``appendonly yes``, ``appendfsync always``) no queued post is lost, and the worker that was
running reconnects by itself and finishes them all, each once."""

from __future__ import annotations

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
    point_at,
    wait_until_done,
    worker_env,
)
from triage.smtp_sink import SmtpSink
from workers import tasks
from workers.app import configure

pytestmark = [pytest.mark.chaos, pytest.mark.redis, needs_redis]

POSTS = 12
DOWN_S = 6


def test_redis_restarted_with_aof_loses_no_queued_post(
    broker_settings: Settings,
    clips: Clips,
    redis_server: RedisServer,
    workers: Workers,
    sink: SmtpSink,
    tmp_path: Path,
) -> None:
    settings = broker_settings
    assert redis_server.aof
    site = make_site(tmp_path / "site", "redisrestart", POSTS, clips)
    title_id = catalogue(settings, clips, site.tag)
    # Slow media: downloads take seconds, so most posts still wait in Redis when it dies.
    with ReplicaServer(site.root, faults=Faults(media_chunk_delay_s=0.5)) as replica:
        point_at(settings, replica)
        worker = workers.add("w", worker_env(settings, redis_server.url, sink))
        settings.broker_url = redis_server.url
        configure(settings)
        summary = tasks.crawl.delay("replica", site.tag, None, "chaos").get(timeout=120)
        assert sorted(summary["queued"]) == site.keys
        worker.wait_for(r"workers\.tasks: reelwatch\.land ", timeout=120)

        waiting = redis_server.queued()
        assert waiting >= 4, f"only {waiting} messages were queued: the test proves nothing"
        redis_server.kill()
        time.sleep(DOWN_S)
        redis_server.start()
        assert redis_server.queued() >= 1, "the queues did not survive the restart"

        got = wait_until_done(settings, site.keys, timeout=240)
        assert worker.alive and len(worker.logs) == 1, "the worker had to be restarted"
    assert_every_post_once(got, site, title_id)
    # The worker saw the broker go and come back.
    assert "Connection to broker lost" in worker.text() or "reconnect" in worker.text().lower()
    # Every step ran for every post (a step in flight when Redis died may run again).
    steps = workers.steps()
    for step in ("reelwatch.download", "reelwatch.fingerprint", "reelwatch.land"):
        assert sorted(steps[step]) == site.keys, step
