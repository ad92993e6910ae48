"""The repeat-infringer ledger: what each account did in a rolling window, and how risky it is.

One ledger per (platform, account), every platform in one list. An account is its handle with
the ``@`` and case dropped (``@FanPage`` and ``fanpage`` are one account: handles on TikTok,
YouTube, Instagram and X are case-insensitive). The same handle on two platforms is two ledgers
that name each other in ``also_on``; it is never merged or scored together, because a handle on
two platforms may belong to two people.

In the window (``settings.ledger.window_days`` back from now)
    ``confirmed``: matches a reviewer confirmed in the window. A match counts by when it was
    confirmed (``enforcement.confirmed_at``; a match acted on without passing ``confirmed``, a
    notice drafted straight from ``new``, counts by the first enforcement step it got) and
    keeps counting when it moves on to a notice, a removal, a rejection or a reinstatement.
    Set back to ``new`` or ``dismissed``, it stops counting: a reviewer took it back.
    ``notices_sent``, ``removals``, ``reinstated``: matches whose notice was marked sent, whose
    post was found removed, whose post came back, in the window (``notice_sent_at``,
    ``removed_at``, ``reinstated_at``).

Risk (:data:`WEIGHTS`; every point is explained in ``risk_reasons``)
    10 per confirmed match in the window, 3 per notice sent and 3 per removal in the window
    (a removal is the platform agreeing), 15 per reinstatement in the window (the post came
    back after a removal: the account appealed or re-uploaded), 2 per title hit beyond the
    first, 1 per order of magnitude of views reached (log10), 1 per high-confidence match
    nobody has reviewed yet. Dismissed matches add nothing. An account with nothing confirmed
    in the window is capped at :data:`UNCONFIRMED_CAP` (below any account with a confirmed
    match): unreviewed matches are leads, not findings. The list is sorted by risk, highest
    first.

The alert
    :func:`after_status_change` runs after any status change (CLI, board, notice flow). When
    the match's account has ``settings.ledger.alert_threshold`` confirmed matches in the window
    (0 turns it off), each recipient hears about it once per crossing: the alert's id is
    ``account:<platform>:<account>:repeat`` (``...:repeat:2`` for the second crossing, after the
    count fell below the threshold and rose to it again), claimed in the store before sending,
    so two processes changing statuses at once send one email. Delivery, retries and the beat
    flush are :mod:`triage.alerts`'.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from reelwatch.models import Alert, Confidence, Match, TriageStatus, utcnow
from triage.stores.base import as_utc

if TYPE_CHECKING:
    from reelwatch.settings import Settings
    from triage.stores.base import Store


WEIGHTS = {
    "confirmed": 10.0,
    "notice_sent": 3.0,
    "removed": 3.0,
    "reinstated": 15.0,
    "extra_title": 2.0,
    "views_per_decade": 1.0,
    "unreviewed_high": 1.0,
}
"""Points per event; see the module docstring."""
UNCONFIRMED_CAP = 9.0
"""The most an account with no confirmed match in the window scores (a confirmed match alone
is worth ``WEIGHTS["confirmed"]``, more than this)."""

MAX_TITLES_NAMED = 5
"""A risk reason names this many titles, then says how many more."""

_ACTED_ON = frozenset(
    {
        TriageStatus.CONFIRMED,
        TriageStatus.NOTICE_DRAFTED,
        TriageStatus.NOTICE_SENT,
        TriageStatus.REMOVED,
        TriageStatus.REJECTED,
        TriageStatus.REINSTATED,
    }
)
"""Statuses that mean a reviewer holds the match to be infringing."""

MAX_ALERT_HANDLE = 100
ALERT_PREFIX = "account:"
ALERT_SUFFIX = ":repeat"
_ALERT_KEY_RE = re.compile(r"^account:([^:]*):(.*):repeat(?::([0-9]+))?$", re.DOTALL)


@dataclass(frozen=True)
class AccountLedger:
    """One account on one platform: its matches, and what happened to them in the window."""

    platform: str
    account: str
    """The handle without ``@``, as its matches spell it most often."""
    matches: int
    """All its matches, whatever their status or age."""
    titles: list[str]
    statuses: dict[str, int]
    """Matches per current status."""
    confirmed: int
    notices_sent: int
    removals: int
    reinstated: int
    first_seen: datetime | None
    last_seen: datetime | None
    """When reelwatch landed its first and latest match."""
    best: Confidence
    risk: float
    risk_reasons: list[str]
    over_threshold: bool
    """``confirmed`` reached ``settings.ledger.alert_threshold`` (never when that is 0)."""
    window_days: float
    views: int = 0
    """Play counts reached by its matched posts (each post once), dismissed matches left out."""
    also_on: list[str] = field(default_factory=list)
    """Other platforms where the same handle has matches: maybe the same person, maybe not."""
    match_ids: list[str] = field(default_factory=list)
    """Its matches, those confirmed in the window first (latest first), then the rest by when
    they landed (latest first)."""

    def to_json(self) -> dict[str, Any]:
        """The ledger as plain JSON values (times in ISO 8601), as ``accounts --json`` prints
        it."""
        data = asdict(self)
        data["best"] = self.best.value
        for name in ("first_seen", "last_seen"):
            at = getattr(self, name)
            data[name] = as_utc(at).isoformat() if at is not None else None
        return data

    @property
    def key(self) -> str:
        """The account as the ledger compares it (no ``@``, lower case)."""
        return handle_key(self.account)

    @property
    def alert_key(self) -> str:
        """``Alert.match_id`` of this account's first repeat-infringer alert."""
        return account_alert_key(self.platform, self.account)


