"""Bad input gets one clear line on stderr and a non-zero exit; nothing else breaks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.conftest import Runner


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got: {stderr!r}"
    assert lines[0].startswith("reelwatch: error: ")
    assert "Traceback" not in stderr
    return lines[0]


def test_match_with_empty_catalog(run_cli: Runner, reference_clip: Path) -> None:
    result = run_cli("match", str(reference_clip))
    assert result.returncode == 1
    assert "catalog is empty" in one_error_line(result.stderr)


@pytest.fixture
def catalogued(run_cli: Runner, reference_clip: Path) -> None:
    result = run_cli("catalog", "add", "--title", "Starfall Station", str(reference_clip))
    assert result.returncode == 0, result.stderr


def test_match_missing_file(run_cli: Runner, catalogued: None, tmp_path: Path) -> None:
    result = run_cli("match", str(tmp_path / "nope.mp4"))
    assert result.returncode == 1
    assert "no such file" in one_error_line(result.stderr)


def test_match_text_file(run_cli: Runner, catalogued: None, tmp_path: Path) -> None:
    fake = tmp_path / "notes.mp4"
    fake.write_text("these are not the frames you are looking for\n" * 50)
    result = run_cli("match", str(fake))
    assert result.returncode == 1
    assert "notes.mp4" in one_error_line(result.stderr)


def test_match_truncated_mp4(
    run_cli: Runner, catalogued: None, reference_clip: Path, tmp_path: Path
) -> None:
    cut = tmp_path / "cut.mp4"
    data = reference_clip.read_bytes()
    cut.write_bytes(data[: len(data) // 3])
    result = run_cli("match", str(cut))
    assert result.returncode == 1
    assert "cut.mp4" in one_error_line(result.stderr)


def test_bad_input_does_not_stop_good_input(
    run_cli: Runner, catalogued: None, reference_clip: Path, tmp_path: Path
) -> None:
    result = run_cli("match", "--json", str(tmp_path / "missing.mp4"), str(reference_clip))
    assert result.returncode == 1
    assert "missing.mp4" in one_error_line(result.stderr)
    [report] = [json.loads(line) for line in result.stdout.splitlines()]
    assert report["input"] == str(reference_clip)
    assert report["matches"][0]["title"] == "Starfall Station"


def test_catalog_add_missing_file(run_cli: Runner, tmp_path: Path) -> None:
    result = run_cli("catalog", "add", "--title", "X", str(tmp_path / "gone.mp4"))
    assert result.returncode == 1
    assert "gone.mp4" in one_error_line(result.stderr)


def test_matches_set_status_unknown_id(run_cli: Runner) -> None:
    result = run_cli("matches", "set-status", "replica:1:nothing", "confirmed")
    assert result.returncode == 1
    one_error_line(result.stderr)


def test_unknown_watch(run_cli: Runner) -> None:
    result = run_cli("watch", "run", "no-such-watch")
    assert result.returncode == 1
    assert "no-such-watch" in one_error_line(result.stderr)
