"""The embedded store: one SQLite file under the data home.

Several processes (eager runs, Celery workers, the board) open the same file at once, so the
database runs in WAL mode (readers never block the writer), waits for locks instead of failing
(busy timeout), and every read-merge-write runs in a ``BEGIN IMMEDIATE`` transaction so two
writers cannot interleave between the read and the write. Scalar fields are plain columns (easy
to query from the ``sqlite3`` shell); nested fields are JSON text.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel

from reelwatch.errors import InputError
from reelwatch.models import (
    Alert,
    AlertStatus,
    Confidence,
    Match,
    Media,
    Notice,
    NoticeStatus,
    Post,
    PostState,
    TriageStatus,
)
from triage.stores.base import (
    Store,
    StoreBusyError,
    StoreError,
    apply_post_state,
    as_utc,
    merge_match,
    merge_post,
    parse_alert_status,
    parse_confidence,
    parse_notice_status,
    parse_post_state,
    parse_status,
)

if TYPE_CHECKING:
    from typing import Self

    from reelwatch.settings import Settings

SCHEMA_VERSION = 5
"""Stored in ``PRAGMA user_version``; bump it and add a step to ``_MIGRATIONS`` when the schema
changes."""

_MIGRATIONS: dict[int, tuple[str, ...]] = {
    2: ("ALTER TABLE matches ADD COLUMN notes JSON",),
    3: (
        "ALTER TABLE posts ADD COLUMN failed_at TEXT",
        "ALTER TABLE posts ADD COLUMN failed_step TEXT",
        "ALTER TABLE posts ADD COLUMN failed_settings TEXT",
        "ALTER TABLE posts ADD COLUMN failed_transient INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE posts ADD COLUMN retries INTEGER NOT NULL DEFAULT 0",
    ),
    4: (
        "ALTER TABLE media ADD COLUMN captured_at TEXT",
        "ALTER TABLE media ADD COLUMN source_url TEXT",
        "ALTER TABLE media ADD COLUMN media_url TEXT",
        "ALTER TABLE media ADD COLUMN first_post TEXT",
    ),
    5: (
        "ALTER TABLE matches ADD COLUMN views INTEGER",
        "ALTER TABLE matches ADD COLUMN enforcement JSON",
        "ALTER TABLE matches ADD COLUMN work JSON",
        # The lifecycle's "notice_sent" is what "takedown_requested" meant.
        "UPDATE matches SET status = 'notice_sent' WHERE status = 'takedown_requested'",
    ),
}
"""Statements that bring a store of version ``n - 1`` to version ``n``."""

_M = TypeVar("_M", bound=BaseModel)

_JSON = frozenset(
    {
        "author",
        "hashtags",
        "stats",
        "provenance",
        "c2pa",
        "signals",
        "segments",
        "notes",
        "ai",
        "history",
        "enforcement",
        "work",
        "match_ids",
        "urls",
        "form",
    }
)
"""Columns that hold a nested model field as JSON text."""


@dataclass(frozen=True)
class _Table(Generic[_M]):
    """How one model maps onto one table: its fields are columns of the same names, plus
    ``derived`` columns (the identity, and sort keys SQL cannot compute from ISO text)."""

    name: str
    key_column: str
    model: type[_M]
    derived: Callable[[_M], dict[str, Any]]

    def row(self, item: _M) -> dict[str, Any]:
        return {**item.model_dump(mode="json"), **self.derived(item)}

    def load(self, row: sqlite3.Row) -> _M:
        fields = self.model.model_fields
        return self.model.model_validate(
            {
                k: json.loads(row[k]) if k in _JSON else row[k]
                for k in row.keys()  # noqa: SIM118 - sqlite3.Row is not a mapping
                # NULL JSON: a column added by a migration; the model's default applies.
                if k in fields and not (k in _JSON and row[k] is None)
            }
        )


_POSTS = _Table(
    "posts",
    "key",
    Post,
    lambda p: {"key": p.key, "first_seen_ts": as_utc(p.first_seen).timestamp()},
)
_MEDIA = _Table("media", "sha256", Media, lambda m: {})
_MATCHES = _Table(
    "matches",
    "id",
    Match,
    lambda m: {
        "id": m.id,
        "confidence_rank": m.confidence.rank,
        "updated_ts": as_utc(m.updated_at).timestamp(),
    },
)
_ALERTS = _Table(
    "alerts",
    "id",
    Alert,
    lambda a: {"id": a.id, "created_ts": as_utc(a.created_at).timestamp()},
)

_NOTICES = _Table(
    "notices",
    "id",
    Notice,
    lambda n: {"created_ts": as_utc(n.created_at).timestamp()},
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS posts (
    key TEXT PRIMARY KEY, platform TEXT NOT NULL, post_id TEXT NOT NULL, url TEXT NOT NULL,
    author JSON, caption TEXT, hashtags JSON, posted_at TEXT, stats JSON, media_url TEXT,
    duration REAL, ai_label TEXT, is_ai_labelled INTEGER, watch TEXT, hashtag TEXT,
    first_seen TEXT, last_seen TEXT, provenance JSON, state TEXT NOT NULL, error TEXT,
    media_sha256 TEXT, first_seen_ts REAL NOT NULL, failed_at TEXT, failed_step TEXT,
    failed_settings TEXT, failed_transient INTEGER NOT NULL DEFAULT 0,
    retries INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS posts_state ON posts (state, first_seen_ts);
CREATE TABLE IF NOT EXISTS media (
    sha256 TEXT PRIMARY KEY, path TEXT NOT NULL, bytes INTEGER NOT NULL, duration REAL,
    width INTEGER, height INTEGER, fps REAL, video_codec TEXT, audio_codec TEXT, c2pa JSON,
    captured_at TEXT, source_url TEXT, media_url TEXT, first_post TEXT
);
CREATE TABLE IF NOT EXISTS matches (
    id TEXT PRIMARY KEY, post_key TEXT NOT NULL, platform TEXT NOT NULL, post_id TEXT NOT NULL,
    post_url TEXT NOT NULL, account TEXT, caption TEXT, hashtags JSON, title_id TEXT NOT NULL,
    title TEXT NOT NULL, score REAL NOT NULL, confidence TEXT NOT NULL,
    confidence_rank INTEGER NOT NULL, signals JSON, segments JSON, notes JSON, ai JSON,
    media_sha256 TEXT,
    watch TEXT, created_at TEXT, updated_at TEXT, updated_ts REAL NOT NULL,
    status TEXT NOT NULL, assignee TEXT, note TEXT, history JSON, views INTEGER,
    enforcement JSON, work JSON
);
CREATE INDEX IF NOT EXISTS matches_rank
    ON matches (confidence_rank DESC, score DESC, updated_ts DESC);
CREATE INDEX IF NOT EXISTS matches_status ON matches (status);
CREATE INDEX IF NOT EXISTS matches_title ON matches (title_id);
CREATE INDEX IF NOT EXISTS matches_post ON matches (post_key);
CREATE TABLE IF NOT EXISTS alerts (
    id TEXT PRIMARY KEY, match_id TEXT NOT NULL, channel TEXT NOT NULL,
    recipient TEXT NOT NULL, status TEXT NOT NULL, created_at TEXT, sent_at TEXT, error TEXT,
    message_id TEXT, created_ts REAL NOT NULL,
    lease_ts REAL
);
CREATE INDEX IF NOT EXISTS alerts_status ON alerts (status, created_ts);
CREATE TABLE IF NOT EXISTS notices (
    id TEXT PRIMARY KEY, platform TEXT NOT NULL, account TEXT, title_id TEXT NOT NULL,
    title TEXT, match_ids JSON, urls JSON, status TEXT NOT NULL, created_at TEXT,
    created_by TEXT, sent_at TEXT, sent_by TEXT, reference TEXT, template TEXT, subject TEXT,
    text TEXT, form_url TEXT, form JSON, note TEXT, created_ts REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS notices_created ON notices (created_ts DESC);
"""
# lease_ts: when the current delivery attempt started (NULL: none in flight). It is store
# bookkeeping, not part of the Alert model. Indexes are created IF NOT EXISTS on every open, so
# adding one needs no SCHEMA_VERSION bump.