def handle_key(account: str) -> str:
    """``@FanPage``, ``fanpage`` and `` @fanpage `` are one account."""
    return account.strip().lstrip("@").strip().lower()


def alert_handle(account: str) -> str:
    """The account as alert ids name it: :func:`handle_key`, or for a handle longer than
    :data:`MAX_ALERT_HANDLE` (a hostile one) its start and a digest of the whole, so alert ids
    stay short enough for every store (Elasticsearch ids are at most 512 bytes)."""
    key = handle_key(account)
    if len(key) <= MAX_ALERT_HANDLE:
        return key
    return f"{key[:60]}~{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def account_alert_key(platform: str, account: str, generation: int = 1) -> str:
    """The ``Alert.match_id`` of an account's repeat-infringer alert: deterministic, so every
    process names the same crossing the same way."""
    base = f"{ALERT_PREFIX}{platform}:{alert_handle(account)}{ALERT_SUFFIX}"
    return base if generation <= 1 else f"{base}:{generation}"


def parse_alert_key(match_id: str) -> tuple[str, str, int] | None:
    """(platform, account, generation) of a repeat-infringer alert's ``match_id``; None for
    anything else (a match's id)."""
    found = _ALERT_KEY_RE.match(match_id)
    if found is None:
        return None
    return found.group(1), found.group(2), int(found.group(3) or 1)


def is_account_alert(alert: Alert) -> bool:
    return parse_alert_key(alert.match_id) is not None


def confirmed_at(match: Match) -> datetime | None:
    """When ``match`` was confirmed, for the ledger; None while it is not held infringing."""
    if match.status not in _ACTED_ON:
        return None
    enf = match.enforcement
    if enf.confirmed_at is not None:
        return as_utc(enf.confirmed_at)
    steps = [
        as_utc(t)
        for t in (
            enf.notice_drafted_at,
            enf.notice_sent_at,
            enf.removed_at,
            enf.rejected_at,
            enf.reinstated_at,
        )
        if t is not None
    ]
    return min(steps) if steps else None


def account_ledger(
    settings: Settings, store: Store, *, now: datetime | None = None
) -> list[AccountLedger]:
    """Every account with a match, riskiest first (ties: more confirmed, seen later, then by
    platform and handle). Matches without an account are left out: they name nobody."""
    return build_ledgers(store.list_matches(), settings, now=now)


def ledger_of(
    settings: Settings,
    store: Store,
    platform: str,
    account: str,
    *,
    now: datetime | None = None,
) -> AccountLedger | None:
    """The ledger of one account (``@x`` or ``x``, any case, or as an alert id names it);
    None when it has no match."""
    key = handle_key(account)
    if not key:
        return None
    matches = [
        m
        for m in store.list_matches()
        if handle_key(m.account) == key or alert_handle(m.account) == key
    ]
    for ledger in build_ledgers(matches, settings, now=now):
        if ledger.platform == platform:
            return ledger
    return None


def account_matches(
    store: Store, ledger: AccountLedger, *, limit: int | None = None
) -> list[Match]:
    """The ledger's matches as stored now, in ``ledger.match_ids`` order."""
    found = []
    for match_id in ledger.match_ids[:limit]:
        match = store.get_match(match_id)
        if match is not None:
            found.append(match)
    return found


def build_ledgers(
    matches: Iterable[Match], settings: Settings, *, now: datetime | None = None
) -> list[AccountLedger]:
    """:func:`account_ledger` over ``matches`` (already read from a store)."""
    when = as_utc(now or utcnow())
    since = when - timedelta(days=settings.ledger.window_days)
    groups: dict[tuple[str, str], list[Match]] = {}
    for m in matches:
        key = handle_key(m.account)
        if key:
            groups.setdefault((m.platform, key), []).append(m)
    platforms: dict[str, set[str]] = {}
    for platform, key in groups:
        platforms.setdefault(key, set()).add(platform)
    ledgers = [
        _ledger(
            platform,
            ms,
            settings,
            since=since,
            now=when,
            also_on=sorted(platforms[key] - {platform}),
        )
        for (platform, key), ms in groups.items()
    ]
    ledgers.sort(key=_order)
    return ledgers


