"""Alerting: tell people about high-confidence matches, never twice, never losing one.

Never twice
    The Store is the source of truth. An alert is one (match, channel, recipient); before
    anything is sent it is *claimed* (an atomic insert keyed by ``match:channel:recipient``), so
    of two workers racing on the same match only one sends, and each recipient's alert lives
    and fails on its own: a recipient whose server said "try later" is retried alone, the
    others are never sent again. A transient failure leaves the alert ``pending`` with its
    error, and :func:`flush_pending` (or the next :func:`deliver` for that match) retries it
    under a lease, so a retry cannot overlap an attempt in flight. A worker that dies mid-send
    leaves a lease that expires after ``lease_s``; then the alert is retried. That last case is
    the only one that can send a message twice (the server may have accepted it just before the
    crash); the deterministic Message-ID lets the receiving side recognise it.

Digests
    A watch that fires many alerts at once would bury its recipients in mail. Per (channel,
    recipient, watch), when the alerts due now plus those of the last ``digest_window_s``
    seconds number more than ``digest_threshold``, the channel (if it
    :class:`~triage.notifiers.base.SendsDigests`) gets one digest listing all the alerts due,
    and every listed alert is recorded as sent with the digest's message id. When alerts come
    one at a time (one Celery chain per post), the first ``digest_threshold`` of a window go
    out as they come, later ones are *held* (pending, marked :data:`HELD_FOR_DIGEST`) and the
    next :func:`flush_pending` sends them as one digest. Beat runs that flush every few
    minutes; the embedded runner must call it at the end of a run.

Repeat infringers
    An account that crosses ``settings.ledger.alert_threshold`` confirmed matches gets one
    alert per recipient (:func:`deliver_account_alert`, called by
    :func:`triage.ledger.after_status_change`), whose ``match_id`` is the account's key
    (``account:<platform>:<account>:repeat``), not a match's id. It is claimed, leased,
    retried and never sent twice like any alert; :func:`flush_pending` retries it with the
    account's ledger as it stands then, and never counts it towards a watch's digest.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from functools import partial
from typing import TYPE_CHECKING

from reelwatch.errors import PermanentError, TransientError
from reelwatch.models import Alert, AlertStatus, Confidence, Match, Post, utcnow
from reelwatch.settings import AlertSettings
from triage.ledger import account_matches, is_account_alert, ledger_of, parse_alert_key
from triage.notifiers.base import SendsAccountAlerts, SendsDigests

if TYPE_CHECKING:
    from reelwatch.settings import Settings
    from triage.ledger import AccountLedger
    from triage.notifiers.base import Notifier
    from triage.stores.base import Store

log = logging.getLogger(__name__)

MAX_ACCOUNT_ALERT_MATCHES = 50
"""A repeat-infringer alert lists this many of the account's matches at most (those confirmed
in the window first); the ledger's numbers count them all."""

ATTEMPT_LEASE_S = 600.0
"""How long an attempt may be in flight before another worker takes the alert over; well above
the SMTP timeout, so a slow but live send is never doubled."""

HELD_FOR_DIGEST = "held for a digest"
"""Prefix of the ``error`` of a pending alert that waits for :func:`flush_pending` to send it in
a digest (kept across failed digest attempts, so the alerts stay together)."""


@dataclass(frozen=True)
class Throttle:
    """The digest rule (``AlertSettings.digest_threshold`` / ``digest_window_s``), read once;
    without settings, their defaults."""

    threshold: int
    window_s: float

    @classmethod
    def from_settings(cls, settings: Settings | None) -> Throttle:
        alerts = settings.alerts if settings is not None else AlertSettings()
        return cls(alerts.digest_threshold, alerts.digest_window_s)

    @property
    def on(self) -> bool:
        return self.threshold > 0


def should_alert(
    match: Match, settings: Settings, min_confidence: Confidence | None = None
) -> bool:
    """Whether ``match`` reaches ``min_confidence`` (a watch's), else the settings' tier."""
    return match.confidence.at_least(min_confidence or settings.alerts.min_confidence)


def deliver(
    store: Store,
    notifiers: Iterable[Notifier],
    match: Match,
    post: Post | None,
    settings: Settings,
    *,
    lease_s: float = ATTEMPT_LEASE_S,
    min_confidence: Confidence | None = None,
    recipients: Mapping[str, Sequence[str]] | None = None,
) -> list[Alert]:
    """Alert every recipient of every channel about ``match``; safe to call any number of times.

    Returns the alerts as they stand after this call (sent, pending with an error or held for a
    digest, failed, or already handled elsewhere). A match below ``min_confidence`` (a
    watch's; default ``settings.alerts.min_confidence``) gets none. ``recipients`` maps a
    channel to who hears about this match instead of that channel's own recipients (a watch's
    email list); channels it does not name keep theirs.
    """
    return deliver_many(
        store,
        notifiers,
        [(match, post)],
        settings,
        lease_s=lease_s,
        min_confidence=min_confidence,
        recipients=recipients,
    )


