"""YouTube: hashtag pages and Shorts, searches and channels, through yt-dlp or the Data API.

Without a key, listing goes through yt-dlp's own YouTube extractors, flat (the listing pages
only, never each video): a hashtag lists ``/hashtag/<tag>/shorts`` then ``/hashtag/<tag>``
(``hashtag_tabs``), a search ``ytsearchdateN:words`` (``search_key``), an account
``/@<handle>/shorts`` then ``/@<handle>/videos`` (``account_tabs``), a URL as given.

With ``crawl.sources.youtube.api_key`` set, hashtags, searches and accounts go through the
YouTube Data API v3 instead: ``search.list`` (``q=#tag``, ``order=date``, 100 quota units a
call whatever ``maxResults``, so pages of 50), following ``nextPageToken``; then, unless
``statistics`` is off, ``videos.list`` (1 unit per 50 videos) for counts, duration and the
full description. Accounts are resolved with ``channels.list?forHandle=`` (1 unit). The
default quota is 10,000 units a day: about 100 search pages.

Errors: a used-up quota is ``quota`` (transient: it resets at midnight Pacific time), a
refused key ``api_key``; 429 and 5xx are retried (urllib3 ``Retry``, ``Retry-After``
honoured) and then ``http_status`` (transient).
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from pydantic import field_validator

from crawler.sources.base import Collector, CrawlJob, Query, Source, SourceFailure, SourceSettings
from crawler.sources.ytdlp import (
    FlatListing,
    Listed,
    author_of,
    caption_of,
    check_cookies_file,
    entry_extractor_key,
    entry_post,
    hashtags_in,
    webpage_url_of,
)
from crawler.tiktok_format import MalformedItem, as_dict, as_http_url, as_list, as_text, post_id_of
from reelwatch.errors import InputError
from reelwatch.models import Author, Post, PostStats, Provenance, utcnow

API_PAGE_MAX = 50
"""The Data API's largest ``maxResults`` (search.list) and id batch (videos.list)."""

_QUOTA_REASONS = {"quotaExceeded", "dailyLimitExceeded", "RATE_LIMIT_EXCEEDED_DAILY"}
_KEY_REASONS = {
    "keyInvalid",
    "keyExpired",
    "API_KEY_INVALID",
    "API_KEY_EXPIRED",
    "accessNotConfigured",
    "SERVICE_DISABLED",
    "API_KEY_SERVICE_BLOCKED",
    "ipRefererBlocked",
    "API_KEY_HTTP_REFERRER_BLOCKED",
    "API_KEY_IP_ADDRESS_BLOCKED",
}
_RATE_REASONS = {"rateLimitExceeded", "userRateLimitExceeded", "RATE_LIMIT_EXCEEDED"}
_TAGS = re.compile(r"<[^>]*>")


class YouTubeSettings(SourceSettings):
    base_url: str | None = "https://www.youtube.com"
    api_url: str = "https://www.googleapis.com/youtube/v3"
    """The Data API's address (tests point it at the replica's ``/youtube/v3``)."""
    hashtag_tabs: tuple[Literal["shorts", "all"], ...] = ("shorts", "all")
    """Hashtag pages yt-dlp lists, in order, until the limit: ``/hashtag/<tag>/shorts``,
    ``/hashtag/<tag>``."""
    account_tabs: tuple[Literal["shorts", "videos", "streams"], ...] = ("shorts", "videos")
    search_key: str = "ytsearchdate"
    """yt-dlp search key for searches without an API key (``ytsearch``: by relevance)."""
    approximate_dates: bool = True
    """Ask yt-dlp for upload times from listing pages' "3 days ago" text (YouTube's flat
    entries carry no date otherwise, so a watch's max age could not apply)."""
    statistics: bool = True
    """API: ``videos.list`` after each search page (views, likes, comments, duration)."""
    video_duration: Literal["any", "short", "medium", "long"] = "any"
    """API ``videoDuration``: ``short`` is under 4 minutes (Shorts are at most 3)."""
    region_code: str | None = None
    relevance_language: str | None = None

    @field_validator("search_key")
    @classmethod
    def _is_a_youtube_search_key(cls, value: str) -> str:
        if value not in ("ytsearch", "ytsearchdate"):
            raise ValueError("must be ytsearch (relevance) or ytsearchdate (newest first)")
        return value


