"""The replica as a client sees it: TikTok's page and API shapes, media, faults, the CLI."""

from __future__ import annotations

import json
import select
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from parsel import Selector

from crawler import crawl
from crawler.replica import Faults, ReplicaServer, challenge_id, load_items
from crawler.sources import ReplicaSource
from reelwatch.settings import PROJECT_ROOT, Settings
from tests.crawler.conftest import HOSTILE_CAPTION


def get(
    url: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def blob(page: bytes) -> dict[str, Any]:
    """The rehydration JSON, read the way a browser (and our spider) reads it."""
    text = Selector(text=page.decode()).css("script#__UNIVERSAL_DATA_FOR_REHYDRATION__::text").get()
    assert text is not None, "no rehydration script in the page"
    scope: dict[str, Any] = json.loads(text)["__DEFAULT_SCOPE__"]
    return scope


def test_tag_page_describes_the_challenge_and_embeds_the_first_page(replica: ReplicaServer) -> None:
    status, headers, page = get(f"{replica.base_url}/tag/DRAGONFILM")
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    scope = blob(page)
    detail = scope["webapp.challenge-detail"]
    assert detail["statusCode"] == 0
    assert detail["challengeInfo"]["challenge"]["id"] == challenge_id("dragonfilm")
    assert detail["challengeInfo"]["stats"]["videoCount"] == 5
    listing = scope["webapp.challenge-item-list"]
    assert [i["id"] for i in listing["itemList"]] == ["7300000000000000005", "7300000000000000004"]
    assert listing["hasMore"] is True
    play = listing["itemList"][0]["video"]["playAddr"]
    assert play == f"{replica.base_url}/video/7300000000000000005.mp4"


def test_unknown_tag_answers_like_tiktok_with_a_status_code(replica: ReplicaServer) -> None:
    status, _, page = get(f"{replica.base_url}/tag/nosuchtag")
    assert status == 200
    detail = blob(page)["webapp.challenge-detail"]
    assert detail["statusCode"] == 10205
    assert "challengeInfo" not in detail


def test_item_list_api_pages_newest_first_until_has_more_is_false(replica: ReplicaServer) -> None:
    cid = challenge_id("dragonfilm")
    ids, cursor, pages = [], "0", 0
    while True:
        _, headers, body = get(
            f"{replica.base_url}/api/challenge/item_list/?challengeID={cid}&cursor={cursor}&count=2"
        )
        assert headers["Content-Type"].startswith("application/json")
        page = json.loads(body)
        assert page["statusCode"] == 0
        ids += [i["id"] for i in page["itemList"]]
        pages += 1
        if not page["hasMore"]:
            break
        cursor = page["cursor"]
    assert pages == 3
    assert ids == [f"73000000000000000{n:02d}" for n in (5, 4, 3, 2, 1)]


def test_video_page_and_404(replica: ReplicaServer) -> None:
    status, _, page = get(f"{replica.base_url}/@user_3/video/7300000000000000003")
    assert status == 200
    detail = blob(page)["webapp.video-detail"]
    assert detail["statusCode"] == 0
    assert detail["itemInfo"]["itemStruct"]["id"] == "7300000000000000003"
    assert get(f"{replica.base_url}/@user_3/video/999")[0] == 404
    assert get(f"{replica.base_url}/nothing/here")[0] == 404


def test_hostile_caption_cannot_break_out_of_the_script(replica: ReplicaServer, site: Path) -> None:
    status, _, page = get(f"{replica.base_url}/@user_3/video/7300000000000000003")
    assert status == 200
    assert b"<script>alert(1)" not in page
    assert page.count(b"</script>") == 1
    desc = blob(page)["webapp.video-detail"]["itemInfo"]["itemStruct"]["desc"]
    assert desc.startswith(HOSTILE_CAPTION)
    assert desc == next(i["desc"] for i in load_items(site) if i["id"] == "7300000000000000003")


def test_media_supports_head_and_byte_ranges(replica: ReplicaServer, site: Path) -> None:
    url = f"{replica.base_url}/video/7300000000000000001.mp4"
    data = (site / "videos" / "7300000000000000001.mp4").read_bytes()

    status, headers, body = get(url)
    assert (status, headers["Content-Type"], body) == (200, "video/mp4", data)
    assert headers["Accept-Ranges"] == "bytes"

    status, headers, body = get(url, method="HEAD")
    assert (status, int(headers["Content-Length"]), body) == (200, len(data), b"")

    status, headers, body = get(url, {"Range": "bytes=10-19"})
    assert (status, body) == (206, data[10:20])
    assert headers["Content-Range"] == f"bytes 10-19/{len(data)}"

    status, _, body = get(url, {"Range": "bytes=-7"})
    assert (status, body) == (206, data[-7:])

    status, headers, _ = get(url, {"Range": f"bytes={len(data)}-"})
    assert status == 416
    assert headers["Content-Range"] == f"bytes */{len(data)}"

    assert get(f"{replica.base_url}/video/..%2Fsite.json.mp4")[0] == 404


def test_robots_txt_allows_everything(replica: ReplicaServer) -> None:
    status, _, body = get(f"{replica.base_url}/robots.txt")
    assert status == 200
    assert body.decode().splitlines() == ["User-agent: *", "Allow: /"]


def test_faults_come_in_order_then_the_api_recovers(site: Path) -> None:
    faults = Faults(rate_limit=1, retry_after="7", server_errors=1, garbage=1)
    api = f"/api/challenge/item_list/?challengeID={challenge_id('dragonfilm')}&cursor=0"
    with ReplicaServer(site, faults=faults) as server:
        status, headers, _ = get(server.base_url + api)
        assert (status, headers["Retry-After"]) == (429, "7")
        assert get(server.base_url + api)[0] == 500
        status, headers, body = get(server.base_url + api)
        assert status == 200
        assert headers["Content-Type"].startswith("text/html")
        with pytest.raises(json.JSONDecodeError):
            json.loads(body)
        status, _, body = get(server.base_url + api)
        assert status == 200
        assert len(json.loads(body)["itemList"]) == 5
    assert faults.api_requests == 4


def test_new_posts_appear_without_a_restart(tmp_path: Path, site: Path) -> None:
    copy = tmp_path / "site"
    copy.mkdir()
    (copy / "site.json").write_text((site / "site.json").read_text())
    with ReplicaServer(copy) as server:
        status, _, page = get(f"{server.base_url}/tag/fresh")
        assert status == 200
        assert "challengeInfo" not in blob(page)["webapp.challenge-detail"]
        items = load_items(copy)
        items[0]["challenges"].append({"id": challenge_id("fresh"), "title": "fresh"})
        (copy / "site.json").write_text(json.dumps({"items": items}))
        detail = blob(get(f"{server.base_url}/tag/fresh")[2])["webapp.challenge-detail"]
        assert detail["challengeInfo"]["stats"]["videoCount"] == 1


def test_module_entry_point_serves_a_site_in_another_process(
    site: Path, settings: Settings
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "crawler.replica", "--site", str(site), "--page-size", "2"],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready, "python -m crawler.replica printed no base URL within 30 s"
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:")
        ReplicaSource.set_base_url(settings, base_url)
        settings.crawl.download_delay = 0.0
        posts = crawl(settings, "replica", "#DragonFilm", limit=3)
        assert [p.url for p in posts] == [
            f"{base_url}/@user_{n}/video/73000000000000000{n:02d}" for n in (5, 4, 3)
        ]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0


def test_module_entry_point_reports_a_missing_site_in_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "crawler.replica", "--site", str(tmp_path / "none")],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: cannot serve")
    assert "Traceback" not in proc.stderr