def deliver_many(
    store: Store,
    notifiers: Iterable[Notifier],
    items: Iterable[tuple[Match, Post | None]],
    settings: Settings,
    *,
    lease_s: float = ATTEMPT_LEASE_S,
    min_confidence: Confidence | None = None,
    recipients: Mapping[str, Sequence[str]] | None = None,
) -> list[Alert]:
    """:func:`deliver` for several matches at once, so that many for one watch make a digest.

    Returns the alerts per channel and recipient, as they stand after this call.
    """
    due = [(m, p) for m, p in items if should_alert(m, settings, min_confidence)]
    if not due:
        return []
    throttle = Throttle.from_settings(settings)
    window = _Window(store, throttle.window_s)
    results: list[Alert] = []
    for notifier in notifiers:
        chosen = (recipients or {}).get(notifier.channel)
        for recipient in notifier.recipients if chosen is None else chosen:
            candidates: list[_Candidate] = []
            for match, post in due:
                alert = Alert(match_id=match.id, channel=notifier.channel, recipient=recipient)
                known = store.get_alert(alert.id)
                if known is not None and known.status != AlertStatus.PENDING:
                    results.append(known)
                    continue
                candidates.append(_Candidate(known or alert, match, post))
            for watch, group in _by_watch(candidates):
                results += _run_group(
                    store,
                    notifier,
                    recipient,
                    watch,
                    group,
                    throttle=throttle,
                    window=window,
                    lease_s=lease_s,
                    may_hold=True,
                    report_skipped=True,
                )
    return results


def flush_pending(
    store: Store,
    notifiers: Iterable[Notifier],
    *,
    lease_s: float = ATTEMPT_LEASE_S,
    settings: Settings | None = None,
) -> list[Alert]:
    """Retry every pending alert whose channel is configured; returns the alerts it attempted.

    Held alerts, and more than the digest threshold pending for one watch and recipient, go
    out as one digest. ``settings`` gives the digest rule (module defaults without it).
    """
    by_channel = {n.channel: n for n in notifiers}
    throttle = Throttle.from_settings(settings)
    window = _Window(store, throttle.window_s)
    attempted: list[Alert] = []
    queues: dict[tuple[str, str], list[_Candidate]] = {}
    accounts: list[Alert] = []
    for pending in store.list_alerts(AlertStatus.PENDING):
        if pending.channel not in by_channel:
            continue
        if is_account_alert(pending):
            accounts.append(pending)
            continue
        match = window.match(pending.match_id)
        if match is None:
            taken = store.lease_alert(pending.id, lease_s=lease_s)
            if taken is not None:
                taken.status = AlertStatus.FAILED
                taken.error = "the match no longer exists in the store"
                store.update_alert(taken)
                attempted.append(taken)
            continue
        post = store.get_post(match.post_key)
        queues.setdefault((pending.channel, pending.recipient), []).append(
            _Candidate(pending, match, post)
        )
    for (channel, recipient), candidates in queues.items():
        for watch, group in _by_watch(candidates):
            attempted += _run_group(
                store,
                by_channel[channel],
                recipient,
                watch,
                group,
                throttle=throttle,
                window=window,
                lease_s=lease_s,
                may_hold=False,
                report_skipped=False,
            )
    if accounts:
        attempted += _flush_account_alerts(store, by_channel, accounts, settings, lease_s=lease_s)
    return attempted


def deliver_account_alert(
    store: Store,
    notifiers: Iterable[Notifier],
    key: str,
    ledger: AccountLedger,
    *,
    lease_s: float = ATTEMPT_LEASE_S,
) -> list[Alert]:
    """Tell every recipient of every channel that can (:class:`SendsAccountAlerts`) that
    ``ledger``'s account crossed the repeat-infringer threshold; ``key`` names the crossing
    (:func:`triage.ledger.account_alert_key`). Safe to call any number of times, from any
    number of processes: each (key, channel, recipient) is claimed before it is sent.

    Returns the alerts this call attempted (sent, pending with the reason, or failed); an alert
    already sent, or in flight elsewhere, is left alone and not returned.
    """
    attempted: list[Alert] = []
    matches: list[Match] | None = None
    for notifier in notifiers:
        if not isinstance(notifier, SendsAccountAlerts):
            continue
        for recipient in notifier.recipients:
            alert = Alert(match_id=key, channel=notifier.channel, recipient=recipient)
            taken = (
                alert if store.claim_alert(alert) else store.lease_alert(alert.id, lease_s=lease_s)
            )
            if taken is None:
                continue
            if matches is None:
                matches = account_matches(store, ledger, limit=MAX_ACCOUNT_ALERT_MATCHES)
            attempted.append(
                _record(
                    store,
                    taken,
                    partial(notifier.send_account_alert, ledger, matches, recipient, taken.id),
                )
            )
    return attempted


