"""A small world for pipeline tests: one catalogued title, a replica site with a mirrored
and cropped copy of it, an unrelated clip, a post with a hostile caption, and an SMTP sink;
and a real redis-server for the distributed tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from crawler.replica.server import ReplicaServer
from crawler.replica.site import ReplicaVideo, build_site
from crawler.sources import ReplicaSource
from reelwatch.demo.media import crop, make_reference_clip, mirror, shrink, transform_file
from reelwatch.settings import Settings
from triage.smtp_sink import SmtpSink, free_port

TAG = "starfallstation"
COPY_ID = "7300000000000000001"
UNRELATED_ID = "7300000000000000002"
HOSTILE_ID = "7300000000000000003"
CORRUPT_ID = "7300000000000000004"
HOSTILE_NICKNAME = "<b>evil</b>\r\nX-Injected: 1"
HOSTILE_CAPTION = "</script><script>alert(1)</script>\r\nBcc: victim@example.com ✨ " + "x" * 2000


@dataclass(frozen=True)
class World:
    reference: Path
    copy: Path
    unrelated: Path
    site: Path


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("world")
    reference = make_reference_clip(
        ["astronaut", "rocket"], root / "reference.mp4", seconds_per_photo=6, seed=11
    )
    copy = transform_file(reference, root / "copy.mp4", [mirror, crop], start=3.0, duration=7.0)
    unrelated = make_reference_clip(
        ["camera", "page"], root / "unrelated.mp4", seconds_per_photo=4, seed=99
    )
    hostile = transform_file(reference, root / "hostile.mp4", [shrink], start=1.0, duration=5.0)
    corrupt = root / "corrupt.mp4"
    data = copy.read_bytes()
    corrupt.write_bytes(data[: len(data) // 4])
    now = int(time.time())

    def video(
        vid: str, user: str, caption: str, path: Path, offset: int, nickname: str = ""
    ) -> ReplicaVideo:
        return ReplicaVideo(
            id=vid,
            user=user,
            nickname=nickname,
            caption=caption,
            hashtags=[TAG],
            path=path,
            create_time=now - offset,
            duration=7,
            width=640,
            height=360,
        )

    site = build_site(
        root / "site",
        [
            video(COPY_ID, "mirror.king", "best scene ever", copy, 10),
            video(UNRELATED_ID, "randomcam", "my camera collection", unrelated, 20),
            video(CORRUPT_ID, "brokenfile", "this upload got cut", corrupt, 40),
            video(
                HOSTILE_ID,
                "evil.user",
                HOSTILE_CAPTION,
                hostile,
                30,
                "<b>evil</b>\r\nX-Injected: 1",
            ),
        ],
    )
    return World(reference=reference, copy=copy, unrelated=unrelated, site=site)


@pytest.fixture
def replica(world: World) -> Iterator[ReplicaServer]:
    with ReplicaServer(world.site) as server:
        yield server


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with SmtpSink() as s:
        yield s


@pytest.fixture
def world_settings(
    settings: Settings, world: World, replica: ReplicaServer, sink: SmtpSink
) -> Settings:
    """Settings with the world's title catalogued, the replica and the SMTP sink wired in."""
    from matcher.catalog import Catalog

    ReplicaSource.set_base_url(settings, replica.base_url)
    settings.email.smtp_host = "127.0.0.1"
    settings.email.smtp_port = sink.port
    catalog = Catalog(settings)
    title = catalog.add_title("Starfall Station", owner="Northlight", hashtags=[TAG])
    catalog.add_assets(title.id, [world.reference])
    return settings


def process_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a ``reelwatch`` subprocess that sees what ``settings`` see."""
    env = {
        **os.environ,
        "REELWATCH_HOME": str(settings.home),
        "REELWATCH_DOWNLOAD__ALLOW_PRIVATE_HOSTS": "true",
        "REELWATCH_ALERTS__MIN_CONFIDENCE": settings.alerts.min_confidence.value,
        "REELWATCH_EMAIL__RECIPIENTS": json.dumps(settings.email.recipients),
    }
    replica_url = ReplicaSource.configured_base_url(settings)
    if replica_url:
        env["REELWATCH_CRAWL__SOURCES__REPLICA__BASE_URL"] = replica_url
    if settings.email.smtp_host:
        env["REELWATCH_EMAIL__SMTP_HOST"] = settings.email.smtp_host
        env["REELWATCH_EMAIL__SMTP_PORT"] = str(settings.email.smtp_port)
    if settings.broker_url:
        env["REELWATCH_BROKER_URL"] = settings.broker_url
    else:
        env.pop("REELWATCH_BROKER_URL", None)
    return {**env, **extra}


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A fresh redis-server on a free port, without persistence, for one test."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not installed")
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


def wait_until_processed(settings: Settings, keys: list[str], timeout: float) -> None:
    """Wait until every post of ``keys`` went through the pipeline (matched or failed)."""
    from reelwatch.models import PostState
    from triage.stores import open_store

    deadline = time.monotonic() + timeout
    done_states = {PostState.MATCHED, PostState.FAILED}
    while time.monotonic() < deadline:
        with open_store(settings) as store:
            posts = [store.get_post(k) for k in keys]
        if all(p is not None and p.state in done_states for p in posts):
            return
        time.sleep(0.5)
    pytest.fail(f"posts not processed within {timeout} s")


@contextmanager
def reelwatch_process(
    args: list[str], env: dict[str, str], log_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m reelwatch ARGS`` running for the duration, its output in ``log_path``."""
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "reelwatch", *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


@pytest.fixture
def worker_env() -> dict[str, str]:
    """Extra environment of the ``worker`` process; a test module overrides it to give the
    worker settings of its own."""
    return {}


@pytest.fixture
def worker(
    world_settings: Settings, redis_url: str, tmp_path: Path, worker_env: dict[str, str]
) -> Iterator[Settings]:
    """A ``reelwatch worker`` process on every queue of a real Redis, seeing the world; this
    process sends its tasks there (``world_settings`` point at the broker while it runs)."""
    from workers.app import configure

    env = process_env(world_settings, REELWATCH_BROKER_URL=redis_url, **worker_env)
    args = ["worker", "--concurrency", "1", "--loglevel", "INFO"]
    with reelwatch_process(args, env, tmp_path / "worker.log"):
        world_settings.broker_url = redis_url
        configure(world_settings)
        try:
            yield world_settings
        finally:
            world_settings.broker_url = None
            configure(world_settings)
