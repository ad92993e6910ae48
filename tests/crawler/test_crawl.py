"""``crawler.crawl`` end to end: a Scrapy subprocess against a live replica."""

from __future__ import annotations

import socket
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crawler import CrawlInterrupted, crawl, crawl_run
from crawler.replica import ALWAYS, Faults, ReplicaServer, load_items
from crawler.sources import ReplicaSource
from reelwatch.errors import InputError, TransientError
from reelwatch.models import Post
from reelwatch.settings import Settings
from tests.crawler.conftest import AI_DESCRIPTION, BASE_TIME, HOSTILE_CAPTION, point_at

ALL_IDS = [f"73000000000000000{n:02d}" for n in (5, 4, 3, 2, 1)]
HostileReplica = Callable[[Faults], ReplicaServer]


def test_limit_is_respected_exactly_across_pages(crawl_settings: Settings) -> None:
    posts = crawl(crawl_settings, "replica", "DragonFilm", limit=3)
    assert [p.post_id for p in posts] == ALL_IDS[:3]


def test_follows_api_pages_until_has_more_is_false(
    crawl_settings: Settings, hostile_replica: HostileReplica
) -> None:
    server = hostile_replica(Faults())
    point_at(crawl_settings, server)
    crawl_settings.crawl.default_limit = 100
    posts = crawl(crawl_settings, "replica", "#dragonfilm")
    assert [p.post_id for p in posts] == ALL_IDS
    # 2 posts came with the tag page, the other 3 from two API pages of 2 and 1.
    assert server.faults.api_requests == 2


def test_tag_pages_without_embedded_posts_start_at_the_api(
    crawl_settings: Settings, site: Path
) -> None:
    with ReplicaServer(site, page_size=2, embed_items=False) as server:
        point_at(crawl_settings, server)
        posts = crawl(crawl_settings, "replica", "dragonfilm", limit=10)
        assert [p.post_id for p in posts] == ALL_IDS
        assert server.faults.api_requests == 3


def test_default_limit_comes_from_settings(crawl_settings: Settings) -> None:
    crawl_settings.crawl.default_limit = 4
    assert len(crawl(crawl_settings, "replica", "dragonfilm")) == 4


def test_posts_carry_the_platform_fields_and_provenance(
    crawl_settings: Settings, replica: ReplicaServer, site: Path
) -> None:
    before = datetime.now(UTC)
    posts = {p.post_id: p for p in crawl(crawl_settings, "replica", "#DragonFilm", watch="w1")}
    base = replica.base_url
    stored = {i["id"]: i for i in load_items(site)}

    ai = posts["7300000000000000003"]
    assert ai.platform == "replica"
    assert ai.url == f"{base}/@user_3/video/7300000000000000003"
    assert (ai.author.handle, ai.author.nickname, ai.author.followers) == ("user_3", "User 3", 3000)
    assert ai.author.id == stored[ai.post_id]["author"]["id"]
    assert ai.caption == stored[ai.post_id]["desc"]
    assert ai.caption.startswith(HOSTILE_CAPTION)
    assert ai.hashtags == ["dragonfilm", "other"]
    assert ai.posted_at == datetime.fromtimestamp(BASE_TIME + 180, UTC)
    assert (ai.stats.views, ai.stats.likes, ai.stats.shares, ai.stats.comments) == (300, 30, 3, 6)
    assert ai.media_url == f"{base}/video/7300000000000000003.mp4"
    assert ai.duration == 1.0
    assert (ai.ai_label, ai.is_ai_labelled) == (AI_DESCRIPTION, True)
    assert (ai.hashtag, ai.watch) == ("dragonfilm", "w1")
    assert ai.key == "replica:7300000000000000003"

    plain = posts["7300000000000000004"]
    assert (plain.ai_label, plain.is_ai_labelled) == (None, False)
    assert plain.hashtags == ["dragonfilm"]

    for post in posts.values():
        prov = post.provenance
        assert prov.raw["id"] == post.post_id
        assert prov.raw["desc"] == post.caption
        assert prov.raw["video"]["playAddr"] == post.media_url
        assert prov.user_agent == crawl_settings.crawl.user_agent
        assert prov.source_url.startswith(base)
        assert before - timedelta(seconds=1) <= prov.captured_at <= datetime.now(UTC)
    assert posts["7300000000000000005"].provenance.source_url == f"{base}/tag/dragonfilm"
    assert "/api/challenge/item_list/" in posts["7300000000000000001"].provenance.source_url

    assert post_media(ai) == (site / "videos" / "7300000000000000003.mp4").read_bytes()


