"""The youtube source: the Data API v3 path against the replica's ``/youtube/v3`` face, and
the yt-dlp path's mapping of the entries yt-dlp's own YouTube extractors yield.

Nothing here reaches youtube.com or googleapis.com: the API path is pointed at the replica
(``api_url``), and the yt-dlp entries are made by yt-dlp's own ``YoutubeTabIE`` parsing
renderer JSON offline, or copied from its ``_TESTS``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yt_dlp
from yt_dlp.extractor.youtube import YoutubeTabIE

from crawler import crawl_run, ytdlp_extractors
from crawler.replica import ALWAYS, Faults, ReplicaServer
from crawler.replica.feeds import API_KEY, SPENT_API_KEY, channel_id
from crawler.runner import CrawlInterrupted
from crawler.sources import Collector, CrawlJob, Query, SourceFailure, YouTubeSource
from crawler.sources.youtube import api_failure, youtube_entry_to_post
from crawler.sources.ytdlp import Listed, ytdlp_entry_to_post
from reelwatch.errors import InputError, PermanentError, TransientError
from reelwatch.settings import Settings
from tests.crawler.conftest import BASE_TIME, HOSTILE_CAPTION

OTHER = [f"73000000000000000{n:02d}" for n in (5, 3, 1)]
"""Posts tagged #other on the test site, newest first."""

StartApi = Callable[..., ReplicaServer]


@pytest.fixture
def api(settings: Settings, site: Path) -> Iterator[StartApi]:
    """Start a replica (with faults) and point the youtube source's API path at it."""
    servers: list[ReplicaServer] = []

    def start(faults: Faults | None = None, key: str = API_KEY, **block: Any) -> ReplicaServer:
        server = ReplicaServer(site, faults=faults)
        server.start()
        servers.append(server)
        YouTubeSource.set_base_url(settings, server.base_url)
        settings.crawl.sources["youtube"].update(
            api_key=key, api_url=f"{server.base_url}/youtube/v3", page_size=2, **block
        )
        settings.crawl.retry_times = 1
        settings.crawl.timeout_s = 10.0
        return server

    yield start
    for server in servers:
        server.stop()


# -- the Data API path ------------------------------------------------------------------------
def test_pages_through_search_and_fetches_details(settings: Settings, api: StartApi) -> None:
    server = api()
    result = crawl_run(settings, "youtube", "#other", limit=10)

    assert [p.post_id for p in result.posts] == OTHER
    # maxResults=2 for 3 results: two search.list pages, each followed by one videos.list.
    assert server.faults.refused["youtube.search"] == 2
    assert server.faults.refused["youtube.videos"] == 2
    assert result.stop == "exhausted"
    newest = result.posts[0]
    assert newest.url == f"{server.base_url}/watch?v={OTHER[0]}"
    assert newest.posted_at == datetime.fromtimestamp(BASE_TIME + 5 * 60, UTC)
    assert (newest.stats.views, newest.stats.likes, newest.stats.comments) == (500, 50, 10)
    assert newest.duration == 1.0
    assert newest.hashtags == ["dragonfilm", "other"]
    assert newest.author.id == channel_id("user_5")
    assert newest.author.nickname == "User 5"
    hostile = result.posts[1]
    assert hostile.caption == HOSTILE_CAPTION + " #DragonFilm #other"
    provenance = newest.provenance
    assert provenance.method == "api"
    assert provenance.raw["kind"] == "youtube#video"
    assert provenance.raw["statistics"]["viewCount"] == "500"
    assert provenance.source_url.startswith(f"{server.base_url}/youtube/v3/videos?")
    assert "key=" not in provenance.source_url, "the API key is a secret, not evidence"
    assert provenance.status == 200


def test_the_limit_stops_paging(settings: Settings, api: StartApi) -> None:
    server = api()
    result = crawl_run(settings, "youtube", "#other", limit=2)
    assert [p.post_id for p in result.posts] == OTHER[:2]
    assert result.stop == "limit"
    assert server.faults.refused["youtube.search"] == 1, "no page after the limit (100 units)"


