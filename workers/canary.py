"""The source check on beat: an email when a platform stops answering, once per source a day.

Platforms change without notice (a new signature, a login wall, another page layout), and a
crawler that finds nothing looks just like a quiet hashtag. ``crawler.sources_check`` lists a
few posts from each configured source on a canary query and says, per source, whether it works;
beat runs that daily (``settings.beat.sources_check_schedule``) through the
``reelwatch.sources_check`` task, and :func:`alert_broken_sources` tells
``settings.email.recipients`` about the broken ones in one email.

At most one email per source per day and recipient, however often the check runs or retries:
each (day, recipient, source) is claimed in Redis before it is mailed (:mod:`workers.claims`),
and a claim whose email could not go out for now is given back, so the retry mails only what
is still owed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import date
from typing import TYPE_CHECKING

from reelwatch.errors import PermanentError, TransientError
from reelwatch.models import utcnow
from triage.notifiers.email import EmailNotifier

if TYPE_CHECKING:
    from crawler.sources_check import SourceCheck
    from reelwatch.settings import Settings
    from workers.claims import Claims

log = logging.getLogger(__name__)

CLAIM_TTL_S = 2 * 86400.0
"""Claims are per day; they only need to outlive it (with room for clock skew)."""
MAX_DETAIL_CHARS = 500


Check = Callable[["Settings"], Sequence["SourceCheck"]]


def crawler_check(settings: Settings) -> Sequence[SourceCheck]:
    """``crawler.sources_check.check_sources``, imported when a check runs: the crawler's
    browser stack is loaded only by the worker that does the check."""
    from crawler.sources_check import check_sources

    return check_sources(settings)


def run_sources_check(
    settings: Settings, claims: Claims, check: Check | None = None
) -> dict[str, list[str]]:
    """Check every configured source and email about the broken ones; a summary for the log."""
    states = list((check or crawler_check)(settings))
    alerted = alert_broken_sources(settings, states, claims)
    return {
        "checked": [s.name for s in states],
        "broken": [s.name for s in states if s.broken],
        "alerted": alerted,
    }


def alert_broken_sources(
    settings: Settings,
    states: Sequence[SourceCheck],
    claims: Claims,
    *,
    today: date | None = None,
) -> list[str]:
    """Email each recipient about broken sources it has not heard about today.

    Returns the names of the sources that some recipient was told about now. Raises
    ``TransientError`` when a recipient could not be reached for now (its claims given back,
    so the task's retry tells it); a recipient refused for good is logged and left out.
    """
    broken = [s for s in states if s.broken]
    if not broken:
        return []
    if not settings.email.recipients:
        log.warning("sources broken (%s) but no email recipients are set", _names(broken))
        return []
    day = (today or utcnow().date()).isoformat()
    notifier = EmailNotifier.from_settings(settings)
    told: set[str] = set()
    deferred: list[str] = []
    for recipient in settings.email.recipients:
        fresh = [s for s in broken if claims.claim(_claim(day, recipient, s), CLAIM_TTL_S)]
        if not fresh:
            continue
        known = [s for s in broken if s not in fresh]
        key = f"sources-{day}-{_names(fresh)}"
        try:
            notifier.send_notice(*_notice(fresh, known, day), recipient, key)
        except TransientError as exc:
            for s in fresh:
                claims.release(_claim(day, recipient, s))
            deferred.append(f"{recipient}: {exc}")
            continue
        except PermanentError as exc:
            log.error("broken-source email to %s refused: %s", recipient, exc)
            continue
        told.update(s.name for s in fresh)
    if deferred:
        raise TransientError(f"broken-source email not delivered yet: {'; '.join(deferred)}")
    return sorted(told)


def _claim(day: str, recipient: str, state: SourceCheck) -> str:
    return f"sources-alert:{day}:{recipient}:{state.name}"


def _names(states: Sequence[SourceCheck]) -> str:
    return ", ".join(sorted(s.name for s in states))


def _notice(
    fresh: Sequence[SourceCheck], known: Sequence[SourceCheck], day: str
) -> tuple[str, str]:
    """Subject and text of the email: each newly broken source with its reason and detail."""
    count = f"{len(fresh)} source{'s' if len(fresh) > 1 else ''}"
    subject = f"[reelwatch] {count} broken: {_names(fresh)}"
    lines = [f"reelwatch's source check on {day} found {count} that no longer work:", ""]
    for s in sorted(fresh, key=lambda s: s.name):
        lines.append(f"- {s.name}: {s.reason or 'broken'}")
        detail = " ".join(s.detail.split())
        if detail:
            if len(detail) > MAX_DETAIL_CHARS:
                detail = detail[: MAX_DETAIL_CHARS - 1] + "…"
            lines.append(f"  {detail}")
    if known:
        lines += ["", f"Still broken, already reported today: {_names(known)}."]
    lines += [
        "",
        "Posts from these sources are not found until they work again.",
        "`reelwatch sources check` shows their state now.",
        "",
    ]
    return subject, "\n".join(lines)
