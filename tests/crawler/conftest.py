"""Fixtures for the crawler tests: tiny real MP4s, a replica site built from them, a server.

The videos are made once per session with PyAV (libx264) so yt-dlp downloads real media;
each test that needs faults gets its own server so fault counters never leak between tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from crawler.replica import Faults, ReplicaServer, ReplicaVideo, build_site
from crawler.replica.generate import make_clip
from crawler.sources import ReplicaSource
from reelwatch.settings import Settings

HOSTILE_CAPTION = "hello </script><script>alert(1)</script>\r\nline two 🎬🔥 & <b>bold</b>"
AI_DESCRIPTION = "Creator labeled as AI-generated"
BASE_TIME = 1_700_000_000


def make_mp4(path: Path, shade: int, frames: int = 6) -> Path:
    """A 32x32, 6-frame H.264 clip whose pixels depend on ``shade`` (so files differ)."""
    return make_clip(path, shade, frames)


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("clips")
    return [make_mp4(folder / f"clip{i}.mp4", i) for i in range(5)]


def site_videos(clips: list[Path]) -> list[ReplicaVideo]:
    """Five posts tagged #dragonfilm (newest is id ...05), two of them also #other.

    Post 3 carries the hostile caption and TikTok's AI label.
    """
    videos = []
    for n, clip in enumerate(clips, start=1):
        videos.append(
            ReplicaVideo(
                id=f"73000000000000000{n:02d}",
                user=f"user_{n}",
                nickname=f"User {n}",
                caption=HOSTILE_CAPTION if n == 3 else f"scene {n} recut",
                hashtags=["DragonFilm", "other"] if n % 2 else ["dragonfilm"],
                path=clip,
                create_time=BASE_TIME + n * 60,
                duration=1,
                width=32,
                height=32,
                followers=1000 * n,
                plays=100 * n,
                likes=10 * n,
                shares=n,
                comments=2 * n,
                is_aigc=n == 3,
                aigc_description=AI_DESCRIPTION if n == 3 else "",
            )
        )
    return videos


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory, clips: list[Path]) -> Path:
    return build_site(tmp_path_factory.mktemp("site"), site_videos(clips))


@pytest.fixture(scope="session")
def replica(site: Path) -> Iterator[ReplicaServer]:
    """A well-behaved replica with 2 posts per page, shared by tests that only read."""
    with ReplicaServer(site, page_size=2) as server:
        yield server


@pytest.fixture
def hostile_replica(site: Path) -> Iterator[Callable[[Faults], ReplicaServer]]:
    """Start a replica with the given faults; stopped after the test."""
    servers: list[ReplicaServer] = []

    def start(faults: Faults) -> ReplicaServer:
        server = ReplicaServer(site, faults=faults, page_size=2)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def point_at(settings: Settings, server: ReplicaServer) -> Settings:
    """Settings that crawl ``server`` quickly: 2 posts per API page, short waits."""
    ReplicaSource.set_base_url(settings, server.base_url)
    settings.crawl.page_size = 2
    settings.crawl.download_delay = 0.0
    settings.crawl.retry_times = 2
    settings.crawl.timeout_s = 10.0
    return settings


@pytest.fixture
def crawl_settings(settings: Settings, replica: ReplicaServer) -> Settings:
    return point_at(settings, replica)
