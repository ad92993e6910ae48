"""The studio's IP catalog: titles, their reference assets, and every signal's index.

Layout under ``settings.catalog_dir``::

    catalog.db              SQLite: titles and assets (the source of truth)
    files/<sha[:2]>/<sha>.<ext>   reference files, content-addressed copies
    index/                  one index per signal (``copy.faissb`` + reference times)
    manifest.json           which signal versions built the indexes, and their sizes

Adding assets fingerprints only the new files and adds them to the indexes in place. The
indexes can always be rebuilt from the database and files (:meth:`Catalog.build`), and are
rebuilt automatically when a signal's fingerprint version changes. Writers take a file lock,
so a CLI ``catalog add`` and a worker can share a catalog.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from matcher.decode import probe
from matcher.fingerprint import enabled_signals, fingerprint_file
from matcher.signals.base import Signal, SignalIndex
from reelwatch.errors import InputError
from reelwatch.models import Asset, AssetKind, Title, normalize_hashtag, slugify
from reelwatch.settings import Settings

log = logging.getLogger(__name__)

MANIFEST_FORMAT = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS titles (
    id TEXT PRIMARY KEY,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS assets (
    num INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    title_id TEXT NOT NULL REFERENCES titles(id),
    sha256 TEXT NOT NULL,
    data TEXT NOT NULL,
    UNIQUE (title_id, sha256)
);
"""


def _merge(old: Iterable[str], new: Iterable[str]) -> list[str]:
    out = list(old)
    for item in new:
        if item and item not in out:
            out.append(item)
    return out


