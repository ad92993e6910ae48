"""Listings behind a login wall, read in a real Chromium from the platform's own answers.

Instagram and X show hashtag pages and searches only to a logged-in reader. A
:class:`LoggedInSource` opens its listing page with the user's saved session (a Playwright
storage-state file that ``reelwatch browser login PLATFORM`` makes once, or a persistent
profile), lets the page fetch its own data, and parses the JSON answers the page receives
(the approach of Zeeschuimer/4CAT): nothing is signed or replayed by us, so what the platform
requires of its web client (tokens, CSRF headers, query ids) stays its own page's business.

A subclass sets the login page and session cookie, and gives a :class:`CapturedListing`
that says which page to open, which answers to keep and how to turn one into posts.

The session file defaults to ``<home>/browser/<name>.json`` when that file exists, so
``browser login`` needs no further setting.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from crawler.browser import (
    Captured,
    blocked_reason,
    browser_session,
    scroll_to_bottom,
    wait_for,
    write_storage_state,
)
from crawler.sources.base import Collector, CrawlJob, Query, Source, SourceFailure
from reelwatch.errors import InputError
from reelwatch.models import Post, Provenance, utcnow
from reelwatch.settings import Settings

if TYPE_CHECKING:
    from playwright.sync_api import Page

logger = logging.getLogger(__name__)

LOGIN_FORM_MARKERS = ("input[name='password']", "input[autocomplete='username']")
"""Elements of Instagram's and X's login forms: on a listing page they mean a login wall."""


def default_storage_state(settings: Settings, name: str) -> Path:
    """Where ``reelwatch browser login NAME`` saves a session unless told otherwise."""
    return settings.home / "browser" / f"{name}.json"


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

    def __init__(self, source: LoggedInSource, job: CrawlJob, out: Collector) -> None:
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

    # -- the work ---------------------------------------------------------------------------
    def run(self) -> None:
        with browser_session(
            self.config, timeout_s=self.source.timeout_s, user_agent=self.config.user_agent
        ) as session:
            self.session = session
            page = session.new_page()
            self.shots = session.new_page() if self._screenshots else None
            log = session.capture(page, self.is_answer)
            self._open(page, self.start_url())
            # The page fetches its first answer on load; wait for it as long as for a page.
            wait_for(log, page, 0, self.source.timeout_s)
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
        reason = blocked_reason(page, LOGIN_FORM_MARKERS)
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
        evidence = Evidence(
            source_url=answer.url,
            status=answer.status,
            headers=answer.headers,
            user_agent=self.session.user_agent,
            captured_at=answer.captured_at,
            query=str(self.job.query),
            watch=self.job.watch,
            hashtag=self.job.query.hashtag,
        )
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
        self._offer(got.posts)

    def _offer(self, posts: list[Post]) -> None:
        for post in posts:
            if self.out.wants(post.post_id) and not self.out.is_too_old(post):
                self._screenshot(post)
        if self.chronological:
            self.out.offer_page(posts)
        else:
            self.out.pages += 1
            for post in posts:
                self.out.offer(post)

    def _screenshot(self, post: Post) -> None:
        if self.shots is None or self.job.captures_dir is None:
            return
        path = self.job.captures_dir / f"{post.post_id}.png"
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


def _rate_limit_reset(headers: dict[str, str]) -> str:
    lowered = {k.lower(): v for k, v in headers.items()}
    if retry := lowered.get("retry-after"):
        return f", Retry-After {retry} s"
    reset = lowered.get("x-rate-limit-reset")
    if reset and reset.isdigit():
        return f", resets in {max(0, int(reset) - int(time.time()))} s"
    return ""


class LoggedInSource(Source):
    """A platform that lists only to a logged-in reader (see the module docstring)."""

    needs = frozenset({"browser", "login"})
    login_path: ClassVar[str]
    """The platform's login page, opened by ``reelwatch browser login``."""
    login_paths: ClassVar[tuple[str, ...]]
    """Paths that mean "log in first" when a listing page lands on them."""
    session_cookie: ClassVar[str]
    """The cookie the platform sets once a reader is logged in."""
    listing: ClassVar[type[CapturedListing]]

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        if self.config.storage_state is None and self.config.profile_dir is None:
            saved = default_storage_state(settings, self.name)
            if saved.is_file():
                self.config = self.config.model_copy(update={"storage_state": saved})

    @property
    def session_path(self) -> Path:
        """Where this source's session is saved (the configured file or the default)."""
        return self.config.storage_state or default_storage_state(self.settings, self.name)

    def login_url(self) -> str:
        return self.base_url() + self.login_path

    @property
    def logged_in(self) -> bool:
        """Whether a session was saved (a profile folder, or the storage-state file)."""
        return self.config.profile_dir is not None or self.session_path.is_file()

    def canary_query(self) -> Query | None:
        """None until a session is saved: a platform nobody logged in to is not configured,
        and ``sources check`` skips it rather than call it broken every day."""
        return super().canary_query() if self.logged_in else None

    def login_failure(self, detail: str) -> SourceFailure:
        where = (
            f"profile {self.config.profile_dir}"
            if self.config.profile_dir
            else f"session {self.session_path}"
        )
        return SourceFailure(
            "permanent",
            "login_expired",
            f"{self.name} needs a logged-in session: run `reelwatch browser login {self.name}` "
            f"({detail}; {where})",
        )

    def discover(self, job: CrawlJob, out: Collector) -> None:
        if not self.logged_in:
            raise self.login_failure("no session saved yet")
        self.listing(self, job, out).run()


