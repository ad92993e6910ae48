"""Where stored files are, for everything in triage that reads them (the board, evidence
packs, the accounting): a path is only ever resolved inside its own folder, so a crafted
evidence path or media id cannot reach other files."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reelwatch.settings import Settings

SHA256_RE = re.compile(r"[0-9a-f]{64}")


def resolve_under(root: Path, relative: str) -> Path | None:
    """``root/relative`` if it is an existing file inside ``root`` after resolving links."""
    base = root.resolve()
    try:
        target = (base / relative).resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    if not target.is_relative_to(base) or not target.is_file():
        return None
    return target


def media_file(settings: Settings, sha256: str) -> Path | None:
    """The downloaded file with this content hash (``media/<sha[:2]>/<sha>.<ext>``), if any."""
    if not SHA256_RE.fullmatch(sha256):
        return None
    folder = settings.media_dir / sha256[:2]
    if not folder.is_dir():
        return None
    for candidate in sorted(folder.glob(f"{sha256}.*")):
        found = resolve_under(settings.media_dir, f"{sha256[:2]}/{candidate.name}")
        if found is not None:
            return found
    return None
