"""What a discovery source is: the contract every platform implements.

A :class:`Source` lists posts for a :class:`Query` (a hashtag, search words, an account or a
URL) and hands each one, as a :class:`reelwatch.models.Post` with its provenance, to a
:class:`Collector`. It runs inside the crawl subprocess (:mod:`crawler.runner`), so it may
start a Twisted reactor (Scrapy) or a browser (Playwright) without harming the caller.

How to add a source (a platform to discover posts on):

1. Write one module under ``crawler/sources/`` with a :class:`Source` subclass: set ``name``
   (the ``--platform`` value and ``Post.platform``), ``query_kinds`` (what it can list),
   ``needs`` (``browser``, ``login``, ``api_key``), ``settings_model`` (a
   :class:`SourceSettings` subclass when it has settings of its own, with its defaults, e.g.
   the platform's public ``base_url``) and ``canary`` (a query that always lists something,
   for ``reelwatch sources check``); implement :meth:`Source.discover`.
2. Add the class to ``SOURCES`` in :mod:`crawler.sources`.
3. Give it a replica fixture in ``tests/crawler/source_fixtures.py``: the contract suite in
   ``tests/crawler/test_sources.py`` runs every registered source against its own.

Its settings live under ``crawl.sources.<name>`` of the settings tree (environment:
``REELWATCH_CRAWL__SOURCES__<NAME>__<FIELD>``) and nowhere else. Expected failures (an empty
answer, a captcha, an expired login, an HTTP status) are raised as :class:`SourceFailure`
with a short ``reason`` code, so the caller prints one line and ``sources check`` can say
what broke.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import scrapy
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError
from scrapy.downloadermiddlewares.retry import get_retry_request
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Request, Response
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.python.failure import Failure

from reelwatch.errors import InputError
from reelwatch.models import Post, normalize_hashtag
from reelwatch.settings import Settings

logger = logging.getLogger(__name__)

FailureKind = Literal["input", "transient", "permanent"]
QueryKind = Literal["hashtag", "search", "account", "url"]
Need = Literal["browser", "login", "api_key"]
QUERY_KINDS: tuple[QueryKind, ...] = ("hashtag", "search", "account", "url")

_YTDLP_SEARCH = re.compile(r"[a-z]+search(?:date)?(?:\d+|all)?:\S", re.IGNORECASE)
"""yt-dlp's search prefixes (``ytsearch10:words``, ``scsearchall:words``)."""

MAX_LIMIT = 100_000
"""Most posts one crawl may ask for: more is a typo, not a plan."""


# -- queries ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Query:
    """What to list: ``Query("hashtag", "bridgerton")``, ``Query("search", "queen charlotte")``,
    ``Query("account", "netflix")`` or ``Query("url", "https://...")``."""

    kind: QueryKind
    value: str

    def __post_init__(self) -> None:
        if self.kind not in QUERY_KINDS:
            raise InputError(f"unknown query kind {self.kind!r}; known: {', '.join(QUERY_KINDS)}")
        value = " ".join(str(self.value).split())
        if self.kind == "hashtag":
            value = normalize_hashtag(value)
            if not value or not all(c.isalnum() or c == "_" for c in value):
                raise InputError(f"{self.value!r} is not a hashtag (letters, digits and _ only)")
        elif self.kind == "account":
            value = value.lstrip("@")
            if not value or not all(c.isalnum() or c in "._-" for c in value):
                raise InputError(f"{self.value!r} is not an account handle")
        elif self.kind == "url":
            parts = urlsplit(value)
            # yt-dlp's own search prefixes (ytsearch10:words) are URLs to yt-dlp.
            is_search = _YTDLP_SEARCH.match(value) is not None
            if (parts.scheme not in ("http", "https") or not parts.netloc) and not is_search:
                raise InputError(f"{self.value[:200]!r} is not an http(s) URL")
        if not value:
            raise InputError(f"empty {self.kind} query")
        if len(value) > 2000:
            raise InputError(f"{self.kind} query is too long ({len(value)} characters)")
        object.__setattr__(self, "value", value)

    @classmethod
    def parse(cls, text: str) -> Query:
        """``#tag``, ``@account``, ``search:words``, ``http(s)://...`` or a bare hashtag."""
        text = text.strip()
        if text.startswith("@"):
            return cls("account", text[1:])
        if text.lower().startswith(("http://", "https://")):
            return cls("url", text)
        for kind in QUERY_KINDS:
            if text.lower().startswith(kind + ":"):
                return cls(kind, text[len(kind) + 1 :])
        return cls("hashtag", text)

    def __str__(self) -> str:
        if self.kind == "hashtag":
            return f"#{self.value}"
        if self.kind == "account":
            return f"@{self.value}"
        if self.kind == "search":
            return f"search:{self.value}"
        if _YTDLP_SEARCH.match(self.value):
            return f"url:{self.value}"
        return self.value

    @property
    def hashtag(self) -> str | None:
        return self.value if self.kind == "hashtag" else None


