"""The behaviour every Store backend owes its callers.

A backend's test module subclasses :class:`StoreContract` and provides a ``store_settings``
fixture whose ``open_store`` opens that backend (on a fresh, empty store). Everything here
talks to the store only through the public API, so the same tests hold the SQLite file and an
Elasticsearch cluster to the same promises.
"""

from __future__ import annotations

import multiprocessing
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from reelwatch.errors import InputError
from reelwatch.models import (
    Alert,
    AlertStatus,
    CheckOutcome,
    Confidence,
    Match,
    Media,
    Notice,
    NoticeStatus,
    PostState,
    PostStats,
    TriageStatus,
    utcnow,
)
from reelwatch.settings import Settings
from tests.triage.factories import T0, make_match, make_post
from triage.stores import Store, open_store
from triage.stores.base import PostStateConflict

RACERS = 4
RACE_ITEMS = 25


def _claim_all(settings: Settings, alerts: list[Alert], barrier: Any, results: Any) -> None:
    """Child process: open its own store, wait for the others, claim every alert."""
    with open_store(settings) as store:
        barrier.wait(timeout=60)
        results.put([a.id for a in alerts if store.claim_alert(a)])


def _upsert_all(settings: Settings, post_ids: list[str], barrier: Any, results: Any) -> None:
    with open_store(settings) as store:
        barrier.wait(timeout=60)
        results.put([p for p in post_ids if store.upsert_post(make_post(p))])


def _put_back_all(settings: Settings, keys: list[str], barrier: Any, results: Any) -> None:
    """Child process: put every failed post back, as a retry does; report those it moved."""
    with open_store(settings) as store:
        barrier.wait(timeout=60)
        won = []
        for key in keys:
            try:
                store.set_post_state(key, PostState.DISCOVERED, expect=PostState.FAILED)
            except PostStateConflict:
                continue
            won.append(key)
        results.put(won)


