"""``kill -9`` a worker in the middle of a step: the task it held goes back to the queue (the
broker's visibility timeout, renewed by live workers, runs out for a dead one), another or a
restarted worker runs it, and the post lands exactly one match.

The worker is stopped (SIGSTOP, the whole process group) the moment its log says it began the
step, the post's state is read to prove the step had not finished, then the group is killed
(SIGKILL): as if its machine died there. The workers run with a 10 s visibility timeout.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from crawler.replica.server import Faults, ReplicaServer
from reelwatch.demo.media import make_reference_clip, mirror, transform_file
from reelwatch.models import PostState, post_key
from reelwatch.settings import Settings
from tests.chaos.conftest import (
    Clips,
    RedisServer,
    Worker,
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
from triage.stores import open_store
from workers import tasks
from workers.app import configure

pytestmark = [pytest.mark.chaos, pytest.mark.redis, needs_redis]


def _freeze_when(
    workers: list[Worker], step: str, timeout: float, key: str = ""
) -> tuple[Worker, str]:
    """Wait until one of ``workers`` logs that it began ``step`` on a post (on ``key`` when
    given), SIGSTOP that worker's process group at once; returns it and the post's key."""
    pattern = f"workers.tasks: {step} {key}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for w in workers:
            text = w.current_log()
            at = text.find(pattern)
            if at >= 0 and w.proc is not None:
                os.killpg(w.proc.pid, signal.SIGSTOP)
                return w, key or text[at + len(pattern) :].split()[0]
        time.sleep(0.02)
    pytest.fail(f"no worker began {step} within {timeout:.0f} s")


def _crawl(settings: Settings, broker: str, tag: str, limit: int) -> list[str]:
    settings.broker_url = broker
    configure(settings)
    summary = tasks.crawl.delay("replica", tag, limit, "chaos").get(timeout=120)
    return sorted(summary["queued"])


def test_kill_9_mid_download_redelivers_to_another_worker_and_lands_once(
    broker_settings: Settings,
    clips: Clips,
    redis_server: RedisServer,
    workers: Workers,
    sink: SmtpSink,
    tmp_path: Path,
) -> None:
    settings = broker_settings
    site = make_site(tmp_path / "site", "killdownload", 6, clips)
    title_id = catalogue(settings, clips, site.tag)
    # Media comes slowly (a pause after each 64 KB), so a download lasts seconds.
    with ReplicaServer(site.root, faults=Faults(media_chunk_delay_s=1.0)) as replica:
        point_at(settings, replica)
        env = worker_env(settings, redis_server.url, sink)
        a, b = workers.add("a", env), workers.add("b", env)
        assert _crawl(settings, redis_server.url, site.tag, 100) == site.keys

        victim, key = _freeze_when([a, b], "reelwatch.download", timeout=120)
        with open_store(settings) as store:
            post = store.get_post(key)
        assert post is not None and post.state == PostState.DISCOVERED, "download had finished"
        victim.kill()
        survivor = b if victim is a else a

        got = wait_until_done(settings, site.keys, timeout=180)
    assert_every_post_once(got, site, title_id)
    # The killed worker never finished the download; the survivor ran it again.
    assert f"reelwatch.download {key}" in survivor.text()
    assert survivor.steps()["reelwatch.land"][key] == 1
    assert victim.steps().get("reelwatch.land", {}).get(key, 0) == 0
    # Each high match was emailed once.
    sent = [str(m["X-Reelwatch-Match"]) for m in sink.messages]
    assert len(sent) == len(set(sent))


@pytest.fixture(scope="module")
def long_clips(tmp_path_factory: pytest.TempPathFactory) -> Clips:
    """A one-minute reference and a mirrored copy of all of it (a fingerprint of seconds)."""
    root = tmp_path_factory.mktemp("long")
    reference = make_reference_clip(
        ["astronaut", "rocket"],
        root / "reference.mp4",
        seconds_per_photo=30,
        size=(320, 180),
        seed=11,
    )
    copy = transform_file(reference, root / "copy.mp4", [mirror])
    other = make_reference_clip(
        ["camera"], root / "other.mp4", seconds_per_photo=4, size=(320, 180), seed=99
    )
    return Clips(reference=reference, copies=[copy], others=[other])


def test_kill_9_mid_fingerprint_redelivers_to_the_restarted_worker_and_lands_once(
    broker_settings: Settings,
    long_clips: Clips,
    redis_server: RedisServer,
    workers: Workers,
    sink: SmtpSink,
    tmp_path: Path,
) -> None:
    settings = broker_settings
    site = make_site(
        tmp_path / "site",
        "killfingerprint",
        2,
        long_clips,
        [*long_clips.copies, *long_clips.others],
    )
    title_id = catalogue(settings, long_clips, site.tag)
    copy_key = post_key("replica", site.copies[0])
    with ReplicaServer(site.root) as replica:
        point_at(settings, replica)
        # Frames sampled densely, so fingerprinting the minute-long copy takes seconds.
        env = worker_env(settings, redis_server.url, sink, REELWATCH_MATCHER__SAMPLE_FPS="12")
        only = workers.add("only", env)
        assert _crawl(settings, redis_server.url, site.tag, 100) == site.keys

        _, key = _freeze_when([only], "reelwatch.fingerprint", timeout=120, key=copy_key)
        with open_store(settings) as store:
            post = store.get_post(key)
        assert post is not None and post.state == PostState.DOWNLOADED, "fingerprint had ended"
        only.kill()
        only.start()  # the same worker, restarted (as a supervisor would)

        got = wait_until_done(settings, site.keys, timeout=180)
    assert_every_post_once(got, site, title_id)
    restarted = only.logs[-1].read_text()
    assert f"reelwatch.fingerprint {copy_key}" in restarted
    assert f"reelwatch.land {copy_key}" in restarted
    assert only.steps()["reelwatch.land"][copy_key] == 1


def test_a_live_worker_keeps_a_task_longer_than_the_visibility_timeout(
    broker_settings: Settings,
    long_clips: Clips,
    redis_server: RedisServer,
    workers: Workers,
    sink: SmtpSink,
    tmp_path: Path,
) -> None:
    """The other side of a short visibility timeout: a download that lasts three times the
    timeout, on a worker that is alive, is not handed to the idle second worker (the worker
    renews what it holds), so it runs once."""
    settings = broker_settings
    site = make_site(tmp_path / "site", "slowmedia", 1, long_clips, long_clips.copies)
    title_id = catalogue(settings, long_clips, site.tag)
    key = site.keys[0]
    # About 17 chunks of 64 KB, a second each: a download of about 17 s.
    with ReplicaServer(site.root, faults=Faults(media_chunk_delay_s=1.0)) as replica:
        point_at(settings, replica)
        env = worker_env(
            settings, redis_server.url, sink, REELWATCH_WORKERS__VISIBILITY_TIMEOUT_S="5"
        )
        workers.add("a", env), workers.add("b", env)
        started = time.monotonic()
        assert _crawl(settings, redis_server.url, site.tag, 100) == site.keys
        got = wait_until_done(settings, site.keys, timeout=180)
        took = time.monotonic() - started
    assert_every_post_once(got, site, title_id)
    assert took > 15, f"the download was not slow ({took:.0f} s): the test proves nothing"
    downloads = workers.steps()["reelwatch.download"]
    assert downloads[key] == 1, "a live worker's task was handed out twice"
