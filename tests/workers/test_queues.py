"""Queues: fingerprint and match go where ``workers.match_queue`` says, and only a machine
with CUDA serves the ``gpu`` queue."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from reelwatch.errors import InputError
from reelwatch.settings import Settings, load_settings
from workers import tasks
from workers.app import DEFAULT_WORKER_QUEUES, QUEUES, configure, gpu_unavailable_reason


def test_match_queue_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REELWATCH_WORKERS__MATCH_QUEUE", raising=False)
    assert load_settings().workers.match_queue == "match"
    monkeypatch.setenv("REELWATCH_WORKERS__MATCH_QUEUE", "gpu")
    assert load_settings().workers.match_queue == "gpu"
    monkeypatch.setenv("REELWATCH_WORKERS__MATCH_QUEUE", "cuda")
    with pytest.raises(InputError, match=r"match_queue = 'cuda': must be 'match' or 'gpu'"):
        load_settings()


def test_cpu_workers_serve_every_queue_but_gpu() -> None:
    assert set(DEFAULT_WORKER_QUEUES) == set(QUEUES) - {"gpu"}


@pytest.mark.redis
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")
def test_fingerprint_and_match_wait_on_the_configured_queue(
    settings: Settings, redis_url: str
) -> None:
    """With no worker listening, the messages stay in Redis on the queue they were sent to."""
    client = redis.Redis.from_url(redis_url)
    settings.broker_url = redis_url
    try:
        configure(settings)
        tasks.fingerprint.delay("replica:1")
        tasks.download.delay("replica:1")
        assert (client.llen("match"), client.llen("gpu"), client.llen("media")) == (1, 0, 1)

        settings.workers.match_queue = "gpu"
        configure(settings)
        tasks.match.delay("replica:1")
        tasks.fingerprint.delay("replica:1")
        assert (client.llen("match"), client.llen("gpu")) == (1, 2)
    finally:
        settings.broker_url = None
        settings.workers.match_queue = "match"
        configure(settings)


@pytest.mark.skipif(gpu_unavailable_reason() is None, reason="this machine can serve gpu")
def test_a_worker_without_cuda_refuses_the_gpu_queue(home: Path) -> None:
    env = {**os.environ, "REELWATCH_HOME": str(home)}
    env["REELWATCH_BROKER_URL"] = "redis://127.0.0.1:9/0"  # refused before any connection
    result = subprocess.run(
        [sys.executable, "-m", "reelwatch", "worker", "--queues", "crawl,gpu"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("reelwatch: error: this machine cannot serve the gpu queue")
    assert "CUDA" in lines[0]