def _race(settings: Settings, target: Any, items: list[Any]) -> list[Any]:
    """Run ``target`` in RACERS processes started together; return everything they won."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(RACERS)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=target, args=(settings, items, barrier, results)) for _ in range(RACERS)
    ]
    for p in procs:
        p.start()
    won = [item for _ in procs for item in results.get(timeout=60)]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    return won


class StoreContract:
    @pytest.fixture
    def store_settings(self, settings: Settings) -> Settings:
        raise NotImplementedError("a backend's test class provides store_settings")

    @pytest.fixture
    def store(self, store_settings: Settings) -> Iterator[Store]:
        with open_store(store_settings) as store:
            yield store

    # Posts ---------------------------------------------------------------------------------
    def test_upsert_post_reports_new_only_once(self, store: Store) -> None:
        post = make_post("1")
        assert store.upsert_post(post) is True
        assert store.upsert_post(post) is False
        assert store.has_post(post.key)
        assert not store.has_post("tiktok:nope")
        assert store.get_post("tiktok:nope") is None
        assert store.get_post(post.key) == post

    def test_recrawl_refreshes_observations_but_keeps_history_and_progress(
        self, store: Store
    ) -> None:
        first = make_post("1", first_seen=T0, last_seen=T0, stats=PostStats(views=10))
        store.upsert_post(first)
        store.set_post_state(first.key, PostState.MATCHED, media_sha256="cd" * 32)

        later = T0 + timedelta(days=2)
        recrawl = make_post(
            "1",
            first_seen=later,
            last_seen=later,
            caption="edited caption",
            stats=PostStats(views=5000),
            watch="other-watch",
        )
        assert store.upsert_post(recrawl) is False

        post = store.get_post(first.key)
        assert post is not None
        assert post.first_seen == T0
        assert post.last_seen == later
        assert post.caption == "edited caption"
        assert post.stats.views == 5000
        assert post.state == PostState.MATCHED
        assert post.media_sha256 == "cd" * 32
        assert post.watch == "crown"

    def test_upsert_post_carrying_progress_updates_it(self, store: Store) -> None:
        store.upsert_post(make_post("1"))
        store.upsert_post(make_post("1", state=PostState.FAILED, error="not a video"))
        post = store.get_post("tiktok:1")
        assert post is not None
        assert (post.state, post.error) == (PostState.FAILED, "not a video")

    def test_set_post_state_records_and_clears_errors(self, store: Store) -> None:
        store.upsert_post(make_post("1"))
        store.set_post_state("tiktok:1", PostState.DOWNLOADED, media_sha256="ef" * 32)
        store.set_post_state("tiktok:1", "failed", error="decode failed")
        failed = store.get_post("tiktok:1")
        assert failed is not None
        assert (failed.state, failed.error, failed.media_sha256) == (
            PostState.FAILED,
            "decode failed",
            "ef" * 32,
        )
        store.set_post_state("tiktok:1", PostState.MATCHED)
        matched = store.get_post("tiktok:1")
        assert matched is not None
        assert (matched.state, matched.error) == (PostState.MATCHED, None)
        with pytest.raises(InputError):
            store.set_post_state("tiktok:missing", PostState.MATCHED)
        with pytest.raises(InputError):
            store.set_post_state("tiktok:1", "exploded")

    def test_failure_records_step_time_settings_and_a_retry_counts(self, store: Store) -> None:
        store.upsert_post(make_post("1"))
        before = utcnow()
        store.set_post_state(
            "tiktok:1",
            PostState.FAILED,
            error="refusing to download",
            step="download",
            settings_digest="abc123",
        )
        failed = store.get_post("tiktok:1")
        assert failed is not None and failed.failed_at is not None
        assert failed.failed_at >= before
        assert (failed.failed_step, failed.failed_settings, failed.failed_transient) == (
            "download",
            "abc123",
            False,
        )
        # A re-crawl of a failed post keeps how it failed.
        store.upsert_post(make_post("1", caption="edited"))
        recrawled = store.get_post("tiktok:1")
        assert recrawled is not None and recrawled.caption == "edited"
        assert (recrawled.state, recrawled.failed_step, recrawled.failed_settings) == (
            PostState.FAILED,
            "download",
            "abc123",
        )
        # Put back: one retry counted, the failure cleared; a second put-back expecting a
        # failed post changes nothing.
        store.set_post_state("tiktok:1", PostState.DISCOVERED, expect=PostState.FAILED)
        with pytest.raises(PostStateConflict):
            store.set_post_state("tiktok:1", PostState.DISCOVERED, expect=PostState.FAILED)
        back = store.get_post("tiktok:1")
        assert back is not None and (back.state, back.retries, back.error) == (
            PostState.DISCOVERED,
            1,
            None,
        )
        assert (back.failed_at, back.failed_step, back.failed_settings) == (None, None, None)
        store.set_post_state(
            "tiktok:1", PostState.FAILED, error="gave up", step="download", transient=True
        )
        again = store.get_post("tiktok:1")
        assert again is not None and (again.failed_transient, again.retries) == (True, 1)

    def test_list_posts_filters_by_state_oldest_first(self, store: Store) -> None:
        for i in range(5):
            store.upsert_post(make_post(f"p{i}", first_seen=T0 + timedelta(minutes=5 - i)))
        store.set_post_state("tiktok:p0", PostState.MATCHED)
        discovered = store.list_posts(PostState.DISCOVERED)
        assert [p.post_id for p in discovered] == ["p4", "p3", "p2", "p1"]
        assert [p.post_id for p in store.list_posts("discovered", limit=2)] == ["p4", "p3"]
        assert len(store.list_posts()) == 5

    # Media ---------------------------------------------------------------------------------
    def test_media_roundtrip_and_upsert(self, store: Store) -> None:
        media = Media(sha256="01" * 32, path="media/01/x.mp4", bytes=1000, c2pa={"claims": [1]})
        store.upsert_media(media)
        store.upsert_media(media.model_copy(update={"duration": 12.5}))
        got = store.get_media(media.sha256)
        assert got is not None
        assert got.duration == 12.5
        assert got.c2pa == {"claims": [1]}
        assert store.get_media("ff" * 32) is None

    # Matches -------------------------------------------------------------------------------
    def test_match_roundtrip_keeps_nested_fields(self, store: Store) -> None:
        match = make_match()
        assert store.upsert_match(match) is True
        assert store.upsert_match(match) is False
        assert store.get_match(match.id) == match
        assert store.get_match("tiktok:1:nope") is None

    def test_rematch_updates_verdict_but_keeps_triage(self, store: Store) -> None:
        original = make_match(score=0.6, confidence=Confidence.MEDIUM, created_at=T0)
        original.assignee = "ana"
        store.upsert_match(original)
        store.set_status(original.id, TriageStatus.CONFIRMED, note="clear re-upload", actor="ana")

        later = T0 + timedelta(hours=3)
        rerun = make_match(score=0.95, confidence=Confidence.HIGH, created_at=later)
        rerun.updated_at = later
        rerun.signals = {"copy": 0.95, "face": 0.7}
        assert store.upsert_match(rerun) is False

        got = store.get_match(original.id)
        assert got is not None
        assert (got.score, got.confidence) == (0.95, Confidence.HIGH)
        assert got.signals == {"copy": 0.95, "face": 0.7}
        assert got.updated_at == later
        assert got.created_at == T0
        assert got.status == TriageStatus.CONFIRMED
        assert got.assignee == "ana"
        assert got.note == "clear re-upload"
        assert [h.status for h in got.history] == [TriageStatus.CONFIRMED]
        assert store.count_matches() == 1

    def test_upsert_matches_in_a_batch_merges_like_one_by_one(self, store: Store) -> None:
        first = make_match("1", "the-crown", score=0.6, confidence=Confidence.MEDIUM)
        store.upsert_match(first)
        store.set_status(first.id, TriageStatus.CONFIRMED, note="seen", actor="ana")
        batch = [
            make_match("1", "the-crown", score=0.9),
            make_match("1", "bridgerton"),
            make_match("2", "the-crown"),
        ]
        assert store.upsert_matches(batch) == 2
        assert store.upsert_matches(batch) == 0
        assert store.upsert_matches([]) == 0
        assert store.count_matches() == 3
        kept = store.get_match(first.id)
        assert kept is not None and kept.score == 0.9
        assert kept.status == TriageStatus.CONFIRMED and kept.note == "seen"

    def test_list_matches_ranks_tier_then_score_then_recency(self, store: Store) -> None:
        rows = [
            ("a", 0.99, Confidence.MEDIUM, 0),
            ("b", 0.80, Confidence.HIGH, 0),
            ("c", 0.90, Confidence.HIGH, 0),
            ("d", 0.80, Confidence.HIGH, 5),
            ("e", 0.20, Confidence.LOW, 0),
        ]
        for post_id, score, tier, minutes in rows:
            m = make_match(post_id, score=score, confidence=tier)
            m.updated_at = T0 + timedelta(minutes=minutes)
            store.upsert_match(m)
        assert [m.post_id for m in store.list_matches()] == ["c", "d", "b", "a", "e"]
        assert [m.post_id for m in store.list_matches(limit=2, offset=1)] == ["d", "b"]
        assert [m.post_id for m in store.list_matches(offset=3)] == ["a", "e"]

    def test_list_and_count_matches_filter(self, store: Store) -> None:
        store.upsert_match(make_match("1", "the-crown", confidence=Confidence.HIGH))
        store.upsert_match(make_match("2", "the-crown", score=0.5, confidence=Confidence.MEDIUM))
        store.upsert_match(make_match("3", "bridgerton", score=0.3, confidence=Confidence.LOW))
        store.upsert_match(make_match("4", "bridgerton", platform="youtube"))
        store.set_status("tiktok:2:the-crown", "dismissed")

        def ids(**filters: Any) -> set[str]:
            found = {m.id for m in store.list_matches(**filters)}
            assert store.count_matches(**filters) == len(found)
            return found

        assert ids(min_confidence="medium") == {
            "tiktok:1:the-crown",
            "tiktok:2:the-crown",
            "youtube:4:bridgerton",
        }
        assert ids(min_confidence=Confidence.HIGH, title_id="bridgerton") == {
            "youtube:4:bridgerton"
        }
        assert ids(status=TriageStatus.DISMISSED) == {"tiktok:2:the-crown"}
        assert ids(status="new", platform="tiktok") == {"tiktok:1:the-crown", "tiktok:3:bridgerton"}
        assert ids(title_id="nope") == set()
        with pytest.raises(InputError):
            store.list_matches(status="maybe")
        with pytest.raises(InputError):
            store.count_matches(min_confidence="certain")

    def test_list_and_count_matches_of_one_post(self, store: Store) -> None:
        store.upsert_match(make_match("1", "the-crown", score=0.6, confidence=Confidence.MEDIUM))
        store.upsert_match(make_match("1", "bridgerton", score=0.95))
        store.upsert_match(make_match("2", "the-crown"))
        store.upsert_match(make_match("1", "the-crown", platform="youtube"))

        mine = store.list_matches(post_key="tiktok:1")
        assert [m.id for m in mine] == ["tiktok:1:bridgerton", "tiktok:1:the-crown"]
        assert store.count_matches(post_key="tiktok:1") == 2
        assert [m.id for m in store.list_matches(post_key="tiktok:1", min_confidence="high")] == [
            "tiktok:1:bridgerton"
        ]
        assert store.list_matches(post_key="tiktok:1", limit=1, offset=1) == [mine[1]]
        assert store.list_matches(post_key="tiktok:404") == []
        assert store.count_matches(post_key="tiktok:404") == 0

    def test_set_status_appends_history(self, store: Store) -> None:
        match = make_match()
        store.upsert_match(match)
        store.set_status(match.id, TriageStatus.CONFIRMED, note="same shot", actor="ana")
        updated = store.set_status(match.id, "notice_sent", actor="bo")
        assert updated.status == TriageStatus.NOTICE_SENT
        got = store.get_match(match.id)
        assert got == updated
        assert [(h.status, h.note, h.actor) for h in got.history] == [
            (TriageStatus.CONFIRMED, "same shot", "ana"),
            (TriageStatus.NOTICE_SENT, "", "bo"),
        ]
        assert got.note == "same shot"
        with pytest.raises(InputError):
            store.set_status("tiktok:0:missing", TriageStatus.CONFIRMED)
        with pytest.raises(InputError):
            store.set_status(match.id, "approved")

    def test_lifecycle_times_and_time_to_removal(self, store: Store) -> None:
        match = make_match()
        store.upsert_match(match)
        t0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
        store.set_status(match.id, "confirmed", at=t0)
        store.set_status(match.id, "notice_drafted", at=t0 + timedelta(hours=1), notice_id="n-1")
        store.set_status(match.id, "notice_sent", at=t0 + timedelta(hours=2))
        removed = store.set_status(match.id, "removed", at=t0 + timedelta(hours=30))
        enf = removed.enforcement
        assert enf.confirmed_at == t0
        assert enf.notice_drafted_at == t0 + timedelta(hours=1)
        assert enf.notice_sent_at == t0 + timedelta(hours=2)
        assert enf.removed_at == t0 + timedelta(hours=30)
        assert enf.notice_id == "n-1"
        assert enf.removal_s == 28 * 3600
        # Reinstated and removed again: the time to removal stays the first one.
        store.set_status(match.id, "reinstated", at=t0 + timedelta(days=3))
        again = store.set_status(match.id, "removed", at=t0 + timedelta(days=4))
        assert again.enforcement.reinstated_at == t0 + timedelta(days=3)
        assert again.enforcement.removal_s == 28 * 3600
        # A re-match keeps the lifecycle: it belongs to people and the re-checks.
        store.upsert_match(make_match())
        assert store.get_match(match.id).enforcement == again.enforcement  # type: ignore[union-attr]

    def test_update_match_is_atomic_and_aborts_on_error(self, store: Store) -> None:
        match = make_match()
        store.upsert_match(match)

        def record_check(m: Match) -> None:
            m.enforcement.checks += 1
            m.enforcement.check = CheckOutcome.UP

        for _ in range(3):
            store.update_match(match.id, record_check)
        got = store.get_match(match.id)
        assert got is not None and got.enforcement.checks == 3
        assert got.enforcement.check == CheckOutcome.UP

        def refuse(m: Match) -> None:
            m.enforcement.checks = 99
            raise InputError("no")

        with pytest.raises(InputError):
            store.update_match(match.id, refuse)
        assert store.get_match(match.id).enforcement.checks == 3  # type: ignore[union-attr]
        with pytest.raises(InputError):
            store.update_match("tiktok:0:missing", record_check)

    def test_legacy_takedown_requested_reads_as_notice_sent(self, store: Store) -> None:
        match = make_match()
        store.upsert_match(match)
        store.set_status(match.id, "takedown_requested")
        assert store.get_match(match.id).status == TriageStatus.NOTICE_SENT  # type: ignore[union-attr]
        assert [m.id for m in store.list_matches(status="notice_sent")] == [match.id]
        assert store.count_matches(status=TriageStatus.NOTICE_SENT) == 1

    # Notices -------------------------------------------------------------------------------
    def test_notices_round_trip_and_filters(self, store: Store) -> None:
        t0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
        first = Notice(
            id="n-1",
            platform="tiktok",
            account="copycat",
            title_id="bridgerton",
            title="Bridgerton",
            match_ids=["tiktok:1:bridgerton", "tiktok:2:bridgerton"],
            urls=["https://www.tiktok.com/@copycat/video/1"],
            created_at=t0,
            text="Dear TikTok,\n\u202eevil",
            form={"Copyrighted work": "Bridgerton"},
        )
        second = first.model_copy(
            update={
                "id": "n-2",
                "account": "other",
                "match_ids": ["tiktok:3:bridgerton"],
                "created_at": t0 + timedelta(hours=1),
            }
        )
        store.upsert_notice(first)
        store.upsert_notice(second)
        assert store.get_notice("n-1") == first
        assert store.get_notice("n-404") is None
        assert [n.id for n in store.list_notices()] == ["n-2", "n-1"]
        assert [n.id for n in store.list_notices(match_id="tiktok:2:bridgerton")] == ["n-1"]
        assert [n.id for n in store.list_notices(account="other")] == ["n-2"]
        assert store.list_notices(platform="youtube") == []
        sent = first.model_copy(update={"status": NoticeStatus.SENT, "sent_at": t0})
        store.upsert_notice(sent)
        assert [n.id for n in store.list_notices(status="sent")] == ["n-1"]
        assert store.get_notice("n-1") == sent
        with pytest.raises(InputError):
            store.list_notices(status="mailed")

    # Alerts --------------------------------------------------------------------------------
    def test_claim_alert_only_once(self, store: Store) -> None:
        alert = Alert(match_id="tiktok:1:the-crown", channel="email", recipient="a@studio.test")
        assert store.claim_alert(alert) is True
        assert store.claim_alert(alert) is False
        assert store.claim_alert(alert.model_copy(update={"status": AlertStatus.SENT})) is False
        assert store.get_alert(alert.id) == alert
        assert [a.id for a in store.list_alerts()] == [alert.id]

    def test_sent_alert_stays_sent(self, store: Store) -> None:
        alert = Alert(match_id="m", channel="email", recipient="a@studio.test")
        store.claim_alert(alert)
        sent = alert.model_copy(update={"status": AlertStatus.SENT, "message_id": "<x@y>"})
        store.update_alert(sent)
        store.update_alert(alert.model_copy(update={"error": "stale attempt"}))
        assert store.get_alert(alert.id) == sent
        assert store.lease_alert(alert.id, lease_s=0) is None
        assert store.list_alerts(AlertStatus.PENDING) == []
        assert store.list_alerts("sent") == [sent]
        with pytest.raises(InputError):
            store.update_alert(Alert(match_id="other", channel="email", recipient="a@b.test"))

    def test_lease_guards_attempts_in_flight(self, store: Store) -> None:
        alert = Alert(match_id="m", channel="email", recipient="a@studio.test")
        store.claim_alert(alert)
        assert store.lease_alert(alert.id, lease_s=3600) is None, "claimer is still sending"
        store.update_alert(alert.model_copy(update={"error": "server down"}))
        retry = store.lease_alert(alert.id, lease_s=3600)
        assert retry is not None
        assert retry.error == "server down"
        assert store.lease_alert(alert.id, lease_s=3600) is None, "the retry is in flight"
        assert store.lease_alert(alert.id, lease_s=0) is not None, "a dead attempt expires"
        assert store.lease_alert("no:such:alert", lease_s=0) is None

    def test_data_survives_reopening(self, store: Store, store_settings: Settings) -> None:
        store.upsert_match(make_match())
        store.close()
        with open_store(store_settings) as again:
            assert again.count_matches() == 1

    def test_processes_racing_claim_each_alert_exactly_once(
        self, store: Store, store_settings: Settings
    ) -> None:
        alerts = [
            Alert(match_id=f"tiktok:{i}:the-crown", channel="email", recipient="a@studio.test")
            for i in range(RACE_ITEMS)
        ]
        won = _race(store_settings, _claim_all, alerts)
        assert Counter(won) == Counter(a.id for a in alerts)
        assert len(store.list_alerts()) == RACE_ITEMS

    def test_processes_racing_upserts_see_each_post_new_once(
        self, store: Store, store_settings: Settings
    ) -> None:
        post_ids = [f"r{i}" for i in range(RACE_ITEMS)]
        won = _race(store_settings, _upsert_all, post_ids)
        assert sorted(won) == sorted(post_ids)
        assert len(store.list_posts()) == RACE_ITEMS

    def test_processes_racing_retries_put_each_failed_post_back_once(
        self, store: Store, store_settings: Settings
    ) -> None:
        keys = []
        for i in range(RACE_ITEMS):
            post = make_post(f"f{i}")
            store.upsert_post(post)
            store.set_post_state(post.key, PostState.FAILED, error="x", step="download")
            keys.append(post.key)
        won = _race(store_settings, _put_back_all, keys)
        assert Counter(won) == Counter(keys)
        assert {p.retries for p in store.list_posts(PostState.DISCOVERED)} == {1}
