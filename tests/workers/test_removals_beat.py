"""Done when: a post deleted from the replica after its notice was marked sent is marked
removed by the scheduled re-check, on a real Redis with a ``reelwatch worker`` and a
``reelwatch beat`` process (and, restored, is seen reinstated)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from crawler.replica import ReplicaServer
from crawler.sources import ReplicaSource
from reelwatch.models import CheckOutcome, Match, Post, TriageStatus, utcnow
from reelwatch.settings import Settings
from tests.triage.factories import make_match
from tests.workers.conftest import process_env, reelwatch_process
from tests.workers.test_beat import queued
from tests.workers.test_removals import POSTS, make_site
from triage.accounting import accounting_csv, human_duration, title_accounting
from triage.stores import open_store

POST_ID, ACCOUNT = next(iter(POSTS.items()))
CHECK_EVERY_S = 10
"""``removal.check_every_s`` of the worker (its smallest allowed value)."""
SCHEDULE_EVERY_S = 2
"""``removal.schedule_every_s`` of beat."""


@pytest.fixture(scope="module")
def beat_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_site(tmp_path_factory.mktemp("removals-beat"))


@pytest.fixture
def replica(beat_site: Path) -> Iterator[ReplicaServer]:
    with ReplicaServer(beat_site) as server:
        yield server


def sent_notice_match(settings: Settings, replica: ReplicaServer) -> Match:
    """A confirmed match of a replica post, a notice drafted for it and marked sent, as a
    reviewer does it (helper functions of ``reelwatch notice draft`` and ``notice sent``)."""
    from matcher.catalog import Catalog
    from triage.notices import draft_notices, mark_sent

    title = Catalog(settings).add_title("Starfall Station", owner="Northlight Pictures")
    url = f"{replica.base_url}/@{ACCOUNT}/video/{POST_ID}"
    with open_store(settings) as store:
        store.upsert_post(Post(platform="replica", post_id=POST_ID, url=url))
        match = make_match(
            POST_ID, title.id, platform="replica", post_url=url, account=ACCOUNT, views=1000
        )
        store.upsert_match(match)
        store.set_status(match.id, "confirmed", actor="reviewer")
        [notice] = draft_notices(settings, store, [match.id], actor="reviewer")
        mark_sent(settings, store, notice.id, actor="reviewer", reference="TT-2026-0001")
        sent = store.get_match(match.id)
    assert sent is not None and sent.status == TriageStatus.NOTICE_SENT
    return sent


def wait_for(
    settings: Settings, match_id: str, what: str, ok: Callable[[Match], bool], timeout: float
) -> Match:
    """The match once ``ok`` holds for it (read from the store the worker writes)."""
    deadline = time.monotonic() + timeout
    while True:
        with open_store(settings) as store:
            match = store.get_match(match_id)
        assert match is not None
        if ok(match):
            return match
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout:g} s: {match.enforcement!r}")
        time.sleep(0.5)


@pytest.mark.redis
@pytest.mark.slow
def test_a_post_taken_down_after_its_notice_was_sent_is_marked_removed_by_beat(
    settings: Settings, replica: ReplicaServer, redis_url: str, tmp_path: Path
) -> None:
    ReplicaSource.set_base_url(settings, replica.base_url)
    match = sent_notice_match(settings, replica)
    sent_at = match.enforcement.notice_sent_at
    assert sent_at is not None
    watchlist = tmp_path / "watchlist.yaml"
    watchlist.write_text("watches: []\n")
    env = process_env(
        settings,
        REELWATCH_BROKER_URL=redis_url,
        REELWATCH_WATCHLIST=str(watchlist),
        REELWATCH_BEAT__SOURCES_CHECK_SCHEDULE="",
        REELWATCH_REMOVAL__CHECK_EVERY_S=str(CHECK_EVERY_S),
        REELWATCH_REMOVAL__SCHEDULE_EVERY_S=str(SCHEDULE_EVERY_S),
    )
    logs = {"worker": tmp_path / "worker.log", "beat": tmp_path / "beat.log"}
    worker_args = ["worker", "--concurrency", "1", "--loglevel", "INFO"]
    try:
        with (
            reelwatch_process(worker_args, env, logs["worker"]),
            reelwatch_process(["beat"], env, logs["beat"]),
        ):
            # Beat's first re-checks find the post still up: the notice stays sent.
            up = wait_for(
                settings, match.id, "check", lambda m: m.enforcement.check is not None, 180
            )
            assert up.enforcement.check == CheckOutcome.UP, up.enforcement
            assert up.status == TriageStatus.NOTICE_SENT

            replica.take_down(POST_ID, "copyright")
            taken_down_at = utcnow()
            removed = wait_for(
                settings,
                match.id,
                "removal",
                lambda m: m.status == TriageStatus.REMOVED,
                CHECK_EVERY_S + 120,
            )

            replica.restore(POST_ID)
            back = wait_for(
                settings,
                match.id,
                "reinstatement",
                lambda m: m.status == TriageStatus.REINSTATED,
                CHECK_EVERY_S + 120,
            )
    except BaseException:
        for name, log in logs.items():
            print(f"--- {name} log ---\n{log.read_text()[-4000:]}")
        raise

    enf = removed.enforcement
    assert enf.check == CheckOutcome.REMOVED
    assert enf.check_detail == "HTTP 200 statusCode 10204 (item doesn't exist)"
    assert enf.removed_at is not None and enf.removed_at >= taken_down_at
    # The time to removal runs from the notice being marked sent to the re-check that found
    # the post gone.
    assert enf.removal_s == pytest.approx((enf.removed_at - sent_at).total_seconds())
    assert enf.removal_s > 0
    assert removed.history[-1].actor == "re-check"
    assert [h.status for h in back.history][-3:] == [
        TriageStatus.NOTICE_SENT,
        TriageStatus.REMOVED,
        TriageStatus.REINSTATED,
    ]
    assert back.enforcement.removal_s == enf.removal_s
    assert back.enforcement.check == CheckOutcome.UP

    # The time to removal shows in the title's accounting (`reelwatch report`, the board's
    # report page and its CSV all read it).
    with open_store(settings) as store:
        acc = title_accounting(settings, store, match.title_id)
    assert acc.removal.count == 1
    assert acc.removal.median_s == pytest.approx(enf.removal_s)
    (instance,) = [i for i in acc.instances if i.match_id == match.id]
    assert instance.removal_s == pytest.approx(enf.removal_s)
    csv_text = "".join(accounting_csv(acc))
    assert human_duration(enf.removal_s) in csv_text

    beat_log, worker_log = logs["beat"].read_text(), logs["worker"].read_text()
    assert "beat: sending removals:recheck (reelwatch.recheck_removals)" in beat_log
    assert "reelwatch.recheck_removals" in worker_log


@pytest.mark.redis
def test_with_a_broker_the_cli_queues_the_recheck_for_the_workers(
    settings: Settings, redis_url: str
) -> None:
    env = process_env(settings, REELWATCH_BROKER_URL=redis_url)
    done = subprocess.run(
        [sys.executable, "-m", "reelwatch", "removals", "check", "--all", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    said = json.loads(done.stdout)
    assert said["queue"] == "crawl"
    [message] = queued(redis_url, "crawl")
    assert message["headers"]["task"] == "reelwatch.recheck_removals"
    assert message["headers"]["id"] == said["queued"]
    assert message["kwargs"] == {"due_only": False, "limit": None}
