"""``reelwatch verify``: are the stored media and evidence files still the ones recorded?

Every downloaded file has a media record (sha256, size, capture time, source URL) and every
evidence file a match names is recorded on its segment with its sha256 and size. ``verify``
reads each file again and reports every difference: a file that is gone, a size or a sha256
that is not the recorded one. Files under ``media/`` or ``evidence/`` that no record names are
listed as unrecorded (a video fetched by ``reelwatch match URL``, thumbnails of a match not
landed); they are not differences. Exit status 1 when anything differs, else 0.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from reelwatch.cli import console, settings_of
from reelwatch.digest import sha256_file
from reelwatch.models import Media
from reelwatch.settings import Settings
from triage.stores.base import Store

_SHA256 = re.compile(r"[0-9a-f]{64}")

MISSING = "missing"
SIZE = "size differs"
SHA256 = "sha256 differs"
NO_RECORD = "no record"
"""A file a post or match points at whose record is gone (the file itself is checked)."""
UNHASHED = "not hashed"
"""An evidence path landed before evidence was hashed: only its presence can be checked."""


@dataclass(frozen=True)
class Difference:
    kind: str
    """``media`` or ``evidence``."""
    problem: str
    path: str
    """As recorded (evidence: relative to the data home), or where the file was looked for."""
    detail: str = ""
    """What was recorded and what was found."""


@dataclass
class Verification:
    media_checked: int = 0
    evidence_checked: int = 0
    differences: list[Difference] = field(default_factory=list)
    notes: list[Difference] = field(default_factory=list)
    """Not differences: evidence landed without hashes, files no record names."""
    unrecorded: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences

    def summary(self) -> str:
        head = (
            f"verify: {self.media_checked} media and {self.evidence_checked} evidence files checked"
        )
        what = (
            "all match their records"
            if self.ok
            else f"{len(self.differences)} differ from their records"
        )
        extra = f"; {len(self.unrecorded)} files not recorded" if self.unrecorded else ""
        return f"{head}: {what}{extra}"

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "media_checked": self.media_checked,
            "evidence_checked": self.evidence_checked,
            "differences": [asdict(d) for d in self.differences],
            "notes": [asdict(d) for d in self.notes],
            "unrecorded": list(self.unrecorded),
        }


def _check(kind: str, shown: str, path: Path, sha256: str, size: int, out: Verification) -> None:
    """Compare one file with its record: gone, size, then content."""
    try:
        actual = path.stat().st_size
        if not path.is_file():
            raise FileNotFoundError(path)
    except OSError:
        out.differences.append(Difference(kind, MISSING, shown, "no file"))
        return
    if actual != size:
        out.differences.append(
            Difference(kind, SIZE, shown, f"recorded {size} bytes, found {actual}")
        )
        return
    try:
        found = sha256_file(path)
    except OSError as exc:
        out.differences.append(Difference(kind, MISSING, shown, f"unreadable: {exc.strerror}"))
        return
    if found != sha256:
        out.differences.append(
            Difference(kind, SHA256, shown, f"recorded {sha256[:16]}, found {found[:16]}")
        )


def _stored_files(folder: Path) -> list[Path]:
    """Every plain file under ``folder``, skipping the downloader's scratch folder."""
    if not folder.is_dir():
        return []
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and "tmp" not in p.relative_to(folder).parts[:1]
    )


def _media_file(settings: Settings, sha: str, media: Media | None) -> Path | None:
    """Where a media file is: its content address under ``media/``, else its recorded path."""
    found = sorted(
        p for p in (settings.media_dir / sha[:2]).glob(f"{sha}.*") if not p.name.startswith(".")
    )
    if found:
        return found[0]
    if media is not None and media.path and Path(media.path).is_file():
        return Path(media.path)
    return None


