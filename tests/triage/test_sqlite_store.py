"""The SQLite backend: the shared Store contract, plus what only a file-backed store can get
wrong (WAL, schema version, unusable paths)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from reelwatch.errors import InputError, ReelwatchError
from reelwatch.models import Confidence, Match, PostState, TriageStatus
from reelwatch.settings import Settings
from tests.triage.factories import make_match
from tests.triage.store_contract import StoreContract
from triage.stores import SQLiteStore, StoreError, open_store, store_class
from triage.stores.sqlite import SCHEMA_VERSION


class TestSQLiteStore(StoreContract):
    @pytest.fixture
    def store_settings(self, settings: Settings) -> Settings:
        settings.store.backend = "sqlite"
        return settings


def test_open_store_picks_sqlite_under_the_home(settings: Settings) -> None:
    with open_store(settings) as store:
        assert isinstance(store, SQLiteStore)
        assert store.path == settings.home / "reelwatch.db"
    assert settings.sqlite_path.exists()


def test_unknown_store_backend_is_an_input_error() -> None:
    with pytest.raises(
        InputError, match="unknown store backend 'mongodb'; available: elasticsearch, sqlite"
    ):
        store_class("mongodb")


def test_database_uses_wal_and_records_schema_version(settings: Settings) -> None:
    with open_store(settings):
        pass
    conn = sqlite3.connect(settings.sqlite_path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        conn.close()


def test_unusable_path_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="not-a-dir"):
        SQLiteStore(blocker / "sub" / "reelwatch.db")


def test_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    bogus = tmp_path / "reelwatch.db"
    bogus.write_bytes(b"this is a text file, not sqlite" * 100)
    with pytest.raises(StoreError, match="not a reelwatch SQLite store"):
        SQLiteStore(bogus)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "reelwatch.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="upgrade reelwatch"):
        SQLiteStore(path)


def test_closed_store_raises_reelwatch_error(settings: Settings) -> None:
    store = open_store(settings)
    store.close()
    store.close()
    with pytest.raises(ReelwatchError):
        store.list_matches()


def test_a_version_1_store_is_migrated_and_keeps_its_matches(tmp_path: Path) -> None:
    path = tmp_path / "reelwatch.db"
    match = Match(
        post_key="replica:1",
        platform="replica",
        post_id="1",
        post_url="http://127.0.0.1/@a/video/1",
        title_id="t",
        title="T",
        score=0.9,
        confidence=Confidence.HIGH,
    )
    with SQLiteStore(path) as store:
        store.upsert_match(match)
    # Make it what reelwatch 0.1 wrote: no notes column, user_version 1.
    conn = sqlite3.connect(path)
    conn.execute("ALTER TABLE matches DROP COLUMN notes")
    for column in FAILURE_COLUMNS:
        conn.execute(f"ALTER TABLE posts DROP COLUMN {column}")
    for column in CAPTURE_COLUMNS:
        conn.execute(f"ALTER TABLE media DROP COLUMN {column}")
    for column in ENFORCEMENT_COLUMNS:
        conn.execute(f"ALTER TABLE matches DROP COLUMN {column}")
    conn.execute("DROP TABLE notices")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()

    with SQLiteStore(path) as store:
        old = store.get_match(match.id)
        assert old is not None and old.notes == [] and old.score == 0.9
        store.upsert_match(match.model_copy(update={"notes": ["policy: at least 10 s"]}))
        again = store.get_match(match.id)
        assert again is not None and again.notes == ["policy: at least 10 s"]
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


FAILURE_COLUMNS = ("failed_at", "failed_step", "failed_settings", "failed_transient", "retries")
"""The posts columns version 3 added (how and when a post failed, its retries)."""
CAPTURE_COLUMNS = ("captured_at", "source_url", "media_url", "first_post")
"""The media columns version 4 added (when and where a file was captured)."""
ENFORCEMENT_COLUMNS = ("views", "enforcement", "work")
"""The matches columns version 5 added (play count, lifecycle times and re-checks, the work
as matched)."""


def test_a_version_4_store_moves_takedown_requested_to_notice_sent(tmp_path: Path) -> None:
    path = tmp_path / "reelwatch.db"
    match = make_match()
    with SQLiteStore(path) as store:
        store.upsert_match(match)
    conn = sqlite3.connect(path)
    for column in ENFORCEMENT_COLUMNS:
        conn.execute(f"ALTER TABLE matches DROP COLUMN {column}")
    conn.execute("DROP TABLE notices")
    conn.execute("UPDATE matches SET status = 'takedown_requested'")
    conn.execute("PRAGMA user_version = 4")
    conn.commit()
    conn.close()

    with SQLiteStore(path) as store:
        old = store.get_match(match.id)
        assert old is not None and old.status == TriageStatus.NOTICE_SENT
        assert old.enforcement.notice_sent_at is None and old.views is None
        assert store.list_notices() == []
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT status FROM matches").fetchone()[0] == "notice_sent"
    conn.close()


VERSION_2_SCHEMA = """
CREATE TABLE posts (
    key TEXT PRIMARY KEY, platform TEXT NOT NULL, post_id TEXT NOT NULL, url TEXT NOT NULL,
    author JSON, caption TEXT, hashtags JSON, posted_at TEXT, stats JSON, media_url TEXT,
    duration REAL, ai_label TEXT, is_ai_labelled INTEGER, watch TEXT, hashtag TEXT,
    first_seen TEXT, last_seen TEXT, provenance JSON, state TEXT NOT NULL, error TEXT,
    media_sha256 TEXT, first_seen_ts REAL NOT NULL
);
CREATE TABLE media (
    sha256 TEXT PRIMARY KEY, path TEXT NOT NULL, bytes INTEGER NOT NULL, duration REAL,
    width INTEGER, height INTEGER, fps REAL, video_codec TEXT, audio_codec TEXT, c2pa JSON
);
CREATE TABLE matches (
    id TEXT PRIMARY KEY, post_key TEXT NOT NULL, platform TEXT NOT NULL, post_id TEXT NOT NULL,
    post_url TEXT NOT NULL, account TEXT, caption TEXT, hashtags JSON, title_id TEXT NOT NULL,
    title TEXT NOT NULL, score REAL NOT NULL, confidence TEXT NOT NULL,
    confidence_rank INTEGER NOT NULL, signals JSON, segments JSON, notes JSON, ai JSON,
    media_sha256 TEXT, watch TEXT, created_at TEXT, updated_at TEXT, updated_ts REAL NOT NULL,
    status TEXT NOT NULL, assignee TEXT, note TEXT, history JSON
);
CREATE TABLE alerts (
    id TEXT PRIMARY KEY, match_id TEXT NOT NULL, channel TEXT NOT NULL,
    recipient TEXT NOT NULL, status TEXT NOT NULL, created_at TEXT, sent_at TEXT, error TEXT,
    message_id TEXT, created_ts REAL NOT NULL, lease_ts REAL
);
INSERT INTO posts (key, platform, post_id, url, author, caption, hashtags, stats,
    is_ai_labelled, provenance, state, error, first_seen, last_seen, first_seen_ts)
