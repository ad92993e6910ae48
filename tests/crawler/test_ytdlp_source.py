"""The ytdlp source: real yt-dlp listing the replica's RSS feed and account pages, flat."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from crawler import crawl_run
from crawler.replica import ALWAYS, Faults, ReplicaServer
from crawler.replica.site import SITE_FILE, ReplicaVideo, to_item
from crawler.runner import CrawlInterrupted
from crawler.sources import CrawlJob, Query, YtDlpSource
from crawler.sources.ytdlp import FlatListing, Listed, hashtags_in, ytdlp_entry_to_post
from reelwatch.errors import InputError, PermanentError
from reelwatch.settings import Settings
from tests.crawler.conftest import BASE_TIME, HOSTILE_CAPTION

OTHER = [f"73000000000000000{n:02d}" for n in (5, 3, 1)]


@pytest.fixture
def quick(settings: Settings) -> Settings:
    settings.crawl.download_delay = 0.0
    settings.crawl.timeout_s = 10.0
    return settings


def _requested_paths(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Paths the replica answered, from its request log (it runs in this process)."""
    found = []
    for record in caplog.records:
        if record.name == "crawler.replica.server":
            m = re.search(r'"(?:GET|HEAD) (\S+) HTTP', record.getMessage())
            if m:
                found.append(m.group(1))
    return found


def test_lists_an_rss_feed_flat(
    quick: Settings, replica: ReplicaServer, caplog: pytest.LogCaptureFixture
) -> None:
    feed = f"{replica.base_url}/feed/other.xml"
    with caplog.at_level(logging.DEBUG, logger="crawler.replica.server"):
        result = crawl_run(quick, "ytdlp", feed, limit=10)

    assert [p.post_id for p in result.posts] == [f"replica:{i}" for i in OTHER]
    assert result.stop == "exhausted"
    hostile = result.posts[1]
    assert hostile.url == f"{replica.base_url}/@user_3/video/{OTHER[1]}"
    # XML turns the caption's CR LF into LF; the rest survives the feed.
    assert hostile.caption == (HOSTILE_CAPTION + " #DragonFilm #other").replace("\r\n", "\n")
    assert hostile.hashtags == ["dragonfilm", "other"]
    assert hostile.posted_at == datetime.fromtimestamp(BASE_TIME + 3 * 60, UTC)
    assert hostile.provenance.method == "ytdlp"
    assert hostile.provenance.source_url == feed
    assert hostile.provenance.raw["_type"] == "url_transparent"
    assert "Mozilla" in hostile.provenance.user_agent, "yt-dlp's own browser user agent"
    paths = _requested_paths(caplog)
    assert paths == ["/feed/other.xml"], "flat: no post page was opened"


@pytest.fixture
def prolific_site(tmp_path: Path, clips: list[Path]) -> Path:
    """300 posts by one account (the feed and account pages need no media files)."""
    items = [
        to_item(
            ReplicaVideo(
                id=f"74{n:017d}",
                user="prolific",
                caption=f"take {n} #marathon",
                hashtags=["marathon"],
                path=clips[0],
                create_time=BASE_TIME + n,
                duration=2,
                width=32,
                height=32,
            )
        )
        for n in range(300)
    ]
    (tmp_path / SITE_FILE).write_text(json.dumps({"items": items}))
    return tmp_path


def test_lists_an_account_page_as_a_playlist_and_stops_at_the_limit(
    quick: Settings, prolific_site: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        ReplicaServer(prolific_site, page_size=20) as server,
        caplog.at_level(logging.DEBUG, logger="crawler.replica.server"),
    ):
        base = server.base_url
        result = crawl_run(quick, "ytdlp", f"{base}/@prolific", limit=25)

    assert [p.post_id for p in result.posts] == [f"replica:74{n:017d}" for n in range(299, 274, -1)]
    assert result.stop == "limit"
    first = result.posts[0]
    assert first.url == f"{base}/@prolific/video/74{299:017d}"
    assert (first.author.handle, first.caption, first.duration) == (
        "prolific",
        "take 299 #marathon",
        2.0,
    )
    assert first.provenance.raw["ie_key"] == "Replica"
    assert first.provenance.source_url == f"{base}/@prolific"
    # The embedded first page (20) and one API page (30 asked, 5 used): 300 posts, 2 requests.
    assert server.faults.api_requests == 1
    paths = _requested_paths(caplog)
    assert paths[0] == "/@prolific"
    assert len(paths) == 2 and paths[1].startswith("/api/post/item_list/?")
    assert not any("/video/" in p for p in paths), "flat: no post page was opened"


def test_a_listing_that_fails_midway_keeps_what_it_found(
    quick: Settings, prolific_site: Path
) -> None:
    faults = Faults(server_errors=ALWAYS)
    with (
        ReplicaServer(prolific_site, page_size=20, faults=faults) as server,
        pytest.raises(CrawlInterrupted) as caught,
    ):
        crawl_run(quick, "ytdlp", f"{server.base_url}/@prolific", limit=50)
    assert len(caught.value.posts) == 20, "the embedded first page is kept"
    assert "HTTP Error 500" in str(caught.value)