# -- settings ---------------------------------------------------------------------------------
class SourceSettings(BaseModel):
    """The ``crawl.sources.<name>`` block every source understands; subclass to add fields.

    Unknown keys are refused, so a typo in a setting is an error rather than silence.
    """

    model_config = ConfigDict(extra="forbid")

    base_url: str | None = None
    """The platform's address; sources set their public default, tests point it at the
    replica."""
    enabled: bool = True
    limit: int | None = None
    """Most posts one crawl of this source may list, whatever the caller asks."""
    page_size: int | None = None
    """Posts per page asked of APIs that take a count; default: ``crawl.page_size``."""
    user_agent: str | None = None
    """Default: the browser's own for browser sources, ``crawl.user_agent`` for the others."""
    proxy: str | None = None
    """``http://user:pass@host:port`` or ``socks5://host:port`` for this source's traffic."""
    cookies_file: Path | None = None
    """Netscape ``cookies.txt`` for HTTP and yt-dlp sources (and yt-dlp downloads)."""
    storage_state: Path | None = None
    """Playwright storage-state file (cookies, local storage) for browser sources; written
    back after each crawl so a session lives on (``reelwatch browser login`` makes one)."""
    profile_dir: Path | None = None
    """A persistent Chromium profile folder instead of a storage-state file."""
    timeout_s: float | None = None
    """Per request or page load; default: ``crawl.timeout_s``."""
    canary: str | None = None
    """The query ``reelwatch sources check`` lists (default: the source's own)."""
    api_key: SecretStr | None = None
    """For sources with an official API (YouTube Data API v3)."""
    headless: bool = True
    max_scrolls: int = 50
    """Browser sources: most scrolls of one listing page."""
    idle_scrolls: int = 3
    """Browser sources: stop after this many scrolls in a row bring no new post."""
    scroll_wait_s: float = 2.0
    """Browser sources: how long to wait for the page's next answer after a scroll."""
    screenshots: bool = True
    """Browser sources: screenshot each listed post's page as evidence it existed."""


# -- results ----------------------------------------------------------------------------------
class SourceFailure(Exception):
    """An expected failure of a source: ``kind`` picks the reelwatch error the caller raises,
    ``reason`` is a short code (``empty_body``, ``captcha``, ``login_expired``, ``http_status``,
    ``parse_error``, ``unreachable``, ``not_found``, ``unsupported``, ``config``)."""

    def __init__(self, kind: FailureKind, reason: str, message: str) -> None:
        super().__init__(message)
        self.kind: FailureKind = kind
        self.reason = reason
        self.message = message


@dataclass
class CrawlJob:
    """What one crawl asks of a source."""

    query: Query
    limit: int
    watch: str | None = None
    max_age_s: float | None = None
    """Posts older than this are not wanted; listings are newest first, so a source may stop
    at the first page whose posts are all older."""
    captures_dir: Path | None = None
    """Folder for screenshots and other captured evidence (under the data home)."""


StopReason = Literal["limit", "exhausted", "max_age", "no_new", "failed"]


