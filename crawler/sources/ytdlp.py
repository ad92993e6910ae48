"""Any site yt-dlp can list: channel and playlist pages, RSS feeds, ``ytsearchN:`` searches.

A team can follow a new platform without new code: give a ``url:`` query (a channel,
playlist, account page or RSS 2.0 feed) or a ``search:`` query (run through yt-dlp's search
key, ``ytsearch`` unless ``crawl.sources.ytdlp.search_key`` says otherwise), and the posts
yt-dlp's own extractors list come back as Posts of platform ``ytdlp``.

Listing is flat (``extract_flat: "in_playlist"``): yt-dlp reads the listing pages only and
never opens the posts one by one, and ``playlistend`` stops it at the crawl's limit, so a
playlist of thousands of entries costs the pages up to the limit. Entries reach the
collector as yt-dlp yields them (through a ``pre_process`` post-processor, the hook yt-dlp
runs on every flat entry), so a listing that fails on its tenth page keeps the first nine.

The same machinery (:class:`FlatListing`) lists YouTube for :mod:`crawler.sources.youtube`.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic import Field, field_validator

from crawler.sources.base import (
    Collector,
    CrawlJob,
    Query,
    Source,
    SourceFailure,
    SourceSettings,
)
from crawler.tiktok_format import (
    MalformedItem,
    as_count,
    as_duration,
    as_http_url,
    as_text,
    as_timestamp,
    post_id_of,
)
from reelwatch.errors import InputError
from reelwatch.models import Author, Post, PostStats, Provenance, normalize_hashtag, utcnow

logger = logging.getLogger(__name__)

_HASHTAG = re.compile(r"(?<![\w&#])#(\w+)")
"""A hashtag in free text: ``#word`` not glued to a word before it (``a#b``, ``&#39;``)."""

_SEARCH_KEY = re.compile(r"[a-z]+search(?:date)?")

_CONTAINERS = frozenset({"YoutubeTab"})
"""Extractors whose links in a listing are channels, tabs or playlists, though yt-dlp counts
them as "any" (YoutubeTab returns a video only for ``watch?v=&list=`` URLs, which listings do
not yield); extractors yt-dlp knows return playlists only are recognised without this."""


# -- entries to posts -------------------------------------------------------------------------
@dataclass(frozen=True)
class Listed:
    """Where a listing's entries came from, for their provenance."""

    url: str
    """What was listed (the feed, playlist or search URL)."""
    user_agent: str
    query: Query
    watch: str | None
    captured_at: datetime
    """When the entry was listed (each entry gets its own as yt-dlp reaches it)."""


def caption_of(entry: dict[str, Any]) -> str:
    """Title and description as one caption, without saying the same thing twice."""
    title = as_text(entry.get("title")).strip()
    description = as_text(entry.get("description")).strip()
    if not description or description == title:
        return title
    if not title or description.startswith(title):
        return description
    return f"{title}\n\n{description}"


def hashtags_in(text: str) -> list[str]:
    """Normalised ``#hashtags`` of a text, in order, without repeats."""
    tags = (normalize_hashtag(m) for m in _HASHTAG.findall(text))
    return list(dict.fromkeys(t for t in tags if t))


def posted_at_of(entry: dict[str, Any]) -> datetime | None:
    """``timestamp``, else ``release_timestamp``, else ``upload_date`` (midnight UTC)."""
    for key in ("timestamp", "release_timestamp"):
        value = entry.get(key)
        if isinstance(value, int | float) and (when := as_timestamp(value)) is not None:
            return when
    date = entry.get("upload_date")
    if isinstance(date, str) and re.fullmatch(r"\d{8}", date):
        try:
            return datetime.strptime(date, "%Y%m%d").replace(tzinfo=UTC)
        except ValueError:  # 20261399
            return None
    return None


def author_of(entry: dict[str, Any]) -> Author:
    """yt-dlp names people inconsistently across sites: ``uploader_id`` is a handle
    (``@name``) on YouTube and a numeric id elsewhere; ``uploader`` a display name on
    YouTube and often the handle elsewhere."""
    uploader_id = as_text(entry.get("uploader_id"))
    uploader = as_text(entry.get("uploader"))
    if uploader_id.startswith("@"):
        handle, author_id = uploader_id[1:], as_text(entry.get("channel_id")) or uploader_id
    else:
        handle, author_id = uploader, as_text(entry.get("channel_id")) or uploader_id
    followers = entry.get("channel_follower_count")
    return Author(
        id=author_id,
        handle=handle,
        nickname=as_text(entry.get("channel")) or uploader or None,
        followers=as_count(followers) if isinstance(followers, int) else None,
    )


