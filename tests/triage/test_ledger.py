"""The repeat-infringer ledger on a real SQLite store: windows, handles, risk and its reasons."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from reelwatch.models import Confidence, Match, TriageStatus
from reelwatch.settings import Settings
from tests.triage.factories import T0, make_match
from triage.ledger import (
    UNCONFIRMED_CAP,
    account_alert_key,
    account_ledger,
    handle_key,
    ledger_of,
    parse_alert_key,
)
from triage.stores import Store, open_store

NOW = T0 + timedelta(days=365)


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    with open_store(settings) as s:
        yield s


def land(store: Store, post_id: str, account: str = "fan", **fields: Any) -> Match:
    match = make_match(post_id, account=account, created_at=NOW - timedelta(days=100), **fields)
    store.upsert_match(match)
    return match


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def step(store: Store, match: Match, *moves: tuple[TriageStatus, float]) -> None:
    """Move ``match`` through ``(status, days ago)`` steps, oldest first."""
    for status, ago in moves:
        store.set_status(match.id, status, actor="test", at=days_ago(ago))


def points(reasons: list[str]) -> float:
    return sum(float(p) for r in reasons for p in re.findall(r"\(\+([0-9.]+)\)", r))


def test_a_confirmation_89_days_ago_counts_and_91_days_ago_does_not(
    settings: Settings, store: Store
) -> None:
    old, recent = land(store, "1"), land(store, "2")
    step(store, old, (TriageStatus.CONFIRMED, 91))
    step(store, recent, (TriageStatus.CONFIRMED, 89))

    (ledger,) = account_ledger(settings, store, now=NOW)

    assert ledger.confirmed == 1
    assert ledger.matches == 2
    assert ledger.statuses == {"confirmed": 2}
    assert ledger.window_days == 90
    assert ledger.match_ids[0] == recent.id, "the confirmation in the window is listed first"
    settings.ledger.window_days = 92
    assert account_ledger(settings, store, now=NOW)[0].confirmed == 2


def test_notices_removals_and_reinstatements_count_by_their_own_times(
    settings: Settings, store: Store
) -> None:
    a, b, c = land(store, "1"), land(store, "2"), land(store, "3")
    # Confirmed long ago, acted on inside the window: counts as a notice and a removal only.
    step(
        store,
        a,
        (TriageStatus.CONFIRMED, 120),
        (TriageStatus.NOTICE_SENT, 80),
        (TriageStatus.REMOVED, 70),
    )
    # Confirmed inside the window and moved on: still confirmed, plus its notice and removal.
    step(
        store,
        b,
        (TriageStatus.CONFIRMED, 30),
        (TriageStatus.NOTICE_SENT, 20),
        (TriageStatus.REMOVED, 10),
        (TriageStatus.REINSTATED, 5),
    )
    # A notice drafted straight from new: confirmed by being acted on.
    step(store, c, (TriageStatus.NOTICE_DRAFTED, 3))

    (ledger,) = account_ledger(settings, store, now=NOW)

    assert (ledger.confirmed, ledger.notices_sent, ledger.removals, ledger.reinstated) == (
        2,
        2,
        2,
        1,
    )
    assert ledger.statuses == {"removed": 1, "reinstated": 1, "notice_drafted": 1}


def test_a_match_taken_back_stops_counting_as_confirmed(settings: Settings, store: Store) -> None:
    a, b = land(store, "1"), land(store, "2")
    step(store, a, (TriageStatus.CONFIRMED, 10), (TriageStatus.DISMISSED, 9))
    step(store, b, (TriageStatus.CONFIRMED, 10), (TriageStatus.NEW, 9))

    (ledger,) = account_ledger(settings, store, now=NOW)

    assert ledger.confirmed == 0
    assert "nothing confirmed in the last 90 days" in ledger.risk_reasons


def test_handle_forms_are_one_account_and_the_same_handle_elsewhere_is_named_not_merged(
    settings: Settings, store: Store
) -> None:
    for post_id, handle in (("1", "@Fan"), ("2", "fan"), ("3", " @fan ")):
        step(store, land(store, post_id, handle), (TriageStatus.CONFIRMED, 1))
    land(store, "9", "fan", platform="instagram")
    land(store, "8", "someone-else")

    ledgers = account_ledger(settings, store, now=NOW)

    by = {(x.platform, x.key): x for x in ledgers}
    assert set(by) == {("tiktok", "fan"), ("instagram", "fan"), ("tiktok", "someone-else")}
    tiktok = by[("tiktok", "fan")]
    assert (tiktok.matches, tiktok.confirmed) == (3, 3)
    assert tiktok.account == "fan", "shown as most of its matches spell it, without @"
    assert tiktok.also_on == ["instagram"]
    assert by[("instagram", "fan")].also_on == ["tiktok"]
    assert by[("instagram", "fan")].confirmed == 0, "never scored with the tiktok account"
    assert by[("tiktok", "someone-else")].also_on == []
    assert any("may be another person" in r for r in tiktok.risk_reasons)
    for spelling in ("@FAN", "fan", "@fan"):
        found = ledger_of(settings, store, "tiktok", spelling, now=NOW)
        assert found is not None and found.confirmed == 3
    assert ledger_of(settings, store, "youtube", "fan", now=NOW) is None
    assert ledger_of(settings, store, "tiktok", "@", now=NOW) is None


def test_matches_without_an_account_name_nobody(settings: Settings, store: Store) -> None:
    land(store, "1", account="")
    land(store, "2", account="@")
    assert account_ledger(settings, store, now=NOW) == []


def test_accounts_are_sorted_by_risk_with_unconfirmed_ones_after_every_confirmed_one(
    settings: Settings, store: Store
) -> None:
    # two-confirmed: 2 confirmed in the window.
    for post_id in ("a1", "a2"):
        step(store, land(store, post_id, "two-confirmed"), (TriageStatus.CONFIRMED, 5))
    # came-back: 1 confirmed whose post was removed and came back (reinstatements weigh most).
    step(
        store,
        land(store, "b1", "came-back"),
        (TriageStatus.CONFIRMED, 40),
        (TriageStatus.NOTICE_SENT, 30),
        (TriageStatus.REMOVED, 20),
        (TriageStatus.REINSTATED, 2),
    )
    # popular-lead: nothing confirmed, but many unreviewed high matches on several titles and
    # millions of views: worth a look, never above an account with a confirmed match.
    for n in range(8):
        land(store, f"c{n}", "popular-lead", title_id=f"title-{n}", views=5_000_000)
    # one-confirmed: a single confirmation, no views.
    step(store, land(store, "d1", "one-confirmed", views=None), (TriageStatus.CONFIRMED, 1))
    # quiet: one medium match, unreviewed.
    land(store, "e1", "quiet", confidence=Confidence.MEDIUM, score=0.6, views=None)

    ledgers = account_ledger(settings, store, now=NOW)

    order = [x.account for x in ledgers]
    assert order == ["came-back", "two-confirmed", "one-confirmed", "popular-lead", "quiet"]
    risks = [x.risk for x in ledgers]
    assert risks == sorted(risks, reverse=True)
    lead = ledgers[3]
    assert lead.risk == UNCONFIRMED_CAP
    assert any(r.startswith("capped at 9 from") for r in lead.risk_reasons)
    assert "8 titles hit" in " ".join(lead.risk_reasons)
    assert "and 3 more" in " ".join(lead.risk_reasons)
    assert "8 high-confidence matches not reviewed yet (+8)" in lead.risk_reasons
    came_back = ledgers[0]
    assert "1 post back up after removal in the last 90 days (+15)" in came_back.risk_reasons
    assert "1 confirmed match in the last 90 days (+10)" in came_back.risk_reasons
    for ledger in ledgers:
        if ledger is not lead:
            assert points(ledger.risk_reasons) == pytest.approx(ledger.risk), ledger.account
    assert ledgers[-1].risk_reasons[-1] == "nothing confirmed in the last 90 days"


def test_views_count_each_post_once_and_dismissed_matches_add_nothing(
    settings: Settings, store: Store
) -> None:
    land(store, "1", views=999, title_id="the-crown")
    land(store, "1", views=999, title_id="bridgerton")  # a second title on the same post
    step(store, land(store, "2", views=10**6), (TriageStatus.DISMISSED, 1))

    (ledger,) = account_ledger(settings, store, now=NOW)

    assert ledger.views == 999
    assert ledger.titles == ["Bridgerton", "The Crown"]
    assert "999 views reached (+3)" in ledger.risk_reasons


def test_over_threshold_at_the_threshold_and_never_with_threshold_zero(
    settings: Settings, store: Store
) -> None:
    settings.ledger.alert_threshold = 2
    step(store, land(store, "1"), (TriageStatus.CONFIRMED, 1))
    assert not account_ledger(settings, store, now=NOW)[0].over_threshold
    step(store, land(store, "2"), (TriageStatus.CONFIRMED, 1))
    assert account_ledger(settings, store, now=NOW)[0].over_threshold
    settings.ledger.alert_threshold = 0
    assert not account_ledger(settings, store, now=NOW)[0].over_threshold


def test_first_and_last_seen_and_json(settings: Settings, store: Store) -> None:
    land(store, "1")
    store.upsert_match(make_match("2", account="fan", created_at=days_ago(3)))

    (ledger,) = account_ledger(settings, store, now=NOW)

    assert ledger.first_seen == days_ago(100)
    assert ledger.last_seen == days_ago(3)
    data = ledger.to_json()
    assert data["first_seen"] == days_ago(100).isoformat()
    assert data["best"] == "high"
    assert data["match_ids"] == ledger.match_ids


def test_alert_keys_are_deterministic_and_parse_back_whatever_the_handle() -> None:
    assert account_alert_key("tiktok", "@Fan") == "account:tiktok:fan:repeat"
    assert account_alert_key("tiktok", "fan", 2) == "account:tiktok:fan:repeat:2"
    hostile = "a:b:repeat\nx"
    assert parse_alert_key(account_alert_key("x", hostile, 3)) == ("x", handle_key(hostile), 3)
    assert parse_alert_key("tiktok:7001:the-crown") is None


def test_a_very_long_handle_gets_a_short_alert_key_that_still_finds_its_ledger(
    settings: Settings, store: Store
) -> None:
    long_handle = "x" * 5000
    land(store, "1", long_handle)
    key = account_alert_key("tiktok", long_handle)
    assert len(key) < 120
    platform, handle, _ = parse_alert_key(key) or ("", "", 0)
    found = ledger_of(settings, store, platform, handle, now=NOW)
    assert found is not None and found.account == long_handle
