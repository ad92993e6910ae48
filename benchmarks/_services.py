"""Real servers and processes for ``benchmarks/bench.py``: a redis-server on a free port,
``reelwatch`` subprocesses that see a data home, the replica and an SMTP sink, and a wait on
the store until every post is done.

The pipeline tests start the same things as pytest fixtures (``tests/workers/conftest.py``);
these are the plain context managers a script can use.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from reelwatch.models import PostState
from reelwatch.settings import load_settings
from triage.smtp_sink import free_port

FINAL_STATES = frozenset({PostState.MATCHED, PostState.FAILED})


def pipeline_env(
    home: Path,
    replica_url: str,
    smtp_port: int,
    broker_url: str | None = None,
    **extra: str,
) -> dict[str, str]:
    """The environment of a ``reelwatch`` process on data home ``home`` that crawls the
    replica at ``replica_url`` and sends alerts to the SMTP sink on ``smtp_port``."""
    env = {
        **os.environ,
        "REELWATCH_HOME": str(home),
        "REELWATCH_DOWNLOAD__ALLOW_PRIVATE_HOSTS": "true",
        "REELWATCH_CRAWL__SOURCES__REPLICA__BASE_URL": replica_url,
        "REELWATCH_EMAIL__SMTP_HOST": "127.0.0.1",
        "REELWATCH_EMAIL__SMTP_PORT": str(smtp_port),
        "REELWATCH_EMAIL__RECIPIENTS": json.dumps(["brand-protection@studio.localhost"]),
    }
    if broker_url:
        env["REELWATCH_BROKER_URL"] = broker_url
    else:
        env.pop("REELWATCH_BROKER_URL", None)
    return {**env, **extra}


@contextmanager
def redis_server(directory: Path) -> Iterator[str]:
    """A redis-server on a free port without persistence; yields its URL."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server is not installed (make setup installs it)")
    port = free_port()
    args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(
        [exe, *args, "--dir", str(directory)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(host="127.0.0.1", port=port)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def wait_for_text(log_path: Path, text: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait until ``text`` appears in ``log_path`` (a worker says it is ready)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log_path.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"process exited ({proc.returncode}); see {log_path}")
        time.sleep(0.2)
    raise RuntimeError(f"{text!r} not in {log_path} within {timeout:.0f} s")


def post_states(home: Path) -> dict[str, PostState]:
    """Every post in the store of data home ``home`` and its state."""
    from triage.stores import open_store

    with open_store(load_settings(home=home)) as store:
        return {p.key: p.state for p in store.list_posts()}


def wait_until_final(home: Path, expected: int, timeout: float, poll_s: float = 1.0) -> float:
    """Wait until ``expected`` posts are in the store of ``home``, each matched or failed;
    returns when that was first seen (``time.perf_counter``, so up to ``poll_s`` late).

    Polls with one store and settings read once: this process shares the CPUs with the
    workers it waits for."""
    from triage.stores import open_store

    deadline = time.monotonic() + timeout
    with open_store(load_settings(home=home)) as store:
        while time.monotonic() < deadline:
            states = [p.state for p in store.list_posts()]
            if len(states) >= expected and all(s in FINAL_STATES for s in states):
                return time.perf_counter()
            time.sleep(poll_s)
    raise RuntimeError(f"posts not all processed within {timeout:.0f} s: {post_states(home)}")
