"""The board's enforcement pages over HTTP: thumbnails, the lifecycle, evidence packs, notices,
the account ledger and the title's accounting.

Real app (FastAPI's TestClient), real SQLite store, real JPEG evidence and a real WebM clip
(``fill_store``), and the real libraries behind each page.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from reelwatch.models import CheckOutcome, Match, TriageStatus
from reelwatch.settings import Settings
from tests.triage.factories import T0, make_match
from tests.triage.test_board import LOCAL, BoardData, fill_store, page, write_clip
from triage.board import BOARD_TOKEN_ENV, create_app
from triage.board.app import duration_text
from triage.board.files import PLACEHOLDER_URL, poster_path
from triage.stores import open_store


@pytest.fixture
def board(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[BoardData]:
    monkeypatch.delenv(BOARD_TOKEN_ENV, raising=False)
    with open_store(settings) as store:
        yield fill_store(settings, store)


@pytest.fixture
def client(board: BoardData) -> Iterator[TestClient]:
    with TestClient(create_app(board.settings, board.store), base_url=LOCAL) as c:
        yield c


def thumbs_of(client: TestClient, query: str = "") -> dict[str, str]:
    doc = page(client.get(f"/?{query}"))
    return {
        row.attrib["data-match-id"]: row.css("img.thumb::attr(src)").get("")
        for row in doc.css("tr.match-row")
    }


def store_media(settings: Settings, data: bytes, suffix: str) -> str:
    """Put ``data`` where downloads go (``media/<sha[:2]>/<sha><suffix>``); its sha256."""
    sha = hashlib.sha256(data).hexdigest()
    target = settings.media_dir / sha[:2] / f"{sha}{suffix}"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return sha


# Thumbnails ------------------------------------------------------------------------------------
def test_queue_thumbnail_is_the_first_evidence_image(client: TestClient, board: BoardData) -> None:
    thumbs = thumbs_of(client)
    assert thumbs[board.main_id] == "/evidence/7001-copy/query.jpg"
    assert client.get(thumbs[board.main_id]).status_code == 200


def test_queue_thumbnail_without_evidence_is_a_cached_poster_frame(
    client: TestClient, board: BoardData
) -> None:
    settings = board.settings
    clip = write_clip(settings.home / "other.webm", seconds=3)
    sha = store_media(settings, clip.read_bytes(), ".webm")
    board.store.upsert_match(
        make_match("7100", account="postered", media_sha256=sha, created_at=T0)
    )
    url = thumbs_of(client)["tiktok:7100:the-crown"]
    assert url == f"/thumbs/{sha}.jpg"

    first = client.get(url)
    assert first.status_code == 200
    assert first.headers["content-type"] == "image/jpeg"
    image = Image.open(io.BytesIO(first.content))
    assert image.format == "JPEG"
    assert image.width <= 160 and image.height <= 120
    # write_clip paints frame i with grey level (i * 6) % 255 at 10 fps: the poster is taken
    # one second in (frame 10, level 60), not the first (black) frame.
    level = float(np.asarray(image.convert("L")).mean())
    assert 45 < level < 75
    cached = poster_path(settings, sha)
    assert cached.read_bytes() == first.content

    # Made once: with the media gone, the cached poster is still served.
    for f in (settings.media_dir / sha[:2]).glob(f"{sha}.*"):
        f.unlink()
    assert thumbs_of(client)["tiktok:7100:the-crown"] == url
    assert client.get(url).content == first.content


def test_queue_thumbnail_falls_back_to_the_placeholder(
    client: TestClient, board: BoardData
) -> None:
    # fill_store's other matches carry a media hash that is not on this machine.
    assert thumbs_of(client)["tiktok:7002:the-crown"] == PLACEHOLDER_URL
    placeholder = client.get(PLACEHOLDER_URL)
    assert placeholder.status_code == 200
    assert placeholder.headers["content-type"].startswith("image/svg+xml")

    # Media that is no video (damaged bytes): the poster route sends the placeholder.
    sha = store_media(board.settings, b"\x1aE\xdf\xa3 not really a webm" * 50, ".webm")
    board.store.upsert_match(make_match("7101", media_sha256=sha, created_at=T0))
    url = thumbs_of(client)["tiktok:7101:the-crown"]
    assert url == f"/thumbs/{sha}.jpg"
    response = client.get(url, follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == PLACEHOLDER_URL
    assert not poster_path(board.settings, sha).exists()

    for bad in ("0" * 64, "not-a-sha", "..%2F..%2Fsettings"):
        answer = client.get(f"/thumbs/{bad}.jpg", follow_redirects=False)
        assert answer.status_code in (307, 404)
        if answer.status_code == 307:
            assert answer.headers["location"] == PLACEHOLDER_URL


def test_every_lifecycle_status_has_a_chip_style(board: BoardData) -> None:
    css = (Path(__file__).parents[2] / "triage/board/static/board.css").read_text()
    for status in TriageStatus:
        assert f".status-{status.value} " in css or f".status-{status.value}," in css
    assert ".status-takedown_requested" in css


# The lifecycle on the match page ---------------------------------------------------------------
def test_match_page_shows_the_lifecycle_with_times_recheck_and_time_to_removal(
    client: TestClient, board: BoardData
) -> None:
    store = board.store
    store.set_status(board.main_id, TriageStatus.CONFIRMED, actor="ana", at=T0 + timedelta(hours=1))
    store.set_status(
        board.main_id, TriageStatus.NOTICE_SENT, actor="ana", at=T0 + timedelta(hours=2)
    )
    store.set_status(board.main_id, TriageStatus.REMOVED, actor="beat", at=T0 + timedelta(hours=5))

    def checked(m: Match) -> None:
        m.enforcement.check = CheckOutcome.REMOVED
        m.enforcement.check_detail = "HTTP 404"
        m.enforcement.checked_at = T0 + timedelta(hours=5)
        m.enforcement.checks = 3

    store.update_match(board.main_id, checked)
    doc = page(client.get(f"/matches/{board.main_id}"))
    steps = {
        li.attrib["data-status"]: " ".join(" ".join(li.css("::text").getall()).split())
        for li in doc.css("ol.lifecycle-steps li")
    }
    assert list(steps) == [s.value for s in TriageStatus]
    assert steps["new"].endswith("2025-03-01 12:00 UTC")
    assert steps["confirmed"].endswith("2025-03-01 13:00 UTC")
    assert steps["notice_sent"].endswith("2025-03-01 14:00 UTC")
    assert steps["removed"].endswith("2025-03-01 17:00 UTC")
    assert steps["rejected"].endswith("-")
    assert doc.css("ol.lifecycle-steps li.current::attr(data-status)").getall() == ["removed"]
    removal = " ".join(doc.css("#time-to-removal ::text").getall())
    assert removal.startswith("3 h")
    last = " ".join(" ".join(doc.css("#last-check ::text").getall()).split())
    assert last == "removed 2025-03-01 17:00 UTC · HTTP 404 · 3 checks so far"


def test_match_page_before_any_recheck(client: TestClient, board: BoardData) -> None:
    doc = page(client.get(f"/matches/{board.main_id}"))
    assert doc.css("#time-to-removal::text").get("").strip() == "-"
    assert "not re-checked yet" in " ".join(doc.css("#last-check ::text").getall())
    assert doc.css("ol.lifecycle-steps li.current::attr(data-status)").getall() == ["new"]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "-"),
        (0.4, "0 s"),
        (45, "45 s"),
        (600, "10 min"),
        (3 * 3600, "3 h"),
        (5 * 3600 + 180, "5 h 3 min"),
        (3 * 86400 + 4 * 3600, "3 d 4 h"),
        (2 * 86400, "2 d"),
    ],
)
def test_duration_text(seconds: float | None, text: str) -> None:
    assert duration_text(seconds) == text