# Internals ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Candidate:
    """An alert that may be due, with what its message needs; not yet taken."""

    alert: Alert
    match: Match
    post: Post | None


class _Mode(Enum):
    ONE_BY_ONE = "one by one"
    DIGEST = "digest"
    HOLD = "hold"


class _Window:
    """Alerts of the recent window, counted per (channel, recipient, watch), read once per call.

    Failed alerts do not count: nobody was told about them.
    """

    def __init__(self, store: Store, window_s: float) -> None:
        self.store = store
        self.window_s = window_s
        self._matches: dict[str, Match | None] = {}
        self._recent: dict[str, tuple[str, str, str | None]] | None = None

    def match(self, match_id: str) -> Match | None:
        if match_id not in self._matches:
            self._matches[match_id] = self.store.get_match(match_id)
        return self._matches[match_id]

    def others(self, channel: str, recipient: str, watch: str | None, exclude: set[str]) -> int:
        if self._recent is None:
            since = utcnow() - timedelta(seconds=self.window_s)
            self._recent = {}
            for alert in self.store.list_alerts():
                if (
                    alert.status == AlertStatus.FAILED
                    or alert.created_at < since
                    or is_account_alert(alert)
                ):
                    continue
                match = self.match(alert.match_id)
                key = (alert.channel, alert.recipient, match.watch if match else None)
                self._recent[alert.id] = key
        counts = Counter(k for i, k in self._recent.items() if i not in exclude)
        return counts[(channel, recipient, watch)]


def _by_watch(candidates: Sequence[_Candidate]) -> list[tuple[str | None, list[_Candidate]]]:
    groups: dict[str | None, list[_Candidate]] = {}
    for c in candidates:
        groups.setdefault(c.match.watch, []).append(c)
    return list(groups.items())


def _is_held(alert: Alert) -> bool:
    return alert.error is not None and alert.error.startswith(HELD_FOR_DIGEST)


def _mode(
    notifier: Notifier,
    recipient: str,
    watch: str | None,
    group: Sequence[_Candidate],
    *,
    throttle: Throttle,
    window: _Window,
    may_hold: bool,
) -> _Mode:
    if not throttle.on or not isinstance(notifier, SendsDigests):
        return _Mode.ONE_BY_ONE
    held = any(_is_held(c.alert) for c in group)
    if len(group) >= 2 and held:
        return _Mode.DIGEST
    recent = window.others(notifier.channel, recipient, watch, {c.alert.id for c in group})
    if len(group) >= 2 and len(group) + recent > throttle.threshold:
        return _Mode.DIGEST
    if len(group) == 1 and may_hold and recent >= throttle.threshold:
        return _Mode.HOLD
    return _Mode.ONE_BY_ONE


def _run_group(
    store: Store,
    notifier: Notifier,
    recipient: str,
    watch: str | None,
    group: Sequence[_Candidate],
    *,
    throttle: Throttle,
    window: _Window,
    lease_s: float,
    may_hold: bool,
    report_skipped: bool,
) -> list[Alert]:
    """Deliver one (channel, recipient, watch) group by the digest rule.

    Alerts are taken (claimed or leased) right before their attempt, never long before, so a
    lease cannot run out while an alert waits behind slow sends of others.
    """
    mode = _mode(
        notifier, recipient, watch, group, throttle=throttle, window=window, may_hold=may_hold
    )
    results: list[Alert] = []

    def take(c: _Candidate) -> _Candidate | None:
        alert = c.alert
        taken = alert if store.claim_alert(alert) else store.lease_alert(alert.id, lease_s=lease_s)
        if taken is None:
            if report_skipped:
                results.append(store.get_alert(alert.id) or alert)
            return None
        return _Candidate(taken, c.match, c.post)

    if mode is _Mode.DIGEST:
        taken = [t for c in group if (t := take(c)) is not None]
        if len(taken) >= 2:
            results += _attempt_digest(store, notifier, recipient, watch, taken)
        else:
            results += [_attempt(store, notifier, t) for t in taken]
    elif mode is _Mode.HOLD:
        results += [_hold(store, t, watch) for c in group if (t := take(c)) is not None]
    else:
        for c in group:
            t = take(c)
            if t is not None:
                results.append(_attempt(store, notifier, t))
    return results


