"""X: parsing SearchTimeline answers, and listing the replica's X face in Chromium with a
saved login.

The JSON below follows what x.com's web client receives from
``/i/api/graphql/<id>/SearchTimeline`` (instructions, entries, cursors, tweets wrapped in
``TweetWithVisibilityResults``, users before and after X moved ``screen_name`` to ``core``),
trimmed to the fields that matter plus a few that do not.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from crawler import crawl_run, reason_of
from crawler.replica import ReplicaServer
from crawler.replica.generate import generate_site
from crawler.replica.social import storage_state
from crawler.sources import Query, XSource
from crawler.sources.captured import Evidence
from crawler.sources.x import parse_answer, posted_at, search_terms
from reelwatch.errors import PermanentError
from reelwatch.settings import Settings

BASE = "https://x.com"
VIDEO = "https://video.twimg.com/ext_tw_video/1845/pu/vid/avc1"


def user(handle: str, *, new_shape: bool = True) -> dict[str, Any]:
    names = {"screen_name": handle, "name": handle.title(), "created_at": "Tue Apr 21 2009"}
    result: dict[str, Any] = {
        "__typename": "User",
        "rest_id": f"9{len(handle)}",
        "legacy": {"followers_count": 1200, "description": ""},
    }
    if new_shape:
        result["core"] = names
    else:
        result["legacy"].update(names)
    return {"result": result}


def tweet(tid: str, media: list[dict[str, Any]] | None, handle: str = "clipper", **legacy: Any):
    body: dict[str, Any] = {
        "id_str": tid,
        "full_text": "that scene again #DragonFilm https://t.co/abc",
        "created_at": "Wed Oct 10 20:19:24 +0000 2018",
        "favorite_count": 310,
        "retweet_count": 44,
        "reply_count": 12,
        "quote_count": 2,
        "lang": "en",
        "entities": {"hashtags": [{"indices": [18, 29], "text": "DragonFilm"}]},
    }
    if media is not None:
        body["extended_entities"] = {"media": media}
    body.update(legacy)
    return {
        "__typename": "Tweet",
        "rest_id": tid,
        "core": {"user_results": user(handle)},
        "views": {"count": "20480", "state": "EnabledWithCount"},
        "legacy": body,
    }


MP4 = {
    "type": "video",
    "id_str": "1845",
    "media_key": "7_1845",
    "video_info": {
        "aspect_ratio": [9, 16],
        "duration_millis": 15015,
        "variants": [
            {"content_type": "application/x-mpegURL", "url": f"{VIDEO}/pl/a.m3u8?tag=12"},
            {"bitrate": 632000, "content_type": "video/mp4", "url": f"{VIDEO}/320x568/a.mp4"},
            {"bitrate": 2176000, "content_type": "video/mp4", "url": f"{VIDEO}/720x1280/a.mp4"},
            {"bitrate": 950000, "content_type": "video/mp4", "url": f"{VIDEO}/480x852/a.mp4"},
        ],
    },
}
GIF = {
    "type": "animated_gif",
    "video_info": {
        "variants": [
            {"bitrate": 0, "content_type": "video/mp4", "url": "https://video.twimg.com/g.mp4"}
        ]
    },
}
PHOTO = {"type": "photo", "media_url_https": "https://pbs.twimg.com/media/x.jpg"}


def entry(result: dict[str, Any]) -> dict[str, Any]:
    return {
        "entryId": f"tweet-{result.get('rest_id')}",
        "sortIndex": "1",
        "content": {
            "entryType": "TimelineTimelineItem",
            "__typename": "TimelineTimelineItem",
            "itemContent": {
                "itemType": "TimelineTweet",
                "__typename": "TimelineTweet",
                "tweet_results": {"result": result},
            },
        },
    }


def cursor(kind: str, value: str) -> dict[str, Any]:
    return {
        "entryId": f"cursor-{kind.lower()}-{value}",
        "content": {"entryType": "TimelineTimelineCursor", "value": value, "cursorType": kind},
    }


def timeline(instructions: list[dict[str, Any]]) -> dict[str, Any]:
    inner = {"timeline": {"instructions": instructions}}
    return {"data": {"search_by_raw_query": {"search_timeline": inner}}}


WRAPPED = {
    "__typename": "TweetWithVisibilityResults",
    "tweet": tweet("1002", [GIF], handle="gifs"),
    "limitedActionResults": {"limited_actions": [{"action": "Reply"}]},
}
OLD_USER = tweet("1003", [PHOTO, MP4])
OLD_USER["core"] = {"user_results": user("legacy_shape", new_shape=False)}
LONG = tweet("1004", [MP4])
LONG["note_tweet"] = {"note_tweet_results": {"result": {"text": "a long text " * 40}}}

FIRST_PAGE = timeline(
    [
        {"type": "TimelineClearCache"},
        {
            "type": "TimelineAddEntries",
            "entries": [
                entry(tweet("1001", [MP4])),
                entry(WRAPPED),
                entry(tweet("1005", [PHOTO])),
                entry(tweet("1006", None)),
                entry({"__typename": "TweetTombstone", "tombstone": {}}),
                entry(OLD_USER),
                entry(LONG),
                cursor("Top", "DAADDAABCgABtop"),
                cursor("Bottom", "DAADDAABCgABbottom1"),
            ],
        },
    ]
)


def evidence() -> Evidence:
    return Evidence(
        source_url=f"{BASE}/i/api/graphql/abc/SearchTimeline?variables=%7B%7D",
        status=200,
        headers={"content-type": "application/json;charset=utf-8"},
        user_agent="Mozilla/5.0 Chrome/131",
        query="#dragonfilm",
        hashtag="dragonfilm",
    )


def parse(data: Any) -> Any:
    return parse_answer(data, platform="x", base_url=BASE, evidence=evidence())


def test_a_first_page_gives_its_video_tweets_and_the_bottom_cursor() -> None:
    page = parse(FIRST_PAGE)
    assert [p.post_id for p in page.posts] == ["1001", "1002", "1003", "1004"]
    assert page.skipped == 3, "a photo tweet, a text tweet and a tombstone"
    assert page.cursor == "DAADDAABCgABbottom1"
    assert page.more is None, "X never says there is no more; an empty page does"
    first = page.posts[0]
    assert first.url == f"{BASE}/clipper/status/1001"
    assert first.media_url == f"{VIDEO}/720x1280/a.mp4", "the highest-bitrate MP4"
    assert first.duration == pytest.approx(15.015)
    assert first.posted_at == datetime(2018, 10, 10, 20, 19, 24, tzinfo=UTC)
    assert first.caption == "that scene again #DragonFilm https://t.co/abc"
    assert first.hashtags == ["dragonfilm"]
    assert (first.stats.views, first.stats.likes, first.stats.shares, first.stats.comments) == (
        20480,
        310,
        44,
        12,
    )
    assert (first.author.handle, first.author.nickname, first.author.followers) == (
        "clipper",
        "Clipper",
        1200,
    )
    assert first.provenance.raw["rest_id"] == "1001"


def test_wrapped_results_old_user_shapes_and_long_texts() -> None:
    posts = {p.post_id: p for p in parse(FIRST_PAGE).posts}
    gif = posts["1002"]
    assert gif.url == f"{BASE}/gifs/status/1002"
    assert gif.media_url == "https://video.twimg.com/g.mp4"
    assert gif.provenance.raw["__typename"] == "TweetWithVisibilityResults", "kept as sent"
    assert posts["1003"].url == f"{BASE}/legacy_shape/status/1003"
    assert posts["1003"].media_url == f"{VIDEO}/720x1280/a.mp4", "the video, not the photo"
    assert posts["1004"].caption == "a long text " * 40


def test_later_pages_carry_their_cursor_in_a_replace_entry() -> None:
    page = parse(
        timeline(
            [
                {"type": "TimelineAddEntries", "entries": [entry(tweet("999", [MP4]))]},
                {
                    "type": "TimelineReplaceEntry",
                    "entry_id_to_replace": "cursor-bottom-x",
                    "entry": cursor("Bottom", "DAADDAABCgABbottom2"),
                },
            ]
        )
    )
    assert [p.post_id for p in page.posts] == ["999"]
    assert page.cursor == "DAADDAABCgABbottom2"


def test_a_page_of_cursors_only_ends_the_listing() -> None:
    end = timeline(
        [{"type": "TimelineAddEntries", "entries": [cursor("Top", "t"), cursor("Bottom", "b")]}]
    )
    page = parse(end)
    assert (page.posts, page.more) == ([], False)


def test_an_authentication_error_means_logged_out() -> None:
    page = parse({"errors": [{"code": 32, "message": "Could not authenticate you."}]})
    assert page.login_required
    assert parse([]) is None


def test_x_dates_and_what_is_typed_into_the_search_box() -> None:
    assert posted_at("Thu Jan 02 03:04:05 +0000 2025") == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert posted_at("yesterday") is None
    assert search_terms(Query.parse("#DragonFilm")) == "#dragonfilm"
    assert search_terms(Query.parse("search:dragon  scene")) == "dragon scene"
    assert search_terms(Query.parse("@clipper")) == "from:clipper"


# -- in Chromium, against the replica ---------------------------------------------------------
POSTS = 7


@pytest.fixture(scope="module")
def tag_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_site(tmp_path_factory.mktemp("x-site"), POSTS, "bridgerton")


@pytest.fixture
def server(tag_site: Path) -> Iterator[ReplicaServer]:
    with ReplicaServer(tag_site, page_size=2) as running:
        yield running


def logged_in(settings: Settings, server: ReplicaServer, **extra: object) -> Path:
    XSource.set_base_url(settings, server.base_url)
    block = settings.crawl.sources["x"]
    block.update({"scroll_wait_s": 1.0, "idle_scrolls": 2, "screenshots": False, **extra})
    state = settings.home / "browser" / "x.json"
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps(storage_state(server.base_url, server.secret, "x")))
    return state


@pytest.mark.browser
def test_scrolls_the_latest_tweets_to_the_limit(settings: Settings, server: ReplicaServer) -> None:
    logged_in(settings, server, screenshots=True)
    result = crawl_run(settings, "x", "#bridgerton", limit=5)
    assert [p.post_id for p in result.posts] == [f"7400{n:015d}" for n in range(5)]
    assert result.stop == "limit"
    assert server.served_pages[:3] == [2, 2, 2], "three SearchTimeline pages of two"
    later = result.posts[3].provenance.source_url
    variables = json.loads(parse_qs(urlsplit(later).query)["variables"][0])
    assert variables["rawQuery"] == "#bridgerton filter:videos"
    assert variables["cursor"], "later pages were asked with the bottom cursor"
    wrapped = [p for p in result.posts if p.provenance.raw["__typename"] != "Tweet"]
    assert wrapped, "some results came wrapped and were still read"
    shot = settings.home / str(result.posts[0].provenance.screenshot)
    assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.browser
def test_lists_to_the_end_then_stops(settings: Settings, server: ReplicaServer) -> None:
    logged_in(settings, server)
    result = crawl_run(settings, "x", "#bridgerton", limit=50)
    assert len(result.posts) == POSTS
    assert result.stop == "exhausted", "the empty last page ended it"


@pytest.mark.browser
def test_words_and_accounts_are_searches(settings: Settings, server: ReplicaServer) -> None:
    logged_in(settings, server)
    words = crawl_run(settings, "x", "search:post 3 of", limit=10)
    assert [p.post_id for p in words.posts] == [f"7400{3:015d}"]
    account = crawl_run(settings, "x", "@creator_2", limit=10)
    assert [p.author.handle for p in account.posts] == ["creator_2"]
    assert [p.post_id for p in account.posts] == [f"7400{2:015d}"]


@pytest.mark.browser
def test_a_stale_session_meets_the_login_wall(
    settings: Settings, server: ReplicaServer, tag_site: Path
) -> None:
    with ReplicaServer(tag_site) as other:
        stale = storage_state(server.base_url, other.secret, "x")
    logged_in(settings, server).write_text(json.dumps(stale))
    with pytest.raises(PermanentError) as caught:
        crawl_run(settings, "x", "#bridgerton", limit=5)
    message = str(caught.value)
    assert reason_of(caught.value) == "login_expired"
    assert message.startswith("x needs a logged-in session: run `reelwatch browser login x`")
    assert "/i/flow/login" in message and "\n" not in message
    assert server.faults.refused["x_login_wall"] == 1


@pytest.mark.browser
def test_a_session_without_its_csrf_cookie_is_refused_by_the_api(
    settings: Settings, server: ReplicaServer
) -> None:
    state = logged_in(settings, server)
    saved = json.loads(state.read_text())
    saved["cookies"] = [c for c in saved["cookies"] if c["name"] != "ct0"]
    state.write_text(json.dumps(saved))
    with pytest.raises(PermanentError) as caught:
        crawl_run(settings, "x", "#bridgerton", limit=5)
    assert reason_of(caught.value) == "login_expired"
    assert "its API answered HTTP 403" in str(caught.value)
