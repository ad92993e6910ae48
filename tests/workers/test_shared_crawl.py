"""Two ``reelwatch worker`` processes on one real redis-server share a crawl of 50 posts.

Each post's chain (download → fingerprint → match → land → alert) runs once, on one worker
or the other: every post lands, none is lost, none is done twice, and both workers work. The
workers log ``<task> <post key>`` for each step they run, so the two logs together say who
did what. Media is cheap: four short low-resolution clips (two copies of the catalogued
title, two unrelated clips), each published by many posts; only the copy and audio signals
run.
"""

from __future__ import annotations

import re
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from crawler.replica.server import ReplicaServer
from crawler.replica.site import ReplicaVideo, build_site
from crawler.sources import ReplicaSource
from reelwatch.demo.media import crop, make_reference_clip, mirror, transform_file
from reelwatch.models import Confidence, PostState, match_id, post_key
from reelwatch.settings import Settings
from tests.workers.conftest import process_env, reelwatch_process, wait_until_processed
from triage.smtp_sink import SmtpSink
from triage.stores import open_store
from workers import tasks
from workers.app import configure

pytestmark = [
    pytest.mark.redis,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed"),
]

TAG = "sharedcrawl"
POSTS = 50
SIGNALS = ["copy", "audio"]
STEPS = ("reelwatch.download", "reelwatch.fingerprint", "reelwatch.match", "reelwatch.land")
SIZE = (320, 180)


@dataclass(frozen=True)
class Crowd:
    reference: Path
    site: Path
    copies: list[str]
    """Post ids whose video is a copy of the reference."""
    others: list[str]


@pytest.fixture(scope="module")
def crowd(tmp_path_factory: pytest.TempPathFactory) -> Crowd:
    root = tmp_path_factory.mktemp("crowd")
    reference = make_reference_clip(
        ["astronaut", "rocket"], root / "reference.mp4", seconds_per_photo=4, size=SIZE, seed=11
    )
    copy_a = transform_file(reference, root / "copy-a.mp4", [mirror], start=1.0, duration=5.0)
    copy_b = transform_file(reference, root / "copy-b.mp4", [crop], start=2.5, duration=5.0)
    other_a = make_reference_clip(
        ["camera"], root / "other-a.mp4", seconds_per_photo=5, size=SIZE, seed=99
    )
    other_b = make_reference_clip(
        ["coffee"], root / "other-b.mp4", seconds_per_photo=5, size=SIZE, seed=7
    )
    files = [copy_a, other_a, copy_b, other_b]
    now = int(time.time())
    videos, copies, others = [], [], []
    for i in range(POSTS):
        vid = f"74{i:017d}"
        path = files[i % len(files)]
        (copies if path in (copy_a, copy_b) else others).append(vid)
        videos.append(
            ReplicaVideo(
                id=vid,
                user=f"poster{i % 7}",
                caption=f"clip number {i}",
                hashtags=[TAG],
                path=path,
                create_time=now - 60 * (i + 1),
                duration=5,
                width=SIZE[0],
                height=SIZE[1],
            )
        )
    site = build_site(root / "site", videos)
    return Crowd(reference=reference, site=site, copies=copies, others=others)


@pytest.fixture
def crowd_settings(settings: Settings, crowd: Crowd) -> Iterator[tuple[Settings, str]]:
    """Settings with the crowd's title catalogued (cheap signals only) and its replica up;
    yields them with the title's id."""
    from matcher.catalog import Catalog

    settings.matcher.signals = list(SIGNALS)
    with ReplicaServer(crowd.site) as replica:
        ReplicaSource.set_base_url(settings, replica.base_url)
        catalog = Catalog(settings)
        title = catalog.add_title("Starfall Station", owner="Northlight", hashtags=[TAG])
        catalog.add_assets(title.id, [crowd.reference])
        yield settings, title.id


