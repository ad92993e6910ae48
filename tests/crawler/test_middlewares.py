"""Retry-After parsing and the Scrapy settings derived from reelwatch's."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from crawler.middlewares import retry_after_seconds
from crawler.scrapy_settings import scrapy_settings
from reelwatch.settings import Settings


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (b"120", 120.0),
        ("0", 0.0),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_accepts_seconds_and_http_dates(
    header: bytes | str | None, seconds: float | None
) -> None:
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC)
    assert retry_after_seconds(header, now=now) == seconds


def test_scrapy_settings_follow_the_reelwatch_settings(settings: Settings) -> None:
    settings.crawl.user_agent = "studio-bot/2"
    settings.crawl.retry_times = 7
    settings.crawl.concurrent_requests = 3
    derived = scrapy_settings(settings)
    assert derived["USER_AGENT"] == "studio-bot/2"
    assert derived["RETRY_TIMES"] == 7
    assert derived["CONCURRENT_REQUESTS"] == 3
    assert 429 in derived["RETRY_HTTP_CODES"]
    assert derived["DOWNLOADER_MIDDLEWARES"] == {
        "scrapy.downloadermiddlewares.retry.RetryMiddleware": None,
        "crawler.middlewares.RetryAfterMiddleware": 550,
    }
    assert derived["TELNETCONSOLE_ENABLED"] is False
    assert derived["REMOTE_CONTROL_ENABLED"] is False
    assert derived["LOG_LEVEL"] == "WARNING"
