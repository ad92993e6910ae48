"""The whole chain in-process (Celery eager): crawl → download → fingerprint → match → land →
alert, against the replica, a real SMTP sink and the SQLite store."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from crawler.sources import ReplicaSource
from reelwatch.models import Confidence, PostState, post_key
from reelwatch.settings import Settings
from tests.workers.conftest import (
    COPY_ID,
    CORRUPT_ID,
    HOSTILE_CAPTION,
    HOSTILE_ID,
    TAG,
    UNRELATED_ID,
)
from triage.smtp_sink import SmtpSink
from triage.stores import open_store
from workers import tasks
from workers.app import configure


@pytest.fixture
def crawled(world_settings: Settings) -> dict:
    configure(world_settings)
    return tasks.crawl.delay("replica", TAG, None, "test").get()


def test_chain_lands_matches_and_alerts(
    crawled: dict, world_settings: Settings, sink: SmtpSink
) -> None:
    assert crawled["found"] == 4
    assert len(crawled["queued"]) == 4
    with open_store(world_settings) as store:
        copy_key = post_key("replica", COPY_ID)
        [match] = store.list_matches(post_key=copy_key)
        assert match.title == "Starfall Station"
        assert match.confidence == Confidence.HIGH
        seg = max(match.segments, key=lambda s: s.query_end - s.query_start)
        # The copy is seconds 3..10 of the reference, mirrored and cropped.
        assert abs(seg.query_start - 0.0) <= 2 and abs(seg.query_end - 7.0) <= 2
        assert abs(seg.ref_start - 3.0) <= 2 and abs(seg.ref_end - 10.0) <= 2
        assert store.get_post(copy_key).state == PostState.MATCHED  # type: ignore[union-attr]

        unrelated = store.list_matches(post_key=post_key("replica", UNRELATED_ID))
        assert all(m.confidence == Confidence.LOW for m in unrelated)

        corrupt = store.get_post(post_key("replica", CORRUPT_ID))
        assert corrupt is not None and corrupt.state == PostState.FAILED
        assert corrupt.error is not None and "truncated or corrupt" in corrupt.error

        highs = store.list_matches(min_confidence=Confidence.HIGH)
    assert {m.post_id for m in highs} == {COPY_ID, HOSTILE_ID}
    assert len(sink.messages) == len(highs)


def test_hostile_caption_stays_text(
    crawled: dict, world_settings: Settings, sink: SmtpSink
) -> None:
    with open_store(world_settings) as store:
        post = store.get_post(post_key("replica", HOSTILE_ID))
    assert post is not None and post.caption.startswith(HOSTILE_CAPTION[:40])
    [mail] = [
        m for m in sink.messages if "evil" in str(m["Subject"]) or HOSTILE_ID in m.as_string()
    ]
    assert "X-Injected" not in mail
    assert "Bcc" not in mail
    assert "\n" not in str(mail["Subject"]) and "\r" not in str(mail["Subject"])
    html = mail.get_body(("html",))
    assert html is not None
    assert "<script>alert(1)</script>" not in html.get_content()


def test_second_run_lands_nothing_twice(
    crawled: dict, world_settings: Settings, sink: SmtpSink
) -> None:
    with open_store(world_settings) as store:
        before = {m.id: m.score for m in store.list_matches()}
    mails_before = len(sink.messages)

    again = tasks.crawl.delay("replica", TAG, None, "test").get()
    assert again["found"] == 4 and again["queued"] == []
    # Even forcing a post through the chain again changes nothing.
    tasks.start_post(post_key("replica", COPY_ID))

    with open_store(world_settings) as store:
        after = {m.id: m.score for m in store.list_matches()}
    assert after == before
    assert len(sink.messages) == mails_before


def test_matches_list_json_for_scripts(crawled: dict, world_settings: Settings) -> None:
    env = {**os.environ, "REELWATCH_HOME": str(world_settings.home)}
    env.pop("REELWATCH_BROKER_URL", None)
    out = subprocess.run(
        [sys.executable, "-m", "reelwatch", "matches", "list", "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    rows = json.loads(out)
    copy = next(r for r in rows if r["post_id"] == COPY_ID)
    assert copy["title"] == "Starfall Station"
    assert copy["platform"] == "replica"
    assert copy["post_url"].endswith(f"/@mirror.king/video/{COPY_ID}")
    assert copy["confidence"] == "high" and 0 < copy["score"] <= 1
    assert copy["segments"][0]["signal"] == "copy"
    assert {"query_start", "query_end", "ref_asset", "ref_start", "ref_end"} <= set(
        copy["segments"][0]
    )
    scores = [r["score"] for r in rows if r["confidence"] == "high"]
    assert scores == sorted(scores, reverse=True)


def test_unknown_hashtag_is_one_clear_line(world_settings: Settings) -> None:
    env = {
        **os.environ,
        "REELWATCH_HOME": str(world_settings.home),
        "REELWATCH_CRAWL__SOURCES__REPLICA__BASE_URL": str(
            ReplicaSource.configured_base_url(world_settings)
        ),
        "REELWATCH_DOWNLOAD__ALLOW_PRIVATE_HOSTS": "true",
    }
    env.pop("REELWATCH_BROKER_URL", None)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "reelwatch",
            "crawl",
            "--platform",
            "replica",
            "--hashtag",
            "#nosuchtagatall",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "nosuchtagatall" in lines[0] and "not found" in lines[0]


def test_transient_download_failure_gives_up_and_is_recorded(settings: Settings) -> None:
    from reelwatch.models import Post
    from triage.smtp_sink import free_port

    configure(settings)
    dead = f"http://127.0.0.1:{free_port()}/@nobody/video/7300000000000000099"
    post = Post(platform="replica", post_id="7300000000000000099", url=dead)
    with open_store(settings) as store:
        store.upsert_post(post)
    tasks.start_post(post.key)  # retried in-process, then given up on; does not raise
    with open_store(settings) as store:
        stored = store.get_post(post.key)
    assert stored is not None and stored.state == PostState.FAILED
    assert stored.error is not None
    assert stored.error.startswith(f"gave up after {settings.workers.max_retries} retries")
    # A recorded failure is not retried by a later chain.
    assert tasks.post_chain(post.key).apply_async().get() is None


def test_crawl_command_processes_and_counts_what_failed(world_settings: Settings) -> None:
    """``reelwatch crawl`` as a user runs it: every new post processed in-process, the
    matches reported, and the run's summary line counting the corrupt upload as failed."""
    from crawler.state import CrawlState

    env = {
        **os.environ,
        "REELWATCH_HOME": str(world_settings.home),
        "REELWATCH_CRAWL__SOURCES__REPLICA__BASE_URL": str(
            ReplicaSource.configured_base_url(world_settings)
        ),
        "REELWATCH_DOWNLOAD__ALLOW_PRIVATE_HOSTS": "true",
    }
    env.pop("REELWATCH_BROKER_URL", None)
    result = subprocess.run(
        [sys.executable, "-m", "reelwatch", "crawl", "--platform", "replica", "--hashtag", TAG],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert f"#{TAG} on replica: 4 found, 4 new, 0 known, 1 failed (stopped: exhausted)" in (
        result.stdout
    )
    assert "Starfall Station" in result.stdout and "high" in result.stdout
    with CrawlState.of_home(world_settings.home) as state:
        [run] = state.runs()
    assert (run.found, run.new, run.failed, run.stop) == (4, 4, 1, "exhausted")


def test_posts_download_ahead_of_their_chains(world_settings: Settings) -> None:
    """In-process, the next posts download in a background thread while one is matched;
    a download that fails for good is recorded on its post as the chain would record it."""
    from reelwatch.models import Post
    from workers.pipeline import Pipeline, downloads_ahead

    configure(world_settings)
    pipeline = Pipeline(world_settings)
    _, todo = pipeline.discover("replica", TAG)
    base = str(ReplicaSource.configured_base_url(world_settings)).rstrip("/")
    gone = Post(platform="replica", post_id="7300000000000000098", url=f"{base}/@x/video/1")
    pipeline.store.upsert_post(gone)
    keys = [gone.key, *todo]
    with downloads_ahead(world_settings, keys, ahead=2) as ready:
        ready(gone.key)
        ready(todo[0])
    states = {k: pipeline.store.get_post(k) for k in keys}
    failed = states[gone.key]
    assert failed is not None and failed.state == PostState.FAILED and failed.error
    first = states[todo[0]]
    assert first is not None and first.state == PostState.DOWNLOADED and first.media_sha256
    assert pipeline.media_path(first.media_sha256).is_file()
    # Nothing but downloads ran: no post went further, and posts never asked for nor
    # queued (at most `ahead` past the last one asked for) were left alone.
    assert not any(p is not None and p.state == PostState.MATCHED for p in states.values())
    assert states[todo[-1]] is not None and states[todo[-1]].state == PostState.DISCOVERED  # type: ignore[union-attr]
    pipeline.close()

    world_settings.broker_url = "redis://127.0.0.1:1/0"  # chains run on workers: nothing here
    with downloads_ahead(world_settings, todo) as ready:
        ready(todo[-1])
    with open_store(world_settings) as store:
        last = store.get_post(todo[-1])
    assert last is not None and last.state == PostState.DISCOVERED


def test_a_crawl_runs_again_the_known_posts_whose_chain_never_ended(
    world_settings: Settings,
) -> None:
    """A post left downloaded or fingerprinted (its chain's next step lost with a killed
    worker) is run again by the next crawl that finds it, as a post never started is; a
    matched one is not."""
    from workers.pipeline import Pipeline

    pipeline = Pipeline(world_settings)
    try:
        _, todo = pipeline.discover("replica", TAG)
        assert len(todo) == 4
        discovered, downloaded, fingerprinted, matched = todo
        pipeline.store.set_post_state(downloaded, PostState.DOWNLOADED, media_sha256="ab" * 32)
        pipeline.store.set_post_state(fingerprinted, PostState.FINGERPRINTED)
        pipeline.store.set_post_state(matched, PostState.MATCHED)
        _, again = pipeline.discover("replica", TAG)
    finally:
        pipeline.close()
    assert sorted(again) == sorted([discovered, downloaded, fingerprinted])
