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
from datetime import datetime
from typing import Any, ClassVar, Literal
from urllib.parse import quote, urlencode

import scrapy
from scrapy.http import Response, TextResponse

from crawler.sources.base import (
    Collector,
    CrawlJob,
    DiscoverySpider,
    Query,
    ScrapySource,
    SourceFailure,
    SourceSettings,
)
from crawler.sources.captured import AnswerPage, CapturedListing, Evidence
from crawler.tiktok_format import (
    CHALLENGE_NOT_FOUND,
    MalformedItem,
    as_count,
    as_dict,
    as_duration,
    as_http_url,
    as_int,
    as_list,
    as_text,
    as_timestamp,
    item_hashtags,
    post_id_of,
    rehydration_scope,
)
from reelwatch.errors import InputError
from reelwatch.models import Author, Post, PostStats, Provenance, utcnow

logger = logging.getLogger(__name__)

ITEM_LIST_PATH = "/api/challenge/item_list/"


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
    status: int | None = None,
    headers: dict[str, str] | None = None,
    method: str = "",
    query: str = "",
) -> Post:
    """Map one TikTok item (as the tag page and item-list API serve it) to a Post.

    Only ``id`` is required: platforms drop fields for deleted or restricted accounts, and a
    post with fewer details is still worth matching. Fields of the wrong type or out of range
    are left unknown; :class:`~crawler.tiktok_format.MalformedItem` without a usable id.
    """
    if not isinstance(item, dict):
        raise MalformedItem("item is not an object")
    post_id = post_id_of(item.get("id"))
    author = as_dict(item.get("author"))
    author_stats = as_dict(item.get("authorStats")) or as_dict(item.get("authorStatsV2"))
    stats = as_dict(item.get("stats")) or as_dict(item.get("statsV2"))
    video = as_dict(item.get("video"))
    handle = as_text(author.get("uniqueId"))
    ai_description = as_text(item.get("AIGCDescription")).strip() or None
    now = captured_at or utcnow()
    return Post(
        platform=platform,
        post_id=post_id,
        url=f"{base_url.rstrip('/')}/@{quote(handle, safe='')}/video/{quote(post_id, safe='')}",
        author=Author(
            id=as_text(author.get("id")),
            handle=handle,
            nickname=as_text(author.get("nickname")) or None,
            followers=as_count(author_stats.get("followerCount")),
        ),
        caption=as_text(item.get("desc")),
        hashtags=item_hashtags(item),
        posted_at=as_timestamp(item.get("createTime")),
        stats=PostStats(
            views=as_count(stats.get("playCount")),
            likes=as_count(stats.get("diggCount")),
            shares=as_count(stats.get("shareCount")),
            comments=as_count(stats.get("commentCount")),
        ),
        media_url=as_http_url(video.get("playAddr")) or as_http_url(video.get("downloadAddr")),
        duration=as_duration(video.get("duration")),
        ai_label=ai_description,
        is_ai_labelled=bool(item.get("IsAigc")) or ai_description is not None,
        watch=watch,
        hashtag=hashtag,
        first_seen=now,
        last_seen=now,
        provenance=Provenance(
            raw=item,
            captured_at=now,
            source_url=source_url,
            user_agent=user_agent,
            status=status,
            headers=headers or {},
            method=method,
            query=query,
        ),
    )


def _headers(response: Response) -> dict[str, str]:
    """Response headers as text, cookies removed (they are session secrets, not evidence)."""
    out: dict[str, str] = {}
    for key, values in response.headers.items():
        name = key.decode("latin-1")
        if name.lower() in ("set-cookie", "cookie"):
            continue
        out[name] = b", ".join(values).decode("latin-1")
    return out