def _count(entry: dict[str, Any], key: str) -> int | None:
    value = entry.get(key)
    return as_count(value) if isinstance(value, int) else None


def stats_of(entry: dict[str, Any]) -> PostStats:
    return PostStats(
        views=_count(entry, "view_count"),
        likes=_count(entry, "like_count"),
        shares=_count(entry, "repost_count"),
        comments=_count(entry, "comment_count"),
    )


def raw_of(entry: dict[str, Any]) -> dict[str, Any]:
    """The entry as yt-dlp gave it, JSON-safe, without its private ``__`` keys."""
    kept = {k: v for k, v in entry.items() if not k.startswith("__")}
    data = json.loads(json.dumps(kept, default=str))
    return data if isinstance(data, dict) else {}


def webpage_url_of(entry: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The entry's page URL and what yt-dlp smuggled into it (RSS entries carry their
    ``<guid>`` as ``force_videoid``)."""
    from yt_dlp.utils import unsmuggle_url

    url, data = unsmuggle_url(as_text(entry.get("webpage_url") or entry.get("url")), {})
    return url, data if isinstance(data, dict) else {}


def entry_post(
    entry: dict[str, Any],
    *,
    platform: str,
    post_id: str,
    url: str,
    listed: Listed,
    author: Author | None = None,
) -> Post:
    """A Post from one yt-dlp entry (flat or complete)."""
    caption = caption_of(entry)
    return Post(
        platform=platform,
        post_id=post_id,
        url=url,
        author=author or author_of(entry),
        caption=caption,
        hashtags=hashtags_in(caption),
        posted_at=posted_at_of(entry),
        stats=stats_of(entry),
        duration=as_duration(entry.get("duration")),
        watch=listed.watch,
        hashtag=listed.query.hashtag,
        first_seen=listed.captured_at,
        last_seen=listed.captured_at,
        provenance=Provenance(
            raw=raw_of(entry),
            captured_at=listed.captured_at,
            source_url=as_text(entry.get("playlist_webpage_url")) or listed.url,
            user_agent=listed.user_agent,
            method="ytdlp",
            query=str(listed.query),
        ),
    )


# -- listing ----------------------------------------------------------------------------------
EntryMapper = Callable[[dict[str, Any], Listed], Post | None]
"""Turns one entry into a Post, or None for an entry that is not a post (a playlist link)."""


class FlatListing:
    """Lists URLs flat through yt-dlp into a collector.

    ``extractor_args`` go to yt-dlp as they are (``{"youtubetab": {"approximate_date":
    [""]}}``). Extractors of :func:`crawler.ytdlp_extractors` are registered ahead of
    yt-dlp's own, as the download worker does, so replica pages list too.
    """

    def __init__(
        self,
        source: Source,
        job: CrawlJob,
        out: Collector,
        to_post: EntryMapper,
        extractor_args: dict[str, dict[str, list[str]]] | None = None,
    ) -> None:
        self.source = source
        self.job = job
        self.out = out
        self.to_post = to_post
        self.extractor_args = extractor_args or {}

    def options(self, limit: int) -> dict[str, Any]:
        config = self.source.config
        crawl = self.source.settings.crawl
        options: dict[str, Any] = {
            "extract_flat": "in_playlist",
            "playlistend": limit,
            "lazy_playlist": True,
            "skip_download": True,
            "ignore_no_formats_error": True,
            "check_formats": False,
            "cachedir": False,
            "socket_timeout": self.source.timeout_s,
            "extractor_retries": crawl.retry_times,
            "extractor_args": self.extractor_args,
        }
        if crawl.download_delay > 0:
            options["sleep_interval_requests"] = crawl.download_delay
        if config.user_agent:
            options["http_headers"] = {"User-Agent": config.user_agent}
        if config.proxy:
            options["proxy"] = config.proxy
        if config.cookies_file:
            options["cookiefile"] = str(config.cookies_file)
        return options

    def run(self, url: str) -> None:
        """List ``url`` until the collector is full or the listing ends; a failure is raised
        as :class:`SourceFailure` after the entries before it were collected."""
        from yt_dlp.postprocessor.common import PostProcessor
        from yt_dlp.utils import DownloadCancelled, DownloadError

        from crawler.ytdlp import new_youtube_dl

        remaining = self.out.limit - len(self.out.posts)
        if remaining <= 0:
            return
        listing = self

        class Enough(DownloadCancelled):
            """The collector wants no more: stop yt-dlp paging further."""

        class EntrySink(PostProcessor):
            """Runs on every entry yt-dlp lists (``pre_process``), flat or complete."""

            def run(self, info: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
                listing.take(info, listed)
                if listing.out.full or listing.out.stop is not None:
                    raise Enough()
                return [], info

        ydl = new_youtube_dl(self.options(remaining))
        listed = Listed(
            url=url,
            user_agent=str(ydl.params.get("http_headers", {}).get("User-Agent", "")),
            query=self.job.query,
            watch=self.job.watch,
            captured_at=utcnow(),
        )
        with ydl:
            ydl.add_post_processor(EntrySink(), when="pre_process")
            self.out.pages += 1
            try:
                ydl.extract_info(url, download=False)
            except Enough:
                return
            except DownloadError as exc:
                raise listing_failure(exc, self.source.name, url) from None

    def take(self, entry: dict[str, Any], listed: Listed) -> None:
        try:
            post = self.to_post(entry, replace(listed, captured_at=utcnow()))
        except (ValueError, TypeError) as exc:
            logger.warning("skipping a malformed entry of %s: %s", listed.url, exc)
            return
        if post is not None:
            self.out.offer(post)


def check_cookies_file(source: Source) -> None:
    """InputError when the source names a cookies file that is not there."""
    path = source.config.cookies_file
    if path is not None and not path.is_file():
        env = source.env_name("cookies_file")
        raise InputError(f"{env}: {path} is not a file (a Netscape cookies.txt)")


def listing_failure(exc: Exception, platform: str, url: str) -> SourceFailure:
    """One clear :class:`SourceFailure` for a yt-dlp error (its HTTP status, if any, decides
    whether retrying later can help)."""
    from yt_dlp.networking.exceptions import HTTPError, TransportError
    from yt_dlp.utils import ExtractorError, UnsupportedError

    original = exc
    exc_info = getattr(exc, "exc_info", None)
    if exc_info and exc_info[1] is not None:
        original = exc_info[1]
    cause = original if isinstance(original, HTTPError | TransportError) else None
    cause = cause or getattr(original, "cause", None)
    message = str(getattr(original, "orig_msg", None) or original).removeprefix("ERROR: ")
    message = message.strip().splitlines()[0] if message.strip() else type(original).__name__
    what = f"{platform}: listing {url[:200]} failed: {message}"
    if isinstance(original, UnsupportedError):
        return SourceFailure("input", "unsupported", f"{platform}: yt-dlp cannot list {url[:200]}")
    if isinstance(cause, HTTPError):
        status = cause.status
        if status == 429 or status >= 500:
            return SourceFailure("transient", "http_status", f"{what}; try again later")
        if status in (404, 410):
            return SourceFailure("permanent", "not_found", what)
        return SourceFailure("permanent", "http_status", what)
    if isinstance(cause, TransportError):
        return SourceFailure("transient", "unreachable", what)
    lowered = message.lower()
    if "empty body" in lowered:
        return SourceFailure("permanent", "empty_body", what)
    if "sign in" in lowered or "login" in lowered or "cookies" in lowered:
        return SourceFailure("permanent", "login_expired", what)
    if isinstance(original, ExtractorError) and original.expected:
        return SourceFailure("permanent", "not_found", what)
    return SourceFailure("transient", "parse_error", what)


# -- the source -------------------------------------------------------------------------------
class YtDlpSettings(SourceSettings):
    search_key: str = "ytsearch"
    """yt-dlp search key for ``search:`` queries: ``ytsearch`` (YouTube, by relevance),
    ``ytsearchdate`` (YouTube, newest first), ``scsearch`` (SoundCloud)..."""
    extractor_args: dict[str, dict[str, list[str]]] = Field(default_factory=dict)
    """Passed to yt-dlp as ``extractor_args``, e.g. ``{youtubetab: {approximate_date: [""]}}``."""

    @field_validator("search_key")
    @classmethod
    def _is_a_search_key(cls, value: str) -> str:
        if not _SEARCH_KEY.fullmatch(value):
            raise ValueError(f"{value!r} is not a yt-dlp search key (ytsearch, scsearch...)")
        return value


class YtDlpSource(Source):
    """Whatever yt-dlp can list: a ``url:`` (channel, playlist, account page, RSS feed, or a
    ``ytsearchN:words`` search) or ``search:words`` through ``search_key``.

    Needs no base URL: the query is the address. A post's id is ``<extractor>:<id>``
    (``youtube:dQw4w9WgXcQ``, ``replica:7300000000000000005``) so ids from different sites
    never collide, and its URL is the page yt-dlp lists for it.
    """

    name = "ytdlp"
    query_kinds = frozenset({"url", "search"})
    settings_model = YtDlpSettings
    canary: ClassVar[str | None] = None

    needs_base_url = False

    def check(self, query: Query) -> None:
        super().check(query)
        check_cookies_file(self)

    def target(self, job: CrawlJob) -> str:
        """What yt-dlp is asked to list for ``job``."""
        if job.query.kind == "search":
            key = getattr(self.config, "search_key", "ytsearch")
            return f"{key}{job.limit}:{job.query.value}"
        return job.query.value

    def discover(self, job: CrawlJob, out: Collector) -> None:
        args = getattr(self.config, "extractor_args", {})
        FlatListing(self, job, out, self.entry_to_post, args).run(self.target(job))
        if out.stop is None:
            out.stop = "limit" if out.full else "exhausted"

    def entry_to_post(self, entry: dict[str, Any], listed: Listed) -> Post | None:
        return ytdlp_entry_to_post(entry, listed, platform=self.name)


def _extractor_for(url: str) -> Any:
    """The first extractor (ours, then yt-dlp's) other than the generic one that claims
    ``url``; a regular-expression match, no network."""
    from yt_dlp.extractor import gen_extractor_classes

    import crawler

    for cls in (*crawler.ytdlp_extractors(), *gen_extractor_classes()):
        if cls.ie_key() != "Generic" and cls.suitable(url):
            return cls
    return None


def entry_extractor_key(entry: dict[str, Any]) -> str:
    """The extractor that made (or would make) the entry: ``ie_key`` for a flat link (its
    ``extractor_key`` is the playlist's, copied in by yt-dlp), else ``extractor_key``."""
    if entry.get("_type") in ("url", "url_transparent"):
        return as_text(entry.get("ie_key"))
    return as_text(entry.get("extractor_key") or entry.get("ie_key"))


def ytdlp_entry_to_post(entry: dict[str, Any], listed: Listed, *, platform: str) -> Post | None:
    """Map one yt-dlp entry to a Post with id ``<extractor key, lower case>:<id>``.

    Flat entries of RSS feeds name no extractor and no id: the extractor that claims their
    URL names them (the generic one, with the feed's ``<guid>`` or the URL as the id, when
    none does). Entries that link to playlists are not posts and give None.
    """
    if not isinstance(entry, dict):
        raise MalformedItem("entry is not an object")
    if entry.get("_type") in ("playlist", "multi_video"):
        return None
    url, smuggled = webpage_url_of(entry)
    if not url:
        raise MalformedItem("entry has no URL")
    if as_http_url(url) is None:
        raise MalformedItem(f"entry URL {url[:100]!a} is not an http(s) URL")
    is_link = entry.get("_type") in ("url", "url_transparent")
    key = entry_extractor_key(entry)
    post_id = as_text(entry.get("id"))
    if not key:
        cls = _extractor_for(url)
        if cls is not None:
            key = cls.ie_key()
            post_id = post_id or str(cls.get_temp_id(url) or "")
    else:
        cls = _extractor_by_key(key)
    if is_link and (key in _CONTAINERS or (cls is not None and cls.is_single_video(url) is False)):
        return None
    key = key or "generic"
    post_id = post_id or as_text(smuggled.get("force_videoid")) or url
    post_id = post_id_of(f"{key.lower()}:{post_id}", "entry")
    return entry_post(entry, platform=platform, post_id=post_id, url=url, listed=listed)


def _extractor_by_key(key: str) -> Any:
    from yt_dlp.extractor import get_info_extractor

    import crawler

    ours: list[Any] = crawler.ytdlp_extractors()
    for cls in ours:
        if cls.ie_key() == key:
            return cls
    try:
        return get_info_extractor(key)
    except (AttributeError, KeyError):
        return None


__all__ = [
    "FlatListing",
    "Listed",
    "YtDlpSettings",
    "YtDlpSource",
    "caption_of",
    "check_cookies_file",
    "entry_extractor_key",
    "entry_post",
    "hashtags_in",
    "listing_failure",
    "ytdlp_entry_to_post",
]
