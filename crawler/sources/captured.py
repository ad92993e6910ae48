"""Listings read in a real Chromium from the answers the platform's own page receives.

Platforms sign, token and CSRF-protect the calls of their web clients (TikTok's
``msToken``/``X-Bogus``, Instagram's and X's session tokens). The approach that survives
their changes best is Zeeschuimer's and 4CAT's: open the platform's own page, let it make its
requests, and parse the JSON answers it receives. A :class:`CapturedListing` says which page
to open (:meth:`~CapturedListing.start_url`), which answers to keep
(:meth:`~CapturedListing.is_answer`), how to turn one into posts
(:meth:`~CapturedListing.parse`) and, optionally, what the opened page itself holds
(:meth:`~CapturedListing.on_page`); the scrolling, stopping, screenshots, captcha and login
walls, and the one-line failures are the same for every platform.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from crawler.browser import BrowserSession, Captured, blocked_reason, scroll_to_bottom, wait_for
from crawler.sources.base import Collector, CrawlJob, Source, SourceFailure
from crawler.tiktok_format import safe_file_name
from reelwatch.models import Post, Provenance, utcnow

if TYPE_CHECKING:
    from playwright.sync_api import Page

logger = logging.getLogger(__name__)

LOGIN_FORM_MARKERS = ("input[name='password']", "input[autocomplete='username']")
"""Elements of login forms (Instagram's, X's, TikTok's): on a listing page, a login wall."""


@dataclass
class Evidence:
    """Where the items of one answer came from: everything a Post's provenance needs
    besides the raw item."""

    source_url: str
    status: int | None
    headers: dict[str, str]
    user_agent: str
    captured_at: datetime = field(default_factory=utcnow)
    method: str = "browser"
    query: str = ""
    watch: str | None = None
    hashtag: str | None = None

    def provenance(self, raw: dict[str, Any]) -> Provenance:
        return Provenance(
            raw=raw,
            captured_at=self.captured_at,
            source_url=self.source_url,
            user_agent=self.user_agent,
            status=self.status,
            headers=self.headers,
            method=self.method,
            query=self.query,
        )


@dataclass
class AnswerPage:
    """What one captured answer held: its video posts and where the listing goes next."""

    posts: list[Post] = field(default_factory=list)
    skipped: int = 0
    """Items that were not video posts (photos, text), or were malformed."""
    cursor: str | None = None
    more: bool | None = None
    """False when the listing has ended; None when the answer did not say."""
    login_required: bool = False


class CapturedListing:
    """One listing in Chromium: open :meth:`start_url`, keep the answers :meth:`is_answer`
    accepts, turn each into posts with :meth:`parse`, scroll for more.

    Stops at the limit, when the platform says there is no more, after ``idle_scrolls``
    scrolls bring nothing new, or (chronological listings only) at a page whose posts are all
    older than the job's max age. A login wall, a captcha, a rate limit or an HTTP error
    stops it at once with a one-line reason; what was listed before is kept.
    """

    chronological: ClassVar[bool] = True
    """Whether the listing runs newest first, so an all-too-old page ends it. Ranked
    listings (Instagram's top posts) are read on past old posts."""
    login_markers: ClassVar[tuple[str, ...]] = LOGIN_FORM_MARKERS
    """Selectors that mean the page is a login wall (``()``: the listing needs no login)."""

    def __init__(self, source: Source, job: CrawlJob, out: Collector) -> None:
        self.source = source
        self.job = job
        self.out = out
        self.config = source.config
        self.base_url = source.base_url()
        self.answers = 0
        self.empty_answers: list[str] = []
        self.garbage: list[str] = []
        self.exhausted = False

    # -- what a platform says ---------------------------------------------------------------
    def start_url(self) -> str:
        raise NotImplementedError

    def is_answer(self, url: str) -> bool:
        raise NotImplementedError

    def parse(self, data: Any, evidence: Evidence) -> AnswerPage | None:
        """The posts of one captured JSON answer; None when the answer is not part of the
        listing (pages fetch other things from the same endpoints)."""
        raise NotImplementedError

    def on_page(self, page: Page) -> None:
        """Read what the opened page itself holds (a server-rendered first page of posts):
        offer it with :meth:`offer`, set :attr:`exhausted` when it is the whole listing."""

    def evidence(self, url: str, status: int | None, headers: dict[str, str]) -> Evidence:
        """Provenance of the items of one answer (or of the page itself)."""
        return Evidence(
            source_url=url,
            status=status,
            headers=headers,
            user_agent=self.session.user_agent,
            query=str(self.job.query),
            watch=self.job.watch,
            hashtag=self.job.query.hashtag,
        )

    # -- the work ---------------------------------------------------------------------------
    def run(self) -> None:
        with BrowserSession(
            self.config, timeout_s=self.source.timeout_s, user_agent=self.config.user_agent
        ) as session:
            self.session = session
            page = session.new_page()
            self.shots = session.new_page() if self._screenshots else None
            log = session.capture(page, self.is_answer)
            self._open(page, self.start_url())
            self.on_page(page)
            if not (self.exhausted or self.out.full or self.out.stop):
                # The page fetches its first answer on load: wait for it as long as for a
                # page, or as for a scroll when the page came with posts of its own.
                first_wait = self.config.scroll_wait_s if self.out.posts else self.source.timeout_s
                wait_for(log, page, 0, first_wait)
            self._consume(log.drain())
            idle = 0
            for _ in range(self.config.max_scrolls):
                if self.out.full or self.out.stop is not None or self.exhausted:
                    break
                self._blocked(page)
                before, seen = len(self.out.posts), log.seen
                scroll_to_bottom(page)
                wait_for(log, page, seen, self.config.scroll_wait_s)
                self._consume(log.drain())
                idle = idle + 1 if len(self.out.posts) == before else 0
                if idle >= self.config.idle_scrolls:
                    self.out.stop = "no_new"
                    break
            if self.exhausted and self.out.stop is None:
                self.out.stop = "exhausted"
            if not self.out.posts:
                self._explain_nothing()

    @property
    def _screenshots(self) -> bool:
        return self.config.screenshots and self.job.captures_dir is not None

    def _open(self, page: Page, url: str) -> None:
        from playwright.sync_api import Error as PlaywrightError

        try:
            response = page.goto(url, wait_until="domcontentloaded")
        except PlaywrightError as exc:
            raise SourceFailure(
                "transient", "unreachable", f"could not open {url}: {str(exc).splitlines()[0]}"
            ) from None
        self._blocked(page)
        status = response.status if response is not None else 0
        if status == 429 or status >= 500:
            raise SourceFailure(
                "transient", "http_status", f"{self.source.name} answered HTTP {status} for {url}"
            )
        if status >= 400:
            raise SourceFailure(
                "permanent", "http_status", f"{self.source.name} answered HTTP {status} for {url}"
            )

    def _blocked(self, page: Page) -> None:
        path = urlsplit(page.url).path
        if any(path.startswith(p) for p in self.source.login_paths):
            raise self.source.login_failure(f"it sent the browser to its login page ({path})")
        reason = blocked_reason(page, self.login_markers)
        if reason == "login":
            raise self.source.login_failure("its page showed a login form")
        if reason == "captcha":
            raise SourceFailure(
                "transient",
                "captcha",
                f"{self.source.name} showed a captcha or challenge at {page.url}; crawl stopped "
                "without retrying (solve it once in `reelwatch browser login "
                f"{self.source.name}`, then try later)",
            )

    def _consume(self, answers: list[Captured]) -> None:
        for answer in answers:
            self._answer(answer)
            if self.out.full:
                return

    def _answer(self, answer: Captured) -> None:
        name = self.source.name
        where = answer.url.split("?")[0]
        if answer.status in (401, 403):
            raise self.source.login_failure(f"its API answered HTTP {answer.status} at {where}")
        if answer.status == 429:
            reset = _rate_limit_reset(answer.headers)
            raise SourceFailure(
                "transient",
                "http_status",
                f"{name} rate-limited this session (HTTP 429 at {where}{reset}); try later",
            )
        if answer.status >= 400:
            transient = answer.status >= 500
            raise SourceFailure(
                "transient" if transient else "permanent",
                "http_status",
                f"{name} answered HTTP {answer.status} at {where}",
            )
        if not answer.body.strip():
            self.empty_answers.append(where)
            return
        try:
            data = answer.json()
        except ValueError:
            logger.warning("non-JSON answer to the page at %s", where)
            self.garbage.append(where)
            return
        evidence = self.evidence(answer.url, answer.status, answer.headers)
        evidence.captured_at = answer.captured_at
        got = self.parse(data, evidence)
        if got is None:
            return
        if got.login_required:
            raise self.source.login_failure(f"its API said the session is logged out ({where})")
        self.answers += 1
        if got.cursor:
            self.out.cursor = got.cursor
        if got.more is False:
            self.exhausted = True
        if got.skipped:
            logger.info("%s: %d items at %s were not video posts", name, got.skipped, where)
        self.offer(got.posts)

    def offer(self, posts: list[Post]) -> None:
        """Screenshot the posts the collector will keep, then hand it the page."""
        for post in posts:
            if self.out.wants(post.post_id) and not self.out.is_too_old(post):
                self._screenshot(post)
        self.out.offer_page(posts, newest_first=self.chronological)

    def _screenshot(self, post: Post) -> None:
        if self.shots is None or self.job.captures_dir is None:
            return
        path = screenshot_path(self.job.captures_dir, post.post_id)
        if self.session.screenshot(self.shots, post.url, path):
            post.provenance.screenshot = str(path.relative_to(self.source.settings.home))

    def _explain_nothing(self) -> None:
        """Nothing listed: say why when the page's answers were not what we parse."""
        name = self.source.name
        if self.answers:
            return  # the platform answered, with no video posts: an empty listing
        if self.garbage:
            raise SourceFailure(
                "transient",
                "parse_error",
                f"{name} answered its own page with something other than JSON "
                f"(e.g. at {self.garbage[0]}); the platform may be blocking this session",
            )
        if self.empty_answers:
            raise SourceFailure(
                "permanent",
                "empty_body",
                f"{name} answered its own page's requests with nothing "
                f"({len(self.empty_answers)} empty answers, e.g. {self.empty_answers[0]}); "
                f"the session may be flagged: log in again (reelwatch browser login {name})",
            )
        raise SourceFailure(
            "transient",
            "parse_error",
            f"{name}'s page made none of the requests reelwatch reads "
            f"({self.start_url().split('?')[0]}); its web client may have changed",
        )


def screenshot_path(captures_dir: Path, post_id: str) -> Path:
    """Where a post's screenshot goes: a file directly in ``captures_dir`` whatever the id
    holds (``../``, ``/``, NUL: :func:`~crawler.tiktok_format.safe_file_name`)."""
    return captures_dir / f"{safe_file_name(post_id)}.png"


def _rate_limit_reset(headers: dict[str, str]) -> str:
    lowered = {k.lower(): v for k, v in headers.items()}
    if retry := lowered.get("retry-after"):
        return f", Retry-After {retry} s"
    reset = lowered.get("x-rate-limit-reset")
    if reset and reset.isdigit():
        return f", resets in {max(0, int(reset) - int(time.time()))} s"
    return ""
