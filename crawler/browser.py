"""A real Chromium for sources whose platform only answers its own page script.

Platforms sign their API calls in page JavaScript (TikTok's ``msToken``/``X-Bogus``), so the
robust way to list them is the one Zeeschuimer and 4CAT use: open the platform's own page in
a real browser, let it make its requests, and capture the JSON answers it receives. This
module drives Debian's ``chromium`` through Playwright (``playwright install`` is never
needed: the browser is launched by its executable path) and gives sources:

- :class:`BrowserSession`: a browser context with the source's proxy, user agent and login
  state (a Playwright storage-state file, written back with mode 0600 when the crawl ends, or
  a persistent profile folder; folders we create for either get mode 0700). A proxy's user
  and password are handed to Chromium apart from its address, so the address in any error
  carries no password;
- :meth:`BrowserSession.capture`: every response the page receives whose URL matches, with
  status, headers (cookies removed), body and capture time, kept as provenance;
- :func:`blocked_reason`: whether the page is a captcha, verification or login wall.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit, urlunsplit

from reelwatch.errors import InputError
from reelwatch.models import utcnow

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page, Playwright, Response

    from crawler.sources.base import SourceSettings

logger = logging.getLogger(__name__)

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
"""Flags for running as root in containers and on machines with no route but the
platforms': Chromium's own background traffic (updates, sync, safe browsing) stays off."""

CAPTCHA_SELECTORS = (
    "[id*='captcha' i]",
    "[class*='captcha' i]",
    "iframe[src*='captcha' i]",
    "iframe[src*='challenge' i]",
    "#challenge-form",
    "[data-e2e='captcha']",
)
"""Elements that mean "prove you are human" on TikTok, Instagram, X and common CDNs."""

_DROPPED_HEADERS = {"set-cookie", "cookie", "authorization"}


def chromium_path() -> str:
    """Path of a Chromium or Chrome executable; InputError naming the package when none."""
    for name in (os.environ.get("REELWATCH_CHROMIUM"), "chromium", "chromium-browser"):
        if name and (found := shutil.which(name)):
            return found
    for name in ("google-chrome", "google-chrome-stable"):
        if found := shutil.which(name):
            return found
    raise InputError(
        "no Chromium found: install Debian's chromium (apt-get install chromium) or set "
        "REELWATCH_CHROMIUM to a Chrome executable"
    )


@dataclass
class Captured:
    """One response the page received: the evidence behind the posts parsed from it."""

    url: str
    status: int
    headers: dict[str, str]
    body: bytes
    captured_at: datetime = field(default_factory=utcnow)

    def json(self) -> Any:
        import json

        return json.loads(self.body)


class ResponseLog:
    """Responses matching a predicate, collected as the page receives them.

    Playwright hands responses to the listener as events; their bodies are read in
    :meth:`drain`, on the caller's turn, so a page that navigates away loses nothing already
    finished.
    """

    def __init__(self, match: Callable[[str], bool]) -> None:
        self.match = match
        self._pending: list[Response] = []
        self.seen = 0

    def on_response(self, response: Response) -> None:
        if self.match(response.url):
            self._pending.append(response)
            self.seen += 1

    def drain(self) -> list[Captured]:
        """Captured responses since the last call, bodies read (a body that can no longer
        be read is kept with an empty body: the platform's answer still happened)."""
        pending, self._pending = self._pending, []
        out: list[Captured] = []
        for response in pending:
            try:
                body = response.body()
            except Exception as exc:  # Playwright raises its own Error for evicted bodies
                logger.info("could not read the body of %s: %s", response.url, exc)
                body = b""
            headers = {
                k: v for k, v in response.headers.items() if k.lower() not in _DROPPED_HEADERS
            }
            out.append(Captured(response.url, response.status, headers, body))
        return out


class BrowserSession:
    """One Chromium context for one crawl; use as a context manager.

    With ``profile_dir`` the context is a persistent profile (cookies live in the folder);
    otherwise a ``storage_state`` file, when it exists, seeds the context and is written back
    (mode 0600) when the session ends, so cookies a platform sets survive between crawls.
    """

    def __init__(self, config: SourceSettings, *, timeout_s: float, user_agent: str | None) -> None:
        self.config = config
        self.timeout_ms = timeout_s * 1000
        self._user_agent = user_agent
        self._playwright: Playwright | None = None
        self._manager: Any = None
        self.context: BrowserContext | None = None
        self.user_agent = ""

    def __enter__(self) -> BrowserSession:
        from playwright.sync_api import sync_playwright

        executable = chromium_path()
        self._manager = sync_playwright()
        self._playwright = self._manager.__enter__()
        chromium = self._playwright.chromium
        options: dict[str, Any] = {}
        if self.config.proxy:
            options["proxy"] = playwright_proxy(self.config.proxy)
        if self._user_agent:
            options["user_agent"] = self._user_agent
        launch: dict[str, Any] = {
            "executable_path": executable,
            "headless": self.config.headless,
            "args": CHROMIUM_FLAGS,
        }
        try:
            if self.config.profile_dir:
                # The profile keeps the session's cookies: private like a storage-state file.
                private_dir(self.config.profile_dir)
                self.context = chromium.launch_persistent_context(
                    str(self.config.profile_dir), **launch, **options
                )
            else:
                browser = chromium.launch(**launch)
                state = self.config.storage_state
                if state and state.is_file():
                    options["storage_state"] = str(state)
                self.context = browser.new_context(**options)
        except Exception:
            self._manager.__exit__(None, None, None)
            raise
        self.context.set_default_timeout(self.timeout_ms)
        if not self._user_agent:
            # Headless Chromium says "HeadlessChrome" in its user agent; platforms block on
            # that word alone, and the rest of the string is the browser's own.
            probe = self.context.new_page()
            agent = str(probe.evaluate("navigator.userAgent"))
            probe.close()
            agent = agent.replace("HeadlessChrome", "Chrome")
            self.context.set_extra_http_headers({"User-Agent": agent})
            self.context.add_init_script(
                f"Object.defineProperty(navigator, 'userAgent', {{get: () => {agent!r}}});"
            )
            self.user_agent = agent
        else:
            self.user_agent = self._user_agent
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self.context is not None:
                self.save_state()
                self.context.close()
        finally:
            self.context = None
            if self._manager is not None:
                self._manager.__exit__(None, None, None)
                self._manager = None

    def save_state(self) -> None:
        """Write the context's cookies and storage to ``storage_state`` (mode 0600)."""
        path = self.config.storage_state
        if self.context is None or path is None or self.config.profile_dir:
            return
        write_storage_state(self.context, path)

    def new_page(self) -> Page:
        assert self.context is not None, "use BrowserSession as a context manager"
        return self.context.new_page()

    def capture(self, page: Page, match: Callable[[str], bool]) -> ResponseLog:
        """Start logging the page's responses whose URL ``match`` accepts."""
        log = ResponseLog(match)
        page.on("response", log.on_response)
        return log

    def screenshot(self, page: Page, url: str, path: Path) -> bool:
        """Open ``url`` in ``page`` and save a screenshot; False when the page did not load."""
        try:
            response = page.goto(url, wait_until="domcontentloaded")
            if response is None or response.status >= 400:
                return False
            path.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(path))
            return True
        except Exception as exc:  # a slow or closed page must not end the crawl
            logger.info("no screenshot of %s: %s", url, exc)
            return False


