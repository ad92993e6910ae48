"""`reelwatch catalog add` on real files that are partly unusable, run as a user would."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from matcher.signals import signal_class
from reelwatch.demo.media import load_photo
from reelwatch.settings import MatcherSettings
from tests.cli.conftest import Runner
from tests.matcher.test_ingest import FACES, write_avi


@pytest.fixture
def faces() -> Path:
    """The real face photos of ``make test-data``, with the face signal able to run."""
    reason = signal_class("face")(MatcherSettings()).unavailable()
    if reason:
        pytest.skip(f"face signal off: {reason}")
    if not all((FACES / p).is_file() for p in ("obama.jpg", "obama2.jpg")):
        pytest.skip(f"no face test photos in {FACES}: run `make test-data`")
    return FACES


def _listing(run_cli: Runner) -> list[dict[str, object]]:
    listed = run_cli("catalog", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    out: list[dict[str, object]] = json.loads(listed.stdout)
    return out


def test_an_avi_with_a_broken_audio_track_is_added_and_matched_on_its_video(
    run_cli: Runner, tmp_path: Path
) -> None:
    avi = write_avi(tmp_path / "reel.avi", ["audio"])
    added = run_cli("catalog", "add", "--title", "Starfall Station", str(avi))
    assert added.returncode == 0, added.stderr
    assert "1 asset(s) indexed" in added.stdout
    assert "note: audio skipped: undecodable audio track" in added.stdout

    listed = run_cli("catalog", "list")
    assert "reel.avi" in listed.stdout and "audio skipped" in listed.stdout

    copy = tmp_path / "repost.avi"
    shutil.copyfile(avi, copy)
    result = run_cli("match", "--json", str(copy))
    assert result.returncode == 0, result.stderr
    [best, *_] = json.loads(result.stdout)["matches"]
    assert best["title_id"] == "starfall-station" and best["signals"]["copy"] > 0.5


def test_a_failed_add_leaves_no_new_title_and_an_old_title_as_it_was(
    run_cli: Runner, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a photo\n" * 20)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")

    failed = run_cli("catalog", "add", "--title", "Starfall Station", str(notes))
    assert failed.returncode == 1
    [line] = failed.stderr.strip().splitlines()
    assert line.startswith("reelwatch: error: notes.txt: not a video (")
    assert _listing(run_cli) == []

    poster = tmp_path / "poster.jpg"
    Image.fromarray(load_photo("rocket")).save(poster)
    assert run_cli("catalog", "add", "--title", "Starfall Station", str(poster)).returncode == 0
    failed = run_cli("catalog", "add", "--title", "Starfall Station", str(notes), str(empty))
    assert failed.returncode == 1
    lines = failed.stderr.strip().splitlines()
    assert lines[0].startswith("refused notes.txt: not a video (")
    assert lines[1] == "refused empty.png: empty file"
    assert (
        lines[2] == "reelwatch: error: nothing added to Starfall Station: all 2 files were refused"
    )
    [title] = _listing(run_cli)
    assert [a["name"] for a in title["assets"]] == ["poster.jpg"]  # type: ignore[union-attr]


def test_face_box_mistakes_are_one_clear_line_and_add_nothing(
    run_cli: Runner, tmp_path: Path
) -> None:
    photo = tmp_path / "still.jpg"
    Image.fromarray(load_photo("astronaut")).save(photo)
    other = tmp_path / "other.jpg"
    shutil.copyfile(photo, other)
    cases = {
        ("--face-box", "10,20,5"): "expected X0,Y0,X1,Y1",
        ("--face-box", "30,20,10,40"): "with X0 < X1",
        ("--face-box", "nope.jpg=1,2,3,4"): "nope.jpg is not one of the files given",
    }
    for args, message in cases.items():
        result = run_cli("catalog", "add", "--title", "T", "--talent", "A", *args, str(photo))
        assert result.returncode == 1 and message in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    result = run_cli(
        "catalog", "add", "--title", "T", "--kind", "face", "--face-box", "1,2,3,4", str(photo),
        str(other),
    )  # fmt: skip
    assert result.returncode == 1 and "name the photo" in result.stderr
    assert _listing(run_cli) == []


def test_a_gallery_with_an_unusable_photo_adds_the_others_and_names_it(
    run_cli: Runner, faces: Path, tmp_path: Path
) -> None:
    coffee = tmp_path / "coffee.jpg"
    Image.fromarray(load_photo("coffee")).save(coffee)
    added = run_cli(
        "catalog", "add", "--title", "Starfall Station", "--talent", "Barack Obama",
        "--face-box", f"{faces / 'obama2.jpg'}=0,0,300,300",
        str(faces / "obama.jpg"), str(coffee), str(faces / "obama2.jpg"),
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "2 asset(s) indexed" in added.stdout
    refused = [x for x in added.stderr.splitlines() if x.startswith("refused")]
    assert refused == [
        f"refused coffee.jpg: no face found (a face asset needs a face of at least "
        f"{MatcherSettings().face.min_face_px} px)"
    ]
    [title] = _listing(run_cli)
    assets = title["assets"]
    assert isinstance(assets, list)
    assert [(a["name"], a["kind"], a["talent_id"]) for a in assets] == [
        ("obama.jpg", "face", "barack-obama"),
        ("obama2.jpg", "face", "barack-obama"),
    ]
    # The stored box is the user's, or the face a face signal found inside it.
    x0, y0, x1, y1 = assets[1]["face_box"]
    assert x0 < 300 and y0 < 300 and x1 > 0 and y1 > 0
    assert "face at" in run_cli("catalog", "list").stdout
    assert title["talents"] == ["Barack Obama"]
    rebuilt = run_cli("catalog", "build")
    assert rebuilt.returncode == 0 and "assets=2" in rebuilt.stdout
