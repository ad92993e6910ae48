"""Failed posts are not lost: the README's distributed example without
``download.allow_private_hosts`` fails every post with its reason; once the setting is fixed,
``reelwatch posts retry`` (or a plain crawl) runs them again and the matches land, once.

Real parts: the replica served over HTTP, yt-dlp downloads, the matcher, the SQLite store and
``reelwatch`` run as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys

from reelwatch.models import Confidence, PostState, post_key
from reelwatch.settings import Settings
from tests.workers.conftest import COPY_ID, CORRUPT_ID, HOSTILE_ID, TAG, process_env
from triage.stores import open_store

REFUSED = "not a public address"


def reelwatch(settings: Settings, *args: str, private: bool) -> subprocess.CompletedProcess[str]:
    env = process_env(
        settings, REELWATCH_DOWNLOAD__ALLOW_PRIVATE_HOSTS="true" if private else "false"
    )
    done = subprocess.run(
        [sys.executable, "-m", "reelwatch", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return done


def crawl(settings: Settings, *, private: bool) -> subprocess.CompletedProcess[str]:
    return reelwatch(settings, "crawl", "--platform", "replica", "--hashtag", TAG, private=private)


def fail_every_post(settings: Settings) -> list[str]:
    """The issue's first step: every post is recorded failed, with step, reason and time."""
    first = crawl(settings, private=False)
    assert f"#{TAG} on replica: 4 found, 4 new, 0 known, 4 failed" in first.stdout
    assert "failed: 4 download: refusing to download from 127.0.0.1" in first.stdout
    with open_store(settings) as store:
        posts = store.list_posts()
    assert len(posts) == 4
    for post in posts:
        assert post.state == PostState.FAILED and post.error and REFUSED in post.error
        assert post.failed_step == "download" and post.failed_at is not None
        assert post.failed_settings and not post.failed_transient
    listed = reelwatch(settings, "posts", "list", "--json", "--reason", REFUSED, private=False)
    rows = json.loads(listed.stdout)
    assert {r["key"] for r in rows} == {p.key for p in posts}
    assert all(r["failed_step"] == "download" and not r["settings_changed"] for r in rows)
    return [p.key for p in posts]


def assert_processed_once(settings: Settings, keys: list[str]) -> None:
    with open_store(settings) as store:
        states = {k: store.get_post(k) for k in keys}
        copy = states[post_key("replica", COPY_ID)]
        assert copy is not None and copy.state == PostState.MATCHED and copy.retries == 1
        highs = store.list_matches(min_confidence=Confidence.HIGH)
        assert {m.post_id for m in highs} == {COPY_ID, HOSTILE_ID}
        assert store.count_matches(post_key=copy.key) == 1
        corrupt = states[post_key("replica", CORRUPT_ID)]
        assert corrupt is not None and corrupt.state == PostState.FAILED
        assert corrupt.failed_step == "download" and corrupt.error
        assert "truncated or corrupt" in corrupt.error


def test_posts_retry_runs_posts_refused_by_a_setting_once_it_is_fixed(
    world_settings: Settings,
) -> None:
    keys = fail_every_post(world_settings)
    # Settings unchanged: a crawl does not run them again.
    again = crawl(world_settings, private=False)
    assert "0 new, 4 known, 0 failed" in again.stdout and "run again" not in again.stdout

    retried = reelwatch(world_settings, "posts", "retry", private=True)
    assert "4 retried: 3 matched, 1 failed (1 download:" in retried.stdout
    assert_processed_once(world_settings, keys)
    with open_store(world_settings) as store:
        matches = store.count_matches()

    # The refusals are all done: retrying them again does nothing.
    second = reelwatch(world_settings, "posts", "retry", "--reason", REFUSED, private=True)
    assert second.stdout.strip().endswith("nothing to retry")
    # A plain retry runs only the post that failed again (a corrupt upload), with no new match.
    third = reelwatch(world_settings, "posts", "retry", "--json", private=True)
    outcome = json.loads(third.stdout)
    assert outcome["retried"] == 1 and outcome["settings_changed"] == 0
    assert [p["key"] for p in outcome["posts"]] == [post_key("replica", CORRUPT_ID)]
    with open_store(world_settings) as store:
        assert store.count_matches() == matches


def test_a_crawl_after_the_setting_is_fixed_runs_the_refused_posts_again_once(
    world_settings: Settings,
) -> None:
    keys = fail_every_post(world_settings)
    fixed = crawl(world_settings, private=True)
    assert "4 post(s) that had failed under other settings were run again" in fixed.stdout
    assert "0 new, 4 known, 1 failed" in fixed.stdout
    assert "failed: 1 download:" in fixed.stdout
    assert_processed_once(world_settings, keys)
    # Once per settings change: the corrupt upload failed under these settings, so the next
    # crawl leaves it (and the matched posts) alone.
    later = crawl(world_settings, private=True)
    assert "run again" not in later.stdout and "0 new, 4 known, 0 failed" in later.stdout
    with open_store(world_settings) as store:
        corrupt = store.get_post(post_key("replica", CORRUPT_ID))
        assert corrupt is not None and corrupt.retries == 1
