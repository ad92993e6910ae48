"""Instagram: parsing the web app's hashtag answers, and listing the replica's Instagram face
in Chromium with a saved login.

The JSON below follows the shapes Instagram's web client receives (``/api/v1/tags/web_info/``,
``/api/v1/tags/<tag>/sections/``, the older ``/graphql/query`` hashtag answer), trimmed to
the fields that matter plus a few that do not, as real answers carry many.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from crawler import crawl_run, reason_of
from crawler.replica import ReplicaServer
from crawler.replica.generate import generate_site
from crawler.replica.social import storage_state
from crawler.sources import InstagramSource
from crawler.sources.captured import Evidence
from crawler.sources.instagram import parse_answer, pk_of_shortcode, shortcode
from reelwatch.digest import sha256_file
from reelwatch.errors import PermanentError, TransientError
from reelwatch.settings import Settings
from workers.download import download

BASE = "https://www.instagram.com"
CDN = "https://scontent.cdninstagram.com/o1/v/t16/f2/m86"


def reel(pk: str, code: str, **extra: Any) -> dict[str, Any]:
    media = {
        "pk": pk,
        "id": f"{pk}_5512345",
        "code": code,
        "media_type": 2,
        "product_type": "clips",
        "taken_at": 1_717_000_000,
        "caption": {"pk": "1799", "text": "the dragon scene 🔥 #DragonFilm #edit", "created_at": 1},
        "user": {"pk": "5512345", "username": "fan.edits", "full_name": "Fan Edits"},
        "play_count": 48211,
        "ig_play_count": 48211,
        "like_count": 3120,
        "comment_count": 87,
        "video_duration": 14.933,
        "original_width": 720,
        "original_height": 1280,
        "video_versions": [
            {"type": 101, "width": 720, "height": 1280, "url": f"{CDN}/{pk}-720.mp4?efg=x"},
            {"type": 103, "width": 480, "height": 854, "url": f"{CDN}/{pk}-480.mp4?efg=x"},
        ],
        "image_versions2": {"candidates": [{"width": 720, "height": 1280, "url": "thumb.jpg"}]},
        "has_audio": True,
    }
    media.update(extra)
    return media


PHOTO = {
    "pk": "3390000000000000001",
    "code": "C8photo",
    "media_type": 1,
    "product_type": "feed",
    "taken_at": 1_717_000_100,
    "caption": {"text": "a still #dragonfilm"},
    "user": {"pk": "77", "username": "stills"},
    "like_count": 9,
    "image_versions2": {"candidates": [{"width": 1080, "height": 1080, "url": "p.jpg"}]},
}

PHOTO_CAROUSEL = {
    "pk": "3390000000000000002",
    "code": "C8album",
    "media_type": 8,
    "product_type": "carousel_container",
    "carousel_media": [{"pk": "1", "media_type": 1}, {"pk": "2", "media_type": 1}],
    "user": {"pk": "77", "username": "stills"},
}

VIDEO_CAROUSEL = {
    "pk": "3390000000000000003",
    "code": "C8mixed",
    "media_type": 8,
    "product_type": "carousel_container",
    "taken_at": 1_717_000_200,
    "caption": None,
    "user": {"pk": "78", "username": "mixer"},
    "carousel_media": [
        {"pk": "11", "media_type": 1},
        {
            "pk": "12",
            "media_type": 2,
            "video_duration": 7.5,
            "video_versions": [{"type": 101, "url": f"{CDN}/child.mp4"}],
        },
    ],
}

WEB_INFO = {
    "data": {
        "id": "17843831623058411",
        "name": "dragonfilm",
        "media_count": 51234,
        "top": {
            "sections": [
                {
                    "layout_type": "one_by_two_right",
                    "feed_type": "clips",
                    "layout_content": {
                        "one_by_two_item": {
                            "clips": {"id": "clips", "items": [{"media": reel("3391", "C8aaa")}]}
                        },
                        "fill_items": [{"media": PHOTO}, {"media": reel("3392", "C8bbb")}],
                    },
                },
                {
                    "layout_type": "media_grid",
                    "feed_type": "media",
                    "layout_content": {
                        "medias": [
                            {"media": PHOTO_CAROUSEL},
                            {"media": VIDEO_CAROUSEL},
                            {"media": reel("3393", "C8ccc", product_type="feed")},
                        ]
                    },
                },
            ],
            "more_available": True,
            "next_max_id": "QVFCa2xxYXN0",
            "next_page": 1,
            "next_media_ids": [],
        },
        "recent": {"sections": [], "more_available": False},
    },
    "status": "ok",
}


def evidence(url: str = f"{BASE}/api/v1/tags/web_info/?tag_name=dragonfilm") -> Evidence:
    return Evidence(
        source_url=url,
        status=200,
        headers={"content-type": "application/json; charset=utf-8"},
        user_agent="Mozilla/5.0 Chrome/131",
        query="#dragonfilm",
        hashtag="dragonfilm",
    )


def parse(data: Any) -> Any:
    return parse_answer(data, platform="instagram", base_url=BASE + "/", evidence=evidence())


def test_web_info_gives_video_posts_in_grid_order_and_skips_photos() -> None:
    page = parse(WEB_INFO)
    assert page is not None
    assert [p.post_id for p in page.posts] == ["3391", "3392", "3390000000000000003", "3393"]
    assert page.skipped == 2, "the photo and the photo album"
    assert (page.more, page.cursor) == (True, "QVFCa2xxYXN0")
    first = page.posts[0]
    assert first.url == f"{BASE}/reel/C8aaa/"
    assert first.caption == "the dragon scene 🔥 #DragonFilm #edit"
    assert first.hashtags == ["dragonfilm", "edit"]
    assert (first.author.handle, first.author.id, first.author.nickname) == (
        "fan.edits",
        "5512345",
        "Fan Edits",
    )
    assert first.posted_at == datetime.fromtimestamp(1_717_000_000, UTC)
    assert (first.stats.views, first.stats.likes, first.stats.comments) == (48211, 3120, 87)
    assert first.media_url == f"{CDN}/3391-720.mp4?efg=x", "the first (largest) version"
    assert first.duration == pytest.approx(14.933)
    assert first.provenance.raw["code"] == "C8aaa"
    assert first.provenance.source_url.endswith("tag_name=dragonfilm")
    assert first.provenance.method == "browser"
    assert first.hashtag == "dragonfilm"


def test_a_feed_video_is_a_p_url_and_a_carousel_gives_its_video() -> None:
    page = parse(WEB_INFO)
    assert page is not None
    by_id = {p.post_id: p for p in page.posts}
    assert by_id["3393"].url == f"{BASE}/p/C8ccc/"
    album = by_id["3390000000000000003"]
    assert album.url == f"{BASE}/p/C8mixed/"
    assert (album.media_url, album.duration, album.caption) == (f"{CDN}/child.mp4", 7.5, "")


def test_the_sections_answer_says_when_the_listing_ends() -> None:
    answer = {
        "sections": WEB_INFO["data"]["top"]["sections"][1:],  # type: ignore[index]
        "more_available": False,
        "next_max_id": None,
        "next_page": 2,
        "status": "ok",
    }
    page = parse(answer)
    assert page is not None
    assert [p.post_id for p in page.posts] == ["3390000000000000003", "3393"]
    assert (page.more, page.cursor) == (False, None)


def test_graphql_hashtag_nodes_are_read_too() -> None:
    answer = {
        "data": {
            "hashtag": {
                "name": "dragonfilm",
                "edge_hashtag_to_media": {
                    "count": 51234,
                    "page_info": {"has_next_page": True, "end_cursor": "QVFEabc"},
                    "edges": [
                        {
                            "node": {
                                "__typename": "GraphVideo",
                                "id": "2900000000000000001",
                                "shortcode": "Cabc123",
                                "is_video": True,
                                "taken_at_timestamp": 1_650_000_000,
                                "edge_media_to_caption": {
                                    "edges": [{"node": {"text": "old api #dragonfilm"}}]
                                },
                                "owner": {"id": "42"},
                                "video_view_count": 900,
                                "edge_liked_by": {"count": 12},
                                "edge_media_to_comment": {"count": 3},
                            }
                        },
                        {
                            "node": {
                                "__typename": "GraphImage",
                                "id": "2900000000000000002",
                                "shortcode": "Cimg",
                                "is_video": False,
                            }
                        },
                    ],
                },
            }
        },
        "status": "ok",
    }
    page = parse(answer)
    assert page is not None
    assert [p.post_id for p in page.posts] == ["2900000000000000001"]
    post = page.posts[0]
    assert post.url == f"{BASE}/p/Cabc123/"
    assert (post.caption, post.author.id) == ("old api #dragonfilm", "42")
    assert (post.stats.views, post.stats.likes, post.stats.comments) == (900, 12, 3)
    assert post.media_url is None, "the grid node has no video URL; the post page has"
    assert (page.more, page.cursor, page.skipped) == (True, "QVFEabc", 1)


def test_a_logged_out_answer_and_unrelated_answers() -> None:
    logged_out = parse(
        {"message": "Please wait a few minutes", "require_login": True, "status": "fail"}
    )
    assert logged_out is not None and logged_out.login_required
    assert parse({"data": {"user": {"id": "1"}}, "status": "ok"}) is None
    assert parse(["not", "an", "object"]) is None


def test_a_malformed_item_is_skipped_not_fatal() -> None:
    answer = {"sections": [{"layout_content": {"medias": [{"media": {"media_type": 2}}]}}]}
    page = parse({**answer, "more_available": False})
    assert page is not None and page.posts == [] and page.skipped == 1


def test_a_media_without_code_gets_its_shortcode_from_the_pk() -> None:
    media = reel("3300000000000000007", "")
    page = parse({"sections": [{"layout_content": {"medias": [{"media": media}]}}]})
    assert page is not None
    code = shortcode("3300000000000000007")
    assert pk_of_shortcode(code) == 3300000000000000007
    assert (shortcode(0), shortcode(63), shortcode(64 * 64 + 1)) == ("A", "_", "BAB")
    assert page.posts[0].url == f"{BASE}/reel/{code}/"


def test_no_saved_session_fails_at_once_with_the_command_to_run(settings: Settings) -> None:
    InstagramSource.set_base_url(settings, "http://127.0.0.1:9")
    with pytest.raises(PermanentError) as caught:
        crawl_run(settings, "instagram", "#dragonfilm", limit=5)
    message = str(caught.value)
    assert reason_of(caught.value) == "login_expired"
    assert message.startswith("instagram needs a logged-in session: run `reelwatch browser login")
    assert "\n" not in message
    assert InstagramSource(settings).canary_query() is None, "sources check skips it"


# -- in Chromium, against the replica ---------------------------------------------------------
POSTS = 8


@pytest.fixture(scope="module")
def tag_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_site(tmp_path_factory.mktemp("ig-site"), POSTS, "bridgerton")


@pytest.fixture
def server(tag_site: Path) -> Iterator[ReplicaServer]:
    with ReplicaServer(tag_site, page_size=3) as running:
        yield running


def logged_in(settings: Settings, server: ReplicaServer, **extra: object) -> Path:
    InstagramSource.set_base_url(settings, server.base_url)
    settings.crawl.sources["instagram"].update(scroll_wait_s=1.0, idle_scrolls=2, **extra)
    state = settings.home / "browser" / "instagram.json"
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps(storage_state(server.base_url, server.secret, "instagram")))
    return state


@pytest.mark.browser
def test_scrolls_through_the_tag_pages_to_the_limit(
    settings: Settings, server: ReplicaServer
) -> None:
    state = logged_in(settings, server)
    result = crawl_run(settings, "instagram", "#Bridgerton", limit=7)
    ids = [p.post_id for p in result.posts]
    assert ids == [f"7400{n:015d}" for n in range(7)]
    assert result.stop == "limit"
    assert len(server.served_pages) >= 3, "web_info, then sections pages as the page scrolled"
    post = result.posts[4]
    assert "/api/v1/tags/bridgerton/sections/" in post.provenance.source_url
    assert post.provenance.raw["media_type"] == 2
    assert "HeadlessChrome" not in post.provenance.user_agent
    shot = settings.home / str(post.provenance.screenshot)
    assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o600, "the session is written back 0600"


@pytest.mark.browser
def test_lists_to_the_end_and_skips_the_photo(settings: Settings, server: ReplicaServer) -> None:
    logged_in(settings, server, screenshots=False)
    result = crawl_run(settings, "instagram", "#bridgerton", limit=50)
    assert len(result.posts) == POSTS
    assert result.stop == "exhausted", "more_available false ended it, not idle scrolling"
    assert all(p.provenance.raw["media_type"] == 2 for p in result.posts)


@pytest.mark.browser
def test_a_stale_session_meets_the_login_wall_in_one_line(
    settings: Settings, server: ReplicaServer, tag_site: Path
) -> None:
    with ReplicaServer(tag_site) as other:  # another run of the platform: another secret
        stale = storage_state(server.base_url, other.secret, "instagram")
    state = logged_in(settings, server)
    state.write_text(json.dumps(stale))
    with pytest.raises(PermanentError) as caught:
        crawl_run(settings, "instagram", "#bridgerton", limit=5)
    message = str(caught.value)
    assert reason_of(caught.value) == "login_expired"
    assert "run `reelwatch browser login instagram`" in message
    assert "login page (/accounts/login/)" in message and "\n" not in message
    assert server.faults.refused["instagram_login_wall"] == 1


@pytest.mark.browser
def test_a_challenge_page_stops_the_crawl(settings: Settings, server: ReplicaServer) -> None:
    logged_in(settings, server)
    server.captcha = True
    with pytest.raises(TransientError) as caught:
        crawl_run(settings, "instagram", "#bridgerton", limit=5)
    assert reason_of(caught.value) == "captcha"
    assert server.faults.refused["captcha"] == 1


@pytest.mark.browser
def test_a_listed_post_downloads_through_its_post_page(
    settings: Settings, server: ReplicaServer, tag_site: Path
) -> None:
    logged_in(settings, server, screenshots=False)
    post = crawl_run(settings, "instagram", "#bridgerton", limit=1).posts[0]
    got = download(settings, post.url)
    assert got.sha256 == sha256_file(tag_site / "videos" / f"{post.post_id}.mp4")
