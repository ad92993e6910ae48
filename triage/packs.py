"""Evidence packs: one match's proof in a folder or zip that anyone can check.

A pack is made only from what was stored when the post was captured (store records and files
under the data home), never from the network, so a post deleted since can still be proven.
Its layout::

    media/<sha256>.<ext>     the downloaded media, named by its content
    capture/platform.json    the platform's raw JSON with capture time, URL, HTTP status,
                             user agent, headers, method and query
    capture/<screenshot>     the post page's screenshot, when one was taken
    evidence/...             every segment's evidence frames and face crops
    reference.json           the title and the identity of each reference asset it matched
    match.json, post.json, media.json   the records as stored
    summary.html             the same in words, printable to PDF, images by relative path
    manifest.json            every file's path, sha256 and size, format and versions
    manifest.sha256          the sha256 of manifest.json (``sha256sum -c`` reads it)

Export refuses rather than pack a file that is not what was recorded: a media file whose
sha256 is no longer the one it was stored under, or an evidence file whose sha256 or size is
not the one on its segment, stops the export with an :class:`~reelwatch.errors.InputError`
naming the file (``reelwatch verify`` shows every such difference). A pack only ever holds
files that are what was captured; a pack folder or zip that exists is never written into.

:func:`verify_pack` checks a folder or a zip without extracting anything: the manifest's own
hash, each file's size and sha256, files missing and files the manifest does not name, media
whose content is not the sha256 in its name, and it refuses paths that would leave the pack
(``../x`` in the manifest, ``../../x`` as a zip member).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

import jinja2

import reelwatch
from reelwatch.digest import sha256_file
from reelwatch.errors import InputError
from reelwatch.models import Match, Media, Post, utcnow
from reelwatch.settings import Settings
from triage.files import media_file, resolve_under
from triage.stores.base import Store

PACK_FORMAT = 1
"""Version of the pack layout; :func:`verify_pack` reads this one and older."""
MANIFEST = "manifest.json"
MANIFEST_HASH = "manifest.sha256"
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
"""A manifest larger than this is not read (a hostile pack cannot make verify eat memory)."""
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
_CHUNK = 1024 * 1024
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_UNSAFE_NAME_RE = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_NAME = 150
_STORED_SUFFIXES = frozenset({".mp4", ".webm", ".mkv", ".mov", ".m4a", ".jpg", ".jpeg", ".png"})
"""Already compressed: stored in a zip as they are."""


@dataclass
class PackCheck:
    """What :func:`verify_pack` found: ``ok`` when every file is the one the manifest names."""

    path: Path
    ok: bool
    files: int
    """Files the manifest lists that were checked."""
    problems: list[str] = field(default_factory=list)
    """One line per problem, naming the file."""

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "ok": self.ok,
            "files": self.files,
            "problems": self.problems,
        }


def pack_name(match_id: str) -> str:
    """A file name for a match id: ``replica:7300:starfall`` -> ``replica_7300_starfall``.

    Colons become ``_``; when anything else must be replaced (ids are platforms' data and may
    hold slashes, dots or line breaks) or the id is very long, a short hash of the id is added
    so two ids never share a name by accident."""
    plain = match_id.replace(":", "_")
    cleaned = _UNSAFE_NAME_RE.sub("_", plain).strip("._") or "match"
    if cleaned != plain or len(cleaned) > _MAX_NAME:
        digest = hashlib.sha256(match_id.encode("utf-8", "surrogatepass")).hexdigest()[:10]
        cleaned = f"{cleaned[:_MAX_NAME]}-{digest}"
    return cleaned


def _safe_part(part: str) -> str:
    return _UNSAFE_NAME_RE.sub("_", part).strip(".") or "_"


# Export ------------------------------------------------------------------------------------


@dataclass
class _File:
    """One file of a pack as written: where in the pack, its sha256 and size."""

    path: str
    sha256: str
    bytes: int


class _Writer:
    """Writes pack files into a folder or a zip, hashing each as it goes."""

    def __init__(self, target: Path, *, as_zip: bool, root: str) -> None:
        self.as_zip = as_zip
        self.root = root
        self.files: list[_File] = []
        self.zip: zipfile.ZipFile | None = None
        if as_zip:
            self.zip = zipfile.ZipFile(target, "w", allowZip64=True)
        self.folder = target

    @contextmanager
    def _open(self, rel: str) -> Iterator[IO[bytes]]:
        if self.zip is not None:
            info = zipfile.ZipInfo(f"{self.root}/{rel}", date_time=utcnow().timetuple()[:6])
            stored = PurePosixPath(rel).suffix.lower() in _STORED_SUFFIXES
            info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            with self.zip.open(info, "w", force_zip64=True) as f:
                yield f
        else:
            dest = self.folder / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            with dest.open("xb") as f:
                yield f

    def copy(self, rel: str, src: Path) -> _File:
        digest = hashlib.sha256()
        size = 0
        with src.open("rb") as inp, self._open(rel) as out:
            while chunk := inp.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
        written = _File(rel, digest.hexdigest(), size)
        self.files.append(written)
        return written

    def write(self, rel: str, data: bytes, *, listed: bool = True) -> _File:
        with self._open(rel) as out:
            out.write(data)
        written = _File(rel, hashlib.sha256(data).hexdigest(), len(data))
        if listed:
            self.files.append(written)
        return written

    def close(self) -> None:
        if self.zip is not None:
            self.zip.close()


def _dump(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n").encode()


def _shown(settings: Settings, path: Path) -> str:
    return str(path.relative_to(settings.home)) if path.is_relative_to(settings.home) else str(path)


def _under_home(settings: Settings, rel: str) -> Path | None:
    """A stored relative path (evidence, screenshot) as a file inside the data home."""
    candidate = Path(rel)
    if candidate.is_absolute():
        try:
            rel = str(candidate.relative_to(settings.home))
        except ValueError:
            return None
    return resolve_under(settings.home, rel)


def _evidence_pack_path(settings: Settings, rel: str) -> str:
    """Where a stored evidence file goes in the pack: ``evidence/`` plus its place under the
    evidence folder, each part made safe."""
    full = Path(rel) if Path(rel).is_absolute() else settings.home / rel
    try:
        parts = full.relative_to(settings.evidence_dir).parts
    except ValueError:
        parts = ("other", full.name)
    return "/".join(["evidence", *(_safe_part(p) for p in parts)])


def _asset_refs(match: Match) -> list[str]:
    """The reference assets the segments name; text signals name the title itself
    (``title:<id>``), which is not an asset."""
    refs = dict.fromkeys(s.ref_asset for s in match.segments)
    return [r for r in refs if not r.startswith("title:")]


def _reference_json(match: Match) -> dict[str, Any]:
    """The title and the reference assets the segments name, as the catalog described them
    when the match was made (kept on the match: the pack needs no catalog)."""
    work = match.work
    refs = _asset_refs(match)
    if work is None:
        return {
            "title": {"id": match.title_id, "name": match.title, "owner": ""},
            "note": "matched before reelwatch kept the reference's identity on the match",
            "assets": [],
            "not_recorded": refs,
        }
    known = {a.id for a in work.assets}
    return {
        "title": {
            "id": match.title_id,
            "name": match.title,
            "owner": work.owner,
            "description": work.description,
            "aliases": work.aliases,
        },
        "assets": [a.model_dump(mode="json") for a in work.assets],
        "not_recorded": [r for r in refs if r not in known],
    }


def _platform_json(post: Post) -> dict[str, Any]:
    p = post.provenance
    return {
        "post_url": post.url,
        "captured_at": p.captured_at.isoformat(),
        "source_url": p.source_url,
        "status": p.status,
        "user_agent": p.user_agent,
        "headers": p.headers,
        "method": p.method,
        "query": p.query,
        "screenshot": p.screenshot,
        "raw": p.raw,
    }


def _reserve(out_dir: Path, name: str) -> Path:
    """A fresh scratch path in ``out_dir`` for a pack being written."""
    fd, scratch = tempfile.mkstemp(prefix=f".{name}.", suffix=".partial", dir=out_dir)
    os.close(fd)
    os.unlink(scratch)
    return Path(scratch)


def _publish(scratch: Path, target: Path, *, as_zip: bool) -> None:
    """Move a finished pack to its name, never over an existing pack."""
    try:
        if as_zip:
            os.link(scratch, target)  # fails if the target exists
            scratch.unlink()
        else:
            target.mkdir()  # fails if the target exists; renaming onto an empty folder is safe
            os.rename(scratch, target)
    except FileExistsError:
        raise InputError(
            f"{target} already exists: a pack is never written into another (remove it or "
            "choose another --out)"
        ) from None


def _discard(scratch: Path) -> None:
    if scratch.is_dir():
        shutil.rmtree(scratch, ignore_errors=True)
    else:
        scratch.unlink(missing_ok=True)


def export_pack(
    settings: Settings, store: Store, match_id: str, out_dir: Path, *, as_zip: bool = False
) -> Path:
    """Write the evidence pack of one match to ``out_dir/<pack name>`` (a folder) or
    ``out_dir/<pack name>.zip``; returns that path.

    ``InputError`` for an unknown match, for a pack that exists already, and for a stored file
    that is not what its record says (named, with what was recorded and found): nothing is
    left behind then."""
    match = store.get_match(match_id)
    if match is None:
        raise InputError(f"no match {match_id!r} (see `reelwatch matches list`)")
    name = pack_name(match.id)
    target = out_dir / (f"{name}.zip" if as_zip else name)
    if target.exists() or target.is_symlink():
        raise InputError(
            f"{target} already exists: a pack is never written into another (remove it or "
            "choose another --out)"
        )
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create {out_dir}: {exc.strerror or exc}") from None
    post = store.get_post(match.post_key)
    sha = match.media_sha256 or (post.media_sha256 if post else None)
    media = store.get_media(sha) if sha else None

    scratch = _reserve(out_dir, name)
    if not as_zip:
        scratch.mkdir()
    writer = _Writer(scratch, as_zip=as_zip, root=name)
    try:
        problems: list[str] = []
        notes: list[str] = []
        media_rel = _pack_media(settings, writer, sha, media, problems, notes)
        shot_rel = _pack_screenshot(settings, writer, post, problems)
        evidence = _pack_evidence(settings, writer, match, problems, notes)
        if problems:
            raise InputError(
                f"cannot export a pack of {match.id}: "
                + "; ".join(problems)
                + " (see `reelwatch verify`)"
            )
        if post is None:
            notes.append("no post record: post.json and capture/platform.json are left out")
        else:
            writer.write("capture/platform.json", _dump(_platform_json(post)))
            writer.write("post.json", _dump(post.model_dump(mode="json")))
        writer.write("match.json", _dump(match.model_dump(mode="json")))
        if media is not None:
            writer.write("media.json", _dump(media.model_dump(mode="json")))
        reference = _reference_json(match)
        writer.write("reference.json", _dump(reference))
        created = utcnow()
        summary = _render_summary(
            match=match,
            post=post,
            media=media,
            media_rel=media_rel,
            screenshot=shot_rel,
            evidence=evidence,
            reference=reference,
            files=list(writer.files),
            notes=notes,
            created=created,
        )
        writer.write("summary.html", summary.encode())
        manifest = {
            "format": PACK_FORMAT,
            "reelwatch": reelwatch.__version__,
            "created_at": created.isoformat(),
            "match_id": match.id,
            "post_url": match.post_url,
            "notes": notes,
            "files": [
                {"path": f.path, "sha256": f.sha256, "bytes": f.bytes}
                for f in sorted(writer.files, key=lambda f: f.path)
            ],
        }
        listed = writer.write(MANIFEST, _dump(manifest), listed=False)
        writer.write(MANIFEST_HASH, f"{listed.sha256}  {MANIFEST}\n".encode(), listed=False)
        writer.close()
        _publish(scratch, target, as_zip=as_zip)
    except BaseException:
        writer.close()
        _discard(scratch)
        raise
    return target


def _pack_media(
    settings: Settings,
    writer: _Writer,
    sha: str | None,
    media: Media | None,
    problems: list[str],
    notes: list[str],
) -> str | None:
    if not sha:
        notes.append("the match names no media file")
        return None
    found = media_file(settings, sha)
    if found is None and media is not None and media.path and Path(media.path).is_file():
        found = Path(media.path)
    if found is None:
        problems.append(f"media/{sha[:2]}/{sha}: missing")
        return None
    suffix = f".{_safe_part(found.suffix[1:])}" if found.suffix else ""
    rel = f"media/{sha}{suffix}"
    written = writer.copy(rel, found)
    shown = _shown(settings, found)
    if written.sha256 != sha:
        problems.append(
            f"{shown}: its sha256 is {written.sha256[:16]}..., not the {sha[:16]}... it was "
            "stored under (the file changed since capture)"
        )
    elif media is not None and media.bytes != written.bytes:
        problems.append(f"{shown}: {written.bytes} bytes, recorded {media.bytes}")
    if media is None:
        notes.append(f"no media record for {sha}: the file is checked by its name only")
    return rel


def _pack_screenshot(
    settings: Settings, writer: _Writer, post: Post | None, problems: list[str]
) -> str | None:
    if post is None or not post.provenance.screenshot:
        return None
    rel = post.provenance.screenshot
    found = _under_home(settings, rel)
    if found is None:
        problems.append(f"{rel}: screenshot missing (or outside the data home)")
        return None
    dest = f"capture/{_safe_part(found.name)}"
    writer.copy(dest, found)
    return dest


@dataclass
class _EvidenceShown:
    """One evidence file as the summary shows it."""

    path: str
    stored: str
    recorded: bool


def _pack_evidence(
    settings: Settings,
    writer: _Writer,
    match: Match,
    problems: list[str],
    notes: list[str],
) -> dict[int, list[_EvidenceShown]]:
    """Each segment's evidence files, each copied once however many segments share it."""
    done: dict[str, str] = {}
    out: dict[int, list[_EvidenceShown]] = {}
    for i, seg in enumerate(match.segments):
        records = {e.path: e for e in seg.evidence_files}
        for rel in dict.fromkeys([*seg.evidence, *records]):
            rec = records.get(rel)
            if rel not in done:
                found = _under_home(settings, rel)
                if found is None:
                    problems.append(f"{rel}: missing (or outside the data home)")
                    continue
                dest = _evidence_pack_path(settings, rel)
                written = writer.copy(dest, found)
                done[rel] = dest
                if rec is None:
                    notes.append(f"{rel}: landed before evidence was hashed (hashed at export)")
                elif (written.sha256, written.bytes) != (rec.sha256, rec.bytes):
                    problems.append(
                        f"{rel}: sha256 {written.sha256[:16]}... and {written.bytes} bytes, "
                        f"recorded {rec.sha256[:16]}... and {rec.bytes} bytes"
                    )
            out.setdefault(i, []).append(_EvidenceShown(done[rel], rel, rec is not None))
    return out


