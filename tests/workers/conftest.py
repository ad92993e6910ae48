"""A small world for pipeline tests: one catalogued title, a replica site with a mirrored
and cropped copy of it, an unrelated clip, a post with a hostile caption, and an SMTP sink."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from crawler.replica.server import ReplicaServer
from crawler.replica.site import ReplicaVideo, build_site
from crawler.sources import ReplicaSource
from reelwatch.demo.media import crop, make_reference_clip, mirror, shrink, transform_file
from reelwatch.settings import Settings
from triage.smtp_sink import SmtpSink

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