class Catalog:
    """Titles and reference assets with their signal indexes (see the module docs)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.catalog_dir
        self.root.mkdir(parents=True, exist_ok=True)
        self.index_dir = self.root / "index"
        self.files_dir = self.root / "files"
        self.manifest_path = self.root / "manifest.json"
        self.signals: list[Signal] = enabled_signals(settings)
        self._indexes: dict[str, SignalIndex] = {}
        self._loaded_stamp: int | None = None
        self._lock_depth = 0
        with self._db() as db:
            db.executescript(_SCHEMA)

    # Storage plumbing ------------------------------------------------------------------------

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.root / "catalog.db", timeout=30)
        try:
            with conn:
                yield conn
        finally:
            conn.close()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Exclusive across processes, re-entrant within this object (build inside add)."""
        if self._lock_depth:
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
            return
        with (self.root / ".lock").open("a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            self._lock_depth = 1
            try:
                yield
            finally:
                self._lock_depth = 0
                fcntl.flock(f, fcntl.LOCK_UN)

    def _read_manifest(self) -> dict[str, object]:
        try:
            data = json.loads(self.manifest_path.read_text())
        except (OSError, json.JSONDecodeError):
            return {}
        return data if isinstance(data, dict) else {}

    def _stamp(self) -> int | None:
        try:
            return self.manifest_path.stat().st_mtime_ns
        except OSError:
            return None

    def _save_indexes(self) -> None:
        signals: dict[str, dict[str, object]] = {}
        for s in self.signals:
            idx = self._indexes.get(s.name)
            if idx is None:
                continue
            idx.save(self.index_dir)
            signals[s.name] = {"key": s.config_key(), "entries": len(idx)}
        manifest = {"format": MANIFEST_FORMAT, "signals": signals}
        tmp = self.manifest_path.with_name(f"manifest.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(manifest, indent=2))
        tmp.replace(self.manifest_path)
        self._loaded_stamp = self._stamp()

    def _load_indexes(self) -> None:
        """Load every signal's index, rebuilding any made by another signal version."""
        stamp = self._stamp()
        if self._indexes and stamp == self._loaded_stamp:
            return
        manifest = self._read_manifest()
        built = manifest.get("signals", {})
        assert isinstance(built, dict)
        stale = [s for s in self.signals if (built.get(s.name) or {}).get("key") != s.config_key()]
        if stale and self._asset_rows():
            log.info("rebuilding catalog indexes for %s", ", ".join(s.name for s in stale))
            self.build()
            return
        self._indexes = {s.name: s.load_index(self.index_dir) for s in self.signals}
        self._loaded_stamp = stamp

    def index(self, signal: Signal | str) -> SignalIndex:
        """The up-to-date index of a signal (reloaded if another process changed it)."""
        name = signal if isinstance(signal, str) else signal.name
        self._load_indexes()
        return self._indexes[name]

    # Titles ----------------------------------------------------------------------------------

    def add_title(
        self,
        name: str,
        owner: str = "",
        aliases: Iterable[str] = (),
        hashtags: Iterable[str] = (),
        description: str = "",
        talents: Iterable[str] = (),
    ) -> Title:
        """Add a title (id: ``slugify(name)``), or merge into the existing one.

        Merging keeps what is there and adds to it: new aliases, hashtags and talents are
        appended, owner and description are replaced only by non-empty values.
        """
        if not name.strip():
            raise InputError("a title needs a name")
        tid = slugify(name)
        tags = [normalize_hashtag(h) for h in hashtags]
        with self._locked(), self._db() as db:
            row = db.execute("SELECT data FROM titles WHERE id = ?", (tid,)).fetchone()
            if row:
                old = Title.model_validate_json(row[0])
                title = old.model_copy(
                    update={
                        "name": name.strip(),
                        "owner": owner or old.owner,
                        "aliases": _merge(old.aliases, aliases),
                        "hashtags": _merge(old.hashtags, tags),
                        "description": description or old.description,
                        "talents": _merge(old.talents, talents),
                    }
                )
            else:
                title = Title(
                    id=tid,
                    name=name.strip(),
                    owner=owner,
                    aliases=_merge([], aliases),
                    hashtags=_merge([], tags),
                    description=description,
                    talents=_merge([], talents),
                )
            db.execute(
                "INSERT INTO titles (id, data) VALUES (?, ?)"
                " ON CONFLICT(id) DO UPDATE SET data = excluded.data",
                (tid, title.model_dump_json()),
            )
        return title

    def titles(self) -> list[Title]:
        with self._db() as db:
            rows = db.execute("SELECT data FROM titles ORDER BY id").fetchall()
        return [Title.model_validate_json(r[0]) for r in rows]

    def get_title(self, title_id: str) -> Title | None:
        """The title with this id (or name: it is slugified), ``None`` if there is none."""
        with self._db() as db:
            row = db.execute(
                "SELECT data FROM titles WHERE id IN (?, ?)", (title_id, slugify(title_id))
            ).fetchone()
        return Title.model_validate_json(row[0]) if row else None

    def remove_title(self, title_id: str) -> int:
        """Remove a title, its assets, their index entries and unshared files.

        Returns the number of assets removed; ``InputError`` for an unknown title.
        """
        title = self.get_title(title_id)
        if title is None:
            raise InputError(f"no title {title_id!r} in the catalog")
        with self._locked():
            self._load_indexes()
            rows = [r for r in self._asset_rows() if r[1].title_id == title.id]
            nums = [num for num, _ in rows]
            for idx in self._indexes.values():
                idx.remove(nums)
            with self._db() as db:
                db.execute("DELETE FROM assets WHERE title_id = ?", (title.id,))
                db.execute("DELETE FROM titles WHERE id = ?", (title.id,))
                still_used = {r[0] for r in db.execute("SELECT DISTINCT sha256 FROM assets")}
            for _, asset in rows:
                if asset.sha256 not in still_used:
                    Path(asset.path).unlink(missing_ok=True)
            self._save_indexes()
        return len(rows)

    # Assets ----------------------------------------------------------------------------------

    def _asset_rows(self, title_id: str | None = None) -> list[tuple[int, Asset]]:
        sql = "SELECT num, data FROM assets"
        args: tuple[str, ...] = ()
        if title_id is not None:
            sql += " WHERE title_id = ?"
            args = (title_id,)
        with self._db() as db:
            rows = db.execute(sql + " ORDER BY num", args).fetchall()
        out = []
        for n, d in rows:
            asset = Asset.model_validate_json(d)
            # Paths are stored relative to the catalog so a data home can move.
            asset.path = str(self.root / asset.path)
            out.append((int(n), asset))
        return out

    def assets(self, title_id: str | None = None) -> list[Asset]:
        """Assets of one title, or of all titles."""
        return [a for _, a in self._asset_rows(title_id)]

    def asset_map(self) -> dict[int, Asset]:
        """Assets by the integer numbers signal indexes know them by."""
        return dict(self._asset_rows())

    def is_empty(self) -> bool:
        """True when there is nothing to match against (no reference assets)."""
        with self._db() as db:
            return db.execute("SELECT 1 FROM assets LIMIT 1").fetchone() is None

    def _store_file(self, src: Path, sha: str) -> Path:
        dst = self.files_dir / sha[:2] / f"{sha}{src.suffix.lower()}"
        if not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_name(f"{dst.name}.{os.getpid()}.tmp")
            shutil.copyfile(src, tmp)
            tmp.replace(dst)
        return dst

    def add_assets(
        self,
        title_id: str,
        paths: Iterable[Path | str],
        kind: AssetKind | str = "auto",
        talent: str | None = None,
    ) -> list[Asset]:
        """Add reference files to a title and to every signal's index, incrementally.

        Files are copied into the catalog by content, so the originals may move. ``kind``
        ``auto`` tells stills (image) from videos and audio-only files (audio). Re-adding a
        file the title already has returns the existing asset and changes nothing. All paths
        are checked before anything is added: ``InputError`` for an unknown title or a
        missing or non-media file.
        """
        title = self.get_title(title_id)
        if title is None:
            raise InputError(f"no title {title_id!r} in the catalog: add it first")
        if kind != "auto":
            try:
                kind = AssetKind(kind)
            except ValueError:
                raise InputError(f"unknown asset kind {kind!r}") from None
        media = [(Path(p), probe(Path(p))) for p in paths]
        out: list[Asset] = []
        with self._locked():
            self._load_indexes()
            existing = {a.sha256: a for _, a in self._asset_rows(title.id)}
            changed = False
            for path, m in media:
                if m.sha256 in existing:
                    out.append(existing[m.sha256])
                    continue
                if kind == "auto":
                    if m.duration == 0.0 and m.fps is None:
                        asset_kind = AssetKind.IMAGE
                    elif m.video_codec:
                        asset_kind = AssetKind.VIDEO
                    else:
                        asset_kind = AssetKind.AUDIO
                else:
                    asset_kind = AssetKind(kind)
                stored = self._store_file(path, m.sha256)
                asset = Asset(
                    id=f"{title.id}-{m.sha256[:12]}",
                    title_id=title.id,
                    kind=asset_kind,
                    path=str(stored.relative_to(self.root)),
                    sha256=m.sha256,
                    name=path.name,
                    duration=m.duration,
                    talent_id=slugify(talent) if talent else None,
                )
                with self._db() as db:
                    cur = db.execute(
                        "INSERT INTO assets (id, title_id, sha256, data) VALUES (?, ?, ?, ?)",
                        (asset.id, title.id, m.sha256, asset.model_dump_json()),
                    )
                    num = int(cur.lastrowid or 0)
                asset.path = str(stored)
                self._index_asset(num, asset)
                existing[m.sha256] = asset
                out.append(asset)
                changed = True
            if changed:
                self._save_indexes()
        if talent:
            self.add_title(title.name, talents=[talent])
        return out

    def _index_asset(self, num: int, asset: Asset) -> None:
        wanted = [s for s in self.signals if asset.kind in s.asset_kinds]
        if not wanted:
            return
        fps = fingerprint_file(asset.path, self.settings, asset.sha256, role="reference")
        for s in wanted:
            self._indexes[s.name].add(num, fps.signals[s.name])

    def build(self) -> dict[str, int]:
        """Rebuild every index from the stored assets (fingerprints come from the cache).

        Returns counts: titles, assets, and entries per signal index.
        """
        with self._locked():
            self._indexes = {s.name: s.new_index() for s in self.signals}
            rows = self._asset_rows()
            for num, asset in rows:
                self._index_asset(num, asset)
            self._save_indexes()
            counts = {"titles": len(self.titles()), "assets": len(rows)}
            counts.update({name: len(idx) for name, idx in self._indexes.items()})
        return counts