class TikTokSpider(DiscoverySpider):
    """Lists one hashtag over plain HTTP: tag page, then item-list API pages, newest first.

    It runs no JavaScript, so it cannot sign its requests; TikTok answers unsigned
    item-list calls with an empty 200, which this spider reports in one line.
    """

    name = "tiktok"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # The tag page's embedded listing is cursor 0, whether or not the API was asked for it.
        self.requested_cursors = {"0"}

    async def start(self) -> AsyncIterator[Any]:
        url = f"{self.base_url}/tag/{quote(str(self.query.hashtag))}"
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
                "captcha" if b"captcha" in response.body.lower() else "parse_error",
            )
            return
        try:
            challenge_id, listing = challenge_of(scope, self.platform, str(self.query))
        except SourceFailure as failure:
            self.fail(failure.kind, failure.message, failure.reason)
            return
        if listing:
            self._page(response, listing)
            if self.reached_limit or not listing.get("hasMore"):
                return
            yield from self._next(listing, challenge_id)
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
        if not response.body.strip():
            self.fail("permanent", empty_body_message(self.platform, response.url), "empty_body")
            return
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
                "parse_error",
            )
            return
        status = as_int(page.get("statusCode"))
        if status not in (0, None):
            self.fail(
                "transient",
                f"{self.platform} item list answered statusCode {page.get('statusCode')!r} "
                f"for {self.query} at cursor {cursor}",
                "status_code",
            )
            return
        self._page(response, page)
        if self.reached_limit or not page.get("hasMore"):
            return
        yield from self._next(page, challenge_id)

    def _next(self, page: dict[str, Any], challenge_id: str) -> Iterator[Any]:
        next_cursor = str(page.get("cursor") or "")
        if not next_cursor or next_cursor in self.requested_cursors:
            self.fail(
                "transient",
                f"{self.platform} says more posts of {self.query} exist but its cursor "
                f"does not advance ({next_cursor!r}); stopping",
                "parse_error",
            )
            return
        self.collector.cursor = next_cursor
        yield self._api_request(challenge_id, next_cursor)

    def _page(self, response: Response, page: dict[str, Any]) -> None:
        """Offer the posts of one page to the collector."""
        user_agent = (self.request_of(response).headers.get("User-Agent") or b"").decode("latin-1")
        posts = page_posts(
            page,
            platform=self.platform,
            base_url=self.base_url,
            job_query=str(self.query),
            hashtag=self.query.hashtag,
            watch=self.watch,
            source_url=response.url,
            user_agent=user_agent,
            status=response.status,
            headers=_headers(response),
            method="http",
        )
        self.collector.offer_page(posts)


def empty_body_message(platform: str, url: str) -> str:
    return (
        f"{platform} answered unsigned item-list requests with nothing (HTTP 200, empty body, "
        f"at {url.split('?')[0]}): the platform wants requests signed by its own page script; "
        f"list it in a browser (crawl.sources.{platform}.mode: browser)"
    )


def challenge_of(
    scope: dict[str, Any], platform: str, query: str
) -> tuple[str, dict[str, Any] | None]:
    """The challenge id of a tag page's rehydration scope and its embedded first page."""
    detail = as_dict(scope.get("webapp.challenge-detail"))
    status = as_int(detail.get("statusCode"))
    challenge = as_dict(as_dict(detail.get("challengeInfo")).get("challenge"))
    if status == CHALLENGE_NOT_FOUND or (status == 0 and not challenge.get("id")):
        raise SourceFailure("input", "not_found", f"hashtag {query} not found on {platform}")
    if status != 0:
        raise SourceFailure(
            "transient",
            "status_code",
            f"{platform} answered statusCode {detail.get('statusCode')!r} "
            f"({detail.get('statusMsg') or 'no message'}) for {query}",
        )
    listing = as_dict(scope.get("webapp.challenge-item-list")) or None
    return str(challenge["id"]), listing


def page_posts(
    page: dict[str, Any],
    *,
    platform: str,
    base_url: str,
    job_query: str,
    hashtag: str | None,
    watch: str | None,
    source_url: str,
    user_agent: str,
    status: int | None,
    headers: dict[str, str],
    method: str,
) -> list[Post]:
    """The Posts of one item-list page (malformed items are skipped and logged)."""
    posts = []
    for raw in as_list(as_dict(page).get("itemList")):
        try:
            posts.append(
                item_to_post(
                    as_dict(raw),
                    platform=platform,
                    base_url=base_url,
                    hashtag=hashtag,
                    watch=watch,
                    source_url=source_url,
                    user_agent=user_agent,
                    status=status,
                    headers=headers,
                    method=method,
                    query=job_query,
                )
            )
        except (ValueError, TypeError) as exc:
            logger.warning("skipping a malformed item on %s: %s", source_url, exc)
    return posts


