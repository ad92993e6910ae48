"""Stored media is content-addressed and never replaced: a second copy of the same video, or a
worker storing it at the same moment, leaves the first file as it is."""

from __future__ import annotations

import hashlib
from pathlib import Path

from workers.download import link_new, store_content_addressed


def test_a_second_copy_of_a_stored_video_leaves_the_first_file(tmp_path: Path) -> None:
    media = tmp_path / "media"
    first = tmp_path / "a.mp4"
    first.write_bytes(b"video bytes")
    stored = store_content_addressed(first, media)
    sha = hashlib.sha256(b"video bytes").hexdigest()
    assert stored.path == media / sha[:2] / f"{sha}.mp4" and stored.bytes == 11
    assert not first.exists()
    inode = stored.path.stat().st_ino

    again = tmp_path / "b.mp4"
    again.write_bytes(b"video bytes")
    second = store_content_addressed(again, media)
    assert second.path == stored.path and stored.path.stat().st_ino == inode
    assert not again.exists()
    assert [p.name for p in (media / sha[:2]).iterdir()] == [stored.path.name]


def test_publishing_never_replaces_a_file_already_at_the_address(tmp_path: Path) -> None:
    """The moment two workers race: the address appeared after the existence check."""
    dest = tmp_path / "ab" / "ab.mp4"
    dest.parent.mkdir()
    dest.write_bytes(b"the first worker's file")
    inode = dest.stat().st_ino
    late = tmp_path / "late.mp4"
    late.write_bytes(b"other bytes")
    link_new(late, dest)
    assert dest.read_bytes() == b"the first worker's file" and dest.stat().st_ino == inode