class SQLiteStore(Store):
    """A :class:`Store` in one SQLite file; see the module docstring for the concurrency story."""

    name = "sqlite"

    def __init__(self, path: Path | str, *, busy_timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(
                f"cannot create the folder for the store {self.path}: {e.strerror or e}"
            ) from None
        try:
            # isolation_level=None: we issue BEGIN ourselves so the lock mode is explicit.
            # timeout is SQLite's busy timeout: how long a statement waits for a lock.
            conn = sqlite3.connect(
                self.path,
                timeout=busy_timeout_s,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as e:
            raise StoreError(f"cannot open the store {self.path}: {e}") from None
        conn.row_factory = sqlite3.Row
        self._conn = conn
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            self._create_schema()
        except StoreError:
            self.close()
            raise
        except sqlite3.Error as e:
            self.close()
            raise _store_error(self.path, e) from None

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls(settings.sqlite_path)

    def _create_schema(self) -> None:
        with self._tx() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"the store {self.path} has schema version {version}, newer than this "
                    f"reelwatch understands ({SCHEMA_VERSION}); upgrade reelwatch"
                )
            has_tables = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'matches'"
            ).fetchone()
            if has_tables:
                for step in range(max(version, 1) + 1, SCHEMA_VERSION + 1):
                    for statement in _MIGRATIONS.get(step, ()):
                        conn.execute(statement)
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextmanager
    def _tx(self, *, write: bool = True) -> Iterator[sqlite3.Connection]:
        """One transaction, serialised within the process by a lock and across processes by
        SQLite; sqlite errors come out as :class:`StoreError` / :class:`StoreBusyError`."""
        with self._lock:
            if self._conn is None:
                raise StoreError(f"the store {self.path} is closed")
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except sqlite3.Error as e:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise _store_error(self.path, e) from None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # Posts ---------------------------------------------------------------------------------
    def upsert_post(self, post: Post) -> bool:
        return self._upsert(_POSTS, post.key, post, merge_post)

    def get_post(self, key: str) -> Post | None:
        return self._read(_POSTS, key)

    def has_post(self, key: str) -> bool:
        with self._tx(write=False) as conn:
            return conn.execute("SELECT 1 FROM posts WHERE key = ?", (key,)).fetchone() is not None

    def set_post_state(
        self,
        key: str,
        state: PostState | str,
        *,
        error: str | None = None,
        media_sha256: str | None = None,
        step: str | None = None,
        settings_digest: str | None = None,
        transient: bool = False,
        expect: PostState | str | None = None,
    ) -> Post:
        with self._tx() as conn:
            post = apply_post_state(
                _get(conn, _POSTS, key),
                key,
                state,
                error=error,
                media_sha256=media_sha256,
                step=step,
                settings_digest=settings_digest,
                transient=transient,
                expect=expect,
            )
            _write(conn, _POSTS, post)
            return post

    def list_posts(
        self, state: PostState | str | None = None, limit: int | None = None
    ) -> list[Post]:
        sql = "SELECT * FROM posts"
        params: list[Any] = []
        if state is not None:
            sql += " WHERE state = ?"
            params.append(parse_post_state(state).value)
        sql += " ORDER BY first_seen_ts, key"
        sql += _limit(params, limit, 0)
        with self._tx(write=False) as conn:
            return [_POSTS.load(row) for row in conn.execute(sql, params)]

    # Media ---------------------------------------------------------------------------------
    def upsert_media(self, media: Media) -> None:
        with self._tx() as conn:
            _write(conn, _MEDIA, media)

    def get_media(self, sha256: str) -> Media | None:
        return self._read(_MEDIA, sha256)

    # Matches -------------------------------------------------------------------------------
    def upsert_match(self, match: Match) -> bool:
        return self._upsert(_MATCHES, match.id, match, merge_match)

    def get_match(self, id: str) -> Match | None:
        return self._read(_MATCHES, id)

    def list_matches(
        self,
        *,
        status: TriageStatus | str | None = None,
        min_confidence: Confidence | str | None = None,
        title_id: str | None = None,
        platform: str | None = None,
        post_key: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Match]:
        where, params = _match_filters(status, min_confidence, title_id, platform, post_key)
        sql = f"SELECT * FROM matches{where} ORDER BY confidence_rank DESC, score DESC, "
        sql += "updated_ts DESC, id" + _limit(params, limit, offset)
        with self._tx(write=False) as conn:
            return [_MATCHES.load(row) for row in conn.execute(sql, params)]

    def count_matches(
        self,
        *,
        status: TriageStatus | str | None = None,
        min_confidence: Confidence | str | None = None,
        title_id: str | None = None,
        platform: str | None = None,
        post_key: str | None = None,
    ) -> int:
        where, params = _match_filters(status, min_confidence, title_id, platform, post_key)
        with self._tx(write=False) as conn:
            return int(conn.execute(f"SELECT COUNT(*) FROM matches{where}", params).fetchone()[0])

    def update_match(self, match_id: str, change: Callable[[Match], object]) -> Match:
        with self._tx() as conn:
            match = _get(conn, _MATCHES, match_id)
            if match is None:
                raise InputError(f"unknown match {match_id!r}")
            change(match)
            _write(conn, _MATCHES, match)
            return match

    # Notices -------------------------------------------------------------------------------
    def upsert_notice(self, notice: Notice) -> None:
        with self._tx() as conn:
            _write(conn, _NOTICES, notice)

    def get_notice(self, id: str) -> Notice | None:
        return self._read(_NOTICES, id)

    def list_notices(
        self,
        *,
        status: NoticeStatus | str | None = None,
        match_id: str | None = None,
        platform: str | None = None,
        account: str | None = None,
    ) -> list[Notice]:
        where: list[str] = []
        params: list[Any] = []
        if status is not None:
            where.append("status = ?")
            params.append(parse_notice_status(status).value)
        if match_id is not None:
            where.append("EXISTS (SELECT 1 FROM json_each(notices.match_ids) WHERE value = ?)")
            params.append(match_id)
        if platform is not None:
            where.append("platform = ?")
            params.append(platform)
        if account is not None:
            where.append("account = ?")
            params.append(account)
        sql = "SELECT * FROM notices"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_ts DESC, id"
        with self._tx(write=False) as conn:
            return [_NOTICES.load(row) for row in conn.execute(sql, params)]

    # Alerts --------------------------------------------------------------------------------
    def claim_alert(self, alert: Alert) -> bool:
        row = _ALERTS.row(alert)
        columns = ", ".join((*row, "lease_ts"))
        marks = ", ".join("?" * (len(row) + 1))
        with self._tx() as conn:
            cur = conn.execute(
                f"INSERT INTO alerts ({columns}) VALUES ({marks}) ON CONFLICT (id) DO NOTHING",
                (*row.values(), time.time()),
            )
            return cur.rowcount == 1

    def lease_alert(self, alert_id: str, *, lease_s: float) -> Alert | None:
        now = time.time()
        with self._tx() as conn:
            cur = conn.execute(
                "UPDATE alerts SET lease_ts = ? WHERE id = ? AND status = ? "
                "AND (lease_ts IS NULL OR lease_ts <= ?)",
                (now, alert_id, AlertStatus.PENDING.value, now - lease_s),
            )
            if cur.rowcount != 1:
                return None
            return _get(conn, _ALERTS, alert_id)

    def update_alert(self, alert: Alert) -> None:
        row = _ALERTS.row(alert)
        del row["created_ts"]
        assignments = ", ".join(f"{c} = ?" for c in row)
        with self._tx() as conn:
            known = conn.execute("SELECT status FROM alerts WHERE id = ?", (alert.id,)).fetchone()
            if known is None:
                raise InputError(f"unknown alert {alert.id!r}")
            if known["status"] == AlertStatus.SENT.value:
                return
            conn.execute(
                f"UPDATE alerts SET {assignments}, lease_ts = NULL WHERE id = ?",
                (*row.values(), alert.id),
            )

    def get_alert(self, id: str) -> Alert | None:
        return self._read(_ALERTS, id)

    def list_alerts(self, status: AlertStatus | str | None = None) -> list[Alert]:
        sql = "SELECT * FROM alerts"
        params: list[Any] = []
        if status is not None:
            sql += " WHERE status = ?"
            params.append(parse_alert_status(status).value)
        sql += " ORDER BY created_ts, id"
        with self._tx(write=False) as conn:
            return [_ALERTS.load(row) for row in conn.execute(sql, params)]

    # Helpers -------------------------------------------------------------------------------
    def _read(self, table: _Table[_M], key: str) -> _M | None:
        with self._tx(write=False) as conn:
            return _get(conn, table, key)

    def _upsert(self, table: _Table[_M], key: str, item: _M, merge: Callable[[_M, _M], _M]) -> bool:
        """Insert ``item`` or merge it into the stored one, in one write transaction so that
        racing writers cannot both see it as new; True if it was new."""
        with self._tx() as conn:
            existing = _get(conn, table, key)
            _write(conn, table, item if existing is None else merge(existing, item))
            return existing is None


