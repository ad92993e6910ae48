"""Scrapy downloader middleware: retry like Scrapy does, but wait as long as asked to.

Scrapy's RetryMiddleware retries 429 and 5xx at once; a platform that sends
``Retry-After`` means "not before then", and hammering it earlier only extends the ban.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

from scrapy.downloadermiddlewares.retry import RetryMiddleware
from scrapy.utils.asyncio import sleep
from scrapy.utils.response import response_status_message

if TYPE_CHECKING:
    from scrapy.http import Request, Response
    from scrapy.settings import BaseSettings

logger = logging.getLogger(__name__)

RETRY_AFTER_MAX_SETTING = "REELWATCH_RETRY_AFTER_MAX"
"""Longest Retry-After (seconds) worth waiting inside a crawl; longer ones end the crawl with
a transient error so the caller (Celery's backoff, a later scheduled run) retries instead."""


def retry_after_seconds(value: bytes | str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or HTTP-date), or None."""
    if value is None:
        return None
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    text = text.strip()
    if not text:
        return None
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class RetryAfterMiddleware(RetryMiddleware):
    """:class:`RetryMiddleware` that honours ``Retry-After`` on retryable responses.

    Replaces Scrapy's own in ``DOWNLOADER_MIDDLEWARES`` (see :mod:`crawler.scrapy_settings`).
    The wait is asynchronous, so other requests keep flowing meanwhile.
    """

    def __init__(self, settings: BaseSettings) -> None:
        super().__init__(settings)
        self.retry_after_max = settings.getfloat(RETRY_AFTER_MAX_SETTING, 60.0)

    # Scrapy awaits coroutine middleware methods; the base class's is synchronous, hence the
    # override is "incompatible" to mypy although Scrapy accepts both.
    async def process_response(  # type: ignore[override]
        self, request: Request, response: Response
    ) -> Request | Response:
        if request.meta.get("dont_retry", False) or response.status not in self.retry_http_codes:
            return response
        retries_left = request.meta.get("max_retry_times", self.max_retry_times) - request.meta.get(
            "retry_times", 0
        )
        delay = retry_after_seconds(response.headers.get("Retry-After"))
        if retries_left > 0 and delay:
            if delay > self.retry_after_max:
                logger.warning(
                    "%s asks to wait %.0f s (Retry-After), more than the %.0f s we wait in a "
                    "crawl; giving up on it for now",
                    request.url,
                    delay,
                    self.retry_after_max,
                )
                return response
            logger.info("%s: waiting %.1f s as Retry-After asks", request.url, delay)
            await sleep(delay)
        return self._retry(request, response_status_message(response.status)) or response
