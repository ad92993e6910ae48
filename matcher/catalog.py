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
from matcher.signals import signal_class
from matcher.signals.base import Fingerprint, Signal, SignalIndex, TextInput
from reelwatch.errors import InputError
from reelwatch.models import (
    Asset,
    AssetKind,
    Media,
    Title,
    TitlePolicy,
    normalize_hashtag,
    slugify,
)
from reelwatch.settings import Settings

log = logging.getLogger(__name__)

MANIFEST_FORMAT = 1

_Stamp = tuple[int, int, int]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS titles (
    id TEXT PRIMARY KEY,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS title_nums (
    num INTEGER PRIMARY KEY AUTOINCREMENT,
    title_id TEXT NOT NULL UNIQUE
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


def _asset_kind(media: Media) -> AssetKind:
    """What ``kind="auto"`` makes of a file: a still, a video, or audio only."""
    if media.duration == 0.0 and media.fps is None:
        return AssetKind.IMAGE
    return AssetKind.VIDEO if media.video_codec else AssetKind.AUDIO


def title_card(title: Title) -> TextInput:
    """The words a title is known by, as text signals index them."""
    return TextInput(
        text=title.description,
        hashtags=tuple(title.hashtags),
        names=(title.name, *title.aliases),
    )


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
        self._loaded_stamp: _Stamp | None = None
        self._asset_cache: tuple[_Stamp | None, dict[int, Asset]] | None = None
        self._title_cache: tuple[_Stamp | None, dict[int, Title]] | None = None
        self._lock_depth = 0
        with self._db() as db:
            db.executescript(_SCHEMA)
            # Catalogs made before text signals have titles without numbers.
            db.execute("INSERT OR IGNORE INTO title_nums (title_id) SELECT id FROM titles")

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

    def _stamp(self) -> _Stamp | None:
        """Which manifest is on disk, for one ``stat``: every change to the assets or indexes
        rewrites it. The manifest is replaced by a new file, so its inode changes even when
        two writes fall in one tick of the file system's clock."""
        try:
            st = self.manifest_path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_ino, st.st_size

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
        old: Title | None = None
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
            db.execute("INSERT OR IGNORE INTO title_nums (title_id) VALUES (?)", (tid,))
        if row is None or title != old:
            self._index_titles([title])
        return title

    def _title_signals(self) -> list[Signal]:
        return [s for s in self.signals if s.references == "titles"]

    def _index_titles(self, titles: list[Title]) -> None:
        """(Re-)index the cards of ``titles`` in every text signal's index."""
        signals = self._title_signals()
        if not signals or not titles:
            return
        nums = self._title_nums()
        with self._locked():
            self._load_indexes()
            for s in signals:
                idx = self._indexes[s.name]
                for title in titles:
                    num = nums[title.id]
                    idx.remove([num])
                    idx.add(num, s.fingerprint_text(title_card(title)))
            self._save_indexes()

    def _title_nums(self) -> dict[str, int]:
        with self._db() as db:
            return {tid: int(n) for n, tid in db.execute("SELECT num, title_id FROM title_nums")}

    def title_map(self) -> dict[int, Title]:
        """Titles by the numbers text signals' indexes know them by (cached like
        :meth:`asset_map`)."""
        stamp = self._stamp()
        if self._title_cache is None or self._title_cache[0] != stamp:
            with self._db() as db:
                rows = db.execute(
                    "SELECT n.num, t.data FROM title_nums n JOIN titles t ON t.id = n.title_id"
                ).fetchall()
            self._title_cache = (stamp, {int(n): Title.model_validate_json(d) for n, d in rows})
        return self._title_cache[1]

    def set_policy(self, title_id: str, policy: TitlePolicy) -> Title:
        """Replace a title's match policy; ``InputError`` for an unknown title or signal."""
        title = self.get_title(title_id)
        if title is None:
            raise InputError(f"no title {title_id!r} in the catalog")
        for name in policy.signals:
            signal_class(name)
        title = title.model_copy(update={"policy": policy})
        with self._locked(), self._db() as db:
            db.execute(
                "UPDATE titles SET data = ? WHERE id = ?", (title.model_dump_json(), title.id)
            )
        self._touch()
        return title

    def _touch(self) -> None:
        """Replace the manifest with an identical copy, so long-lived matchers (which watch
        its inode, see :meth:`_stamp`) notice a change to the titles; indexes are untouched."""
        with self._locked():
            before = self._stamp()
            tmp = self.manifest_path.with_name(f"manifest.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self._read_manifest(), indent=2))
            tmp.replace(self.manifest_path)
            if self._loaded_stamp == before:  # what is loaded is still what is on disk
                self._loaded_stamp = self._stamp()

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
            rows = self._asset_rows(title.id)
            nums = [num for num, _ in rows]
            title_num = self._title_nums().get(title.id)
            for s in self.signals:
                idx = self._indexes[s.name]
                if s.references == "titles":
                    idx.remove([title_num] if title_num is not None else [])
                else:
                    idx.remove(nums)
            with self._db() as db:
                db.execute("DELETE FROM assets WHERE title_id = ?", (title.id,))
                db.execute("DELETE FROM titles WHERE id = ?", (title.id,))
                db.execute("DELETE FROM title_nums WHERE title_id = ?", (title.id,))
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
        """Assets by the integer numbers signal indexes know them by.

        Read once per catalog change (see :meth:`_stamp`), so a long-lived matcher pays for
        it only when another process adds or removes assets. Do not modify the result.
        """
        stamp = self._stamp()  # before reading: a newer table than stamp is reloaded later
        if self._asset_cache is None or self._asset_cache[0] != stamp:
            self._asset_cache = (stamp, dict(self._asset_rows()))
        return self._asset_cache[1]

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
        are probed before anything is added: ``InputError`` for an unknown title or a
        missing or non-media file. A file that probes but does not decode (``InputError``
        too) is not added; the files before it stay added.
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
            try:
                for path, m in media:
                    if m.sha256 in existing:
                        out.append(existing[m.sha256])
                        continue
                    asset_kind = _asset_kind(m) if kind == "auto" else AssetKind(kind)
                    # Fingerprint first: a file that probes but will not decode adds nothing.
                    fingerprints = self._fingerprints(path, m.sha256, asset_kind)
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
                    for name, fp in fingerprints.items():
                        self._indexes[name].add(num, fp)
                    existing[m.sha256] = asset
                    out.append(asset)
                    changed = True
            finally:
                if changed:  # what was added before a failure stays added, on disk too
                    self._save_indexes()
        if talent:
            self.add_title(title.name, talents=[talent])
        return out

    def _fingerprints(self, path: Path, sha: str, kind: AssetKind) -> dict[str, Fingerprint]:
        """Reference fingerprints of a file for the signals that index assets of ``kind``."""
        wanted = [s for s in self.signals if s.references == "assets" and kind in s.asset_kinds]
        if not wanted:
            return {}
        fps = fingerprint_file(path, self.settings, sha, role="reference", signals=wanted)
        if kind == AssetKind.FACE and not len(fps.signals.get("face", {}).get("descriptors", [])):
            raise InputError(
                f"{path.name}: no face found (a face asset needs a frontal face of at least "
                f"{self.settings.matcher.face.min_face_px} px)"
            )
        return {s.name: fps.signals[s.name] for s in wanted}

    def build(self) -> dict[str, int]:
        """Rebuild every index from the stored assets (fingerprints come from the cache).

        Returns counts: titles, assets, and entries per signal index.
        """
        with self._locked():
            self._indexes = {s.name: s.new_index() for s in self.signals}
            rows = self._asset_rows()
            for num, asset in rows:
                for name, fp in self._fingerprints(
                    Path(asset.path), asset.sha256, asset.kind
                ).items():
                    self._indexes[name].add(num, fp)
            titles = self.titles()
            nums = self._title_nums()
            for s in self._title_signals():
                for title in titles:
                    self._indexes[s.name].add(nums[title.id], s.fingerprint_text(title_card(title)))
            self._save_indexes()
            counts = {"titles": len(titles), "assets": len(rows)}
            counts.update({name: len(idx) for name, idx in self._indexes.items()})
        return counts
