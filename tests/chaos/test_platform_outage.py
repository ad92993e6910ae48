"""A platform refusing for a minute: the replica answers every page, API call and media
request with 429 (``Retry-After: 3``) for 30 s while the crawl runs, then, once the crawl
queued its posts, with 503 for another 30 s while they download. The crawl and the downloads
back off (Scrapy honours Retry-After inside a crawl; Celery retries the task with
``workers.retry_backoff_s`` doubling) and finish: no post lost, each once.

The workers run with the default ``workers.max_retries`` (8) and a backoff lowered to 1 s
doubling up to 16 s (defaults 5 s and 600 s), so their retries span at least 39.5 s, enough
for each 30 s window, and the test takes about two minutes.
"""

from __future__ import annotations

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

POSTS = 8
WINDOW_S = 30.0


def test_a_platform_refusing_for_a_minute_is_ridden_out(
    broker_settings: Settings,
    clips: Clips,
    redis_server: RedisServer,
    workers: Workers,
    sink: SmtpSink,
    tmp_path: Path,
) -> None:
    settings = broker_settings
    site = make_site(tmp_path / "site", "ratelimited", POSTS, clips)
    title_id = catalogue(settings, clips, site.tag)
    faults = Faults(retry_after="3")
    with ReplicaServer(site.root, faults=faults) as replica:
        point_at(settings, replica)
        env = worker_env(
            settings,
            redis_server.url,
            sink,
            REELWATCH_WORKERS__RETRY_BACKOFF_S="1",
            REELWATCH_WORKERS__RETRY_BACKOFF_MAX_S="16",
        )
        worker = workers.add("w", env)
        settings.broker_url = redis_server.url
        configure(settings)

        faults.outage(WINDOW_S, status=429)
        summary = tasks.crawl.delay("replica", site.tag, None, "chaos").get(timeout=240)
        assert sorted(summary["queued"]) == site.keys
        faults.outage(WINDOW_S, status=503)
        got = wait_until_done(settings, site.keys, timeout=300)

    assert_every_post_once(got, site, title_id)
    # Both windows were felt: the crawl was retried through the 429s, the downloads
    # through the 503s.
    assert faults.refused.get("outage_429", 0) > 0 and faults.refused.get("outage_503", 0) > 0
    retried = worker.retries()
    assert any(step == "reelwatch.crawl" and "429" in why for step, _, why in retried)
    downloads = {key for step, key, why in retried if step == "reelwatch.download" and "503" in why}
    assert downloads, "no download met the 503s"
    assert downloads <= set(site.keys)
    # Each post was downloaded to the end once, whatever its retries.
    assert sorted(worker.steps()["reelwatch.land"].values()) == [1] * POSTS