def verify_media(settings: Settings, store: Store, out: Verification) -> None:
    """Every media record that a post or match points at, and every file under ``media/``."""
    wanted = {p.media_sha256 for p in store.list_posts() if p.media_sha256}
    wanted |= {m.media_sha256 for m in store.list_matches() if m.media_sha256}
    on_disk: set[str] = set()
    for stored in _stored_files(settings.media_dir):
        name = stored.name.split(".", 1)[0]
        if _SHA256.fullmatch(name):
            on_disk.add(name)
        else:  # not a content address (a leftover temporary file, something put there)
            out.unrecorded.append(str(_shown(settings, stored)))
    for sha in sorted(wanted | on_disk):
        media = store.get_media(sha)
        path = _media_file(settings, sha, media)
        shown = str(_shown(settings, path)) if path is not None else f"media/{sha[:2]}/{sha}.*"
        if media is None:
            if sha in wanted and path is None:
                out.media_checked += 1
                out.differences.append(
                    Difference("media", MISSING, shown, "a post names it; no record, no file")
                )
            elif sha in wanted and path is not None:
                out.media_checked += 1
                out.notes.append(Difference("media", NO_RECORD, shown, "checked by its name"))
                size = path.stat().st_size
                _check("media", shown, path, sha, size, out)
            else:
                out.unrecorded.append(shown)
            continue
        out.media_checked += 1
        if path is None:
            out.differences.append(Difference("media", MISSING, shown, "no file"))
            continue
        _check("media", shown, path, media.sha256, media.bytes, out)


def verify_evidence(settings: Settings, store: Store, out: Verification) -> None:
    """Every evidence file a landed match names, against the sha256 and size on its segment;
    each (file, record) pair is checked once however many matches share it."""
    seen: set[tuple[str, str, int]] = set()
    named: set[str] = set()
    for match in store.list_matches():
        for seg in match.segments:
            records = {e.path: e for e in seg.evidence_files}
            for rel in dict.fromkeys([*seg.evidence, *records]):
                named.add(rel)
                path = Path(rel) if Path(rel).is_absolute() else settings.home / rel
                rec = records.get(rel)
                if rec is None:
                    key = (rel, "", -1)
                    if key in seen:
                        continue
                    seen.add(key)
                    out.evidence_checked += 1
                    if not path.is_file():
                        out.differences.append(Difference("evidence", MISSING, rel, "no file"))
                    else:
                        out.notes.append(Difference("evidence", UNHASHED, rel, match.id))
                    continue
                key = (rel, rec.sha256, rec.bytes)
                if key in seen:
                    continue
                seen.add(key)
                out.evidence_checked += 1
                _check("evidence", rel, path, rec.sha256, rec.bytes, out)
    for path in _stored_files(settings.evidence_dir):
        shown = str(_shown(settings, path))
        if shown not in named:
            out.unrecorded.append(shown)


def _shown(settings: Settings, path: Path) -> Path:
    return path.relative_to(settings.home) if path.is_relative_to(settings.home) else path


def run_verify(
    settings: Settings, store: Store, *, media: bool = True, evidence: bool = True
) -> Verification:
    out = Verification()
    if media:
        verify_media(settings, store, out)
    if evidence:
        verify_evidence(settings, store, out)
    return out


def verify(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
    media: Annotated[bool, typer.Option("--media", help="Check stored media only.")] = False,
    evidence: Annotated[
        bool, typer.Option("--evidence", help="Check evidence files only.")
    ] = False,
) -> None:
    """Re-hash stored media and evidence files against their records; exit 1 on any difference.

    Reports each file that is missing or whose size or sha256 is not the recorded one, and
    lists files no record names."""
    from triage.stores import open_store

    settings = settings_of(ctx)
    both = not media and not evidence
    with open_store(settings) as store:
        result = run_verify(settings, store, media=media or both, evidence=evidence or both)
    if as_json:
        typer.echo(json.dumps(result.to_json()))
    else:
        for d in result.differences:
            console.print(f"{d.kind}  {d.problem}  {d.path}  ({d.detail})")
        for path in result.unrecorded:
            console.print(f"unrecorded  {path}")
        console.print(result.summary())
    if not result.ok:
        raise typer.Exit(1)
