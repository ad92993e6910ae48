"""What a discovery source is, and the spider contract every source's spider follows.

How to add a source (a platform to discover posts on):

1. Write a Scrapy spider that subclasses :class:`DiscoverySpider`. It receives the platform
   name, base URL, hashtag, limit, page size and watch as keyword arguments, yields
   :class:`reelwatch.models.Post` items (at most ``limit``; use :meth:`DiscoverySpider.want`),
   and reports an expected failure with :meth:`DiscoverySpider.fail` instead of raising, so
   the caller gets one clear line rather than a traceback. Use :meth:`DiscoverySpider.on_error`
   as the errback of every request.
2. Subclass :class:`Source`: set ``name`` (the ``--platform`` value and ``Post.platform``),
   ``spider`` and ``url_setting`` (the :class:`reelwatch.settings.CrawlSettings` field that
   holds the platform's base URL; add one there if needed).
3. Add the class to ``SOURCES`` in :mod:`crawler.sources`. The contract tests in
   ``tests/crawler/test_sources.py`` run against every registered source.

Retries (429 with Retry-After, 5xx), throttling, the user agent and timeouts are not the
spider's business: :mod:`crawler.scrapy_settings` derives them from the reelwatch settings.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import scrapy
from scrapy.downloadermiddlewares.retry import get_retry_request
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Request, Response
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.python.failure import Failure

from reelwatch.errors import InputError
from reelwatch.settings import Settings

logger = logging.getLogger(__name__)

FailureKind = Literal["input", "transient", "permanent"]


@dataclass(frozen=True)
class CrawlFailure:
    """Why a crawl stopped early; ``kind`` picks the reelwatch error the caller raises."""

    kind: FailureKind
    message: str


class DiscoverySpider(scrapy.Spider):
    """Base of every source's spider: arguments, the limit, and failure reporting."""

    def __init__(
        self,
        *,
        platform: str,
        base_url: str,
        hashtag: str,
        limit: int,
        page_size: int = 30,
        watch: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.platform = platform
        self.base_url = base_url.rstrip("/")
        self.hashtag = hashtag
        self.limit = int(limit)
        self.page_size = int(page_size)
        self.watch = watch
        self.failure: CrawlFailure | None = None
        self.seen: set[str] = set()

    def want(self, post_id: str) -> bool:
        """Claim a slot for a post: False once the limit is reached or the post was seen.

        Platforms shift pages while we read them (new posts push old ones down), so the same
        post can arrive twice; it counts once.
        """
        if self.reached_limit or post_id in self.seen:
            return False
        self.seen.add(post_id)
        return True

    @property
    def reached_limit(self) -> bool:
        return len(self.seen) >= self.limit

    @staticmethod
    def request_of(response: Response) -> Request:
        """The request behind a response; Scrapy always sets it before calling back."""
        assert response.request is not None
        return response.request

    def retry(self, response: Response, reason: str) -> Request | None:
        """A retry of a 200 response that carried no usable data, or None when retries ran out.

        Block pages and captchas come back as 200, so RetryMiddleware cannot see them; this
        goes through Scrapy's own retry accounting (``RETRY_TIMES``, retry stats) instead.
        """
        return get_retry_request(self.request_of(response), spider=self, reason=reason)

    def fail(self, kind: FailureKind, message: str) -> None:
        """Record an expected failure (first one wins) and log it; the crawl then winds down."""
        if self.failure is None:
            self.failure = CrawlFailure(kind, message)
        logger.error("%s", message)

    def on_error(self, failure: Failure) -> None:
        """Errback: turn download failures into a :class:`CrawlFailure`.

        Scrapy's RetryMiddleware has already retried what was worth retrying, so what arrives
        here is final: 429/5xx and network faults are transient, a 404 or 403 is not.
        """
        request: Request | None = getattr(failure, "request", None)
        url = request.url if request is not None else self.base_url
        if failure.check(HttpError):
            error = failure.value
            assert isinstance(error, HttpError)
            response: Response = error.response
            status = response.status
            retry_after = response.headers.get("Retry-After")
            detail = f" (Retry-After: {retry_after.decode()})" if retry_after else ""
            if status == 429 or status >= 500:
                self.fail(
                    "transient",
                    f"{self.platform} kept answering HTTP {status}{detail} for {url} "
                    "after retries; try again later",
                )
            else:
                self.fail("permanent", f"{self.platform} answered HTTP {status} for {url}")
            return
        if failure.check(IgnoreRequest):
            self.fail("permanent", f"{self.platform}: request to {url} refused: {failure.value}")
            return
        self.fail(
            "transient",
            f"could not reach {self.platform} at {url}: {failure.getErrorMessage()}",
        )


class Source:
    """A platform reelwatch discovers posts on (see the module docstring to add one).

    A source is stateless configuration: which spider crawls it and where its base URL
    comes from. It never runs the spider itself; :func:`crawler.crawl` does, in a subprocess.
    """

    name: ClassVar[str]
    spider: ClassVar[type[DiscoverySpider]]
    url_setting: ClassVar[str]
    """Name of the :class:`reelwatch.settings.CrawlSettings` field holding the base URL."""
    url_hint: ClassVar[str] = ""
    """Appended to the "no URL configured" error: how to get one."""

    @classmethod
    def base_url(cls, settings: Settings) -> str:
        """The platform's base URL from the settings; InputError when unset or not http(s)."""
        value = getattr(settings.crawl, cls.url_setting, None)
        env = f"REELWATCH_CRAWL__{cls.url_setting.upper()}"
        if not value:
            raise InputError(f"no URL configured for {cls.name}: set {env}{cls.url_hint}")
        url = str(value).rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InputError(f"{env}={value!r} is not an http(s) URL")
        return url