class YouTubeSource(Source):
    """YouTube through yt-dlp's extractors, or the Data API v3 when a key is configured."""

    name = "youtube"
    query_kinds = frozenset({"hashtag", "search", "account", "url"})
    settings_model = YouTubeSettings
    canary: ClassVar[str | None] = "#shorts"

    @property
    def yt_config(self) -> YouTubeSettings:
        config = self.config
        assert isinstance(config, YouTubeSettings)
        return config

    def uses_api(self, query: Query) -> bool:
        return self.config.api_key is not None and query.kind != "url"

    def check(self, query: Query) -> None:
        super().check(query)
        check_cookies_file(self)
        if self.uses_api(query):
            parts = urlsplit(self.yt_config.api_url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                env = self.env_name("api_url")
                raise InputError(f"{env}={self.yt_config.api_url!r} is not an http(s) URL")
            if not self.api_key:
                raise InputError(f"{self.env_name('api_key')} is empty")

    @property
    def api_key(self) -> str:
        key = self.config.api_key
        return key.get_secret_value().strip() if key is not None else ""

    def discover(self, job: CrawlJob, out: Collector) -> None:
        if self.uses_api(job.query):
            YouTubeApiListing(self, job, out).run()
        else:
            args = (
                {"youtubetab": {"approximate_date": [""]}}
                if self.yt_config.approximate_dates
                else {}
            )
            missing: SourceFailure | None = None
            for target in self.targets(job):
                if out.full or out.stop is not None:
                    break
                try:
                    FlatListing(self, job, out, self.entry_to_post, args).run(target)
                except SourceFailure as failure:
                    # A channel without a Shorts tab still has its videos: try the next page.
                    if failure.reason != "not_found":
                        raise
                    missing = missing or failure
            if missing is not None and not out.posts:
                raise missing
        if out.stop is None:
            out.stop = "limit" if out.full else "exhausted"

    def targets(self, job: CrawlJob) -> list[str]:
        """What yt-dlp lists for ``job``, in order."""
        query, base = job.query, self.base_url()
        if query.kind == "hashtag":
            tag = quote(query.value)
            paths = {"shorts": f"/hashtag/{tag}/shorts", "all": f"/hashtag/{tag}"}
            return [base + paths[tab] for tab in self.yt_config.hashtag_tabs]
        if query.kind == "account":
            return [f"{base}/@{quote(query.value)}/{tab}" for tab in self.yt_config.account_tabs]
        if query.kind == "search":
            return [f"{self.yt_config.search_key}{job.limit}:{query.value}"]
        return [query.value]

    def entry_to_post(self, entry: dict[str, Any], listed: Listed) -> Post | None:
        return youtube_entry_to_post(entry, listed)


def youtube_entry_to_post(entry: dict[str, Any], listed: Listed) -> Post | None:
    """A Post from one entry of yt-dlp's YouTube listings (flat or complete); None for
    entries that are not videos (playlists, channels, hashtag tiles)."""
    from yt_dlp.extractor.youtube import YoutubeIE

    if not isinstance(entry, dict):
        raise MalformedItem("entry is not an object")
    if entry.get("_type") in ("playlist", "multi_video"):
        return None
    url, _ = webpage_url_of(entry)
    url = as_http_url(url) or ""
    key = entry_extractor_key(entry)
    if key != YoutubeIE.ie_key() and not (not key and YoutubeIE.suitable(url)):
        return None
    video_id = post_id_of(as_text(entry.get("id")) or YoutubeIE.get_temp_id(url), "entry")
    author = author_of(entry)
    if not author.handle and listed.query.kind == "account":
        author.handle = listed.query.value
    return entry_post(
        entry,
        platform="youtube",
        post_id=video_id,
        url=url or f"https://www.youtube.com/watch?v={quote(video_id, safe='')}",
        listed=listed,
        author=author,
    )


# -- the Data API -----------------------------------------------------------------------------
def without_key(url: str) -> str:
    """``url`` with its ``key`` parameter removed: keys are secrets, not evidence."""
    parts = urlsplit(url)
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "key"])
    return urlunsplit(parts._replace(query=query))


