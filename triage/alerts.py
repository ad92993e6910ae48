"""Alerting: tell people about high-confidence matches, never twice, never losing one.

The Store is the source of truth. Before anything is sent the alert is *claimed* (an atomic
insert keyed by ``match:channel:recipient``), so of two workers racing on the same match only
one sends. A transient failure leaves the alert ``pending`` with its error, and
:func:`flush_pending` (or the next :func:`deliver` for that match) retries it under a lease, so
a retry cannot overlap an attempt in flight. A worker that dies mid-send leaves a lease that
expires after ``lease_s``; then the alert is retried. That last case is the only one that can
send a message twice (the server may have accepted it just before the crash); the
deterministic Message-ID lets the receiving side recognise it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from reelwatch.errors import PermanentError, TransientError
from reelwatch.models import Alert, AlertStatus, Match, Post, utcnow

if TYPE_CHECKING:
    from reelwatch.settings import Settings
    from triage.notifiers.base import Notifier
    from triage.stores.base import Store

log = logging.getLogger(__name__)

ATTEMPT_LEASE_S = 600.0
"""How long an attempt may be in flight before another worker takes the alert over; well above
the SMTP timeout, so a slow but live send is never doubled."""


def should_alert(match: Match, settings: Settings) -> bool:
    return match.confidence.at_least(settings.alerts.min_confidence)


def deliver(
    store: Store,
    notifiers: Iterable[Notifier],
    match: Match,
    post: Post | None,
    settings: Settings,
    *,
    lease_s: float = ATTEMPT_LEASE_S,
) -> list[Alert]:
    """Alert every recipient of every channel about ``match``; safe to call any number of times.

    Returns the alerts as they stand after this call (sent, pending with an error, failed, or
    already handled elsewhere). A match below ``settings.alerts.min_confidence`` gets none.
    """
    if not should_alert(match, settings):
        return []
    results: list[Alert] = []
    for notifier in notifiers:
        for recipient in notifier.recipients:
            alert = Alert(match_id=match.id, channel=notifier.channel, recipient=recipient)
            taken = (
                alert if store.claim_alert(alert) else store.lease_alert(alert.id, lease_s=lease_s)
            )
            if taken is None:
                results.append(store.get_alert(alert.id) or alert)
                continue
            results.append(_attempt(store, notifier, taken, match, post))
    return results


def flush_pending(
    store: Store,
    notifiers: Iterable[Notifier],
    *,
    lease_s: float = ATTEMPT_LEASE_S,
) -> list[Alert]:
    """Retry every pending alert whose channel is configured; returns the alerts it attempted."""
    by_channel = {n.channel: n for n in notifiers}
    attempted: list[Alert] = []
    for pending in store.list_alerts(AlertStatus.PENDING):
        notifier = by_channel.get(pending.channel)
        if notifier is None:
            continue
        taken = store.lease_alert(pending.id, lease_s=lease_s)
        if taken is None:
            continue
        match = store.get_match(taken.match_id)
        if match is None:
            taken.status = AlertStatus.FAILED
            taken.error = "the match no longer exists in the store"
            store.update_alert(taken)
            attempted.append(taken)
            continue
        attempted.append(_attempt(store, notifier, taken, match, store.get_post(match.post_key)))
    return attempted


def _attempt(
    store: Store, notifier: Notifier, alert: Alert, match: Match, post: Post | None
) -> Alert:
    """Send one leased alert and record the outcome (which releases the lease)."""
    done = alert.model_copy()
    try:
        done.message_id = notifier.send(match, post, alert.recipient)
    except TransientError as e:
        done.status, done.error = AlertStatus.PENDING, str(e)
        log.warning("alert %s will be retried: %s", alert.id, e)
    except PermanentError as e:
        done.status, done.error = AlertStatus.FAILED, str(e)
        log.error("alert %s failed for good: %s", alert.id, e)
    except Exception as e:
        # A bug in a notifier must not lose the alert nor stop the other recipients: keep it
        # pending with the reason, and leave the traceback in the log.
        done.status, done.error = AlertStatus.PENDING, f"{type(e).__name__}: {e}"
        log.exception("alert %s hit an unexpected error", alert.id)
    else:
        done.status, done.error, done.sent_at = AlertStatus.SENT, None, utcnow()
    store.update_alert(done)
    return done