def _store_error(path: Path, e: sqlite3.Error) -> StoreError:
    text = str(e)
    if "locked" in text or "busy" in text:
        return StoreBusyError(f"the store {path} stayed locked: {text}")
    if isinstance(e, sqlite3.DatabaseError) and "not a database" in text:
        return StoreError(f"{path} is not a reelwatch SQLite store ({text})")
    return StoreError(f"the store {path} failed: {text}")


def _limit(params: list[Any], limit: int | None, offset: int) -> str:
    if limit is None and not offset:
        return ""
    params.extend((-1 if limit is None else max(limit, 0), max(offset, 0)))
    return " LIMIT ? OFFSET ?"


def _match_filters(
    status: TriageStatus | str | None,
    min_confidence: Confidence | str | None,
    title_id: str | None,
    platform: str | None,
    post_key: str | None,
) -> tuple[str, list[Any]]:
    given = {
        "status = ?": None if status is None else parse_status(status).value,
        "confidence_rank >= ?": (
            None if min_confidence is None else parse_confidence(min_confidence).rank
        ),
        "title_id = ?": title_id,
        "platform = ?": platform,
        "post_key = ?": post_key,
    }
    clauses = {c: v for c, v in given.items() if v is not None}
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), list(clauses.values())


def _get(conn: sqlite3.Connection, table: _Table[_M], key: str) -> _M | None:
    row = conn.execute(
        f"SELECT * FROM {table.name} WHERE {table.key_column} = ?", (key,)
    ).fetchone()
    return None if row is None else table.load(row)


def _write(conn: sqlite3.Connection, table: _Table[_M], item: _M) -> None:
    row = table.row(item)
    conn.execute(
        f"INSERT OR REPLACE INTO {table.name} ({', '.join(row)}) "
        f"VALUES ({', '.join('?' * len(row))})",
        [json.dumps(v) if c in _JSON else v for c, v in row.items()],
    )
