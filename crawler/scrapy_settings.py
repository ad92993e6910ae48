"""Scrapy settings, derived from the reelwatch settings tree and from nothing else.

Politeness (user agent, AutoThrottle, delay, concurrency), retries (429 and 5xx, honouring
Retry-After through :class:`crawler.middlewares.RetryAfterMiddleware`) and timeouts all come
from ``settings.crawl``; what is not there is fixed here because reelwatch needs it so
(no telnet console or remote control in a worker, warnings-only logging).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crawler.middlewares import RETRY_AFTER_MAX_SETTING
from reelwatch.settings import Settings

if TYPE_CHECKING:
    from crawler.sources.base import SourceSettings

RETRY_HTTP_CODES = [429, 500, 502, 503, 504, 522, 524, 408]


def scrapy_settings(settings: Settings, source: SourceSettings | None = None) -> dict[str, Any]:
    """The Scrapy settings dict for a crawl of a source with the given settings block.

    Spiders hand posts to the crawl's collector themselves, so there is no item pipeline.
    """
    crawl = settings.crawl
    timeout = (source.timeout_s if source else None) or crawl.timeout_s
    values: dict[str, Any] = {
        "BOT_NAME": "reelwatch",
        "USER_AGENT": (source.user_agent if source else None) or crawl.user_agent,
        "ROBOTSTXT_OBEY": True,
        "CONCURRENT_REQUESTS": crawl.concurrent_requests,
        "CONCURRENT_REQUESTS_PER_DOMAIN": crawl.concurrent_requests,
        "DOWNLOAD_DELAY": crawl.download_delay,
        "DOWNLOAD_TIMEOUT": timeout,
        "AUTOTHROTTLE_ENABLED": crawl.autothrottle,
        "AUTOTHROTTLE_START_DELAY": crawl.download_delay,
        "AUTOTHROTTLE_MAX_DELAY": max(crawl.timeout_s, 10.0),
        "AUTOTHROTTLE_TARGET_CONCURRENCY": 1.0,
        "RETRY_ENABLED": True,
        "RETRY_TIMES": crawl.retry_times,
        "RETRY_HTTP_CODES": RETRY_HTTP_CODES,
        # Spiders retry block pages with get_retry_request, which copies the request's meta:
        # retry_times must carry over, and download_latency is overwritten when it downloads.
        "META_COPY_WARN_SKIP_KEYS": ["retry_times", "download_latency"],
        RETRY_AFTER_MAX_SETTING: max(crawl.timeout_s, 60.0),
        "DOWNLOADER_MIDDLEWARES": {
            "scrapy.downloadermiddlewares.retry.RetryMiddleware": None,
            "crawler.middlewares.RetryAfterMiddleware": 550,
        },
        "TELNETCONSOLE_ENABLED": False,
        "REMOTE_CONTROL_ENABLED": False,
        "LOG_LEVEL": "WARNING",
        "COOKIES_ENABLED": True,
    }
    return values
