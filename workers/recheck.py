"""One re-check of a post through its source, under the download guard.

The answers' meaning is the crawler's (:mod:`crawler.recheck`: what a TikTok-structured post
page or a yt-dlp error says about a post); fetching them is done here, like downloads, inside
:mod:`workers.netguard` with the download's address rules (public addresses only unless
``download.allow_private_hosts``) and only through Python sockets.
"""

from __future__ import annotations

import http.cookiejar
import logging
import socket
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

from crawler.recheck import (
    MAX_PAGE_BYTES,
    PostCheck,
    classify_page,
    classify_ytdlp_error,
    one_line,
    page_url,
    source_config,
    ytdlp_detail,
)
from reelwatch.models import CheckOutcome
from workers import netguard
from workers.download import check_url_allowed, short_url

if TYPE_CHECKING:
    from crawler.sources.base import SourceSettings
    from reelwatch.models import Post
    from reelwatch.settings import Settings

log = logging.getLogger(__name__)


def check_page(settings: Settings, post: Post, config: SourceSettings | None = None) -> PostCheck:
    """Fetch the post page (inside the download guard) and classify it."""
    from reelwatch.errors import ReelwatchError

    url = page_url(post, config)
    allow_private = settings.download.allow_private_hosts
    try:
        check_url_allowed(url, allow_private)
    except ReelwatchError as exc:
        return PostCheck(CheckOutcome.UNKNOWN, one_line(f"not checked: {exc}"))
    handlers: list[urllib.request.BaseHandler] = []
    proxy = config.proxy if config is not None else None
    if proxy:
        handlers.append(urllib.request.ProxyHandler({"http": proxy, "https": proxy}))
    jar = http.cookiejar.MozillaCookieJar()
    cookies = config.cookies_file if config is not None else None
    if cookies is not None:
        try:
            jar.load(str(cookies), ignore_discard=True, ignore_expires=True)
        except (OSError, http.cookiejar.LoadError) as exc:
            return PostCheck(CheckOutcome.UNKNOWN, one_line(f"not checked: cookies file: {exc}"))
    handlers.append(urllib.request.HTTPCookieProcessor(jar))
    opener = urllib.request.build_opener(*handlers)
    agent = (config.user_agent if config is not None else None) or settings.crawl.user_agent
    timeout = (config.timeout_s if config is not None else None) or settings.crawl.timeout_s
    request = urllib.request.Request(
        url,
        headers={
            "User-Agent": agent,
            "Accept": "text/html,application/xhtml+xml",
            "Accept-Language": "en-US,en;q=0.8",
        },
    )
    with netguard.guard(allow_private=allow_private) as guard:
        try:
            with opener.open(request, timeout=timeout) as response:
                body = response.read(MAX_PAGE_BYTES + 1)
                status = int(response.status)
                final_url = response.geturl()
                content_type = response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            status, final_url = exc.code, exc.geturl() or url
            content_type = exc.headers.get("Content-Type", "") if exc.headers else ""
            try:
                body = exc.read(MAX_PAGE_BYTES + 1)
            except OSError:
                body = b""
        except (urllib.error.URLError, OSError, ValueError) as exc:
            if guard.refusals:
                return PostCheck(CheckOutcome.UNKNOWN, one_line(f"refused: {guard.refusals[0]}"))
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            if isinstance(reason, socket.timeout | TimeoutError):
                return PostCheck(CheckOutcome.UNKNOWN, f"timed out after {timeout:g} s")
            where = short_url(url, 80)
            return PostCheck(CheckOutcome.UNKNOWN, one_line(f"network error at {where}: {reason}"))
    if len(body) > MAX_PAGE_BYTES:
        return PostCheck(CheckOutcome.UNKNOWN, f"HTTP {status} page over {MAX_PAGE_BYTES} bytes")
    return classify_page(
        status, body, post_id=post.post_id, final_url=final_url, content_type=content_type
    )


def check_ytdlp(settings: Settings, post: Post) -> PostCheck:
    """Ask yt-dlp for the post's metadata (nothing is downloaded), inside the download
    guard, with the downloader's limits on time and retries."""
    from yt_dlp.networking.exceptions import RequestError
    from yt_dlp.utils import DownloadError, ExtractorError, GeoRestrictedError

    from crawler.ytdlp import new_youtube_dl
    from reelwatch.errors import ReelwatchError

    allow_private = settings.download.allow_private_hosts
    try:
        check_url_allowed(post.url, allow_private)
    except ReelwatchError as exc:
        return PostCheck(CheckOutcome.UNKNOWN, one_line(f"not checked: {exc}"))
    limits = settings.download
    params: dict[str, Any] = {
        "skip_download": True,
        "noplaylist": True,
        "enable_file_urls": False,
        "format": "best/bestvideo/bestaudio",
        "check_formats": False,
        "socket_timeout": limits.socket_timeout_s,
        "retries": limits.retries,
        "extractor_retries": 1,
        "http_headers": {"User-Agent": settings.crawl.user_agent},
    }
    with netguard.guard(allow_private=allow_private) as guard:
        try:
            with new_youtube_dl(params, python_sockets_only=True) as ydl:
                info = ydl.extract_info(post.url, download=False)
        except (DownloadError, ExtractorError, RequestError) as exc:
            if guard.refusals:
                return PostCheck(CheckOutcome.UNKNOWN, one_line(f"refused: {guard.refusals[0]}"))
            cause = getattr(exc, "exc_info", None)
            original = cause[1] if cause and len(cause) > 1 else exc
            message = str(exc)
            detail = one_line(f"yt-dlp: {ytdlp_detail(message)}")
            if isinstance(original, GeoRestrictedError):
                return PostCheck(CheckOutcome.UNKNOWN, detail)
            return PostCheck(classify_ytdlp_error(message), detail)
    if not isinstance(info, dict):
        return PostCheck(CheckOutcome.UNKNOWN, "yt-dlp: no answer")
    if info.get("_type") in ("playlist", "multi_video"):
        return PostCheck(CheckOutcome.UNKNOWN, "yt-dlp: the URL is a list, not one post")
    extractor = str(info.get("extractor_key") or info.get("extractor") or "")
    said = " ".join(str(part) for part in (extractor, info.get("id")) if part)
    return PostCheck(CheckOutcome.UP, one_line(f"yt-dlp: up ({said})" if said else "yt-dlp: up"))


def check_post(settings: Settings, post: Post) -> PostCheck:
    """Re-check ``post`` through its source: the page for TikTok-structured platforms,
    yt-dlp for the others. Never raises for what a platform answers; a bug in a check is
    reported as ``UNKNOWN`` too, so one bad post cannot stop a run."""
    try:
        config, through_page = source_config(settings, post.platform)
        if through_page:
            return check_page(settings, post, config)
        return check_ytdlp(settings, post)
    except Exception as exc:  # a check must never take the run down
        log.exception("re-check of %s failed", post.key)
        return PostCheck(
            CheckOutcome.UNKNOWN, one_line(f"check failed: {type(exc).__name__}: {exc}")
        )
