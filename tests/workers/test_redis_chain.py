"""The same chain on a real redis-server with a separate ``reelwatch worker`` process."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from reelwatch.models import Confidence, PostState, post_key
from reelwatch.settings import Settings
from tests.workers.conftest import (
    COPY_ID,
    CORRUPT_ID,
    HOSTILE_ID,
    TAG,
    UNRELATED_ID,
    wait_until_processed,
)
from triage.smtp_sink import SmtpSink
from triage.stores import open_store
from workers import tasks

pytestmark = [
    pytest.mark.redis,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed"),
]


def test_chain_runs_on_a_separate_worker(worker: Settings, sink: SmtpSink, tmp_path: Path) -> None:
    result = tasks.crawl.delay("replica", TAG, None, "redis-test")
    summary = result.get(timeout=120)
    keys = [post_key("replica", i) for i in (COPY_ID, UNRELATED_ID, CORRUPT_ID, HOSTILE_ID)]
    assert sorted(summary["queued"]) == sorted(keys)
    try:
        wait_until_processed(worker, keys, timeout=180)
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
