"""Removal tracking's state machine on a real store and a real replica: posts taken down after
their notice was sent are marked removed, posts still up stay, restored posts are reinstated,
and faults (429, 503, a captcha) change nothing but the record of the check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crawler.recheck import PostCheck
from crawler.replica import ReplicaServer, ReplicaVideo, build_site
from crawler.replica.generate import make_clip
from crawler.sources import ReplicaSource
from reelwatch.models import CheckOutcome, Match, Post, TriageStatus
from reelwatch.settings import Settings
from tests.triage.factories import make_match
from triage.stores import open_store
from triage.stores.base import Store
from workers.recheck import check_post
from workers.removals import due_matches, recheck

TAG = "removaltest"
POSTS = {"7400000000000000001": "pirate.one", "7400000000000000002": "pirate.two"}
P1, P2 = POSTS
SENT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
"""When the notices in these tests were marked sent."""
LATER = SENT + timedelta(hours=2)


def make_site(root: Path) -> Path:
    """A replica site with one tiny real video per post of :data:`POSTS`."""
    videos = [
        ReplicaVideo(
            id=post_id,
            user=user,
            caption=f"full episode {n}",
            hashtags=[TAG],
            path=make_clip(root / f"clip{n}.mp4", 40 * n),
            create_time=1_700_000_000 + n,
            duration=1,
            width=32,
            height=32,
            plays=1000 * n,
        )
        for n, (post_id, user) in enumerate(POSTS.items(), start=1)
    ]
    return build_site(root / "site", videos)


@pytest.fixture(scope="module")
def removal_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_site(tmp_path_factory.mktemp("removals"))


@pytest.fixture
def replica(removal_site: Path) -> Iterator[ReplicaServer]:
    with ReplicaServer(removal_site) as server:
        yield server


@pytest.fixture
def rs(settings: Settings, replica: ReplicaServer) -> Settings:
    """Settings that see the replica (and allow its loopback address)."""
    ReplicaSource.set_base_url(settings, replica.base_url)
    settings.download.retries = 0
    return settings


@pytest.fixture
def store(rs: Settings) -> Iterator[Store]:
    with open_store(rs) as s:
        yield s


def sent_match(
    store: Store,
    replica: ReplicaServer,
    post_id: str = P1,
    title_id: str = "starfall",
    at: datetime = SENT,
) -> Match:
    """A match of a replica post whose notice was marked sent at ``at``."""
    user = POSTS[post_id]
    url = f"{replica.base_url}/@{user}/video/{post_id}"
    store.upsert_post(Post(platform="replica", post_id=post_id, url=url))
    match = make_match(post_id, title_id, platform="replica", post_url=url, account=user)
    store.upsert_match(match)
    store.set_status(match.id, "confirmed", actor="reviewer", at=at - timedelta(hours=1))
    return store.set_status(match.id, "notice_sent", actor="reviewer", at=at)


def get(store: Store, match: Match) -> Match:
    found = store.get_match(match.id)
    assert found is not None
    return found


def test_a_post_taken_down_after_its_notice_is_marked_removed_with_its_time_to_removal(
    rs: Settings, store: Store, replica: ReplicaServer
) -> None:
    match = sent_match(store, replica)
    replica.take_down(P1, "copyright")
    summary = recheck(rs, store, now=LATER)
    assert (summary.posts, summary.gone, summary.removed) == (1, 1, 1)
    got = get(store, match)
    assert got.status == TriageStatus.REMOVED
    enf = got.enforcement
    assert enf.removal_s == 7200.0
    assert enf.removed_at == LATER and enf.checked_at == LATER
    assert enf.check == CheckOutcome.REMOVED
    assert enf.check_detail == "HTTP 200 statusCode 10204 (item doesn't exist)"
    assert enf.checks == 1
    last = got.history[-1]
    assert (last.status, last.actor) == (TriageStatus.REMOVED, "re-check")
    assert "statusCode 10204" in last.note
    [result] = summary.results
    assert (result.before, result.after) == (TriageStatus.NOTICE_SENT, TriageStatus.REMOVED)


def test_a_post_still_up_keeps_its_notice_sent_and_is_checked_again_when_due(
    rs: Settings, store: Store, replica: ReplicaServer
) -> None:
    match = sent_match(store, replica)
    assert recheck(rs, store, now=LATER).up == 1
    got = get(store, match)
    assert got.status == TriageStatus.NOTICE_SENT
    assert got.enforcement.check == CheckOutcome.UP
    assert got.enforcement.check_detail == "HTTP 200 statusCode 0"
    assert got.enforcement.checked_at == LATER

    # Not due again until removal.check_every_s has passed.
    soon = LATER + timedelta(seconds=rs.removal.check_every_s - 1)
    assert due_matches(rs, store, soon) == []
    assert recheck(rs, store, now=soon).posts == 0
    due = LATER + timedelta(seconds=rs.removal.check_every_s)
    assert [m.id for m in due_matches(rs, store, due)] == [match.id]
    recheck(rs, store, now=due)
    again = get(store, match)
    assert again.enforcement.checks == 2 and again.enforcement.checked_at == due
    assert again.status == TriageStatus.NOTICE_SENT
    assert len(again.history) == len(got.history)  # a check that moves nothing adds no entry


def test_a_removed_post_that_comes_back_is_reinstated_and_removed_again(
    rs: Settings, store: Store, replica: ReplicaServer
) -> None:
    match = sent_match(store, replica)
    step = timedelta(seconds=rs.removal.check_every_s)
    replica.take_down(P1, "copyright")
    recheck(rs, store, now=LATER)
    replica.restore(P1)
    recheck(rs, store, now=LATER + step)
    back = get(store, match)
    assert back.status == TriageStatus.REINSTATED
    assert back.enforcement.reinstated_at == LATER + step
    assert back.history[-1].actor == "re-check"

    replica.take_down(P1, "private")
    recheck(rs, store, now=LATER + 2 * step)
    again = get(store, match)
    assert again.status == TriageStatus.REMOVED
    assert again.enforcement.check_detail == "HTTP 200 statusCode 10216 (item is private)"
    assert again.enforcement.removal_s == 7200.0  # the first removal's time stays
    assert [h.status for h in again.history][-3:] == [
        TriageStatus.REMOVED,
        TriageStatus.REINSTATED,
        TriageStatus.REMOVED,
    ]


@pytest.mark.parametrize("fault", ["429", "503", "captcha"])
def test_an_unknown_answer_leaves_the_status_and_records_the_check(
    rs: Settings, store: Store, replica: ReplicaServer, fault: str
) -> None:
    sent = sent_match(store, replica, P1)
    removed = sent_match(store, replica, P2)
    replica.take_down(P2)
    recheck(rs, store, now=LATER)
    assert get(store, removed).status == TriageStatus.REMOVED
    replica.restore(P2)
    replica.take_down(P1)  # a post that is down, behind the fault, must not read removed
    if fault == "captcha":
        replica.captcha = True
    else:
        replica.faults.outage(600, int(fault))
    later = LATER + timedelta(seconds=rs.removal.check_every_s)
    summary = recheck(rs, store, now=later)
    assert (summary.posts, summary.unknown, summary.removed, summary.reinstated) == (2, 2, 0, 0)
    for match, status in ((sent, TriageStatus.NOTICE_SENT), (removed, TriageStatus.REMOVED)):
        got = get(store, match)
        assert got.status == status
        assert got.enforcement.check == CheckOutcome.UNKNOWN
        assert got.enforcement.checked_at == later
        expected = "captcha" if fault == "captcha" else f"HTTP {fault}"
        assert expected in got.enforcement.check_detail


def test_confirm_checks_wants_removals_in_a_row(
    rs: Settings, store: Store, replica: ReplicaServer
) -> None:
    rs.removal.confirm_checks = 2
    match = sent_match(store, replica)
    step = timedelta(seconds=rs.removal.check_every_s)
    replica.take_down(P1)
    recheck(rs, store, now=LATER)
    assert get(store, match).status == TriageStatus.NOTICE_SENT
    assert get(store, match).enforcement.checks == 1
    replica.faults.outage(600, 429)  # an unknown answer breaks the run
    recheck(rs, store, now=LATER + step)
    replica.faults.outage(0)
    recheck(rs, store, now=LATER + 2 * step)
    assert get(store, match).status == TriageStatus.NOTICE_SENT
    recheck(rs, store, now=LATER + 3 * step)
    got = get(store, match)
    assert got.status == TriageStatus.REMOVED and got.enforcement.checks == 2
    assert got.enforcement.removal_s == (LATER + 3 * step - SENT).total_seconds()


def test_each_post_is_checked_once_for_all_its_matches(
    rs: Settings, store: Store, replica: ReplicaServer
) -> None:
    first = sent_match(store, replica, P1, "starfall")
    second = sent_match(store, replica, P1, "moonrise")
    calls: list[str] = []

    def counting(settings: Settings, post: Post) -> PostCheck:
        calls.append(post.key)
        return check_post(settings, post)

    replica.take_down(P1)
    summary = recheck(rs, store, now=LATER, checker=counting)
    assert calls == ["replica:" + P1]
    assert summary.removed == 2
    assert {get(store, m).status for m in (first, second)} == {TriageStatus.REMOVED}


def test_one_bad_post_never_stops_the_run(
    rs: Settings, store: Store, replica: ReplicaServer
) -> None:
    broken = sent_match(store, replica, P1)
    good = sent_match(store, replica, P2)
    odd = make_match("7499", "starfall", platform="ytdlp", post_url="ftp://example.test/7499")
    store.upsert_match(odd)
    store.set_status(odd.id, "notice_sent", at=SENT)

    def flaky(settings: Settings, post: Post) -> PostCheck:
        if post.post_id == P1:
            raise RuntimeError("a bug in a checker")
        return check_post(settings, post)

    replica.take_down(P2)
    summary = recheck(rs, store, now=LATER, checker=flaky)
    assert (summary.posts, summary.removed, summary.unknown) == (3, 1, 2)
    assert get(store, good).status == TriageStatus.REMOVED
    assert get(store, broken).enforcement.check_detail == "check failed: RuntimeError"
    odd_now = get(store, odd)
    assert odd_now.status == TriageStatus.NOTICE_SENT
    assert odd_now.enforcement.check_detail.startswith("not checked: not an http(s) URL")


def test_a_reviewer_decision_between_the_check_and_its_update_wins(
    rs: Settings, store: Store, replica: ReplicaServer
) -> None:
    match = sent_match(store, replica)

    def reviewer_acts(settings: Settings, post: Post) -> PostCheck:
        store.set_status(match.id, "dismissed", actor="reviewer")
        return check_post(settings, post)

    replica.take_down(P1)
    summary = recheck(rs, store, now=LATER, checker=reviewer_acts)
    got = get(store, match)
    assert got.status == TriageStatus.DISMISSED
    assert got.enforcement.check == CheckOutcome.REMOVED  # the check is still on record
    assert summary.removed == 0


def test_which_matches_are_due(rs: Settings, store: Store, replica: ReplicaServer) -> None:
    now = SENT + timedelta(days=200)
    fresh = sent_match(store, replica, P1, "fresh", at=now - timedelta(days=1))
    sent_match(store, replica, P1, "stale", at=now - timedelta(days=91))  # past give_up_days
    removed_recently = sent_match(store, replica, P2, "recent", at=now - timedelta(days=10))
    store.set_status(removed_recently.id, "removed", at=now - timedelta(days=29))
    removed_long_ago = sent_match(store, replica, P2, "old", at=now - timedelta(days=60))
    store.set_status(removed_long_ago.id, "removed", at=now - timedelta(days=31))
    reinstated = sent_match(store, replica, P2, "back", at=now - timedelta(days=60))
    store.set_status(reinstated.id, "reinstated", at=now - timedelta(days=5))
    for status in ("new", "confirmed", "notice_drafted", "rejected", "dismissed"):
        m = make_match(P1, f"t-{status}", platform="replica")
        store.upsert_match(m)
        if status != "new":
            store.set_status(m.id, status, at=now - timedelta(days=1))
    due = {m.id for m in due_matches(rs, store, now)}
    assert due == {fresh.id, removed_recently.id, reinstated.id}

    # max_per_run bounds the posts of one run, least recently checked first.
    rs.removal.max_per_run = 1
    first = recheck(rs, store, now=now)
    assert first.posts == 1
    second = recheck(rs, store, now=now)
    assert second.posts == 1
    assert {r.post_key for r in first.results} != {r.post_key for r in second.results}


def test_the_task_runs_the_recheck_in_process_without_a_broker(
    rs: Settings, store: Store, replica: ReplicaServer
) -> None:
    from workers import tasks
    from workers.app import configure

    match = sent_match(store, replica, at=datetime.now(UTC) - timedelta(minutes=5))
    replica.take_down(P1)
    configure(rs)
    try:
        result = tasks.recheck_removals.delay().get(timeout=60)
    finally:
        tasks.reset_pipeline()
    assert result["removed"] == 1 and result["results"][0]["match"] == match.id
    assert get(store, match).status == TriageStatus.REMOVED


def cli(rs: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "REELWATCH_HOME": str(rs.home),
        "REELWATCH_DOWNLOAD__ALLOW_PRIVATE_HOSTS": "true",
        "REELWATCH_CRAWL__SOURCES__REPLICA__BASE_URL": str(ReplicaSource.configured_base_url(rs)),
    }
    env.pop("REELWATCH_BROKER_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "reelwatch", "removals", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_the_cli_checks_once_and_lists_what_it_found(
    rs: Settings, store: Store, replica: ReplicaServer
) -> None:
    now = datetime.now(UTC)
    gone = sent_match(store, replica, P1, at=now - timedelta(hours=3))
    up = sent_match(store, replica, P2, at=now - timedelta(hours=1))
    replica.take_down(P1)

    done = cli(rs, "check", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["posts"], summary["removed"], summary["up"]) == (2, 1, 1)
    assert get(store, gone).status == TriageStatus.REMOVED
    assert get(store, up).status == TriageStatus.NOTICE_SENT

    again = cli(rs, "check")  # nothing is due any more
    assert again.returncode == 0, again.stderr
    assert "no post was due for a re-check" in again.stdout
    forced = cli(rs, "check", "--all")
    assert forced.returncode == 0, forced.stderr
    assert "checked 2 post(s): 1 up, 1 removed, 0 unknown" in forced.stdout

    listed = cli(rs, "list")
    assert listed.returncode == 0, listed.stderr
    assert "removed" in listed.stdout and "statusCode 10204" in listed.stdout
    assert "(2 in a row)" in listed.stdout
    rows = {r["match"]: r for r in json.loads(cli(rs, "list", "--json").stdout)}
    assert rows[gone.id]["status"] == "removed" and rows[gone.id]["removal_s"] > 3 * 3600 - 60
    assert rows[up.id]["check"] == "up" and rows[up.id]["due"] is False

    bad = cli(rs, "list", "--status", "confirmed")
    assert bad.returncode == 1
    assert bad.stderr.strip().startswith("reelwatch: error: removal tracking follows")
    assert "Traceback" not in bad.stderr
