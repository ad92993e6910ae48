"""Media records keep where and when a file was captured, also in a store made before those
fields existed (migrated in place)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from reelwatch.models import Media
from triage.stores.sqlite import SCHEMA_VERSION, SQLiteStore

CAPTURE = ("captured_at", "source_url", "media_url", "first_post")


def test_capture_fields_round_trip(tmp_path: Path) -> None:
    media = Media(
        sha256="ab" * 32,
        path="media/ab/x.mp4",
        bytes=1234,
        captured_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        source_url="https://www.tiktok.com/@a/video/1",
        media_url="https://cdn.example/v/1.mp4",
        first_post="tiktok:1",
    )
    with SQLiteStore(tmp_path / "r.db") as store:
        store.upsert_media(media)
        assert store.get_media(media.sha256) == media


def test_a_store_without_capture_columns_is_migrated_and_keeps_its_media(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    old = Media(sha256="cd" * 32, path="media/cd/y.mp4", bytes=99, duration=3.5)
    with SQLiteStore(path) as store:
        store.upsert_media(old)
    conn = sqlite3.connect(path)
    for column in CAPTURE:
        conn.execute(f"ALTER TABLE media DROP COLUMN {column}")
    for column in ("views", "enforcement", "work"):  # added by version 5
        conn.execute(f"ALTER TABLE matches DROP COLUMN {column}")
    conn.execute("PRAGMA user_version = 3")  # the version before the capture columns
    conn.commit()
    conn.close()

    with SQLiteStore(path) as store:
        assert store.get_media(old.sha256) == old
        new = old.model_copy(update={"source_url": "https://x.com/a/status/1"})
        store.upsert_media(new)
        assert store.get_media(old.sha256) == new
    conn = sqlite3.connect(path)
    columns = {row[1] for row in conn.execute("PRAGMA table_info(media)")}
    assert set(CAPTURE) <= columns
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()