def test_search_results_alone_are_unescaped(settings: Settings, api: StartApi) -> None:
    """Without videos.list, the caption comes from search.list, whose text is HTML-escaped."""
    server = api(statistics=False)
    result = crawl_run(settings, "youtube", "#other", limit=10)
    assert "youtube.videos" not in server.faults.refused
    hostile = result.posts[1]
    assert hostile.caption == (HOSTILE_CAPTION + " #DragonFilm #other")
    assert hostile.stats.views is None
    assert hostile.provenance.raw["kind"] == "youtube#searchResult"
    assert "&lt;" in hostile.provenance.raw["snippet"]["title"], "raw stays as sent"


def test_searches_words_and_lists_accounts(settings: Settings, api: StartApi) -> None:
    server = api()
    words = crawl_run(settings, "youtube", "search:scene recut", limit=10)
    assert [p.post_id for p in words.posts] == [f"73000000000000000{n:02d}" for n in (5, 4, 2, 1)]
    account = crawl_run(settings, "youtube", "@user_3", limit=10)
    assert [p.post_id for p in account.posts] == ["7300000000000000003"]
    assert account.posts[0].author.handle == "user_3"
    assert server.faults.refused["youtube.channels"] == 1
    with pytest.raises(InputError, match="no channel @nobody"):
        crawl_run(settings, "youtube", "@nobody", limit=10)


def test_max_age_asks_the_api_for_recent_posts_only(settings: Settings, api: StartApi) -> None:
    server = api()
    result = crawl_run(settings, "youtube", "#other", limit=10, max_age_s=86_400)
    assert result.posts == []
    assert result.too_old == 0, "publishedAfter: the API, not the collector, left them out"
    assert server.faults.refused["youtube.search"] == 1
    assert result.stop == "exhausted"


def test_a_wrong_key_is_one_clear_permanent_error(settings: Settings, api: StartApi) -> None:
    api(key="not-the-key")
    with pytest.raises(PermanentError) as caught:
        crawl_run(settings, "youtube", "#other", limit=5)
    assert caught.value.reason == "api_key"  # type: ignore[attr-defined]
    message = str(caught.value)
    assert "refused the key in crawl.sources.youtube.api_key" in message
    assert "API key not valid" in message
    assert "not-the-key" not in message


def test_a_spent_quota_says_so(settings: Settings, api: StartApi) -> None:
    api(key=SPENT_API_KEY)
    with pytest.raises(TransientError) as caught:
        crawl_run(settings, "youtube", "#other", limit=5)
    assert caught.value.reason == "quota"  # type: ignore[attr-defined]
    assert "quota used up" in str(caught.value)
    assert "midnight Pacific" in str(caught.value)


def test_server_errors_are_retried_then_transient(settings: Settings, api: StartApi) -> None:
    once = api(Faults(server_errors=1))
    assert [p.post_id for p in crawl_run(settings, "youtube", "#other", limit=10).posts] == OTHER
    assert once.faults.api_requests == 1 + 2 + 2, "the failed call was retried once"

    api(Faults(server_errors=ALWAYS))
    with pytest.raises(TransientError) as caught:
        crawl_run(settings, "youtube", "#other", limit=10)
    assert caught.value.reason == "http_status"  # type: ignore[attr-defined]
    assert "HTTP 500" in str(caught.value)


@dataclass
class FailAfter(Faults):
    """Answers the first ``ok`` API calls, then 500 for ever."""

    ok: int = 0

    def next_api_fault(self) -> str | None:
        with self._lock:
            n = self.api_requests
            self.api_requests += 1
        return None if n < self.ok else "server_error"