VALUES ('replica:1', 'replica', '1', 'http://127.0.0.1/@a/video/1', '{}', '', '[]', '{}', 0,
    '{}', 'failed', 'refusing to download', '2026-11-30T10:00:00+00:00',
    '2026-11-30T10:00:00+00:00', 1764496800.0);
PRAGMA user_version = 2;
"""
"""A store as reelwatch wrote it before failures carried their step, time and settings, with
one post that failed then."""


def test_a_version_2_store_gets_failure_columns_and_keeps_its_failed_posts(
    tmp_path: Path,
) -> None:
    path = tmp_path / "reelwatch.db"
    conn = sqlite3.connect(path)
    conn.executescript(VERSION_2_SCHEMA)
    conn.close()

    with SQLiteStore(path) as store:
        old = store.get_post("replica:1")
        assert old is not None and (old.state, old.error) == (
            PostState.FAILED,
            "refusing to download",
        )
        assert (old.failed_at, old.failed_step, old.failed_settings) == (None, None, None)
        assert (old.failed_transient, old.retries) == (False, 0)
        store.set_post_state(old.key, PostState.DISCOVERED, expect=PostState.FAILED)
        store.set_post_state(
            old.key, PostState.FAILED, error="again", step="download", settings_digest="d1"
        )
        again = store.get_post(old.key)
        assert again is not None and (again.retries, again.failed_step) == (1, "download")
        assert again.failed_settings == "d1" and again.failed_at is not None
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    columns = {row[1] for row in conn.execute("PRAGMA table_info(posts)")}
    assert set(FAILURE_COLUMNS) <= columns
    conn.close()