def private_dir(path: Path) -> Path:
    """Create ``path`` and its missing parents, each with mode 0700 (whatever the umask);
    folders that already exist keep their mode (they are the user's)."""
    missing: list[Path] = []
    here = path
    while not here.exists():
        missing.append(here)
        if here.parent == here:
            break
        here = here.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            continue
        os.chmod(folder, 0o700)
    return path


def playwright_proxy(url: str) -> dict[str, str]:
    """Playwright's proxy option for ``url``: a ``user:password@`` in it becomes separate
    ``username``/``password`` fields (Chromium does not read them from the address)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return {"server": url}
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port is not None else "")
    proxy = {"server": urlunsplit(parts._replace(netloc=netloc))}
    proxy["username"] = unquote(parts.username or "")
    proxy["password"] = unquote(parts.password or "")
    return proxy


def write_storage_state(context: BrowserContext, path: Path) -> None:
    """Save a context's storage state to ``path`` readable by its owner only (its folder, if
    we create it, 0700)."""
    private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(fd)
    context.storage_state(path=str(tmp))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def blocked_reason(page: Page, login_markers: tuple[str, ...] = ()) -> str | None:
    """``captcha`` when the page shows a captcha or verification challenge, ``login`` when it
    shows one of ``login_markers`` (selectors of a login wall), else None."""
    try:
        for selector in CAPTCHA_SELECTORS:
            if page.locator(selector).count():
                return "captcha"
        for selector in login_markers:
            if page.locator(selector).count():
                return "login"
    except Exception as exc:  # the page navigated while we looked: look again next turn
        logger.debug("could not inspect %s: %s", page.url, exc)
    return None


def scroll_to_bottom(page: Page) -> None:
    page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")


def wait_for(log: ResponseLog, page: Page, seen_before: int, wait_s: float) -> bool:
    """Wait up to ``wait_s`` for the page to receive a new matching response; True if it did.

    Polls through Playwright so its events keep being dispatched meanwhile.
    """
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if log.seen > seen_before:
            # Give a burst of requests a moment to finish together.
            page.wait_for_timeout(100)
            return True
        page.wait_for_timeout(50)
    return log.seen > seen_before
