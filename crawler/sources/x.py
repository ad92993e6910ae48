"""X (Twitter): hashtag and word searches in a logged-in Chromium, from the page's GraphQL.

``/search?q=...&f=live`` sends a logged-out reader to ``/i/flow/login``; for a logged-in one
its script asks ``/i/api/graphql/<query id>/SearchTimeline?variables=...`` for the latest
tweets and again, with the bottom cursor, as the reader scrolls. An answer is
``data.search_by_raw_query.search_timeline.timeline.instructions[]``: ``TimelineAddEntries``
with ``entries[]`` (``tweet-<id>`` entries whose ``content.itemContent.tweet_results.result``
is the tweet, possibly wrapped as ``TweetWithVisibilityResults`` → ``tweet``;
``cursor-bottom-...`` entries whose ``content.value`` is the next cursor), and on later pages
``TimelineReplaceEntry`` instructions carrying the cursors. A page with no tweet entries is
the end of the results (X never says so otherwise).

A tweet has ``rest_id``, ``legacy`` (``id_str``, ``full_text``, ``created_at``
``"Wed Oct 10 20:19:24 +0000 2018"``, ``favorite_count``, ``retweet_count``,
``reply_count``, ``entities.hashtags``, ``extended_entities.media[]`` with ``type``
``video``/``animated_gif``/``photo`` and ``video_info.variants[]``), ``views.count``,
``note_tweet`` for long texts, and ``core.user_results.result`` (``core.screen_name`` since
2025, ``legacy.screen_name`` before; ``legacy.followers_count``). Only tweets with a video or
GIF of their own become posts, with the highest-bitrate MP4 as ``media_url``.

The search asks for ``filter:videos`` so X itself leaves out text and photo tweets.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar
from urllib.parse import quote, urlencode, urlsplit

from crawler.sources.base import SourceSettings
from crawler.sources.captured import AnswerPage, CapturedListing, Evidence
from crawler.sources.logged_in import LoggedInSource
from crawler.tiktok_format import (
    MalformedItem,
    as_count,
    as_dict,
    as_duration,
    as_http_url,
    as_int,
    as_list,
    as_text,
    post_id_of,
)
from reelwatch.models import Author, Post, PostStats, normalize_hashtag

logger = logging.getLogger(__name__)

VIDEO_TYPES = ("video", "animated_gif")
LOGIN_ERROR_CODES = {32, 89, 215, 239, 326, 353}
"""X API error codes meaning the session is not (or no longer) accepted."""


def unwrap(result: dict[str, Any]) -> dict[str, Any] | None:
    """The tweet inside a ``tweet_results.result``; None for tombstones and unavailable
    tweets."""
    if result.get("__typename") == "TweetWithVisibilityResults" or (
        "tweet" in result and "legacy" not in result
    ):
        result = as_dict(result.get("tweet"))
    if not result or result.get("__typename") in ("TweetTombstone", "TweetUnavailable"):
        return None
    return result


def posted_at(text: str) -> datetime | None:
    """``Wed Oct 10 20:19:24 +0000 2018`` (X's ``created_at``) as an aware datetime."""
    try:
        when = parsedate_to_datetime(text) if text else None
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    # "-0000" means "zone unknown": a naive datetime, read as UTC like X's own "+0000".
    return when.replace(tzinfo=UTC) if when is not None and when.tzinfo is None else when


def best_mp4(media: dict[str, Any]) -> str | None:
    """The highest-bitrate MP4 variant of a video or GIF (HLS playlists are left out)."""
    variants = [as_dict(v) for v in as_list(as_dict(media.get("video_info")).get("variants"))]
    mp4 = [
        v for v in variants if v.get("content_type") == "video/mp4" and as_http_url(v.get("url"))
    ]
    if not mp4:
        return None
    return as_http_url(max(mp4, key=lambda v: as_count(v.get("bitrate")) or 0)["url"])


def video_media(legacy: dict[str, Any]) -> dict[str, Any] | None:
    media = as_list(as_dict(legacy.get("extended_entities")).get("media"))
    return next((as_dict(m) for m in media if as_dict(m).get("type") in VIDEO_TYPES), None)


def user_of(tweet: dict[str, Any]) -> dict[str, Any]:
    return as_dict(as_dict(as_dict(tweet.get("core")).get("user_results")).get("result"))


def tweet_to_post(
    result: dict[str, Any], *, platform: str, base_url: str, evidence: Evidence
) -> Post | None:
    """Map one ``tweet_results.result`` to a Post; None when it is no tweet or carries no
    video of its own. :class:`~crawler.tiktok_format.MalformedItem` without a usable id;
    fields of the wrong type or out of range are left unknown. The result is kept as sent
    (wrapper included) as the raw item."""
    if not isinstance(result, dict):
        raise MalformedItem("tweet result is not an object")
    tweet = unwrap(result)
    if tweet is None:
        return None
    legacy = as_dict(tweet.get("legacy"))
    tweet_id = post_id_of(legacy.get("id_str") or tweet.get("rest_id"), "tweet")
    media = video_media(legacy)
    if media is None:
        return None
    user = user_of(tweet)
    user_core, user_legacy = as_dict(user.get("core")), as_dict(user.get("legacy"))
    handle = as_text(user_core.get("screen_name") or user_legacy.get("screen_name"))
    note = as_dict(
        as_dict(as_dict(tweet.get("note_tweet")).get("note_tweet_results")).get("result")
    )
    text = as_text(note.get("text") or legacy.get("full_text"))
    tags = [
        as_dict(h).get("text") for h in as_list(as_dict(legacy.get("entities")).get("hashtags"))
    ]
    millis = as_count(as_dict(media.get("video_info")).get("duration_millis"))
    base, quoted = base_url.rstrip("/"), quote(tweet_id, safe="")
    url = (
        f"{base}/{quote(handle, safe='')}/status/{quoted}"
        if handle
        else f"{base}/i/status/{quoted}"
    )
    return Post(
        platform=platform,
        post_id=tweet_id,
        url=url,
        author=Author(
            id=as_text(user.get("rest_id") or legacy.get("user_id_str")),
            handle=handle,
            nickname=as_text(user_core.get("name") or user_legacy.get("name")) or None,
            followers=as_count(user_legacy.get("followers_count")),
        ),
        caption=text,
        hashtags=list(dict.fromkeys(normalize_hashtag(t) for t in tags if isinstance(t, str))),
        posted_at=posted_at(as_text(legacy.get("created_at"))),
        stats=PostStats(
            views=as_count(as_dict(tweet.get("views")).get("count")),
            likes=as_count(legacy.get("favorite_count")),
            shares=as_count(legacy.get("retweet_count")),
            comments=as_count(legacy.get("reply_count")),
        ),
        media_url=best_mp4(media),
        duration=as_duration(millis / 1000) if millis else None,
        watch=evidence.watch,
        hashtag=evidence.hashtag,
        first_seen=evidence.captured_at,
        last_seen=evidence.captured_at,
        provenance=evidence.provenance(result),
    )


def timeline_entries(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Every entry the answer's instructions add or replace, in order."""
    timeline = as_dict(
        as_dict(
            as_dict(as_dict(data.get("data")).get("search_by_raw_query")).get("search_timeline")
        ).get("timeline")
    )
    entries: list[dict[str, Any]] = []
    for instruction in as_list(timeline.get("instructions")):
        instruction = as_dict(instruction)
        entries.extend(as_dict(e) for e in as_list(instruction.get("entries")))
        if instruction.get("entry"):
            entries.append(as_dict(instruction["entry"]))
    return entries


def entry_results(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``tweet_results.result`` objects of one entry (a tweet, or a module of them)."""
    content = as_dict(entry.get("content"))
    contents = [as_dict(content.get("itemContent"))]
    contents += [
        as_dict(as_dict(as_dict(i).get("item")).get("itemContent"))
        for i in as_list(content.get("items"))
    ]
    results = []
    for item in contents:
        result = as_dict(as_dict(item.get("tweet_results")).get("result"))
        if result:
            results.append(result)
    return results


def login_error(data: dict[str, Any]) -> bool:
    errors = [as_dict(e) for e in as_list(data.get("errors"))]
    return any(as_int(e.get("code")) in LOGIN_ERROR_CODES for e in errors)


def parse_answer(
    data: Any, *, platform: str, base_url: str, evidence: Evidence
) -> AnswerPage | None:
    """The video posts of one SearchTimeline answer and its bottom cursor."""
    if not isinstance(data, dict):
        return None
    if login_error(data):
        return AnswerPage(login_required=True)
    page = AnswerPage()
    tweets = 0
    for entry in timeline_entries(data):
        entry_id = str(entry.get("entryId") or "")
        content = as_dict(entry.get("content"))
        if entry_id.startswith("cursor-bottom") or content.get("cursorType") == "Bottom":
            page.cursor = str(content.get("value") or "") or page.cursor
            continue
        for result in entry_results(entry):
            tweets += 1
            try:
                post = tweet_to_post(
                    result, platform=platform, base_url=base_url, evidence=evidence
                )
            except (ValueError, TypeError) as exc:
                logger.warning("skipping a malformed tweet at %s: %s", evidence.source_url, exc)
                post = None
            if post is None:
                page.skipped += 1
            else:
                page.posts.append(post)
    if tweets == 0:
        page.more = False
    return page


def search_terms(query: Any) -> str:
    """What to type into X's search box for a query."""
    if query.kind == "hashtag":
        return f"#{query.value}"
    if query.kind == "account":
        return f"from:{query.value}"
    return str(query.value)


class XSearchListing(CapturedListing):
    chronological = True

    def start_url(self) -> str:
        terms = f"{search_terms(self.job.query)} filter:videos"
        params = {"q": terms, "src": "typed_query", "f": "live"}
        return f"{self.base_url}/search?{urlencode(params, quote_via=quote)}"

    def is_answer(self, url: str) -> bool:
        path = urlsplit(url).path
        return path.startswith("/i/api/graphql/") and path.endswith("/SearchTimeline")

    def parse(self, data: Any, evidence: Evidence) -> AnswerPage | None:
        return parse_answer(
            data, platform=self.source.name, base_url=self.base_url, evidence=evidence
        )


class XSettings(SourceSettings):
    base_url: str | None = "https://x.com"


class XSource(LoggedInSource):
    """X's latest-tweets search for hashtags, words and accounts (``from:``), read in
    Chromium with a saved login (``reelwatch browser login x``)."""

    name = "x"
    query_kinds = frozenset({"hashtag", "search", "account"})
    settings_model = XSettings
    canary: ClassVar[str | None] = "#video"
    login_path = "/i/flow/login"
    login_paths = ("/i/flow/login", "/login", "/account/access")
    session_cookie = "auth_token"
    listing = XSearchListing
