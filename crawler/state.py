"""What discovery remembers between crawls: per (source, query) state and a log of runs.

Kept in ``<home>/crawl-state.db`` (SQLite, WAL), beside the data it describes, so the
embedded default needs nothing to start. For each (source, query): the cursor where the
last crawl stopped and the newest post time it saw (later crawls may stop there), and for
each run: when, what was found (new, known, failed) and how it ended. ``reelwatch watch
list`` and ``reelwatch crawl`` show these counts.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from reelwatch.models import utcnow

SCHEMA = """
CREATE TABLE IF NOT EXISTS query_state (
    source TEXT NOT NULL, query TEXT NOT NULL, cursor TEXT, newest_posted_at TEXT,
    last_crawled_at TEXT, PRIMARY KEY (source, query));
CREATE TABLE IF NOT EXISTS crawl_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL, query TEXT NOT NULL,
    watch TEXT, started_at TEXT NOT NULL, finished_at TEXT, found INTEGER DEFAULT 0,
    new INTEGER DEFAULT 0, known INTEGER DEFAULT 0, failed INTEGER DEFAULT 0,
    stop TEXT, error TEXT);
CREATE INDEX IF NOT EXISTS crawl_runs_watch ON crawl_runs (watch, id);
"""


@dataclass
class QueryState:
    cursor: str | None = None
    newest_posted_at: datetime | None = None
    last_crawled_at: datetime | None = None


@dataclass
class CrawlRun:
    """One crawl of one query: the counts a user sees."""

    source: str
    query: str
    watch: str | None
    started_at: datetime
    finished_at: datetime | None = None
    found: int = 0
    new: int = 0
    known: int = 0
    failed: int = 0
    stop: str | None = None
    error: str | None = None
    id: int | None = None

    def summary(self) -> str:
        """``#tag on tiktok: 60 found, 58 new, 2 known, 0 failed (stopped: limit)``."""
        ended = f"failed: {self.error}" if self.error else f"stopped: {self.stop or 'done'}"
        return (
            f"{self.query} on {self.source}: {self.found} found, {self.new} new, "
            f"{self.known} known, {self.failed} failed ({ended})"
        )


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class CrawlState:
    """The crawl-state database; cheap to open, safe to share between processes."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)

    @classmethod
    def of_home(cls, home: Path) -> CrawlState:
        return cls(home / "crawl-state.db")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> CrawlState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- per query --------------------------------------------------------------------------
    def query_state(self, source: str, query: str) -> QueryState:
        row = self.db.execute(
            "SELECT cursor, newest_posted_at, last_crawled_at FROM query_state "
            "WHERE source = ? AND query = ?",
            (source, query),
        ).fetchone()
        if row is None:
            return QueryState()
        return QueryState(row[0], _dt(row[1]), _dt(row[2]))

    def remember(
        self, source: str, query: str, cursor: str | None, newest: datetime | None
    ) -> None:
        """Record where a crawl stopped and the newest post it saw (never moving it back)."""
        old = self.query_state(source, query)
        if old.newest_posted_at and (newest is None or newest < old.newest_posted_at):
            newest = old.newest_posted_at
        self.db.execute(
            "INSERT INTO query_state (source, query, cursor, newest_posted_at, last_crawled_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (source, query) DO UPDATE SET "
            "cursor = excluded.cursor, newest_posted_at = excluded.newest_posted_at, "
            "last_crawled_at = excluded.last_crawled_at",
            (source, query, cursor, newest.isoformat() if newest else None, utcnow().isoformat()),
        )

    # -- runs -------------------------------------------------------------------------------
    def record(self, run: CrawlRun) -> CrawlRun:
        """Insert or update a run; returns it with its id."""
        values = (
            run.source,
            run.query,
            run.watch,
            run.started_at.isoformat(),
            run.finished_at.isoformat() if run.finished_at else None,
            run.found,
            run.new,
            run.known,
            run.failed,
            run.stop,
            run.error,
        )
        if run.id is None:
            cur = self.db.execute(
                "INSERT INTO crawl_runs (source, query, watch, started_at, finished_at, found, "
                "new, known, failed, stop, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )
            run.id = cur.lastrowid
        else:
            self.db.execute(
                "UPDATE crawl_runs SET source = ?, query = ?, watch = ?, started_at = ?, "
                "finished_at = ?, found = ?, new = ?, known = ?, failed = ?, stop = ?, "
                "error = ? WHERE id = ?",
                (*values, run.id),
            )
        return run

    def runs(self, watch: str | None = None, limit: int = 20) -> list[CrawlRun]:
        """Latest runs first (of one watch when given)."""
        sql = (
            "SELECT source, query, watch, started_at, finished_at, found, new, known, failed, "
            "stop, error, id FROM crawl_runs"
        )
        args: tuple[object, ...] = ()
        if watch is not None:
            sql += " WHERE watch = ?"
            args = (watch,)
        rows = self.db.execute(sql + " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
        return [
            CrawlRun(
                source=r[0],
                query=r[1],
                watch=r[2],
                started_at=datetime.fromisoformat(r[3]),
                finished_at=_dt(r[4]),
                found=r[5],
                new=r[6],
                known=r[7],
                failed=r[8],
                stop=r[9],
                error=r[10],
                id=r[11],
            )
            for r in rows
        ]
