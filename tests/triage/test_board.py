"""The triage board over HTTP: queue, filters, evidence, decisions, exports and its defences.

Every test runs the real app (FastAPI's TestClient, or uvicorn on a free port) over a real
SQLite store filled with Match objects and real JPEG evidence files under the data home.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import av
import httpx2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from parsel import Selector
from PIL import Image

from reelwatch.models import AIFlag, Author, Confidence, Segment, TriageStatus
from reelwatch.settings import Settings
from tests.triage.factories import T0, make_match, make_post
from triage.board import BOARD_TOKEN_ENV, create_app
from triage.board.security import SESSION_COOKIE
from triage.board.server import BoardServer
from triage.files import resolve_under
from triage.stores import Store, open_store

LOCAL = "http://127.0.0.1"
HOSTILE_CAPTION = (
    "<script>alert('caption')</script>\r\nBcc: victim@example.com\r\n"
    + "A" * 100_000
    + "\n</pre><b>end</b>"
)
HOSTILE_HANDLE = '<img src=x onerror="alert(1)">'
HOSTILE_ID = "tiktok:7666:the-crown"
CRLF_ID = "tiktok:76\r\n67:the-crown"


# Test data: real JPEGs, a real clip, real Match objects in a real store ----------------------
def write_jpeg(path: Path, seed: int, size: tuple[int, int] = (320, 180)) -> Path:
    """A distinct, real JPEG (a seeded colour pattern) at ``path``."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, size=(9, 16, 3), dtype=np.uint8)
    image = Image.fromarray(base).resize(size, Image.Resampling.NEAREST)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, "JPEG", quality=85)
    return path