def _hold(store: Store, taken: _Candidate, watch: str | None) -> Alert:
    """Leave a taken alert pending for the next flush's digest (this releases the lease)."""
    held = taken.alert.model_copy()
    held.status, held.error = AlertStatus.PENDING, f"{HELD_FOR_DIGEST} of watch {watch!r}"
    store.update_alert(held)
    log.info("alert %s held for a digest of watch %r", held.id, watch)
    return held


def _attempt(store: Store, notifier: Notifier, taken: _Candidate) -> Alert:
    """Send one taken alert and record the outcome (which releases the lease)."""
    return _record(
        store, taken.alert, lambda: notifier.send(taken.match, taken.post, taken.alert.recipient)
    )


def _record(store: Store, alert: Alert, send: Callable[[], str]) -> Alert:
    """Run ``send`` for a taken alert and record the outcome (which releases the lease)."""
    done = alert.model_copy()
    try:
        done.message_id = send()
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


def _attempt_digest(
    store: Store,
    notifier: Notifier,
    recipient: str,
    watch: str | None,
    taken: Sequence[_Candidate],
) -> list[Alert]:
    """Send one digest for the taken alerts and record the same outcome on each of them.

    A permanent refusal of the digest (too large, a 5xx for its content) is no reason to lose
    the alerts: each is then tried on its own, and fails or not by itself.
    """
    if not isinstance(notifier, SendsDigests):
        return [_attempt(store, notifier, t) for t in taken]
    outcome: tuple[AlertStatus, str | None]
    message_id: str | None = None
    try:
        message_id = notifier.send_digest([(t.match, t.post) for t in taken], recipient, watch)
    except TransientError as e:
        outcome = (AlertStatus.PENDING, f"{HELD_FOR_DIGEST}; last attempt: {e}")
        log.warning("digest of %d alerts for %s will be retried: %s", len(taken), recipient, e)
    except PermanentError as e:
        log.error("digest for %s refused (%s); sending its alerts one by one", recipient, e)
        return [_attempt(store, notifier, t) for t in taken]
    except Exception as e:
        outcome = (AlertStatus.PENDING, f"{HELD_FOR_DIGEST}; last attempt: {type(e).__name__}: {e}")
        log.exception("digest for %s hit an unexpected error", recipient)
    else:
        outcome = (AlertStatus.SENT, None)
    sent_at = utcnow() if outcome[0] == AlertStatus.SENT else None
    results: list[Alert] = []
    for t in taken:
        done = t.alert.model_copy()
        done.status, done.error = outcome
        if sent_at is not None:
            done.message_id, done.sent_at = message_id, sent_at
        store.update_alert(done)
        results.append(done)
    return results


def _flush_account_alerts(
    store: Store,
    by_channel: Mapping[str, Notifier],
    pending: Sequence[Alert],
    settings: Settings | None,
    *,
    lease_s: float,
) -> list[Alert]:
    """Retry pending repeat-infringer alerts with each account's ledger as it stands now.

    Without settings (the window and threshold) the ledger cannot be computed: they wait for a
    flush that has them, as the beat task's does. An account with no match left, or a channel
    that cannot tell about accounts, fails the alert with that reason.
    """
    if settings is None:
        log.warning("%d repeat-infringer alerts wait for a flush with settings", len(pending))
        return []
    attempted: list[Alert] = []
    ledgers: dict[tuple[str, str], tuple[AccountLedger | None, list[Match]]] = {}
    for alert in pending:
        parsed = parse_alert_key(alert.match_id)
        assert parsed is not None
        platform, account, _generation = parsed
        taken = store.lease_alert(alert.id, lease_s=lease_s)
        if taken is None:
            continue
        notifier = by_channel[alert.channel]
        if (platform, account) not in ledgers:
            ledger = ledger_of(settings, store, platform, account)
            shown = (
                account_matches(store, ledger, limit=MAX_ACCOUNT_ALERT_MATCHES) if ledger else []
            )
            ledgers[(platform, account)] = (ledger, shown)
        ledger, shown = ledgers[(platform, account)]
        if ledger is None or not isinstance(notifier, SendsAccountAlerts):
            taken.status = AlertStatus.FAILED
            taken.error = (
                f"the account @{account} on {platform} has no match in the store any more"
                if ledger is None
                else f"the {alert.channel} channel cannot send repeat-infringer alerts"
            )
            store.update_alert(taken)
            attempted.append(taken)
            continue
        attempted.append(
            _record(
                store,
                taken,
                partial(notifier.send_account_alert, ledger, shown, taken.recipient, taken.id),
            )
        )
    return attempted