_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


def _web_url(url: str | None) -> str | None:
    """Only http(s) URLs become links; anything else (``javascript:``) stays text."""
    return url if url and re.match(r"https?://", url, re.IGNORECASE) else None


_env.filters["web_url"] = _web_url


def _render_summary(**context: Any) -> str:
    context["version"] = reelwatch.__version__
    context["pack_format"] = PACK_FORMAT
    return _env.get_template("pack_summary.html").render(**context)


# Verify ------------------------------------------------------------------------------------


def _unsafe(rel: str) -> bool:
    """True for a path that could leave the pack: absolute, ``..``, backslashes, drives."""
    if not rel or "\0" in rel or "\\" in rel or rel.startswith("/"):
        return True
    if re.match(r"[A-Za-z]:", rel):
        return True
    parts = rel.split("/")
    return any(p in ("", ".", "..") for p in parts)


@dataclass
class _Listed:
    path: str
    sha256: str
    bytes: int


def _read_manifest(
    manifest: bytes | None, recorded: bytes | None, problems: list[str]
) -> list[_Listed] | None:
    """The manifest's file list, after checking its own hash; None when it cannot be used."""
    if manifest is None:
        problems.append(f"{MANIFEST}: missing")
        return None
    if recorded is None:
        problems.append(f"{MANIFEST_HASH}: missing")
    else:
        words = recorded.decode("ascii", "replace").split()
        expected = words[0].lower() if words else ""
        if not _SHA256_RE.fullmatch(expected):
            problems.append(f"{MANIFEST_HASH}: holds no sha256")
        elif hashlib.sha256(manifest).hexdigest() != expected:
            problems.append(
                f"{MANIFEST}: its sha256 is not the one in {MANIFEST_HASH} (the manifest changed)"
            )
    try:
        data = json.loads(manifest)
    except (ValueError, UnicodeDecodeError):
        problems.append(f"{MANIFEST}: not JSON")
        return None
    if not isinstance(data, dict) or not isinstance(data.get("files"), list):
        problems.append(f"{MANIFEST}: no file list")
        return None
    fmt = data.get("format")
    if not isinstance(fmt, int) or fmt > PACK_FORMAT:
        problems.append(f"{MANIFEST}: pack format {fmt!r} is not one this reelwatch reads")
        return None
    listed: list[_Listed] = []
    seen: set[str] = set()
    for entry in data["files"]:
        ok = (
            isinstance(entry, dict)
            and isinstance(entry.get("path"), str)
            and isinstance(entry.get("sha256"), str)
            and isinstance(entry.get("bytes"), int)
        )
        if not ok:
            problems.append(f"{MANIFEST}: an entry without path, sha256 and bytes: {entry!r:.80}")
            continue
        rel = entry["path"]
        if _unsafe(rel):
            problems.append(f"{MANIFEST}: path {rel!r} leaves the pack: refused")
            continue
        if rel in (MANIFEST, MANIFEST_HASH) or rel in seen:
            problems.append(f"{MANIFEST}: {rel!r} listed twice")
            continue
        seen.add(rel)
        listed.append(_Listed(rel, entry["sha256"].lower(), entry["bytes"]))
    return listed