def _wait_for_line(log: Path, pattern: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and re.search(pattern, log.read_text(errors="replace")):
            return
        time.sleep(0.2)
    pytest.fail(f"{log.name} never logged {pattern!r}:\n{log.read_text()[-3000:]}")


def _steps(log: str) -> dict[str, Counter[str]]:
    """Per step, how many times this worker ran it for each post key."""
    found: dict[str, Counter[str]] = {step: Counter() for step in STEPS}
    for step, key in re.findall(r"workers\.tasks: (reelwatch\.\w+) (\S+)$", log, re.M):
        if step in found:
            found[step][key] += 1
    return found


def test_two_workers_share_a_crawl_and_do_each_post_once(
    crowd: Crowd,
    crowd_settings: tuple[Settings, str],
    sink: SmtpSink,
    redis_url: str,
    tmp_path: Path,
) -> None:
    settings, title_id = crowd_settings
    settings.email.smtp_host = "127.0.0.1"
    settings.email.smtp_port = sink.port
    env = process_env(
        settings,
        REELWATCH_BROKER_URL=redis_url,
        REELWATCH_MATCHER__SIGNALS='["copy", "audio"]',
        # One email per alert, so the sink shows each alert that was sent.
        REELWATCH_ALERTS__DIGEST_THRESHOLD="0",
    )
    logs = [tmp_path / "worker-a.log", tmp_path / "worker-b.log"]
    keys = sorted(post_key("replica", i) for i in crowd.copies + crowd.others)
    args = ["worker", "--concurrency", "1", "--loglevel", "INFO"]
    with ExitStack() as stack:
        for log in logs:
            stack.enter_context(reelwatch_process(args, env, log))
        for log in logs:
            _wait_for_line(log, r"reelwatch-crawl-media-match-land-\d+@\S+ ready", timeout=120)
        settings.broker_url = redis_url
        configure(settings)
        stack.callback(configure, settings)
        stack.callback(setattr, settings, "broker_url", None)

        summary = tasks.crawl.delay("replica", TAG, None, "shared-crawl").get(timeout=120)
        assert sorted(summary["queued"]) == keys
        try:
            wait_until_processed(settings, keys, timeout=240)
            with open_store(settings) as store:
                highs = store.list_matches(min_confidence=Confidence.HIGH)
            deadline = time.monotonic() + 60
            while len(sink.messages) < len(highs) and time.monotonic() < deadline:
                time.sleep(0.2)
        except BaseException:
            for log in logs:
                print(f"--- {log.name}\n{log.read_text()[-4000:]}")
            raise
    texts = [log.read_text() for log in logs]

    # Every post reached its final state: nothing failed, nothing is left half-way.
    with open_store(settings) as store:
        posts = {k: store.get_post(k) for k in keys}
        matches = store.list_matches()
    assert {k: p.state if p else None for k, p in posts.items()} == dict.fromkeys(
        keys, PostState.MATCHED
    )

    # Each step ran exactly once per post, counted over both workers' logs.
    per_worker = [_steps(text) for text in texts]
    for step in STEPS:
        total = per_worker[0][step] + per_worker[1][step]
        assert total == Counter(dict.fromkeys(keys, 1)), step
    # Celery agrees: 50 match tasks succeeded in all, none failed or was retried.
    succeeded = sum(len(re.findall(r"Task reelwatch\.match\[\S+\] succeeded", t)) for t in texts)
    assert succeeded == POSTS
    assert not any(re.search(r"Task reelwatch\.\w+\[\S+\] (retry|raised)", t) for t in texts)
    # Both workers did part of the work.
    for log, found in zip(logs, per_worker, strict=True):
        assert found["reelwatch.match"], f"{log.name} matched no post"

    # Every copy landed its one match with the title, under its deterministic id, and the
    # unrelated clips landed nothing of note.
    expected = {match_id(post_key("replica", i), title_id) for i in crowd.copies}
    assert {m.id for m in matches if m.confidence != Confidence.LOW} == expected
    assert Counter(m.post_id for m in matches if m.id in expected) == Counter(
        dict.fromkeys(crowd.copies, 1)
    )
    # Each high match was emailed once, by whichever worker landed it.
    sent = Counter(str(msg["X-Reelwatch-Match"]) for msg in sink.messages)
    assert sent == Counter({m.id: 1 for m in highs})
    assert highs, "no copy reached the alert tier"
