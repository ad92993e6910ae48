"""Listings behind a login wall, read in a real Chromium from the platform's own answers.

Instagram and X show hashtag pages and searches only to a logged-in reader. A
:class:`LoggedInSource` opens its listing page with the user's saved session (a Playwright
storage-state file that ``reelwatch browser login PLATFORM`` makes once, or a persistent
profile), lets the page fetch its own data, and parses the JSON answers the page receives
(the approach of Zeeschuimer/4CAT): nothing is signed or replayed by us, so what the platform
requires of its web client (tokens, CSRF headers, query ids) stays its own page's business.

A subclass sets the login page and session cookie, and gives a
:class:`crawler.sources.captured.CapturedListing` that says which page to open, which answers
to keep and how to turn one into posts.

The session file defaults to ``<home>/browser/<name>.json`` when that file exists, so
``browser login`` needs no further setting.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from crawler.browser import BrowserSession, write_storage_state
from crawler.sources.base import Collector, CrawlJob, Query, Source, SourceFailure
from crawler.sources.captured import CapturedListing
from reelwatch.errors import InputError
from reelwatch.settings import Settings

if TYPE_CHECKING:
    from playwright.sync_api import Page

logger = logging.getLogger(__name__)


def default_storage_state(settings: Settings, name: str) -> Path:
    """Where ``reelwatch browser login NAME`` saves a session unless told otherwise."""
    return settings.home / "browser" / f"{name}.json"


class LoggedInSource(Source):
    """A platform that lists only to a logged-in reader (see the module docstring)."""

    needs = frozenset({"browser", "login"})
    login_path: ClassVar[str]
    """The platform's login page, opened by ``reelwatch browser login``."""
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
        return super().login_failure(f"{detail}; {where}")

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
        with BrowserSession(
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
