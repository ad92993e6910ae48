"""TikTok in a real Chromium against the signed replica: the page signs its own calls.

The replica answers unsigned item-list calls with an empty 200, as TikTok does, so only a
client that runs the tag page's script lists anything.
"""

from __future__ import annotations

import json
import os
import stat
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from crawler import crawl_run, reason_of
from crawler.replica import ReplicaServer
from crawler.replica.generate import generate_site
from crawler.sources import TikTokSource
from reelwatch.digest import sha256_file
from reelwatch.errors import PermanentError, TransientError
from reelwatch.settings import Settings
from workers.download import download

pytestmark = pytest.mark.browser

POSTS = 80


@pytest.fixture(scope="module")
def big_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_site(tmp_path_factory.mktemp("signed-site"), POSTS, "bridgerton")


@pytest.fixture
def signed(big_site: Path) -> Iterator[ReplicaServer]:
    with ReplicaServer(big_site, page_size=20, signed=True) as server:
        yield server


def point(settings: Settings, server: ReplicaServer, **extra: object) -> Settings:
    TikTokSource.set_base_url(settings, server.base_url)
    settings.crawl.sources["tiktok"].update(scroll_wait_s=2.0, idle_scrolls=2, **extra)
    return settings


def test_lists_60_posts_through_scrolled_pages_of_at_most_20(
    settings: Settings, signed: ReplicaServer
) -> None:
    result = crawl_run(point(settings, signed), "tiktok", "#Bridgerton", limit=60)
    ids = [p.post_id for p in result.posts]
    assert len(ids) == 60 and len(set(ids)) == 60
    assert ids == [f"7400{n:015d}" for n in range(60)], "newest first, in the platform's order"
    assert len(signed.served_pages) >= 3 and max(signed.served_pages) <= 20
    assert signed.faults.refused.get("unsigned", 0) == 0, "every call the page made was signed"
    assert result.stop == "limit"
    post = result.posts[0]
    assert post.provenance.method == "browser"
    assert "X-Bogus=" in post.provenance.source_url, "kept the URL of the page's own call"
    assert post.provenance.status == 200
    headers = {k.lower(): v for k, v in post.provenance.headers.items()}
    assert headers["content-type"].startswith("application/json")
    assert not any(k.lower() == "set-cookie" for k in post.provenance.headers)
    assert "Chrome/" in post.provenance.user_agent
    assert "HeadlessChrome" not in post.provenance.user_agent
    assert post.provenance.raw["id"] == post.post_id
    shot = settings.home / str(post.provenance.screenshot)
    assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_plain_http_path_gets_nothing_and_says_why(
    settings: Settings, signed: ReplicaServer
) -> None:
    point(settings, signed, mode="http")
    with pytest.raises(PermanentError) as caught:
        crawl_run(settings, "tiktok", "#bridgerton", limit=60)
    message = str(caught.value)
    assert "answered unsigned item-list requests with nothing" in message
    assert "\n" not in message
    assert reason_of(caught.value) == "empty_body"
    assert signed.faults.refused["unsigned"] >= 1


def test_a_captcha_stops_the_crawl_in_one_line_without_hammering(
    settings: Settings, signed: ReplicaServer
) -> None:
    signed.captcha = True
    with pytest.raises(TransientError) as caught:
        crawl_run(point(settings, signed), "tiktok", "#bridgerton", limit=60)
    assert reason_of(caught.value) == "captcha"
    assert "captcha" in str(caught.value) and "\n" not in str(caught.value)
    assert signed.faults.refused["captcha"] == 1, "one look at the captcha, no retries"


def test_a_captcha_that_appears_between_crawls_is_reported_not_retried(
    settings: Settings, signed: ReplicaServer
) -> None:
    """A platform that starts challenging a client it served a moment ago: the next crawl
    stops at the first captcha page."""
    point(settings, signed, screenshots=False)
    first = crawl_run(settings, "tiktok", "#bridgerton", limit=20)
    assert len(first.posts) == 20
    signed.captcha = True
    with pytest.raises(TransientError, match="captcha"):
        crawl_run(settings, "tiktok", "#bridgerton", limit=20)
    assert signed.faults.refused["captcha"] == 1


def test_stops_at_posts_older_than_the_max_age(settings: Settings, tmp_path: Path) -> None:
    site = generate_site(tmp_path / "site", 50, "fresh", now=int(time.time()))
    with ReplicaServer(site, page_size=20, signed=True) as server:
        point(settings, server, screenshots=False)
        result = crawl_run(settings, "tiktok", "#fresh", limit=50, max_age_s=10 * 60 + 30)
    assert [p.post_id for p in result.posts] == [f"7400{n:015d}" for n in range(11)]
    assert result.stop == "max_age"
    # Tag pages are not strictly chronological, so a page with some fresh posts is read on;
    # the first page with none stops the scrolling (50 posts would take 3 pages).
    assert server.served_pages == [20, 20]


def test_cookies_live_on_in_a_private_storage_state_file(
    settings: Settings, signed: ReplicaServer
) -> None:
    state = settings.home / "browser" / "tiktok.json"
    point(settings, signed, storage_state=str(state), screenshots=False)
    crawl_run(settings, "tiktok", "#bridgerton", limit=5)
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o600
    first = state.read_text()
    assert "msToken" in first
    crawl_run(settings, "tiktok", "#bridgerton", limit=5)
    token = next(c for c in json.loads(first)["cookies"] if c["name"] == "msToken")
    assert token["value"] in state.read_text(), "the second crawl reused the session"
    assert signed.faults.refused["sessions_started"] == 1


def test_a_persistent_profile_keeps_the_session_between_crawls(
    settings: Settings, signed: ReplicaServer
) -> None:
    profile = settings.home / "browser" / "tiktok-profile"
    point(settings, signed, profile_dir=str(profile), screenshots=False)
    for _ in range(2):
        assert len(crawl_run(settings, "tiktok", "#bridgerton", limit=5).posts) == 5
    assert signed.faults.refused["sessions_started"] == 1, "the second crawl came back known"
    assert any(profile.iterdir())


def test_without_saved_state_each_crawl_is_a_new_session(
    settings: Settings, signed: ReplicaServer
) -> None:
    point(settings, signed, screenshots=False)
    for _ in range(2):
        crawl_run(settings, "tiktok", "#bridgerton", limit=5)
    assert signed.faults.refused["sessions_started"] == 2


def test_a_video_page_url_lists_its_post(settings: Settings, signed: ReplicaServer) -> None:
    url = f"{signed.base_url}/@creator_3/video/7400{3:015d}"
    result = crawl_run(point(settings, signed), "tiktok", url, limit=5)
    assert [p.post_id for p in result.posts] == [f"7400{3:015d}"]


def test_an_expired_media_url_is_re_resolved_from_the_post_page(
    settings: Settings, big_site: Path
) -> None:
    with ReplicaServer(big_site, page_size=20, signed=True, media_ttl_s=1.0) as server:
        point(settings, server, screenshots=False)
        post = crawl_run(settings, "tiktok", "#bridgerton", limit=1).posts[0]
        assert post.media_url and "expire=" in post.media_url
        time.sleep(1.5)
        request = urllib.request.Request(post.media_url, headers={"Referer": post.url})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 403
        settings.download.allow_private_hosts = True
        got = download(settings, post.url)
        assert got.sha256 == sha256_file(big_site / "videos" / f"{post.post_id}.mp4")
        assert server.faults.refused["media_refused"] == 1, "only the stale URL was refused"