def test_a_failure_after_the_first_page_keeps_its_posts(settings: Settings, api: StartApi) -> None:
    api(FailAfter(ok=2))  # search.list page 1 and its videos.list; page 2 fails
    with pytest.raises(CrawlInterrupted) as caught:
        crawl_run(settings, "youtube", "#other", limit=10)
    assert [p.post_id for p in caught.value.posts] == OTHER[:2]
    assert "HTTP 500" in str(caught.value)


def test_garbage_instead_of_json_is_a_parse_error(settings: Settings, api: StartApi) -> None:
    api(Faults(garbage=1))
    with pytest.raises(TransientError) as caught:
        crawl_run(settings, "youtube", "#other", limit=5)
    assert caught.value.reason == "parse_error"  # type: ignore[attr-defined]
    assert "not a JSON object (text/html" in str(caught.value)


def _error(code: int, message: str, reason: str, **extra: str) -> dict[str, Any]:
    return {"code": code, "message": message, "errors": [{"reason": reason, **extra}]}


@pytest.mark.parametrize(
    ("status", "error", "reason", "kind"),
    [
        # The shape the Data API's error table suggests: 403 with reason keyInvalid.
        (403, _error(403, "Bad key", "keyInvalid"), "api_key", "permanent"),
        # What Google sent for a wrong key (SkyTube issue #612).
        (
            400,
            _error(400, "Bad Request", "keyInvalid", domain="usageLimits"),
            "api_key",
            "permanent",
        ),
        (
            403,
            _error(403, "The request is missing a valid API key.", "forbidden"),
            "api_key",
            "permanent",
        ),
        (
            403,
            _error(403, "API v3 has not been used in project 1", "accessNotConfigured"),
            "api_key",
            "permanent",
        ),
        (403, _error(403, "<a href='/q'>quota</a>", "quotaExceeded"), "quota", "transient"),
        (403, _error(403, "slow down", "rateLimitExceeded"), "http_status", "transient"),
        (
            503,
            _error(503, "The service is currently unavailable.", "backendError"),
            "http_status",
            "transient",
        ),
        (400, _error(400, "invalid page token", "invalidPageToken"), "http_status", "permanent"),
    ],
)
def test_api_errors_map_to_reasons(
    status: int, error: dict[str, Any], reason: str, kind: str
) -> None:
    import json

    failure = api_failure(status, json.dumps({"error": error}).encode(), "search.list")
    assert (failure.reason, failure.kind) == (reason, kind)
    assert "<a href" not in failure.message


def test_an_unusable_api_url_is_refused_before_crawling(settings: Settings) -> None:
    settings.crawl.sources["youtube"] = {"api_key": "k", "api_url": "file:///etc"}
    with pytest.raises(InputError, match="API_URL='file:///etc' is not an http"):
        crawl_run(settings, "youtube", "#other", limit=1)


# -- the yt-dlp path --------------------------------------------------------------------------
SHORTS_TAB_ENTRY: dict[str, Any] = {
    "title": "SHORT short",
    "view_count": 1200,
    "thumbnails": [
        {"url": "https://i.ytimg.com/vi/sSM9J5YH_60/frame0.jpg", "height": 1920, "width": 1080}
    ],
    "ie_key": "Youtube",
    "id": "sSM9J5YH_60",
    "_type": "url",
    "url": "https://www.youtube.com/shorts/sSM9J5YH_60",
}
"""One entry of a channel's Shorts tab in flat mode, as yt-dlp's YoutubeTabIE yields it from a
``shortsLockupViewModel`` (``_rich_entries``; its ``_TESTS`` show the same keys for
``/channel/UCiu-3thuViMebBjw_5nWYrA/shorts``): no channel, no date, no description."""


def _listed(query: str) -> Listed:
    return Listed(
        url="https://www.youtube.com/hashtag/bridgerton/shorts",
        user_agent="test-agent",
        query=Query.parse(query),
        watch="w",
        captured_at=datetime(2026, 1, 2, tzinfo=UTC),
    )


