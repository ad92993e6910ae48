"""Removal tracking: re-check the posts whose takedown notice was sent, and move their matches.

Beat sends ``reelwatch.recheck_removals`` every ``removal.schedule_every_s``; the task checks
only the matches that are due (:func:`due_matches`), each distinct post once, through its
source (:func:`workers.recheck.check_post`), and applies what it found to every match of that
post, each in one atomic store update:

============== ========================================= ============================
status         the post was found                        becomes
============== ========================================= ============================
notice_sent    removed (``confirm_checks`` times in a    removed (``removal_s`` set on
               row)                                      the first removal)
removed        up                                        reinstated
reinstated     removed (``confirm_checks`` in a row)     removed
any            unknown (429, captcha, timeout...)        unchanged
============== ========================================= ============================

Every check, whatever it found, is recorded on the match: ``enforcement.checked_at``,
``check``, ``check_detail`` and ``checks`` (how many checks in a row found ``check``; an
unknown answer breaks a run of removals, so a removal is only confirmed by answers that say
so). Status changes go through :func:`triage.stores.base.apply_status` with actor
``re-check``, so they land in the history like a reviewer's. A post whose check fails, or a
match whose update fails, is logged and counted; the run goes on with the others.

Which matches are due: ``notice_sent`` ones whose notice was sent less than
``give_up_days`` ago, ``removed`` ones removed less than ``watch_removed_days`` ago (to see a
reinstatement) and ``reinstated`` ones reinstated less than ``give_up_days`` ago; each when it
was never checked in its current status or was last checked ``check_every_s`` ago or more.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from crawler.recheck import PostCheck
from reelwatch.models import CheckOutcome, Match, Post, TriageStatus, utcnow
from reelwatch.settings import Settings
from triage.stores.base import Store, apply_status, as_utc
from workers.recheck import check_post

log = logging.getLogger(__name__)

ACTOR = "re-check"
"""Who the history says moved a match."""
TRACKED = (TriageStatus.NOTICE_SENT, TriageStatus.REMOVED, TriageStatus.REINSTATED)
"""The statuses re-checks look at (and the only ones they change)."""

Checker = Callable[[Settings, Post], PostCheck]


def _entered(match: Match) -> datetime:
    """When the match entered its current status (its ``<status>_at``; for a match from
    before the lifecycle, its latest history entry or last update)."""
    field_name = match.status.at_field
    when = getattr(match.enforcement, field_name) if field_name else None
    if when is None:
        for entry in reversed(match.history):
            if entry.status == match.status:
                return as_utc(entry.at)
        return as_utc(match.updated_at)
    return as_utc(when)


def window_days(settings: Settings, status: TriageStatus) -> float:
    """How long after entering ``status`` a match is still re-checked."""
    removal = settings.removal
    return removal.watch_removed_days if status == TriageStatus.REMOVED else removal.give_up_days


def is_tracked(settings: Settings, match: Match, now: datetime) -> bool:
    """Whether re-checks still follow ``match`` (its status and window)."""
    if match.status not in TRACKED:
        return False
    return as_utc(now) - _entered(match) <= timedelta(days=window_days(settings, match.status))


def is_due(settings: Settings, match: Match, now: datetime) -> bool:
    """Whether a tracked match's post should be checked now."""
    checked = match.enforcement.checked_at
    if checked is None or as_utc(checked) < _entered(match):
        return True
    return (as_utc(now) - as_utc(checked)).total_seconds() >= settings.removal.check_every_s


def tracked_matches(store: Store) -> list[Match]:
    """Every match in a tracked status, least recently checked first (never checked first)."""
    found: list[Match] = []
    for status in TRACKED:
        found.extend(store.list_matches(status=status))
    never = datetime.min.replace(tzinfo=as_utc(utcnow()).tzinfo)
    return sorted(
        found,
        key=lambda m: (
            as_utc(m.enforcement.checked_at) if m.enforcement.checked_at else never,
            m.id,
        ),
    )


def due_matches(
    settings: Settings, store: Store, now: datetime | None = None, *, due_only: bool = True
) -> list[Match]:
    """The tracked matches whose post is due for a check at ``now`` (least recently checked
    first); ``due_only=False``: every tracked match within its window, due or not."""
    when = as_utc(now or utcnow())
    return [
        m
        for m in tracked_matches(store)
        if is_tracked(settings, m, when) and (not due_only or is_due(settings, m, when))
    ]


@dataclass
class MatchResult:
    """What one re-check did to one match."""

    match_id: str
    post_key: str
    outcome: CheckOutcome
    detail: str
    before: TriageStatus
    after: TriageStatus

    def as_dict(self) -> dict[str, Any]:
        return {
            "match": self.match_id,
            "post": self.post_key,
            "check": self.outcome.value,
            "detail": self.detail,
            "before": self.before.value,
            "after": self.after.value,
        }


