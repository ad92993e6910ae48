"""The studio's IP catalog: titles, their reference assets, and every signal's index.

Layout under ``settings.catalog_dir``::

    catalog.db              SQLite: titles and assets (the source of truth)
    files/<sha[:2]>/<sha>.<ext>   reference files, content-addressed copies
    index/                  one index per signal (``copy.faissb`` + reference times)
    manifest.json           which signal versions built the indexes, and their sizes

Adding assets fingerprints only the new files and adds them to the indexes in place. An add
of several files keeps every usable one: each file that cannot be used is refused on its own,
with why (:class:`Refusal`), before anything of it is stored, so a refused file leaves no copy,
row or index entry behind. Tracks that do not decode are skipped and noted on the asset
(:attr:`~reelwatch.models.Asset.notes`). A face gallery (stills of one talent) chooses the
talent in each still through the signals' :meth:`~matcher.signals.base.Signal.subject_boxes`
(or the user's boxes), stores the box on the asset and indexes only that subject. The
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
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from matcher.decode import frame_size, is_still, probe
from matcher.fingerprint import Fingerprints, enabled_signals, fingerprint_file
from matcher.signals import signal_class
from matcher.signals.base import (
    TALENT,
    Box,
    Fingerprint,
    Signal,
    SignalIndex,
    TextInput,
    talent_array,
)
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


@dataclass(frozen=True)
class Refusal:
    """A file an add did not take, and why (one line that names the file)."""

    path: Path
    reason: str


class AddedAssets(list[Asset]):
    """What :meth:`Catalog.add_assets` left in the title, in the order given: new assets and
    those the title already had. :attr:`refused` lists the files that were not added."""

    def __init__(self, assets: Iterable[Asset] = (), refused: Iterable[Refusal] = ()) -> None:
        super().__init__(assets)
        self.refused: list[Refusal] = list(refused)


class AssetsRefused(InputError):
    """No file of an add could be used; :attr:`refused` says why for each. With one file the
    message is its reason alone."""

    def __init__(self, refused: Sequence[Refusal]) -> None:
        self.refused = list(refused)
        if len(self.refused) == 1:
            message = self.refused[0].reason
        else:
            message = "no file added: " + "; ".join(r.reason for r in self.refused)
        super().__init__(message)


def to_frame_box(box: Box, media: Media, max_side: int) -> Box:
    """A box in pixels of the file (as shown) -> pixels of its decoded frames."""
    w, h = media.width or 1, media.height or 1
    fw, fh = frame_size(w, h, max_side)
    x0, y0, x1, y1 = box
    return (
        round(x0 * fw / w),
        round(y0 * fh / h),
        max(round(x0 * fw / w) + 1, round(x1 * fw / w)),
        max(round(y0 * fh / h) + 1, round(y1 * fh / h)),
    )


def to_file_box(box: Box, media: Media, max_side: int) -> Box:
    """A box in pixels of decoded frames -> pixels of the file (as shown)."""
    w, h = media.width or 1, media.height or 1
    fw, fh = frame_size(w, h, max_side)
    x0, y0, x1, y1 = box
    return (
        max(0, round(x0 * w / fw)),
        max(0, round(y0 * h / fh)),
        min(w, round(x1 * w / fw)),
        min(h, round(y1 * h / fh)),
    )


def _box_problem(box: Box, media: Media) -> str | None:
    x0, y0, x1, y1 = box
    w, h = media.width or 0, media.height or 0
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        return f"face box {x0},{y0},{x1},{y1} is not inside the {w}x{h} photo"
    return None


@dataclass
class _Pending:
    """A file of an add that fingerprinted, waiting for its subject and its place."""

    path: Path
    media: Media
    kind: AssetKind
    fps: Fingerprints
    hint: Box | None = None
    box: Box | None = None
    """The subject, in file pixels (what the asset stores)."""
    notes: list[str] = field(default_factory=list)


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
        """Save every index, first re-made as ``matcher.index`` asks (see
        :meth:`SignalIndex.settle`: an approximate one is trained here, on what it holds)."""
        signals: dict[str, dict[str, object]] = {}
        for s in self.signals:
            idx = self._indexes.get(s.name)
            if idx is None:
                continue
            if idx.settle(self.settings.matcher.index):
                log.info("the %s index is now %s (%d entries)", s.name, idx.kind(), len(idx))
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
        wanted = self.settings.matcher.index
        for name, idx in self._indexes.items():
            if idx.kind() != idx.target_kind(wanted):
                log.warning(
                    "the %s index is %s but matcher.index asks for %s: it serves as it is "
                    "until `reelwatch catalog build` (or the next catalog change) re-makes it",
                    name,
                    idx.kind(),
                    wanted,
                )

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
        face_boxes: Mapping[Path, Box] | Mapping[str, Box] | None = None,
    ) -> AddedAssets:
        """Add reference files to a title and to every signal's index, incrementally.

        Files are copied into the catalog by content, so the originals may move. ``kind``
        ``auto`` tells stills (image) from videos and audio-only files (audio). Re-adding a
        file the title already has returns the existing asset and changes nothing.

        Every usable file is added; a file that cannot be used (missing, not media, not
        decodable, no face in a face asset, refused by a signal's subject choice) is listed
        in the result's ``refused`` with its reason and leaves nothing behind. When no file
        could be added at all, :class:`AssetsRefused` (an ``InputError``) is raised instead.
        ``InputError`` too for an unknown title or kind.

        Face assets (the talent's gallery) go through each signal's
        :meth:`~matcher.signals.base.Signal.subject_boxes`, together with the talent's face
        assets already in the title, so a group photo keeps the face that agrees with the
        rest. ``face_boxes`` maps a path (as given) to where the talent is, in pixels of the
        photo as shown (x0, y0, x1, y1); the chosen box is stored on the asset.
        """
        title = self.get_title(title_id)
        if title is None:
            raise InputError(f"no title {title_id!r} in the catalog: add it first")
        if kind != "auto":
            try:
                kind = AssetKind(kind)
            except ValueError:
                raise InputError(f"unknown asset kind {kind!r}") from None
        files = [Path(p) for p in paths]
        hints = {Path(p).resolve(): box for p, box in (face_boxes or {}).items()}
        strays = set(hints) - {p.resolve() for p in files}
        if strays:
            names = ", ".join(sorted(p.name for p in strays))
            raise InputError(f"a face box is given for {names}, which is not among the files")
        refused: list[Refusal] = []
        probed: list[tuple[Path, Media]] = []
        for p in files:
            try:
                probed.append((p, probe(p, limits=self.settings.media_limits("reference"))))
            except InputError as exc:
                refused.append(Refusal(p, str(exc)))
        out: dict[str, Asset] = {}
        """Assets of the add by sha256."""
        talent_id = slugify(talent) if talent else None
        with self._locked():
            self._load_indexes()
            existing = {a.sha256: a for _, a in self._asset_rows(title.id)}
            pending: dict[str, _Pending] = {}
            for path, m in probed:
                if m.sha256 in existing:
                    out[m.sha256] = existing[m.sha256]
                    continue
                if m.sha256 in pending:  # the same file twice in one add
                    continue
                asset_kind = _asset_kind(m) if kind == "auto" else AssetKind(kind)
                hint = hints.get(path.resolve())
                problem = _box_problem(hint, m) if hint is not None else None
                if hint is not None and asset_kind != AssetKind.FACE:
                    problem = "a face box applies to face assets (give --talent or --kind face)"
                if problem:
                    refused.append(Refusal(path, f"{path.name}: {problem}"))
                    continue
                # Fingerprint first: a file that probes but will not decode adds nothing.
                try:
                    fps = self._fingerprint(path, m.sha256, asset_kind)
                except InputError as exc:
                    refused.append(Refusal(path, str(exc)))
                    continue
                if asset_kind == AssetKind.FACE and self._no_face(fps):
                    refused.append(
                        Refusal(
                            path,
                            f"{path.name}: no face found (a face asset needs a face of at least "
                            f"{self.settings.matcher.face.min_face_px} px)",
                        )
                    )
                    continue
                notes = [f"{track} skipped: {why}" for track, why in fps.skipped.items()]
                pending[m.sha256] = _Pending(path, m, asset_kind, fps, hint=hint, notes=notes)
            faces = [p for p in pending.values() if p.kind == AssetKind.FACE]
            if faces:
                refused.extend(self._choose_subjects(title.id, talent_id, faces))
            added = False
            try:
                for item in pending.values():
                    if any(r.path == item.path for r in refused):
                        continue
                    out[item.media.sha256] = self._store_asset(title, item, talent_id)
                    added = True
            finally:
                if added:  # what was added before a failure stays added, on disk too
                    self._save_indexes()
        result = AddedAssets([out[m.sha256] for _, m in probed if m.sha256 in out], refused)
        if not result and refused:
            raise AssetsRefused(refused)
        if talent and added:
            self.add_title(title.name, talents=[talent])
        return result

    def _store_asset(self, title: Title, item: _Pending, talent_id: str | None) -> Asset:
        """Copy, record and index one accepted file (under the lock, indexes loaded)."""
        m = item.media
        stored = self._store_file(item.path, m.sha256)
        asset = Asset(
            id=f"{title.id}-{m.sha256[:12]}",
            title_id=title.id,
            kind=item.kind,
            path=str(stored.relative_to(self.root)),
            sha256=m.sha256,
            name=item.path.name,
            duration=m.duration,
            talent_id=talent_id,
            notes=item.notes,
            face_box=item.box,
        )
        with self._db() as db:
            cur = db.execute(
                "INSERT INTO assets (id, title_id, sha256, data) VALUES (?, ?, ?, ?)",
                (asset.id, title.id, m.sha256, asset.model_dump_json()),
            )
            num = int(cur.lastrowid or 0)
        asset.path = str(stored)
        for name, fp in self._reference_fingerprints(
            item.fps, item.kind, item.box, talent_id
        ).items():
            self._indexes[name].add(num, fp)
        return asset

    def _choose_subjects(
        self, title_id: str, talent_id: str | None, faces: list[_Pending]
    ) -> list[Refusal]:
        """Set each face file's subject box through the signals' ``subject_boxes``; the
        refusals of files a signal will not take.

        The talent's face assets already in the title come first, with their stored boxes as
        hints, so new stills are judged against the whole gallery. Of several signals with an
        opinion, the first (in settings order) to give a box sets it: one box per asset,
        which every signal is then restricted to, at add and at rebuild alike."""
        side = self._decoded_side
        gallery: list[tuple[Fingerprints, Box | None]] = []
        for _, asset in self._asset_rows(title_id):
            if asset.kind == AssetKind.FACE and asset.talent_id == talent_id:
                try:
                    fps = self._fingerprint(Path(asset.path), asset.sha256, asset.kind)
                except InputError as exc:
                    log.warning(
                        "gallery asset %s left out of the subject choice: %s", asset.id, exc
                    )
                    continue
                box = asset.face_box
                gallery.append(
                    (fps, to_frame_box(box, fps.media, side(fps.media)) if box else None)
                )
        refused: list[Refusal] = []
        for s in self._wanted(AssetKind.FACE):
            live = [f for f in faces if not any(r.path == f.path for r in refused)]
            if not live:
                break
            prints = [g.signals[s.name] for g, _ in gallery] + [f.fps.signals[s.name] for f in live]
            hints = [h for _, h in gallery] + [
                to_frame_box(f.hint, f.media, side(f.media)) if f.hint else None for f in live
            ]
            chosen = s.subject_boxes(prints, hints)[len(gallery) :]
            for item, choice in zip(live, chosen, strict=True):
                if isinstance(choice, str):
                    refused.append(Refusal(item.path, f"{item.path.name}: {choice}"))
                elif choice is not None and item.box is None:
                    item.box = to_file_box(choice, item.media, side(item.media))
        for item in faces:  # a user's box stands even when no signal returns one
            if item.box is None and item.hint is not None:
                item.box = item.hint
        return refused

    def _decoded_side(self, media: Media) -> int:
        """The longer side decoded frames of ``media`` have (stills are decoded larger)."""
        m = self.settings.matcher
        return m.still_max_side if is_still(media) else m.decode_max_side

    def _wanted(self, kind: AssetKind) -> list[Signal]:
        return [s for s in self.signals if s.references == "assets" and kind in s.asset_kinds]

    def _fingerprint(self, path: Path, sha: str, kind: AssetKind) -> Fingerprints:
        """Reference fingerprints of a file for the signals that index assets of ``kind``."""
        wanted = self._wanted(kind)
        return fingerprint_file(path, self.settings, sha, role="reference", signals=wanted)

    def _no_face(self, fps: Fingerprints) -> bool:
        face = fps.signals.get("face")
        return face is not None and not len(face.get("descriptors", []))

    def _reference_fingerprints(
        self, fps: Fingerprints, kind: AssetKind, box: Box | None, talent_id: str | None
    ) -> dict[str, Fingerprint]:
        """What each signal indexes of an asset: its fingerprint, narrowed to the stored
        subject ``box`` (file pixels) when there is one, with the asset's talent (``TALENT``)
        so an index can tell a talent's own photos from other people's."""
        frame_box = to_frame_box(box, fps.media, self._decoded_side(fps.media)) if box else None
        out: dict[str, Fingerprint] = {}
        for s in self._wanted(kind):
            fp = s.restrict(fps.signals[s.name], frame_box) if frame_box else fps.signals[s.name]
            out[s.name] = {**fp, TALENT: talent_array(talent_id)} if talent_id else fp
        return out

    def discard_empty_title(self, title_id: str) -> bool:
        """Remove a title that has no assets (one made for an add that added nothing); a
        title with assets stays. Returns whether it was removed."""
        with self._locked():
            if self.get_title(title_id) is None or self._asset_rows(title_id):
                return False
            self.remove_title(title_id)
            return True

    def build(self) -> dict[str, int]:
        """Rebuild every index from the stored assets (fingerprints come from the cache).

        Returns counts: titles, assets, and entries per signal index.
        """
        with self._locked():
            self._indexes = {s.name: s.new_index() for s in self.signals}
            rows = self._asset_rows()
            for num, asset in rows:
                fps = self._fingerprint(Path(asset.path), asset.sha256, asset.kind)
                for name, fp in self._reference_fingerprints(
                    fps, asset.kind, asset.face_box, asset.talent_id
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