def _order(ledger: AccountLedger) -> tuple[float, int, float, str, str]:
    last = ledger.last_seen.timestamp() if ledger.last_seen else 0.0
    return (-ledger.risk, -ledger.confirmed, -last, ledger.platform, ledger.key)


def _in_window(at: datetime | None, since: datetime, now: datetime) -> bool:
    return at is not None and since <= as_utc(at) <= now


def _ledger(
    platform: str,
    matches: Sequence[Match],
    settings: Settings,
    *,
    since: datetime,
    now: datetime,
    also_on: list[str],
) -> AccountLedger:
    window_days = settings.ledger.window_days
    confirmed_times = {m.id: confirmed_at(m) for m in matches}
    counted = [m for m in matches if _in_window(confirmed_times[m.id], since, now)]
    notices = sum(_in_window(m.enforcement.notice_sent_at, since, now) for m in matches)
    removals = sum(_in_window(m.enforcement.removed_at, since, now) for m in matches)
    reinstated = sum(_in_window(m.enforcement.reinstated_at, since, now) for m in matches)
    live = [m for m in matches if m.status != TriageStatus.DISMISSED]
    views_by_post: dict[str, int] = {}
    for m in live:
        if m.views is not None:
            views_by_post[m.post_key] = max(views_by_post.get(m.post_key, 0), m.views)
    views = sum(views_by_post.values())
    unreviewed_high = sum(
        m.status == TriageStatus.NEW and m.confidence == Confidence.HIGH for m in matches
    )
    live_titles = sorted({m.title for m in live})
    risk, reasons = _risk(
        confirmed=len(counted),
        notices=notices,
        removals=removals,
        reinstated=reinstated,
        titles=live_titles,
        views=views,
        unreviewed_high=unreviewed_high,
        window_days=window_days,
    )
    if also_on:
        reasons.append(
            f"the same handle has matches on {', '.join(also_on)} (not scored: it may be "
            "another person)"
        )
    counted_ids = {m.id for m in counted}
    ordered = sorted(
        counted, key=lambda m: confirmed_times[m.id] or as_utc(m.created_at), reverse=True
    ) + sorted(
        (m for m in matches if m.id not in counted_ids),
        key=lambda m: as_utc(m.created_at),
        reverse=True,
    )
    landed = [as_utc(m.created_at) for m in matches]
    spellings = Counter(m.account.strip().lstrip("@").strip() for m in matches)
    threshold = settings.ledger.alert_threshold
    return AccountLedger(
        platform=platform,
        account=min(spellings, key=lambda s: (-spellings[s], s)),
        matches=len(matches),
        titles=sorted({m.title for m in matches}),
        statuses=dict(Counter(m.status.value for m in matches)),
        confirmed=len(counted),
        notices_sent=notices,
        removals=removals,
        reinstated=reinstated,
        first_seen=min(landed) if landed else None,
        last_seen=max(landed) if landed else None,
        best=max((m.confidence for m in matches), key=lambda c: c.rank),
        risk=risk,
        risk_reasons=reasons,
        over_threshold=threshold > 0 and len(counted) >= threshold,
        window_days=window_days,
        views=views,
        also_on=also_on,
        match_ids=[m.id for m in ordered],
    )


def _risk(
    *,
    confirmed: int,
    notices: int,
    removals: int,
    reinstated: int,
    titles: Sequence[str],
    views: int,
    unreviewed_high: int,
    window_days: float,
) -> tuple[float, list[str]]:
    """The score and, for every part of it, a sentence saying what it adds."""
    days = f"{window_days:g} days"
    parts: list[tuple[float, str]] = []

    def add(count: int, weight: str, text: str) -> None:
        if count:
            points = count * WEIGHTS[weight]
            parts.append((points, f"{text} (+{points:g})"))

    add(
        confirmed,
        "confirmed",
        f"{_n(confirmed, 'confirmed match')} in the last {days}",
    )
    add(
        reinstated,
        "reinstated",
        f"{_n(reinstated, 'post')} back up after removal in the last {days}",
    )
    add(
        notices,
        "notice_sent",
        f"{_n(notices, 'match')} with a notice sent in the last {days}",
    )
    add(removals, "removed", f"{_n(removals, 'post')} removed in the last {days}")
    if len(titles) > 1:
        extra = len(titles) - 1
        points = extra * WEIGHTS["extra_title"]
        named = ", ".join(titles[:MAX_TITLES_NAMED])
        if len(titles) > MAX_TITLES_NAMED:
            named += f" and {len(titles) - MAX_TITLES_NAMED} more"
        parts.append((points, f"{len(titles)} titles hit: {named} (+{points:g})"))
    if views > 0:
        points = round(math.log10(1 + views) * WEIGHTS["views_per_decade"], 1)
        parts.append((points, f"{views:,} views reached (+{points:g})"))
    add(
        unreviewed_high,
        "unreviewed_high",
        f"{_n(unreviewed_high, 'high-confidence match')} not reviewed yet",
    )
    total = round(sum(p for p, _ in parts), 1)
    reasons = [text for _, text in parts]
    if confirmed == 0 and total > UNCONFIRMED_CAP:
        reasons.append(
            f"capped at {UNCONFIRMED_CAP:g} from {total:g}: nothing confirmed in the last {days}"
        )
        total = UNCONFIRMED_CAP
    elif confirmed == 0:
        reasons.append(f"nothing confirmed in the last {days}")
    return total, reasons


