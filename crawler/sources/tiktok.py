"""Hashtag discovery on TikTok-structured sites: TikTok itself and the local replica.

The flow follows what a browser does: the tag page ``/tag/<name>`` carries a rehydration blob
(:mod:`crawler.tiktok_format`) whose ``__DEFAULT_SCOPE__["webapp.challenge-detail"]`` says
whether the hashtag exists and gives its ``challengeInfo.challenge.id``; its first posts may sit
under ``"webapp.challenge-item-list"``. Further pages come from
``/api/challenge/item_list/?challengeID=&cursor=&count=`` until ``hasMore`` is false or the
limit is reached. Every item becomes a :class:`reelwatch.models.Post` carrying the raw item
as provenance.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import scrapy
from scrapy.http import Response, TextResponse

from crawler.sources.base import DiscoverySpider, Source
from crawler.tiktok_format import (
    CHALLENGE_NOT_FOUND,
    as_dict,
    as_list,
    item_hashtags,
    rehydration_scope,
)
from reelwatch.models import Author, Post, PostStats, Provenance, utcnow

logger = logging.getLogger(__name__)

ITEM_LIST_PATH = "/api/challenge/item_list/"


def _int(value: Any) -> int | None:
    """TikTok sends counts as numbers, or as strings in its ``*V2`` blocks."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def item_to_post(
    item: dict[str, Any],
    *,
    platform: str,
    base_url: str,
    hashtag: str | None = None,
    watch: str | None = None,
    source_url: str = "",
    user_agent: str = "",
    captured_at: datetime | None = None,
) -> Post:
    """Map one TikTok item (as the tag page and item-list API serve it) to a Post.

    Only ``id`` is required: platforms drop fields for deleted or restricted accounts, and a
    post with fewer details is still worth matching. Raises ValueError without an id.
    """
    post_id = str(item.get("id") or "").strip()
    if not post_id:
        raise ValueError("item has no id")
    author = as_dict(item.get("author"))
    author_stats = as_dict(item.get("authorStats")) or as_dict(item.get("authorStatsV2"))
    stats = as_dict(item.get("stats")) or as_dict(item.get("statsV2"))
    video = as_dict(item.get("video"))
    handle = str(author.get("uniqueId") or "")
    created = _int(item.get("createTime"))
    duration = video.get("duration")
    ai_description = str(item.get("AIGCDescription") or "").strip() or None
    now = captured_at or utcnow()
    return Post(
        platform=platform,
        post_id=post_id,
        url=f"{base_url.rstrip('/')}/@{quote(handle)}/video/{quote(post_id)}",
        author=Author(
            id=str(author.get("id") or ""),
            handle=handle,
            nickname=author.get("nickname") or None,
            followers=_int(author_stats.get("followerCount")),
        ),
        caption=str(item.get("desc") or ""),
        hashtags=item_hashtags(item),
        posted_at=datetime.fromtimestamp(created, UTC) if created else None,
        stats=PostStats(
            views=_int(stats.get("playCount")),
            likes=_int(stats.get("diggCount")),
            shares=_int(stats.get("shareCount")),
            comments=_int(stats.get("commentCount")),
        ),
        media_url=video.get("playAddr") or video.get("downloadAddr") or None,
        duration=float(duration) if isinstance(duration, int | float) and duration else None,
        ai_label=ai_description,
        is_ai_labelled=bool(item.get("IsAigc")) or ai_description is not None,
        watch=watch,
        hashtag=hashtag,
        first_seen=now,
        last_seen=now,
        provenance=Provenance(
            raw=item, captured_at=now, source_url=source_url, user_agent=user_agent
        ),
    )