def test_maps_a_flat_shorts_tab_entry() -> None:
    post = youtube_entry_to_post(dict(SHORTS_TAB_ENTRY), _listed("@someeditor"))
    assert post is not None
    assert (post.platform, post.post_id) == ("youtube", "sSM9J5YH_60")
    assert post.url == "https://www.youtube.com/shorts/sSM9J5YH_60"
    assert post.caption == "SHORT short"
    assert post.stats.views == 1200
    assert post.posted_at is None
    assert post.author.handle == "someeditor", "an account listing names the author"
    assert post.provenance.method == "ytdlp"
    assert post.provenance.raw == SHORTS_TAB_ENTRY
    assert post.provenance.source_url == "https://www.youtube.com/hashtag/bridgerton/shorts"
    assert post.provenance.query == "@someeditor"
    assert post.watch == "w"


def _youtube_tab() -> YoutubeTabIE:
    params = {"quiet": True, "extractor_args": {"youtubetab": {"approximate_date": [""]}}}
    return YoutubeTabIE(yt_dlp.YoutubeDL(params, auto_init=False))


def test_maps_what_yt_dlp_makes_of_a_hashtag_page_item() -> None:
    """yt-dlp's own parser (offline) turns renderer JSON as YouTube's hashtag pages carry it
    into flat entries; the mapping takes what it gives."""
    renderer = {
        "videoId": "dQw4w9WgXcQ",
        "title": {"runs": [{"text": "Queen Charlotte recut #Bridgerton"}]},
        "descriptionSnippet": {"runs": [{"text": "fan edit #queencharlotte"}]},
        "lengthText": {"simpleText": "0:58"},
        "publishedTimeText": {"simpleText": "3 days ago"},
        "viewCountText": {"simpleText": "12,345 views"},
        "ownerText": {"runs": [{"text": "Some Editor"}]},
        "shortBylineText": {
            "runs": [
                {
                    "text": "Some Editor",
                    "navigationEndpoint": {
                        "browseEndpoint": {
                            "browseId": "UCabcdefghijklmnopqrstuv",
                            "canonicalBaseUrl": "/@someeditor",
                        },
                        "commandMetadata": {"webCommandMetadata": {"url": "/@someeditor"}},
                    },
                }
            ]
        },
        "navigationEndpoint": {
            "commandMetadata": {"webCommandMetadata": {"url": "/shorts/dQw4w9WgXcQ"}}
        },
    }
    (entry,) = _youtube_tab()._rich_entries({"content": {"videoRenderer": renderer}})
    post = youtube_entry_to_post(entry, _listed("#bridgerton"))
    assert post is not None
    assert post.post_id == "dQw4w9WgXcQ"
    assert post.url == "https://www.youtube.com/shorts/dQw4w9WgXcQ"
    assert post.caption == "Queen Charlotte recut #Bridgerton\n\nfan edit #queencharlotte"
    assert post.hashtags == ["bridgerton", "queencharlotte"]
    assert post.hashtag == "bridgerton"
    assert (post.author.id, post.author.handle) == ("UCabcdefghijklmnopqrstuv", "someeditor")
    assert post.author.nickname == "Some Editor"
    assert (post.duration, post.stats.views) == (58.0, 12345)
    assert post.posted_at is not None, "approximate_date gives listing entries a time"

    lockup = {
        "entityId": "shorts-shelf-item-sSM9J5YH_60",
        "onTap": {"innertubeCommand": {"reelWatchEndpoint": {"videoId": "sSM9J5YH_60"}}},
        "overlayMetadata": {
            "primaryText": {"content": "SHORT short"},
            "secondaryText": {"content": "1.2K views"},
        },
        "thumbnailViewModel": {
            "thumbnailViewModel": {
                "image": {"sources": [SHORTS_TAB_ENTRY["thumbnails"][0]]},
            }
        },
    }
    (entry,) = _youtube_tab()._rich_entries({"content": {"shortsLockupViewModel": lockup}})
    assert entry == SHORTS_TAB_ENTRY, "the fixture above is what this yt-dlp yields"