@dataclass
class RecheckSummary:
    """One run of the re-checks."""

    posts: int = 0
    """Distinct posts checked."""
    up: int = 0
    gone: int = 0
    """Posts found removed (whether or not that changed a status yet)."""
    unknown: int = 0
    removed: int = 0
    """Matches newly marked removed."""
    reinstated: int = 0
    """Matches newly marked reinstated."""
    errors: int = 0
    """Matches whose update failed (logged; the run went on)."""
    results: list[MatchResult] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "posts": self.posts,
            "up": self.up,
            "gone": self.gone,
            "unknown": self.unknown,
            "removed": self.removed,
            "reinstated": self.reinstated,
            "errors": self.errors,
            "results": [r.as_dict() for r in self.results],
        }

    def line(self) -> str:
        if not self.posts:
            return "no post was due for a re-check"
        parts = [
            f"checked {self.posts} post(s): {self.up} up, {self.gone} removed, "
            f"{self.unknown} unknown",
            f"{self.removed} match(es) marked removed, {self.reinstated} reinstated",
        ]
        if self.errors:
            parts.append(f"{self.errors} update(s) failed (see the log)")
        return "; ".join(parts)


def apply_check(
    match: Match, check: PostCheck, *, at: datetime, confirm_checks: int = 1
) -> TriageStatus | None:
    """Record ``check`` on ``match`` (in place) and move its status as the module docstring's
    table says; the new status, or None when the status stays."""
    enf = match.enforcement
    enf.checks = enf.checks + 1 if enf.check == check.outcome else 1
    enf.check = check.outcome
    enf.check_detail = check.detail
    enf.checked_at = at
    target: TriageStatus | None = None
    if check.outcome == CheckOutcome.REMOVED and enf.checks >= confirm_checks:
        if match.status in (TriageStatus.NOTICE_SENT, TriageStatus.REINSTATED):
            target = TriageStatus.REMOVED
    elif check.outcome == CheckOutcome.UP and match.status == TriageStatus.REMOVED:
        target = TriageStatus.REINSTATED
    if target is not None:
        apply_status(match, target, note=f"re-check: {check.detail}", actor=ACTOR, at=at)
    return target


def _post_of(store: Store, match: Match) -> Post:
    """The stored post of ``match``; one made from the match when the post is not stored."""
    post = store.get_post(match.post_key)
    if post is not None:
        return post
    return Post(platform=match.platform, post_id=match.post_id, url=match.post_url)


def recheck(
    settings: Settings,
    store: Store,
    *,
    now: datetime | None = None,
    limit: int | None = None,
    due_only: bool = True,
    checker: Checker = check_post,
) -> RecheckSummary:
    """Check the posts of the due matches (at most ``limit`` posts, default
    ``removal.max_per_run``, least recently checked first) and apply what was found; see the
    module docstring. ``due_only=False`` checks every tracked match in its window."""
    when = as_utc(now or utcnow())
    most = limit if limit is not None else settings.removal.max_per_run
    by_post: dict[str, list[Match]] = {}
    for match in due_matches(settings, store, when, due_only=due_only):
        if match.post_key in by_post or len(by_post) < most:
            by_post.setdefault(match.post_key, []).append(match)
    summary = RecheckSummary()
    for key, matches in by_post.items():
        first = matches[0]
        try:
            post = _post_of(store, first)
        except Exception:
            log.exception("re-check: cannot read post %s", key)
            post = Post(platform=first.platform, post_id=first.post_id, url=first.post_url)
        try:
            check = checker(settings, post)
        except Exception as exc:
            log.exception("re-check of %s failed", key)
            check = PostCheck(CheckOutcome.UNKNOWN, f"check failed: {type(exc).__name__}")
        summary.posts += 1
        if check.outcome == CheckOutcome.UP:
            summary.up += 1
        elif check.outcome == CheckOutcome.REMOVED:
            summary.gone += 1
        else:
            summary.unknown += 1
        log.info("re-check %s: %s (%s)", key, check.outcome.value, check.detail)
        for match in matches:
            _apply(settings, store, match, check, when, summary)
    return summary


def _apply(
    settings: Settings,
    store: Store,
    match: Match,
    check: PostCheck,
    at: datetime,
    summary: RecheckSummary,
) -> None:
    moved: dict[str, Any] = {}

    def change(m: Match) -> None:
        # The status is read again inside the atomic update: a reviewer may have moved the
        # match since it was found due (then only the check is recorded).
        moved["before"] = m.status
        moved["to"] = apply_check(m, check, at=at, confirm_checks=settings.removal.confirm_checks)

    try:
        written = store.update_match(match.id, change)
    except Exception:
        log.exception("re-check: cannot update match %s", match.id)
        summary.errors += 1
        return
    target = moved.get("to")
    if target == TriageStatus.REMOVED:
        summary.removed += 1
    elif target == TriageStatus.REINSTATED:
        summary.reinstated += 1
    if target is not None:
        log.info("re-check: match %s is now %s (%s)", match.id, target.value, check.detail)
    summary.results.append(
        MatchResult(
            match_id=match.id,
            post_key=match.post_key,
            outcome=check.outcome,
            detail=check.detail,
            before=moved.get("before", match.status),
            after=written.status,
        )
    )