def _stream_sha256(f: IO[bytes]) -> str:
    """The sha256 of a zip member, read in chunks (members are never extracted)."""
    digest = hashlib.sha256()
    while chunk := f.read(_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def _check_entry(item: _Listed, size: int, digest: str | None, problems: list[str]) -> None:
    if size != item.bytes:
        problems.append(f"{item.path}: {size} bytes, the manifest says {item.bytes}")
    elif digest is not None and digest != item.sha256:
        problems.append(
            f"{item.path}: sha256 {digest[:16]}..., the manifest says {item.sha256[:16]}..."
        )
    if digest is not None and item.path.startswith("media/"):
        named = PurePosixPath(item.path).name.split(".", 1)[0]
        if _SHA256_RE.fullmatch(named) and digest != named:
            problems.append(f"{item.path}: its content is not the sha256 its name says")


def _verify_folder(folder: Path, problems: list[str]) -> int:
    def read_small(name: str) -> bytes | None:
        path = folder / name
        if path.is_symlink() or not path.is_file():
            return None
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            problems.append(f"{name}: larger than {MAX_MANIFEST_BYTES} bytes, not read")
            return None
        return path.read_bytes()

    listed = _read_manifest(read_small(MANIFEST), read_small(MANIFEST_HASH), problems)
    if listed is None:
        return 0
    base = folder.resolve()
    for item in listed:
        path = folder / item.path
        if resolve_under(base, item.path) is None or _has_link(folder, item.path):
            what = "a link, refused" if path.is_symlink() or path.exists() else "missing"
            problems.append(f"{item.path}: {what}")
            continue
        size = path.stat().st_size
        digest = None
        if size == item.bytes:
            digest = sha256_file(path)
        _check_entry(item, size, digest, problems)
    names = {item.path for item in listed} | {MANIFEST, MANIFEST_HASH}
    for dirpath, dirnames, filenames in os.walk(folder):
        for entry in [*filenames, *(d for d in dirnames if (Path(dirpath) / d).is_symlink())]:
            rel = (Path(dirpath) / entry).relative_to(folder).as_posix()
            if rel not in names:
                problems.append(f"{rel}: not in the manifest")
    return len(listed)


def _has_link(folder: Path, rel: str) -> bool:
    """True when any part of ``rel`` under ``folder`` is a symbolic link."""
    current = folder
    for part in rel.split("/"):
        current = current / part
        if current.is_symlink():
            return True
    return False


def _verify_zip(path: Path, problems: list[str]) -> int:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        problems.append(f"{path.name}: not a zip file ({exc})")
        return 0
    with zf:
        members: dict[str, zipfile.ZipInfo] = {}
        for info in zf.infolist():
            name = info.filename
            if _unsafe(name.rstrip("/") if info.is_dir() else name):
                problems.append(f"zip member {name!r} leaves the pack: refused")
                continue
            if stat.S_ISLNK(info.external_attr >> 16):
                problems.append(f"zip member {name!r} is a link: refused")
                continue
            if info.is_dir():
                continue
            if name in members:
                problems.append(f"zip member {name!r} appears twice")
                continue
            members[name] = info
        tops = {n.split("/", 1)[0] for n in members}
        root = ""
        if MANIFEST not in members and len(tops) == 1:
            root = f"{next(iter(tops))}/"

        def read_small(name: str) -> bytes | None:
            info = members.get(root + name)
            if info is None:
                return None
            if info.file_size > MAX_MANIFEST_BYTES:
                problems.append(f"{name}: larger than {MAX_MANIFEST_BYTES} bytes, not read")
                return None
            try:
                with zf.open(info) as f:
                    return f.read(MAX_MANIFEST_BYTES + 1)[:MAX_MANIFEST_BYTES]
            except (zipfile.BadZipFile, OSError, ValueError) as exc:
                problems.append(f"{name}: unreadable ({exc})")
                return None

        listed = _read_manifest(read_small(MANIFEST), read_small(MANIFEST_HASH), problems)
        if listed is None:
            return 0
        for item in listed:
            member = members.get(root + item.path)
            if member is None:
                problems.append(f"{item.path}: missing")
                continue
            digest = None
            if member.file_size == item.bytes:
                try:
                    with zf.open(member) as f:
                        digest = _stream_sha256(f)
                except zipfile.BadZipFile as exc:
                    # A stored member's bytes changed: the CRC-32 check fails at its end.
                    why = "the zip's CRC-32 check fails" if "CRC" in str(exc) else str(exc)
                    problems.append(f"{item.path}: its bytes changed ({why})")
                    continue
                except (OSError, ValueError) as exc:
                    problems.append(f"{item.path}: unreadable ({exc})")
                    continue
            _check_entry(item, member.file_size, digest, problems)
        names = {root + item.path for item in listed} | {root + MANIFEST, root + MANIFEST_HASH}
        for name in members:
            if name not in names:
                shown = name[len(root) :] if name.startswith(root) else name
                problems.append(f"{shown}: not in the manifest")
    return len(listed)


def verify_pack(path: Path) -> PackCheck:
    """Check a pack folder or zip against its manifest; nothing is extracted or written.

    Every difference is one line of :attr:`PackCheck.problems`: the manifest's hash, a file
    missing, of another size or sha256, a file the manifest does not name, a media file whose
    content is not its name's sha256, a path that would leave the pack."""
    problems: list[str] = []
    if path.is_dir():
        files = _verify_folder(path, problems)
    elif path.is_file():
        files = _verify_zip(path, problems)
    else:
        problems.append(f"{path}: no such pack folder or zip")
        files = 0
    return PackCheck(path=path, ok=not problems, files=files, problems=problems)