def _n(count: int, one: str, many: str | None = None) -> str:
    """``3 posts``, ``1 match``, ``2 matches``."""
    plural = many or one + ("es" if one.endswith(("ch", "sh", "s", "x")) else "s")
    return f"{count} {one if count == 1 else plural}"


# The alert -----------------------------------------------------------------------------------


def after_status_change(settings: Settings, store: Store, match: Match) -> Alert | None:
    """Email the repeat-infringer alert if ``match``'s account now crosses the threshold.

    Call it after any status change of ``match`` (CLI, board, notice flow); it is cheap to
    call when nothing is due and safe to call any number of times, from any number of
    processes: each recipient hears about one crossing once. Returns the first alert this
    call attempted (sent, or pending with the reason when the mail server is away: the beat
    flush retries it), or None when nothing was due: alerts off (threshold 0), no account,
    under the threshold, or every recipient already handled.
    """
    threshold = settings.ledger.alert_threshold
    if threshold <= 0 or not handle_key(match.account):
        return None
    now = utcnow()
    since = now - timedelta(days=settings.ledger.window_days)
    own = [
        m
        for m in store.list_matches(platform=match.platform)
        if handle_key(m.account) == handle_key(match.account)
    ]
    times = sorted(t for m in own if (t := confirmed_at(m)) is not None)
    if sum(since <= t <= now for t in times) < threshold:
        return None
    ledger = ledger_of(settings, store, match.platform, match.account, now=now)
    if ledger is None or not ledger.over_threshold:
        return None
    from triage.alerts import deliver_account_alert
    from triage.notifiers import build_notifiers

    key = _crossing_key(store, ledger, times, settings, now)
    attempted = deliver_account_alert(store, build_notifiers(settings), key, ledger)
    return attempted[0] if attempted else None


def after_status_changes(settings: Settings, store: Store, match_ids: Iterable[str]) -> list[Alert]:
    """:func:`after_status_change` once per account among ``match_ids`` (a notice's matches
    are mostly one account's: its ledger is read once, not once per match); the alerts
    attempted, one per account that crossed."""
    seen: set[tuple[str, str]] = set()
    alerts: list[Alert] = []
    for match_id in dict.fromkeys(match_ids):
        match = store.get_match(match_id)
        if match is None:
            continue
        account = (match.platform, handle_key(match.account))
        if account in seen:
            continue
        seen.add(account)
        alert = after_status_change(settings, store, match)
        if alert is not None:
            alerts.append(alert)
    return alerts


def _crossing_key(
    store: Store,
    ledger: AccountLedger,
    times: Sequence[datetime],
    settings: Settings,
    now: datetime,
) -> str:
    """The alert key of the account's current crossing of the threshold.

    The latest crossing alerted is still the current one unless, since its alert was first
    claimed, the confirmed count in the window fell below the threshold as confirmations aged
    out of it, and rose to it again: then it is the next generation. Only ageing out is looked
    at (at each confirmation's expiry), so confirming a match a second time, or a match taken
    back and another confirmed, never makes a second alert for one crossing.
    """
    earliest: dict[int, datetime] = {}
    for alert in store.list_alerts():
        parsed = parse_alert_key(alert.match_id)
        if parsed is None or parsed != (ledger.platform, alert_handle(ledger.account), parsed[2]):
            continue
        at = as_utc(alert.created_at)
        earliest[parsed[2]] = min(earliest.get(parsed[2], at), at)
    if not earliest:
        return account_alert_key(ledger.platform, ledger.key)
    generation = max(earliest)
    alerted = earliest[generation]
    window = timedelta(days=settings.ledger.window_days)
    threshold = settings.ledger.alert_threshold

    def count(at: datetime) -> int:
        return sum(at - window < t <= at for t in times)

    expiries = [t + window for t in times if alerted < t + window <= now]
    if any(count(at) < threshold for at in expiries):
        generation += 1
    return account_alert_key(ledger.platform, ledger.key, generation)