@dataclass
class Collector:
    """Receives a source's posts: keeps the first of each id, applies the limit and max age,
    counts what happened, and passes kept posts to ``sink`` as they come (so a crawl that
    fails late still returns what it found)."""

    limit: int
    max_age_s: float | None = None
    sink: Callable[[Post], None] | None = None
    posts: list[Post] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    too_old: int = 0
    pages: int = 0
    cursor: str | None = None
    stop: StopReason | None = None
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def full(self) -> bool:
        return len(self.posts) >= self.limit

    def wants(self, post_id: str) -> bool:
        """Whether a post with this id would be kept (before building the whole Post)."""
        return not self.full and post_id not in self.seen

    def is_too_old(self, post: Post) -> bool:
        if self.max_age_s is None or post.posted_at is None:
            return False
        posted = post.posted_at if post.posted_at.tzinfo else post.posted_at.replace(tzinfo=UTC)
        return self.now - posted > timedelta(seconds=self.max_age_s)

    def offer(self, post: Post) -> bool:
        """Keep ``post`` unless the limit is reached, it was seen, or it is too old; True when
        it was kept."""
        if self.full or post.post_id in self.seen:
            return False
        self.seen.add(post.post_id)
        if self.is_too_old(post):
            self.too_old += 1
            return False
        self.posts.append(post)
        if self.sink is not None:
            self.sink(post)
        if self.full:
            self.stop = "limit"
        return True

    def offer_page(self, posts: list[Post], *, newest_first: bool = True) -> int:
        """Offer one page of posts; returns how many were new. On a listing that runs newest
        first, sets ``stop`` to ``max_age`` when every dated post of the page was too old;
        ranked listings (``newest_first=False``) are read on past old posts."""
        self.pages += 1
        new = sum(1 for p in posts if self.offer(p))
        dated = [p for p in posts if p.posted_at is not None]
        too_old = dated and all(self.is_too_old(p) for p in dated)
        if newest_first and self.stop is None and too_old:
            self.stop = "max_age"
        return new


# -- sources ----------------------------------------------------------------------------------
class Source:
    """A platform reelwatch discovers posts on (see the module docstring to add one).

    Built from the settings tree; :meth:`discover` runs in the crawl subprocess.
    """

    name: ClassVar[str]
    query_kinds: ClassVar[frozenset[QueryKind]] = frozenset({"hashtag"})
    needs: ClassVar[frozenset[Need]] = frozenset()
    settings_model: ClassVar[type[SourceSettings]] = SourceSettings
    canary: ClassVar[str | None] = None
    """Default canary query (``#fyp``) for ``sources check``; None: the source needs one set."""
    url_hint: ClassVar[str] = ""
    """Appended to the "no URL configured" error: how to get one."""
    login_paths: ClassVar[tuple[str, ...]] = ()
    """Browser sources: paths that mean "log in first" when a listing page lands on them."""
    needs_base_url: ClassVar[bool] = True
    """False for sources that list whatever URL they are given (``ytdlp``)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.config = self.config_of(settings)

    @classmethod
    def set_base_url(cls, settings: Settings, url: str | None) -> None:
        """Point this source at ``url`` in ``settings`` (tests, the demo's replica)."""
        block = dict(settings.crawl.sources.get(cls.name) or {})
        block["base_url"] = url
        settings.crawl.sources[cls.name] = block

    @classmethod
    def configured_base_url(cls, settings: Settings) -> str | None:
        """The base URL set in ``settings`` (or the source's default), without checks."""
        return cls.config_of(settings).base_url

    @classmethod
    def env_name(cls, field_name: str) -> str:
        return f"REELWATCH_CRAWL__SOURCES__{cls.name.upper()}__{field_name.upper()}"

    @classmethod
    def config_of(cls, settings: Settings) -> SourceSettings:
        """This source's ``crawl.sources.<name>`` block, validated; InputError naming the
        field when it is wrong."""
        raw: dict[str, Any] = dict(settings.crawl.sources.get(cls.name) or {})
        try:
            return cls.settings_model.model_validate(raw)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(p) for p in error.get("loc", ()))
            raise InputError(
                f"crawl.sources.{cls.name}.{where}: {error.get('msg')} "
                f"(set in config/defaults.yaml or {cls.env_name(where or 'FIELD')})"
            ) from None

    # -- what a caller may ask --------------------------------------------------------------
    def base_url(self) -> str:
        """The platform's base URL; InputError when unset or not http(s)."""
        value = self.config.base_url
        env = self.env_name("base_url")
        if not value:
            raise InputError(f"no URL configured for {self.name}: set {env}{self.url_hint}")
        url = str(value).rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InputError(f"{env}={value!r} is not an http(s) URL")
        return url

    def check(self, query: Query) -> None:
        """InputError when this source cannot list ``query`` or lacks what it needs."""
        if not self.config.enabled:
            raise InputError(f"source {self.name} is disabled ({self.env_name('enabled')})")
        if query.kind not in self.query_kinds:
            kinds = ", ".join(k for k in QUERY_KINDS if k in self.query_kinds)
            raise InputError(f"{self.name} cannot list a {query.kind} query; it lists: {kinds}")
        if self.needs_base_url:
            self.base_url()

    def canary_query(self) -> Query | None:
        text = self.config.canary or self.canary
        return Query.parse(text) if text else None

    @property
    def limit_cap(self) -> int:
        return min(self.config.limit or MAX_LIMIT, MAX_LIMIT)

    @property
    def page_size(self) -> int:
        return max(1, self.config.page_size or self.settings.crawl.page_size)

    @property
    def timeout_s(self) -> float:
        return self.config.timeout_s or self.settings.crawl.timeout_s

    @property
    def user_agent(self) -> str:
        return self.config.user_agent or self.settings.crawl.user_agent

    def login_failure(self, detail: str) -> SourceFailure:
        """The failure for a platform that wants a logged-in reader (``detail``: how it
        said so)."""
        return SourceFailure(
            "permanent",
            "login_expired",
            f"{self.name} needs a logged-in session: run `reelwatch browser login {self.name}` "
            f"({detail})",
        )

    # -- the work ---------------------------------------------------------------------------
    def discover(self, job: CrawlJob, out: Collector) -> None:
        """List posts for ``job.query`` into ``out`` until ``out.full``, ``out.stop`` is set
        or the listing ends; raise :class:`SourceFailure` for an expected failure (what was
        collected before it is kept). Runs in the crawl subprocess."""
        raise NotImplementedError