def api_failure(status: int, body: bytes, where: str) -> SourceFailure:
    """One clear :class:`SourceFailure` for an error answer of the Data API.

    Google's error JSON names reasons in ``error.errors[].reason`` (``quotaExceeded``,
    ``keyInvalid``) and, in newer answers, ``error.details[].reason`` (``API_KEY_INVALID``).
    """
    import json

    try:
        data = json.loads(body)
    except ValueError:
        data = None
    error = as_dict(as_dict(data).get("error"))
    reasons = {str(as_dict(e).get("reason") or "") for e in as_list(error.get("errors"))}
    reasons |= {str(as_dict(d).get("reason") or "") for d in as_list(error.get("details"))}
    message = " ".join(_TAGS.sub("", str(error.get("message") or "")).split())
    said = f": {message}" if message else ""
    if reasons & _QUOTA_REASONS:
        return SourceFailure(
            "transient",
            "quota",
            "YouTube Data API quota used up (10,000 units a day by default; each search.list "
            f"call costs 100); it resets at midnight Pacific time{said}",
        )
    key_refused = reasons & _KEY_REASONS or (
        status in (400, 401, 403) and "api key" in message.lower()
    )
    if key_refused:
        return SourceFailure(
            "permanent",
            "api_key",
            "the YouTube Data API refused the key in crawl.sources.youtube.api_key "
            f"(HTTP {status}){said}",
        )
    if reasons & _RATE_REASONS or status == 429 or status >= 500:
        return SourceFailure(
            "transient",
            "http_status",
            f"the YouTube Data API kept answering HTTP {status} for {where}{said}; try again later",
        )
    if status == 404:
        return SourceFailure("permanent", "not_found", f"{where}: HTTP 404{said}")
    return SourceFailure("permanent", "http_status", f"{where}: HTTP {status}{said}")


