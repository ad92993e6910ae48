"""Canaries: list a few posts from each configured source and say whether it works.

A platform change (a new signature, a layout change, an expired login) shows up as a source
that lists nothing; ``reelwatch sources check`` and beat's daily check catch it within a day
rather than weeks later, with the reason the source gave (``empty_body``, ``captcha``,
``http_status``, ``parse_error``, ``login_expired``...).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from crawler.runner import crawl_run, reason_of
from crawler.sources import SOURCES, Source, get_source
from reelwatch.errors import InputError, ReelwatchError
from reelwatch.redact import redact_text
from reelwatch.settings import Settings

logger = logging.getLogger(__name__)

CANARY_LIMIT = 3


@dataclass(frozen=True)
class SourceCheck:
    """How one source did on its canary query."""

    name: str
    ok: bool
    reason: str
    """``works``, ``skipped`` or the failure's reason code."""
    detail: str
    posts: int = 0

    def __post_init__(self) -> None:
        # A detail quotes what a source or its library said (a proxy error names the proxy
        # URL): mask passwords and known secrets before it is printed, emailed or put in JSON.
        object.__setattr__(self, "detail", redact_text(self.detail))

    @property
    def state(self) -> str:
        return "works" if self.ok else ("skipped" if self.reason == "skipped" else "broken")

    @property
    def broken(self) -> bool:
        """Checked and failing (a source left alone as not configured is not broken)."""
        return self.state == "broken"

    def line(self) -> str:
        """``tiktok: works (3 posts for #fyp)`` / ``x: broken (login_expired): ...``."""
        if self.ok or self.reason == "skipped":
            return f"{self.name}: {self.state} ({self.detail})"
        return f"{self.name}: broken ({self.reason}): {self.detail}"


def _skip_reason(source: Source) -> str | None:
    """Why a source is not checked (not configured), or None when it should be."""
    config = source.config
    if not config.enabled:
        return "disabled"
    if "login" in source.needs and not getattr(source, "logged_in", True):
        return f"not logged in (run: reelwatch browser login {source.name})"
    query = source.canary_query()
    if query is None:
        return f"no canary query (set {source.env_name('canary')})"
    try:
        source.check(query)
    except InputError as exc:
        return str(exc)
    return None


def check_source(settings: Settings, source_cls: type[Source]) -> SourceCheck:
    """List the source's canary query (a few posts, nothing downloaded)."""
    name = source_cls.name
    try:
        source = source_cls(settings)
    except InputError as exc:
        return SourceCheck(name, False, "config", str(exc))
    skip = _skip_reason(source)
    if skip is not None:
        return SourceCheck(name, False, "skipped", skip)
    query = source.canary_query()
    assert query is not None
    try:
        result = crawl_run(settings, name, query, limit=CANARY_LIMIT)
    except ReelwatchError as exc:
        return SourceCheck(name, False, reason_of(exc), " ".join(str(exc).split()))
    if not result.posts:
        return SourceCheck(name, False, "empty", f"listed no posts for {query}")
    return SourceCheck(
        name, True, "works", f"{len(result.posts)} posts for {query}", len(result.posts)
    )


def check_sources(settings: Settings, names: list[str] | None = None) -> list[SourceCheck]:
    """Check the named sources (default: every registered one), in registry order."""
    classes = [get_source(n) for n in names] if names else list(SOURCES)
    checks = []
    for cls in classes:
        check = check_source(settings, cls)
        logger.info("source check: %s", check.line())
        checks.append(check)
    return checks