class TikTokSpider(DiscoverySpider):
    """Crawls one hashtag: tag page, then item-list API pages, newest posts first."""

    name = "tiktok"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # The tag page's embedded listing is cursor 0, whether or not the API was asked for it.
        self.requested_cursors = {"0"}

    async def start(self) -> AsyncIterator[Any]:
        url = f"{self.base_url}/tag/{quote(self.hashtag)}"
        yield scrapy.Request(url, callback=self.parse_tag_page, errback=self.on_error)

    # -- tag page ---------------------------------------------------------------------------
    def parse_tag_page(self, response: Response) -> Iterator[Any]:
        scope = rehydration_scope(response.text) if isinstance(response, TextResponse) else None
        if scope is None:
            retry = self.retry(response, "no rehydration data")
            if retry is not None:
                yield retry
                return
            self.fail(
                "transient",
                f"{self.platform} tag page {response.url} has no rehydration data "
                "(a captcha or block page, or a changed layout)",
            )
            return
        detail = as_dict(scope.get("webapp.challenge-detail"))
        status = _int(detail.get("statusCode"))
        challenge = as_dict(as_dict(detail.get("challengeInfo")).get("challenge"))
        if status == CHALLENGE_NOT_FOUND or (status == 0 and not challenge.get("id")):
            self.fail("input", f"hashtag #{self.hashtag} not found on {self.platform}")
            return
        if status != 0:
            self.fail(
                "transient",
                f"{self.platform} answered statusCode {detail.get('statusCode')!r} "
                f"({detail.get('statusMsg') or 'no message'}) for #{self.hashtag}",
            )
            return
        challenge_id = str(challenge["id"])
        listing = as_dict(scope.get("webapp.challenge-item-list"))
        if listing:
            yield from self._page(response, listing, challenge_id)
        else:
            yield self._api_request(challenge_id, "0")

    # -- item-list API ----------------------------------------------------------------------
    def _api_request(self, challenge_id: str, cursor: str) -> scrapy.Request:
        self.requested_cursors.add(cursor)
        query = urlencode(
            {"aid": "1988", "challengeID": challenge_id, "count": self.page_size, "cursor": cursor}
        )
        return scrapy.Request(
            f"{self.base_url}{ITEM_LIST_PATH}?{query}",
            callback=self.parse_item_list,
            errback=self.on_error,
            cb_kwargs={"challenge_id": challenge_id, "cursor": cursor},
            headers={"Accept": "application/json", "Referer": f"{self.base_url}/tag/"},
        )

    def parse_item_list(self, response: Response, challenge_id: str, cursor: str) -> Iterator[Any]:
        try:
            page = json.loads(response.body)
            if not isinstance(page, dict):
                raise ValueError("not a JSON object")
        except ValueError:
            retry = self.retry(response, "garbage")
            if retry is not None:
                yield retry
                return
            content_type = (response.headers.get("Content-Type") or b"").decode("latin-1")
            self.fail(
                "transient",
                f"{self.platform} answered garbage instead of JSON for {response.url} "
                f"({content_type or 'no content type'}, starts {response.body[:40]!r}); "
                "the platform may be blocking us, try again later",
            )
            return
        status = _int(page.get("statusCode"))
        if status not in (0, None):
            self.fail(
                "transient",
                f"{self.platform} item list answered statusCode {page.get('statusCode')!r} "
                f"for #{self.hashtag} at cursor {cursor}",
            )
            return
        yield from self._page(response, page, challenge_id)

    def _page(self, response: Response, page: dict[str, Any], challenge_id: str) -> Iterator[Any]:
        """Yield the posts of one page, then the request for the next page if one is due."""
        user_agent = (self.request_of(response).headers.get("User-Agent") or b"").decode("latin-1")
        for raw in as_list(page.get("itemList")):
            item = as_dict(raw)
            try:
                post = item_to_post(
                    item,
                    platform=self.platform,
                    base_url=self.base_url,
                    hashtag=self.hashtag,
                    watch=self.watch,
                    source_url=response.url,
                    user_agent=user_agent,
                )
            except (ValueError, TypeError) as exc:
                logger.warning("skipping a malformed item on %s: %s", response.url, exc)
                continue
            if self.want(post.post_id):
                yield post
        if self.reached_limit or not page.get("hasMore"):
            return
        next_cursor = str(page.get("cursor") or "")
        if not next_cursor or next_cursor in self.requested_cursors:
            self.fail(
                "transient",
                f"{self.platform} says more posts of #{self.hashtag} exist but its cursor "
                f"does not advance ({next_cursor!r}); stopping",
            )
            return
        yield self._api_request(challenge_id, next_cursor)


class TikTokSource(Source):
    """TikTok itself, at ``settings.crawl.tiktok_base_url``."""

    name = "tiktok"
    spider = TikTokSpider
    url_setting = "tiktok_base_url"
