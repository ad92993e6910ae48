"""Evidence files are never overwritten in place, and each is recorded with its sha256 and
size where the match names it."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from PIL import Image

from matcher.catalog import Catalog
from matcher.engine import Matcher
from matcher.evidence import publish, save_picture, temp_beside
from reelwatch.demo import media
from reelwatch.settings import load_settings


def _tmp_with(dst: Path, data: bytes) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_beside(dst)
    tmp.write_bytes(data)
    return tmp


def test_publish_never_replaces_a_file_that_holds_other_bytes(tmp_path: Path) -> None:
    dst = tmp_path / "ev" / "q-00001000.jpg"
    first = publish(_tmp_with(dst, b"first"), dst)
    assert first == dst and dst.read_bytes() == b"first"
    inode = dst.stat().st_ino

    same = publish(_tmp_with(dst, b"first"), dst)
    assert same == dst and dst.stat().st_ino == inode

    other = publish(_tmp_with(dst, b"second"), dst)
    sha = hashlib.sha256(b"second").hexdigest()
    assert other == dst.with_name(f"q-00001000.{sha[:16]}.jpg")
    assert other.read_bytes() == b"second"
    assert dst.read_bytes() == b"first" and dst.stat().st_ino == inode


def test_save_picture_leaves_no_temporary_file_and_keeps_the_first_picture(
    tmp_path: Path,
) -> None:
    dst = tmp_path / "ev" / "s-1.png"
    red, blue = Image.new("RGB", (8, 8), (255, 0, 0)), Image.new("RGB", (8, 8), (0, 0, 255))
    assert save_picture(red, dst) == dst
    before = dst.read_bytes()
    again = save_picture(blue, dst)
    assert again != dst and again.parent == dst.parent
    assert dst.read_bytes() == before
    assert Image.open(again).getpixel((0, 0)) == (0, 0, 255)
    assert sorted(p.name for p in dst.parent.iterdir()) == sorted([dst.name, again.name])


def test_a_read_only_existing_evidence_file_is_not_touched(tmp_path: Path) -> None:
    dst = tmp_path / "ev" / "r-1.jpg"
    publish(_tmp_with(dst, b"kept"), dst)
    os.chmod(dst, 0o444)
    out = publish(_tmp_with(dst, b"new"), dst)
    assert out != dst and dst.read_bytes() == b"kept"


@pytest.fixture(scope="module")
def matched(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Matcher, Path]:
    root = tmp_path_factory.mktemp("evidence-files")
    ref = media.make_reference_clip(
        ("astronaut", "coffee", "chelsea", "rocket"),
        root / "ref.mp4",
        seconds_per_photo=1.5,
        seed=5,
    )
    settings = load_settings(home=root / "home")
    settings.matcher.signals = ["copy"]
    settings.ensure_home()
    catalog = Catalog(settings)
    title = catalog.add_title("Scenes")
    catalog.add_assets(title.id, [ref])
    query = media.write_clip(media.read_clip(ref, 0.5, 4.0), root / "copy.mp4")
    return settings.home, Matcher(settings, catalog), query


def test_each_segments_evidence_is_recorded_with_its_sha256_and_size(
    matched: tuple[Path, Matcher, Path],
) -> None:
    home, matcher, query = matched
    report = matcher.match_file(query)
    assert report.best is not None
    segments = [s for s in report.best.segments if s.evidence]
    assert segments
    for seg in segments:
        assert [e.path for e in seg.evidence_files] == seg.evidence
        for rec in seg.evidence_files:
            data = (home / rec.path).read_bytes()
            assert rec.bytes == len(data)
            assert rec.sha256 == hashlib.sha256(data).hexdigest()
    as_json = report.to_json()["matches"][0]["segments"]
    assert any(s["evidence_files"] for s in as_json)


def test_rematching_reuses_the_evidence_files_without_rewriting_them(
    matched: tuple[Path, Matcher, Path],
) -> None:
    home, matcher, query = matched
    first = matcher.match_file(query)
    assert first.best is not None
    files = {e.path: e for s in first.best.segments for e in s.evidence_files}
    inodes = {p: (home / p).stat().st_ino for p in files}
    again = matcher.match_file(query)
    assert again.best is not None
    assert {e.path: e for s in again.best.segments for e in s.evidence_files} == files
    assert {p: (home / p).stat().st_ino for p in files} == inodes
    leftovers = [p for p in (home / "evidence").rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []
