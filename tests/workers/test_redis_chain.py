"""The same chain on a real redis-server with a separate ``reelwatch worker`` process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from crawler.sources import ReplicaSource
from reelwatch.models import Confidence, PostState, post_key
from reelwatch.settings import Settings
from tests.workers.conftest import COPY_ID, CORRUPT_ID, HOSTILE_ID, TAG, UNRELATED_ID
from triage.smtp_sink import SmtpSink, free_port
from triage.stores import open_store
from workers import tasks
from workers.app import configure

pytestmark = [
    pytest.mark.redis,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed"),
]


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(host="127.0.0.1", port=port)
    deadline = time.monotonic() + 20
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail("redis-server did not start")
            time.sleep(0.1)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def worker(world_settings: Settings, redis_url: str, tmp_path: Path) -> Iterator[Settings]:
    env = {
        **os.environ,
        "REELWATCH_HOME": str(world_settings.home),
        "REELWATCH_BROKER_URL": redis_url,
        "REELWATCH_CRAWL__SOURCES__REPLICA__BASE_URL": str(
            ReplicaSource.configured_base_url(world_settings)
        ),
        "REELWATCH_DOWNLOAD__ALLOW_PRIVATE_HOSTS": "true",
        "REELWATCH_EMAIL__SMTP_HOST": "127.0.0.1",
        "REELWATCH_EMAIL__SMTP_PORT": str(world_settings.email.smtp_port),
    }
    log = (tmp_path / "worker.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "reelwatch", "worker", "--concurrency", "1", "--loglevel", "INFO"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    world_settings.broker_url = redis_url
    configure(world_settings)
    try:
        yield world_settings
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        world_settings.broker_url = None
        configure(world_settings)


def _wait_until_done(settings: Settings, keys: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    done_states = {PostState.MATCHED, PostState.FAILED}
    while time.monotonic() < deadline:
        with open_store(settings) as store:
            posts = [store.get_post(k) for k in keys]
        if all(p is not None and p.state in done_states for p in posts):
            return
        time.sleep(0.5)
    pytest.fail(f"posts not processed within {timeout} s")


def test_chain_runs_on_a_separate_worker(worker: Settings, sink: SmtpSink, tmp_path: Path) -> None:
    result = tasks.crawl.delay("replica", TAG, None, "redis-test")
    summary = result.get(timeout=120)
    keys = [post_key("replica", i) for i in (COPY_ID, UNRELATED_ID, CORRUPT_ID, HOSTILE_ID)]
    assert sorted(summary["queued"]) == sorted(keys)
    try:
        _wait_until_done(worker, keys, timeout=180)
    except BaseException:
        print((tmp_path / "worker.log").read_text()[-5000:])
        raise

    with open_store(worker) as store:
        copy = [m for m in store.list_matches() if m.post_id == COPY_ID]
        assert [m.title for m in copy] == ["Starfall Station"]
        assert copy[0].confidence == Confidence.HIGH
        failed = store.get_post(post_key("replica", CORRUPT_ID))
        assert failed is not None and failed.state == PostState.FAILED
        highs = store.list_matches(min_confidence=Confidence.HIGH)
    deadline = time.monotonic() + 30
    while len(sink.messages) < len(highs) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(sink.messages) == len(highs) == 2