def test_entries_that_are_not_videos_are_skipped() -> None:
    playlist_link = {
        "_type": "url",
        "ie_key": "YoutubeTab",
        "id": "PL123",
        "url": "https://www.youtube.com/playlist?list=PL123",
        "title": "a playlist",
    }
    assert youtube_entry_to_post(playlist_link, _listed("#x")) is None
    assert youtube_entry_to_post({"_type": "playlist", "id": "x"}, _listed("#x")) is None


def test_lists_hashtag_tabs_accounts_and_searches_through_yt_dlp(settings: Settings) -> None:
    source = YouTubeSource(settings)
    base = "https://www.youtube.com"

    def targets(query: str) -> list[str]:
        return source.targets(CrawlJob(query=Query.parse(query), limit=7))

    assert targets("#Bridgerton") == [
        f"{base}/hashtag/bridgerton/shorts",
        f"{base}/hashtag/bridgerton",
    ]
    assert targets("@netflix") == [f"{base}/@netflix/shorts", f"{base}/@netflix/videos"]
    assert targets("search:queen charlotte") == ["ytsearchdate7:queen charlotte"]
    assert targets("https://www.youtube.com/playlist?list=PL1") == [
        "https://www.youtube.com/playlist?list=PL1"
    ]
    settings.crawl.sources["youtube"] = {"hashtag_tabs": ["all"], "search_key": "ytsearch"}
    source = YouTubeSource(settings)
    assert targets("#x") == [f"{base}/hashtag/x"]
    assert targets("search:x") == ["ytsearch7:x"]
    assert not source.uses_api(Query.parse("#x"))
    settings.crawl.sources["youtube"]["api_key"] = "k"
    assert YouTubeSource(settings).uses_api(Query.parse("#x"))
    assert not YouTubeSource(settings).uses_api(Query.parse("https://youtu.be/x")), (
        "the API cannot list a URL: URLs always go through yt-dlp"
    )


def test_a_missing_tab_does_not_hide_the_next_one(
    settings: Settings, replica: ReplicaServer
) -> None:
    """A channel without a Shorts tab answers 404 there; its videos tab still lists."""
    base = replica.base_url

    class TabsOnTheReplica(YouTubeSource):
        def targets(self, job: CrawlJob) -> list[str]:
            return [f"{base}/@nobody", f"{base}/feed/other.xml"]

        def entry_to_post(self, entry: dict[str, Any], listed: Listed) -> Any:
            return ytdlp_entry_to_post(entry, listed, platform=self.name)

    settings.crawl.download_delay = 0.0
    source = TabsOnTheReplica(settings)
    out = Collector(limit=10)
    source.discover(CrawlJob(query=Query.parse("@somebody"), limit=10), out)
    assert [p.post_id for p in out.posts] == [f"replica:{i}" for i in OTHER]

    class NoTabs(TabsOnTheReplica):
        def targets(self, job: CrawlJob) -> list[str]:
            return [f"{base}/@nobody", f"{base}/feed/nothing.xml"]

    with pytest.raises(SourceFailure) as caught:
        NoTabs(settings).discover(CrawlJob(query=Query.parse("@somebody"), limit=10), Collector(10))
    assert caught.value.reason == "not_found"
    assert "@nobody does not exist" in caught.value.message


def test_a_post_listed_through_the_api_downloads_from_the_replica(
    settings: Settings, api: StartApi, tmp_path: Path
) -> None:
    """``/watch?v=`` on the replica redirects to the post page, which ReplicaIE reads."""
    api()
    post = crawl_run(settings, "youtube", "#other", limit=1).posts[0]
    ydl = yt_dlp.YoutubeDL({"quiet": True, "no_warnings": True}, auto_init=False)
    with ydl:
        for cls in ytdlp_extractors():
            ydl.add_info_extractor(cls())
        ydl.add_default_info_extractors()
        info = ydl.extract_info(post.url, download=False)
    assert (info["extractor"], info["id"]) == ("replica", post.post_id)