class YouTubeApiListing:
    """``search.list`` pages (and ``videos.list`` details) into the collector."""

    def __init__(self, source: YouTubeSource, job: CrawlJob, out: Collector) -> None:
        import requests
        from requests.adapters import HTTPAdapter
        from urllib3.util.retry import Retry

        self.source = source
        self.config = source.yt_config
        self.job = job
        self.out = out
        self.api_url = self.config.api_url.rstrip("/")
        self.base_url = source.base_url()
        self.session = requests.Session()
        self.session.headers["User-Agent"] = source.user_agent
        if self.config.proxy:
            self.session.proxies = {"http": self.config.proxy, "https": self.config.proxy}
        retry = Retry(
            total=source.settings.crawl.retry_times,
            status_forcelist=(429, 500, 502, 503, 504),
            allowed_methods=frozenset({"GET"}),
            backoff_factor=0.5,
            respect_retry_after_header=True,
            raise_on_status=False,
        )
        self.session.mount("http://", HTTPAdapter(max_retries=retry))
        self.session.mount("https://", HTTPAdapter(max_retries=retry))

    def get(self, method: str, params: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        """One API call: the answer's JSON object and the response."""
        import requests

        url = f"{self.api_url}/{method}"
        where = f"{method}.list"
        try:
            response = self.session.get(
                url, params={**params, "key": self.source.api_key}, timeout=self.source.timeout_s
            )
        except requests.RequestException as exc:
            raise SourceFailure(
                "transient",
                "unreachable",
                f"could not reach the YouTube Data API at {url}: {type(exc).__name__}",
            ) from None
        if response.status_code != 200:
            raise api_failure(response.status_code, response.content, where)
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            content_type = response.headers.get("Content-Type") or "no content type"
            raise SourceFailure(
                "transient",
                "parse_error",
                f"the YouTube Data API answered {where} with something that is not a JSON "
                f"object ({content_type}, starts {response.content[:40]!r}); try again later",
            )
        return data, response

    def channel_id(self, handle: str) -> str:
        data, _ = self.get("channels", {"part": "id", "forHandle": f"@{handle}"})
        for item in as_list(data.get("items")):
            cid = as_dict(item).get("id")
            if isinstance(cid, str) and cid:
                return cid
        raise SourceFailure("input", "not_found", f"YouTube has no channel @{handle}")

    def search_params(self) -> dict[str, Any]:
        query = self.job.query
        params: dict[str, Any] = {
            "part": "snippet",
            "type": "video",
            "order": "date",
            "maxResults": min(API_PAGE_MAX, self.config.page_size or API_PAGE_MAX),
        }
        if query.kind == "hashtag":
            params["q"] = f"#{query.value}"
        elif query.kind == "search":
            params["q"] = query.value
        elif query.kind == "account":
            params["channelId"] = self.channel_id(query.value)
        if self.config.video_duration != "any":
            params["videoDuration"] = self.config.video_duration
        if self.job.max_age_s is not None:
            after = self.out.now - timedelta(seconds=self.job.max_age_s)
            params["publishedAfter"] = after.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if self.config.region_code:
            params["regionCode"] = self.config.region_code
        if self.config.relevance_language:
            params["relevanceLanguage"] = self.config.relevance_language
        return params

    def run(self) -> None:
        params = self.search_params()
        tokens: set[str] = set()
        while True:
            data, response = self.get("search", params)
            items = [as_dict(i) for i in as_list(data.get("items"))]
            ids = [vid for vid in map(_video_id, items) if vid and self.out.wants(vid)]
            videos = self.videos(ids) if self.config.statistics and ids else {}
            posts = []
            for item in items:
                vid = _video_id(item)
                if not vid or not self.out.wants(vid):
                    continue
                posts.append(self.post(item, videos.get(vid), response))
            self.out.offer_page(posts)
            token = data.get("nextPageToken")
            if self.out.full or self.out.stop is not None:
                return
            if not isinstance(token, str) or not token:
                self.out.stop = "exhausted"
                return
            if token in tokens:
                raise SourceFailure(
                    "transient",
                    "parse_error",
                    f"the YouTube Data API repeated page token {token!r} for "
                    f"{self.job.query}; stopping",
                )
            tokens.add(token)
            self.out.cursor = token
            params = {**params, "pageToken": token}

    def videos(self, ids: list[str]) -> dict[str, tuple[dict[str, Any], Any]]:
        """``videos.list`` resources by id, with the response each came in."""
        found: dict[str, tuple[dict[str, Any], Any]] = {}
        for start in range(0, len(ids), API_PAGE_MAX):
            batch = ids[start : start + API_PAGE_MAX]
            data, response = self.get(
                "videos", {"part": "snippet,statistics,contentDetails", "id": ",".join(batch)}
            )
            for item in as_list(data.get("items")):
                resource = as_dict(item)
                if isinstance(resource.get("id"), str):
                    found[resource["id"]] = (resource, response)
        return found

    def post(
        self, item: dict[str, Any], video: tuple[dict[str, Any], Any] | None, search: Any
    ) -> Post:
        """A Post from a search result and, when fetched, its ``videos.list`` resource (whose
        full snippet and counts win; it is then the provenance's raw item)."""
        from yt_dlp.utils import parse_duration

        vid = str(_video_id(item))
        resource, response = video if video is not None else ({}, search)
        snippet = as_dict(resource.get("snippet"))
        if not snippet:
            # search.list sends its text HTML-escaped (Rubik&#39;s); videos.list does not.
            found = as_dict(item.get("snippet"))
            snippet = {
                **found,
                **{
                    key: html.unescape(str(found.get(key) or ""))
                    for key in ("title", "description", "channelTitle")
                },
            }
        stats = as_dict(resource.get("statistics"))
        details = as_dict(resource.get("contentDetails"))
        caption = caption_of(snippet)
        handle = self.job.query.value if self.job.query.kind == "account" else ""
        duration = parse_duration(details.get("duration")) if details.get("duration") else None
        now = utcnow()
        return Post(
            platform=self.source.name,
            post_id=vid,
            url=f"{self.base_url}/watch?v={quote(vid)}",
            author=Author(
                id=str(snippet.get("channelId") or ""),
                handle=handle,
                nickname=snippet.get("channelTitle") or None,
            ),
            caption=caption,
            hashtags=hashtags_in(caption),
            posted_at=_rfc3339(snippet.get("publishedAt")),
            stats=PostStats(
                views=_api_count(stats.get("viewCount")),
                likes=_api_count(stats.get("likeCount")),
                comments=_api_count(stats.get("commentCount")),
            ),
            duration=float(duration) if duration else None,
            watch=self.job.watch,
            hashtag=self.job.query.hashtag,
            first_seen=now,
            last_seen=now,
            provenance=Provenance(
                raw=resource or item,
                captured_at=now,
                source_url=without_key(response.url),
                user_agent=self.source.user_agent,
                status=response.status_code,
                headers={
                    k: v
                    for k, v in response.headers.items()
                    if k.lower() not in ("set-cookie", "cookie")
                },
                method="api",
                query=str(self.job.query),
            ),
        )


def _video_id(item: dict[str, Any]) -> str | None:
    vid = as_dict(item.get("id")).get("videoId")
    return vid if isinstance(vid, str) and vid else None


def _api_count(value: Any) -> int | None:
    """The API sends counts as strings (``"1200"``), and leaves hidden ones out."""
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _rfc3339(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


__all__ = ["YouTubeSettings", "YouTubeSource", "api_failure", "youtube_entry_to_post"]
