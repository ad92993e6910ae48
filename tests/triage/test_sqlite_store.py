"""The SQLite backend: the shared Store contract, plus what only a file-backed store can get
wrong (WAL, schema version, unusable paths)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from reelwatch.errors import InputError, ReelwatchError
from reelwatch.models import Confidence, Match
from reelwatch.settings import Settings
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
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    conn.close()