# -- logging in -------------------------------------------------------------------------------
@dataclass(frozen=True)
class LoginTarget:
    """Where and how a browser source's reader logs in."""

    url: str
    """The platform's login page."""
    cookie: str
    """The cookie the platform sets once logged in."""
    path: Path
    """The storage-state file to write (ignored with a persistent profile)."""
    automatic: bool
    """Whether the source reads ``path`` without a setting (the default file)."""


def login_target(source: Source) -> LoginTarget:
    """The login page, session cookie and state file of a browser source; InputError for a
    source that runs no browser. Sources outside :class:`LoggedInSource` (TikTok) log in at
    ``/login`` and keep their session in ``sessionid``."""
    if "browser" not in source.needs:
        raise InputError(f"{source.name} lists without a browser; there is nothing to log in to")
    configured = source.config.storage_state
    default = default_storage_state(source.settings, source.name)
    if isinstance(source, LoggedInSource):
        return LoginTarget(source.login_url(), source.session_cookie, configured or default, True)
    path = configured or default
    return LoginTarget(source.base_url() + "/login", "sessionid", path, configured is not None)


@dataclass
class LoginOutcome:
    path: Path | None
    """The storage-state file written (None with a persistent profile)."""
    cookie_seen: bool
    """Whether the platform's session cookie was there when the state was saved."""


def log_in(
    source: Source,
    target: LoginTarget,
    *,
    headless: bool,
    timeout_s: float,
    done: threading.Event | None = None,
    fill: tuple[str, str] | None = None,
) -> LoginOutcome:
    """Open the platform's login page in Chromium and wait until the reader has logged in.

    Returns once the platform's session cookie is set, or ``done`` is set (the reader said
    so), and saves the browser's storage state to ``target.path`` with mode 0600; with a
    persistent profile (``profile_dir``) the profile keeps it. ``fill`` types a user name
    and password into the login form and submits it (tests, against the replica).
    InputError when the time runs out or the window is closed first.
    """
    from playwright.sync_api import Error as PlaywrightError

    config = source.config.model_copy(update={"headless": headless, "storage_state": None})
    base_url = source.base_url()
    try:
        with browser_session(
            config, timeout_s=source.timeout_s, user_agent=config.user_agent
        ) as session:
            assert session.context is not None
            page = session.new_page()
            page.goto(target.url, wait_until="domcontentloaded")
            if fill is not None:
                _fill_login_form(page, *fill)
            deadline = time.monotonic() + timeout_s
            while True:
                cookie_seen = any(
                    c.get("name") == target.cookie and c.get("value")
                    for c in session.context.cookies(base_url)
                )
                if cookie_seen or (done is not None and done.is_set()):
                    break
                if page.is_closed():
                    raise InputError(f"the {source.name} login window was closed; nothing saved")
                if time.monotonic() > deadline:
                    raise InputError(
                        f"no {source.name} login within {timeout_s:g} s "
                        f"(no {target.cookie} cookie); nothing saved"
                    )
                page.wait_for_timeout(250)
            if config.profile_dir:
                return LoginOutcome(None, cookie_seen)
            write_storage_state(session.context, target.path)
            return LoginOutcome(target.path, cookie_seen)
    except PlaywrightError as exc:
        text = str(exc).strip()
        first = text.splitlines()[0] if text else type(exc).__name__
        if "display" in text.lower():
            raise InputError(
                f"Chromium could not open a window ({first}): run `reelwatch browser login` "
                "on a machine with a desktop and copy the saved file, or forward X (ssh -X)"
            ) from None
        raise InputError(f"the {source.name} login browser failed: {first}") from None


def _fill_login_form(page: Page, user: str, password: str) -> None:
    page.locator("input[name='username'], input[autocomplete='username']").first.fill(user)
    page.locator("input[name='password']").first.fill(password)
    page.locator("button[type='submit'], input[type='submit']").first.click()