def post_media(post: Post) -> bytes:
    assert post.media_url is not None
    with urllib.request.urlopen(post.media_url, timeout=5) as response:
        data: bytes = response.read()
    return data


def test_unknown_hashtag_is_an_input_error(crawl_settings: Settings) -> None:
    with pytest.raises(InputError, match=r"^hashtag #nosuchtag not found on replica$"):
        crawl(crawl_settings, "replica", "#NoSuchTag")


@pytest.mark.parametrize(
    ("platform", "hashtag", "message"),
    [
        (
            "myspace",
            "dragonfilm",
            r"unknown platform 'myspace'; available: instagram, replica, tiktok, x, youtube, ytdlp",
        ),
        ("replica", "  # ", r"is not a hashtag"),
        ("replica", "dragon/../film", r"is not a hashtag"),
    ],
)
def test_bad_input_is_rejected_before_crawling(
    crawl_settings: Settings, platform: str, hashtag: str, message: str
) -> None:
    with pytest.raises(InputError, match=message):
        crawl(crawl_settings, platform, hashtag)


def test_replica_url_must_be_configured(settings: Settings) -> None:
    ReplicaSource.set_base_url(settings, None)
    with pytest.raises(InputError, match="REELWATCH_CRAWL__SOURCES__REPLICA__BASE_URL"):
        crawl(settings, "replica", "dragonfilm")


def test_waits_as_retry_after_asks_then_succeeds(
    crawl_settings: Settings, hostile_replica: HostileReplica
) -> None:
    server = hostile_replica(Faults(rate_limit=2, retry_after="1"))
    point_at(crawl_settings, server)
    started = time.monotonic()
    posts = crawl(crawl_settings, "replica", "dragonfilm", limit=5)
    assert [p.post_id for p in posts] == ALL_IDS
    assert time.monotonic() - started >= 2.0, "did not wait Retry-After twice"
    assert server.faults.api_requests == 2 + 2


@pytest.mark.parametrize(
    ("faults", "message", "retried"),
    [
        (Faults(rate_limit=ALWAYS, retry_after="0"), r"kept answering HTTP 429", True),
        (Faults(server_errors=ALWAYS), r"kept answering HTTP 500", True),
        # A Retry-After longer than a crawl waits ends the crawl at once, without retrying.
        (Faults(rate_limit=ALWAYS, retry_after="3600"), r"HTTP 429 \(Retry-After: 3600\)", False),
        (Faults(garbage=ALWAYS), r"answered garbage instead of JSON", True),
    ],
    ids=["429", "500", "long-retry-after", "garbage"],
)
def test_a_platform_that_keeps_refusing_is_a_transient_error(
    crawl_settings: Settings,
    hostile_replica: HostileReplica,
    faults: Faults,
    message: str,
    retried: bool,
) -> None:
    server = hostile_replica(faults)
    point_at(crawl_settings, server)
    with pytest.raises(TransientError, match=message) as caught:
        crawl(crawl_settings, "replica", "dragonfilm", limit=5)
    assert "Traceback" not in str(caught.value)
    # The tag page worked, so the posts it listed are not lost.
    assert isinstance(caught.value, CrawlInterrupted)
    assert [p.post_id for p in caught.value.posts] == ALL_IDS[:2]
    assert faults.api_requests == (crawl_settings.crawl.retry_times + 1 if retried else 1)


def test_an_unreachable_platform_is_a_transient_error(crawl_settings: Settings) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        free_port = sock.getsockname()[1]
    ReplicaSource.set_base_url(crawl_settings, f"http://127.0.0.1:{free_port}")
    crawl_settings.crawl.retry_times = 0
    with pytest.raises(TransientError, match=r"could not reach replica"):
        crawl(crawl_settings, "replica", "dragonfilm")


def test_a_caller_hears_the_running_count_of_posts_found(crawl_settings: Settings) -> None:
    heard: list[int] = []
    result = crawl_run(crawl_settings, "replica", "#dragonfilm", limit=5, on_found=heard.append)
    assert heard, "the count was reported"
    assert heard == sorted(heard), "it only grows"
    assert heard[-1] == len(result.posts) == 5
