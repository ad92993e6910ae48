"""The one file hasher. A file's identity is the hex sha256 of its bytes: stored media are
named by it, evidence files and evidence packs record it, ``reelwatch verify`` and
``evidence verify`` check it. Every stage hashes through this function."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_file(path: Path) -> str:
    """Hex sha256 of the bytes of ``path`` (read in chunks, never whole into memory)."""
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