def test_a_missing_feed_and_a_page_without_posts_fail_in_one_line(
    quick: Settings, replica: ReplicaServer
) -> None:
    with pytest.raises(PermanentError) as caught:
        crawl_run(quick, "ytdlp", f"{replica.base_url}/feed/nothing.xml", limit=5)
    assert caught.value.reason == "not_found"  # type: ignore[attr-defined]
    assert "\n" not in str(caught.value)
    with pytest.raises(InputError, match="yt-dlp cannot list"):
        crawl_run(quick, "ytdlp", f"{replica.base_url}/tag/other", limit=5)
    with pytest.raises(PermanentError, match="does not exist"):
        crawl_run(quick, "ytdlp", f"{replica.base_url}/@nobody", limit=5)


def test_a_signed_replica_lists_no_account_to_a_client_that_cannot_sign(
    quick: Settings, site: Path
) -> None:
    with ReplicaServer(site, signed=True) as server:
        with pytest.raises(PermanentError) as caught:
            crawl_run(quick, "ytdlp", f"{server.base_url}/@user_3", limit=5)
        assert server.faults.refused["unsigned"] == 1
    assert caught.value.reason == "empty_body"  # type: ignore[attr-defined]
    assert "signed by its own page script" in str(caught.value)


def test_needs_no_base_url_but_refuses_what_is_not_a_url(settings: Settings) -> None:
    source = YtDlpSource(settings)
    source.check(Query.parse("url:ytsearch5:queen charlotte"))
    source.check(Query.parse("https://example.com/feed.xml"))
    source.check(Query.parse("search:queen charlotte"))
    for bad in ("url:file:///etc/passwd", "url:ftp://example.com/x", "url:/etc/hosts"):
        with pytest.raises(InputError):
            source.check(Query.parse(bad))
    with pytest.raises(InputError, match="cannot list a hashtag query"):
        source.check(Query.parse("#x"))


def test_searches_through_the_configured_search_key(settings: Settings) -> None:
    job = CrawlJob(query=Query.parse("search:queen charlotte"), limit=7)
    assert YtDlpSource(settings).target(job) == "ytsearch7:queen charlotte"
    settings.crawl.sources["ytdlp"] = {"search_key": "scsearch"}
    assert YtDlpSource(settings).target(job) == "scsearch7:queen charlotte"
    settings.crawl.sources["ytdlp"] = {"search_key": "https://x"}
    with pytest.raises(InputError, match=r"crawl\.sources\.ytdlp\.search_key"):
        YtDlpSource(settings)


def test_passes_proxy_cookies_and_limit_to_yt_dlp(settings: Settings, tmp_path: Path) -> None:
    cookies = tmp_path / "cookies.txt"
    settings.crawl.sources["ytdlp"] = {
        "proxy": "socks5://127.0.0.1:9",
        "cookies_file": str(cookies),
    }
    source = YtDlpSource(settings)
    job = CrawlJob(query=Query.parse("url:ytsearch3:x"), limit=3)
    with pytest.raises(InputError, match="COOKIES_FILE"):
        source.check(job.query)
    cookies.write_text("# Netscape HTTP Cookie File\n")
    source.check(job.query)
    listing = FlatListing(source, job, out=None, to_post=source.entry_to_post)  # type: ignore[arg-type]
    options = listing.options(limit=3)
    assert options["proxy"] == "socks5://127.0.0.1:9"
    assert options["cookiefile"] == str(cookies)
    assert (options["extract_flat"], options["playlistend"]) == ("in_playlist", 3)


def _listed(url: str = "https://example.com/feed.xml") -> Listed:
    return Listed(
        url=url,
        user_agent="ua",
        query=Query.parse(url),
        watch=None,
        captured_at=datetime(2026, 1, 2, tzinfo=UTC),
    )


@pytest.mark.parametrize(
    ("entry", "post_id"),
    [
        # A flat RSS entry: no ie_key, the playlist's extractor copied in, the guid smuggled.
        (
            {
                "_type": "url_transparent",
                "url": "https://video.example/watch/1#__youtubedl_smuggle="
                "%7B%22force_videoid%22%3A+%22item-1%22%7D",
                "extractor_key": "Generic",
                "title": "one",
            },
            "generic:item-1",
        ),
        (
            {"_type": "url", "url": "https://vimeo.com/76979871", "title": "a vimeo video"},
            "vimeo:76979871",
        ),
        (
            {
                "_type": "url",
                "ie_key": "Youtube",
                "id": "sSM9J5YH_60",
                "url": "https://www.youtube.com/shorts/sSM9J5YH_60",
            },
            "youtube:sSM9J5YH_60",
        ),
        # A complete (not flat) result: a single video URL was listed.
        (
            {"id": "42", "extractor_key": "Replica", "webpage_url": "http://h/@u/video/42"},
            "replica:42",
        ),
    ],
)
def test_post_ids_name_the_extractor(entry: dict[str, Any], post_id: str) -> None:
    post = ytdlp_entry_to_post(entry, _listed(), platform="ytdlp")
    assert post is not None
    assert post.post_id == post_id
    assert "#__youtubedl_smuggle" not in post.url


def test_playlist_links_are_not_posts() -> None:
    link = {
        "_type": "url",
        "ie_key": "YoutubeTab",
        "url": "https://www.youtube.com/playlist?list=PLx",
    }
    assert ytdlp_entry_to_post(link, _listed(), platform="ytdlp") is None


def test_hashtags_in_text() -> None:
    text = "Fan edit #Bridgerton #queen_charlotte, not a#tag nor &#39; #Bridgerton #Café"
    assert hashtags_in(text) == ["bridgerton", "queen_charlotte", "café"]