class TikTokBrowserListing(CapturedListing):
    """A tag page (or one video page) in Chromium: TikTok's own script fetches and signs its
    item-list calls; the tag page's rehydration blob says whether the hashtag exists and may
    hold the first posts. TikTok lists without a login, so a login form on the page is not a
    wall."""

    login_markers = ()

    def start_url(self) -> str:
        if self.job.query.kind == "url":
            return self.job.query.value
        return f"{self.base_url}/tag/{quote(str(self.job.query.hashtag))}"

    def is_answer(self, url: str) -> bool:
        return ITEM_LIST_PATH in url

    def parse(self, data: Any, evidence: Evidence) -> AnswerPage | None:
        if not isinstance(data, dict):
            return None
        more = data.get("hasMore")
        cursor = data.get("cursor")
        return AnswerPage(
            posts=self._posts(data, evidence),
            cursor=str(cursor) if cursor is not None else None,
            more=bool(more) if more is not None else None,
        )

    def on_page(self, page: Any) -> None:
        scope = rehydration_scope(page.content())
        if scope is None:
            raise SourceFailure(
                "transient",
                "parse_error",
                f"{self.source.name} page {page.url} has no rehydration data (a changed layout?)",
            )
        evidence = self.evidence(page.url, None, {})
        evidence.method = "browser-embedded"
        if self.job.query.kind == "url":
            detail = as_dict(scope.get("webapp.video-detail"))
            item = as_dict(as_dict(detail.get("itemInfo")).get("itemStruct"))
            if as_int(detail.get("statusCode")) != 0 or not item:
                raise SourceFailure(
                    "input",
                    "not_found",
                    f"{page.url}: the video is not available on {self.source.name}",
                )
            self.offer(self._posts({"itemList": [item]}, evidence))
            self.exhausted = True
            return
        _, listing = challenge_of(scope, self.source.name, str(self.job.query))
        if listing:
            self.offer(self._posts(listing, evidence))
            self.exhausted = not listing.get("hasMore")

    def _posts(self, page: dict[str, Any], evidence: Evidence) -> list[Post]:
        return page_posts(
            page,
            platform=self.source.name,
            base_url=self.base_url,
            job_query=evidence.query,
            hashtag=evidence.hashtag,
            watch=evidence.watch,
            source_url=evidence.source_url,
            user_agent=evidence.user_agent,
            status=evidence.status,
            headers=evidence.headers,
            method=evidence.method,
        )


class TikTokSettings(SourceSettings):
    base_url: str | None = "https://www.tiktok.com"
    canary: str | None = None
    mode: Literal["browser", "http"] = "browser"
    """``browser``: Chromium runs TikTok's page, which signs its own API calls (works on the
    real site); ``http``: Scrapy without JavaScript (fast; only unsigned sites answer it)."""


class TikTokSource(ScrapySource):
    """TikTok: hashtag pages in a real Chromium (or plain HTTP where nothing is signed)."""

    name = "tiktok"
    spider = TikTokSpider
    query_kinds = frozenset({"hashtag", "url"})
    needs = frozenset({"browser"})
    settings_model = TikTokSettings
    canary: ClassVar[str | None] = "#fyp"

    @property
    def mode(self) -> str:
        return str(getattr(self.config, "mode", "browser"))

    def check(self, query: Query) -> None:
        super().check(query)
        if query.kind == "url" and self.mode != "browser":
            raise InputError(f"{self.name} lists a URL only in browser mode")

    def discover(self, job: CrawlJob, out: Collector) -> None:
        if self.mode == "http":
            super().discover(job, out)
            return
        TikTokBrowserListing(self, job, out).run()


class ReplicaSettings(TikTokSettings):
    base_url: str | None = None
    mode: Literal["browser", "http"] = "http"


class ReplicaSource(TikTokSource):
    """The local replica platform (:mod:`crawler.replica`): TikTok's structure, plain HTTP by
    default so the demo needs no browser; ``mode: browser`` against ``--signed``."""

    name = "replica"
    settings_model = ReplicaSettings
    needs = frozenset()
    canary: ClassVar[str | None] = None
    url_hint = " (start one with: python -m crawler.replica --site DIR)"