# -- Scrapy-based sources ---------------------------------------------------------------------
class DiscoverySpider(scrapy.Spider):
    """Base of a Scrapy source's spider: arguments, the collector, and failure reporting."""

    def __init__(
        self,
        *,
        platform: str,
        base_url: str,
        job: CrawlJob,
        collector: Collector,
        page_size: int = 30,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.platform = platform
        self.base_url = base_url.rstrip("/")
        self.job = job
        self.query = job.query
        self.watch = job.watch
        self.collector = collector
        self.page_size = int(page_size)
        self.failure: SourceFailure | None = None

    @property
    def reached_limit(self) -> bool:
        return self.collector.full or self.collector.stop is not None

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

    def fail(self, kind: FailureKind, message: str, reason: str = "error") -> None:
        """Record an expected failure (first one wins) and log it; the crawl then winds down."""
        if self.failure is None:
            self.failure = SourceFailure(kind, reason, message)
        logger.error("%s", message)

    def on_error(self, failure: Failure) -> None:
        """Errback: turn download failures into a :class:`SourceFailure`.

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
                    "http_status",
                )
            else:
                self.fail(
                    "permanent", f"{self.platform} answered HTTP {status} for {url}", "http_status"
                )
            return
        if failure.check(IgnoreRequest):
            self.fail(
                "permanent",
                f"{self.platform}: request to {url} refused: {failure.value}",
                "refused",
            )
            return
        self.fail(
            "transient",
            f"could not reach {self.platform} at {url}: {failure.getErrorMessage()}",
            "unreachable",
        )


class ScrapySource(Source):
    """A source crawled by a Scrapy spider (plain HTTP: fast, but it runs no page script)."""

    spider: ClassVar[type[DiscoverySpider]]

    def discover(self, job: CrawlJob, out: Collector) -> None:
        from scrapy.crawler import CrawlerProcess

        from crawler.scrapy_settings import scrapy_settings

        process = CrawlerProcess(scrapy_settings(self.settings, self.config))
        crawler = process.create_crawler(self.spider)
        process.crawl(
            crawler,
            platform=self.name,
            base_url=self.base_url(),
            job=job,
            collector=out,
            page_size=self.page_size,
        )
        process.start()
        stats = crawler.stats.get_stats() if crawler.stats else {}
        failure = getattr(crawler.spider, "failure", None)
        if failure is not None:
            raise failure
        errors = {k: v for k, v in stats.items() if str(k).startswith("spider_exceptions/")}
        if errors:
            raise RuntimeError(f"the spider raised: {errors}")