def write_clip(path: Path, seconds: int = 4) -> Path:
    """A real VP8 WebM clip (Chromium plays it everywhere) of ``seconds`` at 10 fps."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libvpx", rate=10)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
        for i in range(seconds * 10):
            pixels = np.full((96, 160, 3), (i * 6) % 255, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def evidence_pair(settings: Settings, name: str, seed: int) -> list[str]:
    """Query and reference frames under the evidence dir, as paths relative to the home."""
    paths = [
        write_jpeg(settings.evidence_dir / name / "query.jpg", seed),
        write_jpeg(settings.evidence_dir / name / "reference.jpg", seed + 1000),
    ]
    return [p.relative_to(settings.home).as_posix() for p in paths]


@dataclass
class BoardData:
    settings: Settings
    store: Store
    clip_sha: str
    clip_bytes: bytes
    main_id: str


def fill_store(settings: Settings, store: Store) -> BoardData:
    """Six matches over two titles and two platforms; one hostile; a repeat account."""
    clip = write_clip(settings.media_dir / "tmp.webm")
    data = clip.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    final = settings.media_dir / sha[:2] / f"{sha}.webm"
    final.parent.mkdir(parents=True, exist_ok=True)
    clip.rename(final)

    main = make_match(
        "7001",
        score=0.93,
        account="crownclips",
        hashtags=["thecrown", "royals"],
        media_sha256=sha,
        created_at=T0,
        segments=[
            Segment(
                signal="copy",
                query_start=1.5,
                query_end=3.5,
                ref_asset="crown-s1e1",
                ref_start=61.0,
                ref_end=63.0,
                score=0.93,
                distance=12.0,
                evidence=evidence_pair(settings, "7001-copy", 1),
            ),
            Segment(
                signal="face",
                query_start=2.0,
                query_end=2.5,
                ref_asset="claire-face",
                ref_start=0.0,
                ref_end=0.0,
                score=0.8,
                talent="Claire Foy",
                evidence=evidence_pair(settings, "7001-face", 2),
            ),
            Segment(
                signal="audio",
                query_start=0.0,
                query_end=4.0,
                ref_asset="crown-theme",
                ref_start=58.0,
                ref_end=62.0,
                score=0.7,
                note="audio offset +58.0 s",
            ),
        ],
        ai=AIFlag(is_ai=True, reasons=["platform label: AI-generated", "hashtag #aiart"]),
    )
    matches = [
        main,
        make_match(
            "7002",
            score=0.6,
            confidence=Confidence.MEDIUM,
            account="repeater",
            ai=AIFlag(),
            created_at=T0 + timedelta(hours=1),
        ),
        make_match(
            "7003",
            score=0.3,
            confidence=Confidence.LOW,
            account="repeater",
            hashtags=["royals"],
            ai=AIFlag(),
            created_at=T0 + timedelta(hours=2),
        ),
        make_match(
            "7666",
            score=0.88,
            account=HOSTILE_HANDLE,
            caption=HOSTILE_CAPTION,
            hashtags=["<b>bold</b>"],
            post_url="javascript:alert('url')",
            created_at=T0 + timedelta(hours=3),
        ),
        make_match(
            "9001",
            title_id="bridgerton",
            score=0.91,
            account="repeater",
            caption='=HYPERLINK("http://evil.example")',
            hashtags=["bridgerton"],
            ai=AIFlag(),
            created_at=T0 + timedelta(hours=4),
        ),
        make_match(
            "abc",
            platform="youtube",
            title_id="bridgerton",
            score=0.5,
            confidence=Confidence.MEDIUM,
            account="ytfan",
            hashtags=["bridgerton"],
            post_url="https://www.youtube.com/shorts/abc",
            created_at=T0 + timedelta(hours=5),
        ),
    ]
    for m in matches:
        store.upsert_match(m)
    store.upsert_post(
        make_post("7001", author=Author(id="c1", handle="crownclips", followers=4321))
    )
    return BoardData(settings, store, sha, data, main.id)


def page(response: httpx2.Response) -> Selector:
    assert response.status_code == 200, response.text[:500]
    return Selector(text=response.text)


def queue_ids(client: TestClient, query: str = "") -> list[str]:
    return page(client.get(f"/?{query}")).css("tr.match-row::attr(data-match-id)").getall()


def error_text(response: httpx2.Response) -> str:
    return Selector(text=response.text).css("p.error::text").get("")


def csrf_of(client: TestClient, path: str) -> str:
    token = page(client.get(path)).css("input[name=csrf]::attr(value)").get()
    assert token
    return token


# The queue ---------------------------------------------------------------------------------
def test_queue_puts_high_confidence_first_then_score(client: TestClient) -> None:
    assert queue_ids(client) == [
        "tiktok:7001:the-crown",
        "tiktok:9001:bridgerton",
        HOSTILE_ID,
        "tiktok:7002:the-crown",
        "youtube:abc:bridgerton",
        "tiktok:7003:the-crown",
    ]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("title=bridgerton", {"tiktok:9001:bridgerton", "youtube:abc:bridgerton"}),
        ("platform=youtube", {"youtube:abc:bridgerton"}),
        ("tier=medium", {"tiktok:7002:the-crown", "youtube:abc:bridgerton"}),
        ("tier=high&title=the-crown", {"tiktok:7001:the-crown", HOSTILE_ID}),
        ("hashtag=%23Royals", {"tiktok:7001:the-crown", "tiktok:7003:the-crown"}),
        (
            "account=%40repeater",
            {"tiktok:7002:the-crown", "tiktok:7003:the-crown", "tiktok:9001:bridgerton"},
        ),
        ("ai=yes", {"tiktok:7001:the-crown", HOSTILE_ID, "youtube:abc:bridgerton"}),
        ("ai=no&title=the-crown", {"tiktok:7002:the-crown", "tiktok:7003:the-crown"}),
        ("status=confirmed", set()),
    ],
)
def test_queue_filters(client: TestClient, query: str, expected: set[str]) -> None:
    assert set(queue_ids(client, query)) == expected


def test_status_filter_follows_decisions(client: TestClient, board: BoardData) -> None:
    board.store.set_status("tiktok:7002:the-crown", TriageStatus.DISMISSED, note="fan edit")
    assert queue_ids(client, "status=dismissed") == ["tiktok:7002:the-crown"]
    assert "tiktok:7002:the-crown" not in queue_ids(client, "status=new")


def test_bad_filter_is_a_clear_400(client: TestClient) -> None:
    response = client.get("/?status=maybe")
    assert response.status_code == 400
    assert error_text(response).startswith("unknown triage status 'maybe'; use one of: new,")
    assert client.get("/?ai=perhaps").status_code == 400
    assert client.get("/?page=0").status_code == 422


def test_queue_pages_through_every_match(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(BOARD_TOKEN_ENV, raising=False)
    with open_store(settings) as store:
        for i in range(120):
            store.upsert_match(
                make_match(str(i), score=0.5 + i / 1000, ai=AIFlag(is_ai=i % 2 == 0))
            )
        with TestClient(create_app(settings, store), base_url=LOCAL) as client:
            pages = [queue_ids(client, f"page={n}") for n in (1, 2, 3)]
            assert [len(p) for p in pages] == [50, 50, 20]
            everything = [i for p in pages for i in p]
            assert everything == [m.id for m in store.list_matches()]
            ai_pages = [queue_ids(client, f"ai=yes&page={n}") for n in (1, 2)]
            assert [len(p) for p in ai_pages] == [50, 10]
            assert len({i for p in ai_pages for i in p}) == 60
            nav = page(client.get("/?ai=yes&page=1")).css("a[rel=next]::attr(href)").get()
            assert nav == "/?ai=yes&page=2"


# The match page and its files ------------------------------------------------------------------
def test_match_page_shows_frames_clip_faces_offset_and_ai(
    client: TestClient, board: BoardData
) -> None:
    doc = page(client.get(f"/matches/{board.main_id}"))
    images = doc.css(".segment-copy figure.evidence img::attr(src)").getall()
    assert images == [
        "/evidence/7001-copy/query.jpg",
        "/evidence/7001-copy/reference.jpg",
    ]
    for src, name in zip(images, ["query.jpg", "reference.jpg"], strict=True):
        response = client.get(src)
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/jpeg"
        assert response.content == (board.settings.evidence_dir / "7001-copy" / name).read_bytes()
    labels = doc.css(".segment-face figcaption::text").getall()
    assert labels == ["query face", "reference face"]
    assert "Claire Foy" in doc.css(".segment-face h3::text").get("")
    assert doc.css(".segment-audio .offset::text").get() == "+58.000 s"
    assert doc.css(".segment-audio .seg-note::text").get() == "audio offset +58.0 s"
    assert doc.css(".segment-copy .offset::text").get() == "+59.500 s"
    assert doc.css(".ai li::text").getall() == ["platform label: AI-generated", "hashtag #aiart"]
    assert doc.css("video#clip::attr(src)").get() == f"/media/{board.clip_sha}#t=0.00"
    assert "4321 followers" in "".join(doc.css(".facts dd ::text").getall())


def test_media_is_served_by_sha256_with_ranges(client: TestClient, board: BoardData) -> None:
    whole = client.get(f"/media/{board.clip_sha}")
    assert whole.status_code == 200
    assert whole.content == board.clip_bytes
    assert whole.headers["content-type"] == "video/webm"
    part = client.get(f"/media/{board.clip_sha}", headers={"Range": "bytes=10-19"})
    assert part.status_code == 206
    assert part.content == board.clip_bytes[10:20]
    assert client.get("/media/" + "0" * 64).status_code == 404
    assert client.get("/media/not-a-sha").status_code == 404


def test_evidence_route_never_leaves_the_evidence_folder(
    client: TestClient, board: BoardData, tmp_path: Path
) -> None:
    home = board.settings.home
    write_jpeg(home / "secret.jpg", 9)
    outside = write_jpeg(tmp_path / "outside.jpg", 10)
    (board.settings.evidence_dir / "link.jpg").symlink_to(outside)
    (board.settings.evidence_dir / "notes.txt").write_text("not an image")
    for path in (
        "/evidence/%2e%2e/secret.jpg",
        "/evidence/..%2Fsecret.jpg",
        "/evidence/%2e%2e/reelwatch.db",
        f"/evidence/{'%2e%2e/' * 6}etc/passwd",
        "/evidence/%2Fetc%2Fpasswd",
        "/evidence/link.jpg",
        "/evidence/notes.txt",
        "/evidence/",
    ):
        assert client.get(path).status_code == 404, path
    evidence = board.settings.evidence_dir
    assert resolve_under(evidence, "../secret.jpg") is None
    assert resolve_under(evidence, "/etc/passwd") is None
    assert resolve_under(evidence, "7001-copy/query.jpg") == evidence / "7001-copy/query.jpg"


def test_evidence_paths_outside_the_folder_are_not_linked(
    client: TestClient, board: BoardData
) -> None:
    write_jpeg(board.settings.home / "secret.jpg", 9)
    board.store.upsert_match(
        make_match(
            "7999",
            segments=[
                Segment(
                    signal="copy",
                    query_start=0,
                    query_end=1,
                    ref_asset="r",
                    ref_start=0,
                    ref_end=1,
                    evidence=["evidence/../secret.jpg", "/etc/passwd.jpg"],
                )
            ],
        )
    )
    doc = page(client.get("/matches/tiktok:7999:the-crown"))
    assert doc.css(".segment img").getall() == []
    assert len(doc.css(".segment .missing")) == 2


def test_unknown_match_is_404(client: TestClient) -> None:
    response = client.get("/matches/tiktok:nope:the-crown")
    assert response.status_code == 404
    assert error_text(response) == "match not found"


# Decisions -------------------------------------------------------------------------------------
def test_confirm_with_note_lands_in_store_and_history(client: TestClient, board: BoardData) -> None:
    token = csrf_of(client, f"/matches/{board.main_id}")
    response = client.post(
        f"/matches/{board.main_id}/status",
        data={"csrf": token, "status": "confirmed", "note": "frame-exact copy", "actor": "ana"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"/matches/{board.main_id}"
    stored = board.store.get_match(board.main_id)
    assert stored is not None
    assert stored.status == TriageStatus.CONFIRMED
    assert stored.note == "frame-exact copy"
    assert [(h.status, h.note, h.actor) for h in stored.history] == [
        (TriageStatus.CONFIRMED, "frame-exact copy", "ana")
    ]
    doc = page(client.get(f"/matches/{board.main_id}"))
    row = doc.css("tr.history-entry")
    assert len(row) == 1
    assert row.css("td.note::text").get() == "frame-exact copy"
    assert doc.css("#current-status .status::text").get() == "confirmed"
    assert doc.css("button[value=confirmed]::attr(disabled)").get() is not None

    token = csrf_of(client, f"/matches/{board.main_id}")
    client.post(
        f"/matches/{board.main_id}/status",
        data={"csrf": token, "status": "notice_sent", "note": "letter sent"},
    )
    stored = board.store.get_match(board.main_id)
    assert stored is not None
    assert [h.status for h in stored.history] == [
        TriageStatus.CONFIRMED,
        TriageStatus.NOTICE_SENT,
    ]
    assert stored.history[-1].actor == "board"


@pytest.mark.parametrize("csrf", [None, "", "forged-token"])
def test_status_change_without_this_sessions_csrf_is_refused(
    client: TestClient, board: BoardData, csrf: str | None
) -> None:
    client.get("/")
    data = {"status": "dismissed", "note": "x"}
    if csrf is not None:
        data["csrf"] = csrf
    response = client.post(f"/matches/{board.main_id}/status", data=data)
    assert response.status_code == 403
    stored = board.store.get_match(board.main_id)
    assert stored is not None
    assert stored.status == TriageStatus.NEW
    assert stored.history == []


def test_csrf_token_of_another_session_is_refused(client: TestClient, board: BoardData) -> None:
    stolen = csrf_of(client, f"/matches/{board.main_id}")
    with TestClient(client.app, base_url=LOCAL) as other:
        other.get("/")
        response = other.post(
            f"/matches/{board.main_id}/status", data={"csrf": stolen, "status": "dismissed"}
        )
    assert response.status_code == 403
    assert board.store.get_match(board.main_id).status == TriageStatus.NEW  # type: ignore[union-attr]


def test_unknown_status_is_a_clear_400(client: TestClient, board: BoardData) -> None:
    token = csrf_of(client, f"/matches/{board.main_id}")
    response = client.post(
        f"/matches/{board.main_id}/status", data={"csrf": token, "status": "deleted"}
    )
    assert response.status_code == 400
    assert error_text(response).startswith("unknown triage status 'deleted'")


# Hostile input ---------------------------------------------------------------------------------
def test_hostile_caption_and_handle_render_as_text(client: TestClient) -> None:
    queue_html = client.get("/").text
    match_response = client.get(f"/matches/{HOSTILE_ID}")
    for html in (queue_html, match_response.text):
        assert "<script>alert" not in html
        assert "<img src=x" not in html
        assert "<b>bold</b>" not in html
        assert "&lt;script&gt;alert" in html
        assert "&lt;img src=x" in html
    doc = page(match_response)
    shown = doc.css("pre.caption::text").get()
    assert shown == HOSTILE_CAPTION.replace("\r\n", "\n")
    assert doc.css(".facts a.account::text").get() == "@" + HOSTILE_HANDLE
    href = doc.css(".facts a.account::attr(href)").get()
    assert href == "/accounts/tiktok/%3Cimg%20src%3Dx%20onerror%3D%22alert%281%29%22%3E"
    assert doc.css("a.post-url").getall() == [], "a javascript: URL must not become a link"
    assert doc.css("span.post-url::text").get() == "javascript:alert('url')"
    assert doc.css("script::attr(src)").getall() == ["/static/board.js"]
    assert doc.css("script::text").getall() == []
    policy = match_response.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    account_page = client.get(href)
    assert account_page.status_code == 200
    assert page(account_page).css("h1::text").get("").strip() == "@" + HOSTILE_HANDLE


def test_post_id_with_line_breaks_never_reaches_a_header(
    client: TestClient, board: BoardData
) -> None:
    board.store.upsert_match(make_match("76\r\n67"))
    doc = page(client.get("/"))
    rows = [r for r in doc.css("tr.match-row") if "76\n67" in r.attrib["data-match-id"]]
    assert len(rows) == 1
    href = rows[0].css("a.open-match::attr(href)").get()
    assert href == "/matches/tiktok:76%0D%0A67:the-crown"
    token = csrf_of(client, href)
    response = client.post(
        f"{href}/status", data={"csrf": token, "status": "confirmed"}, follow_redirects=False
    )
    assert response.status_code == 303
    assert response.headers["location"] == href
    assert board.store.get_match(CRLF_ID).status == TriageStatus.CONFIRMED  # type: ignore[union-attr]


# Accounts and exports ---------------------------------------------------------------------------
def test_accounts_rank_repeat_infringers_first(client: TestClient) -> None:
    doc = page(client.get("/accounts"))
    first = doc.css("table.accounts tbody tr")[0]
    assert first.css("a.account::text").get() == "@repeater"
    assert first.css("td.matches::text").get() == "3"
    account = page(client.get("/accounts/tiktok/repeater"))
    assert set(account.css("tr.match-row::attr(data-match-id)").getall()) == {
        "tiktok:7002:the-crown",
        "tiktok:7003:the-crown",
        "tiktok:9001:bridgerton",
    }
    assert client.get("/accounts/youtube/repeater").status_code == 404


def test_csv_export_applies_filters_and_defuses_formulas(client: TestClient) -> None:
    response = client.get("/export/matches.csv?title=bridgerton")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["match_id"] for r in rows] == ["tiktok:9001:bridgerton", "youtube:abc:bridgerton"]
    assert rows[0]["caption"] == '\'=HYPERLINK("http://evil.example")'
    assert rows[0]["account"] == "repeater"
    assert rows[1]["post_url"] == "https://www.youtube.com/shorts/abc"

    everything = list(csv.DictReader(io.StringIO(client.get("/export/matches.csv").text)))
    assert len(everything) == 6
    hostile = next(r for r in everything if r["match_id"] == HOSTILE_ID)
    assert hostile["caption"] == HOSTILE_CAPTION
    assert hostile["account"] == HOSTILE_HANDLE


def test_title_report_accounts_for_every_instance(client: TestClient, board: BoardData) -> None:
    board.store.set_status(board.main_id, TriageStatus.NOTICE_SENT, note="notice #12")
    doc = page(client.get("/titles/the-crown/report"))
    rows = {r.attrib["data-match-id"]: r for r in doc.css("tr.instance")}
    assert len(rows) == 4
    text = {k: " ".join(" ".join(r.css("::text").getall()).split()) for k, r in rows.items()}
    main = text[board.main_id]
    assert "https://www.tiktok.com/@fan/video/7001" in main
    assert "@crownclips" in main
    assert "notice sent" in main
    assert "notice #12" in main
    assert "copy 1.5-3.5s" in main
    assert rows[board.main_id].css("img::attr(src)").getall() == [
        "/evidence/7001-copy/query.jpg",
        "/evidence/7001-copy/reference.jpg",
        "/evidence/7001-face/query.jpg",
        "/evidence/7001-face/reference.jpg",
    ]
    # Found: when reelwatch first saw the post (its record), else when the match landed.
    assert all("found 2025-03-01" in t for k, t in text.items() if k != board.main_id)
    assert client.get("/titles/nothing/report").status_code == 404


# Access control ------------------------------------------------------------------------------
def test_without_a_token_only_loopback_hosts_are_answered(board: BoardData) -> None:
    app = create_app(board.settings, board.store)
    with TestClient(app, base_url="http://board.evil.example") as rebound:
        assert rebound.get("/").status_code == 400
    with TestClient(app, base_url="http://localhost:8765") as local:
        assert local.get("/").status_code == 200


def test_token_protects_every_page_and_file(
    board: BoardData, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(BOARD_TOKEN_ENV, "s3cret-token")
    app = create_app(board.settings, board.store)
    with TestClient(app, base_url="http://board.example") as anon:
        for path in (
            "/",
            f"/matches/{board.main_id}",
            "/evidence/7001-copy/query.jpg",
            f"/media/{board.clip_sha}",
            "/export/matches.csv",
            "/accounts",
            "/accounts/tiktok/repeater",
            "/titles/the-crown/report",
            "/titles/the-crown/report.csv",
            f"/matches/{board.main_id}/evidence-pack",
            f"/thumbs/{board.clip_sha}.jpg",
            "/notices",
            "/notices/n-20250301-tiktok-00000000",
        ):
            response = anon.get(path, follow_redirects=False)
            assert response.status_code == 401, path
            assert response.headers["www-authenticate"].startswith("Bearer")
        browser = anon.get("/?title=the-crown", headers={"Accept": "text/html"})
        assert browser.url.path == "/login"
        assert page(browser).css("input[name=next]::attr(value)").get() == "/?title=the-crown"
        assert anon.get("/static/board.css").status_code == 200
        wrong = anon.get("/", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        anon.post(
            f"/matches/{board.main_id}/status",
            data={"status": "dismissed"},
            headers={"Authorization": "Bearer nope"},
        )
        drafted = anon.post(
            f"/matches/{board.main_id}/notice",
            data={"scope": "match"},
            headers={"Authorization": "Bearer nope"},
        )
        assert drafted.status_code == 401
    assert board.store.get_match(board.main_id).status == TriageStatus.NEW  # type: ignore[union-attr]
    assert board.store.list_notices() == []

    with TestClient(app, base_url="http://board.example") as script:
        auth = {"Authorization": "Bearer s3cret-token"}
        assert script.get("/", headers=auth).status_code == 200
        assert script.get("/evidence/7001-copy/query.jpg", headers=auth).status_code == 200
        pack = script.get(f"/matches/{board.main_id}/evidence-pack", headers=auth)
        assert pack.status_code == 200
        assert pack.content.startswith(b"PK")
        response = script.post(
            f"/matches/{board.main_id}/status",
            data={"status": "dismissed", "note": "by api"},
            headers=auth,
            follow_redirects=False,
        )
        assert response.status_code == 303
    assert board.store.get_match(board.main_id).status == TriageStatus.DISMISSED  # type: ignore[union-attr]


def test_login_form_sets_a_session_and_csrf_still_applies(
    board: BoardData, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(BOARD_TOKEN_ENV, "s3cret-token")
    app = create_app(board.settings, board.store)
    with TestClient(app, base_url="http://board.example") as browser:
        form = page(browser.get("/login?next=/accounts"))
        token = form.css("input[name=csrf]::attr(value)").get()
        assert token
        refused = browser.post("/login", data={"csrf": token, "token": "guess", "next": "/"})
        assert refused.status_code == 401
        no_csrf = browser.post("/login", data={"token": "s3cret-token"})
        assert no_csrf.status_code == 403
        response = browser.post(
            "/login",
            data={"csrf": token, "token": "s3cret-token", "next": "//evil.example/"},
            follow_redirects=False,
        )
        assert response.status_code == 303
        assert response.headers["location"] == "/"
        assert SESSION_COOKIE in response.cookies
        assert "samesite=strict" in response.headers["set-cookie"].lower()
        assert "httponly" in response.headers["set-cookie"].lower()
        assert browser.get("/accounts").status_code == 200
        stale = browser.post(
            f"/matches/{board.main_id}/status", data={"csrf": token, "status": "removed"}
        )
        assert stale.status_code == 403, "the pre-login CSRF token must die with that session"
        fresh = csrf_of(browser, f"/matches/{board.main_id}")
        ok = browser.post(
            f"/matches/{board.main_id}/status",
            data={"csrf": fresh, "status": "removed"},
            follow_redirects=False,
        )
        assert ok.status_code == 303
    assert board.store.get_match(board.main_id).status == TriageStatus.REMOVED  # type: ignore[union-attr]


# Real servers ----------------------------------------------------------------------------------
def test_real_uvicorn_server_serves_the_board(board: BoardData) -> None:
    with BoardServer(create_app(board.settings, board.store)) as server:
        assert server.port > 0
        with httpx2.Client(base_url=server.url) as http:
            doc = page(http.get("/"))
            assert len(doc.css("tr.match-row")) == 6
            part = http.get(f"/media/{board.clip_sha}", headers={"Range": "bytes=0-99"})
            assert part.status_code == 206
            assert part.content == board.clip_bytes[:100]
            assert http.get("/").headers["x-frame-options"] == "DENY"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli_env(home: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "REELWATCH_HOME": str(home), **extra}
    env.pop(BOARD_TOKEN_ENV, None)
    env.update(extra)
    return env


def test_cli_refuses_a_public_address_without_a_token(home: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "reelwatch", "board", "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        env=_cli_env(home),
        timeout=120,
    )
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert lines[0].startswith("reelwatch: error: refusing to serve the board on 0.0.0.0")
    assert BOARD_TOKEN_ENV in lines[0]


def test_cli_serves_the_board_on_loopback(board: BoardData) -> None:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "reelwatch", "board", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_cli_env(board.settings.home),
    )
    try:
        response = None
        for _ in range(600):
            if process.poll() is not None:
                break
            try:
                response = httpx2.get(f"http://127.0.0.1:{port}/?title=bridgerton")
                break
            except httpx2.TransportError:
                time.sleep(0.1)
        assert response is not None, process.communicate()
        assert set(page(response).css("tr.match-row::attr(data-match-id)").getall()) == {
            "tiktok:9001:bridgerton",
            "youtube:abc:bridgerton",
        }
    finally:
        process.terminate()
        process.wait(30)
