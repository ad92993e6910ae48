"""Bad input gets one clear line on stderr and a non-zero exit; nothing else breaks."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

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


def test_out_of_range_options_are_one_line(run_cli: Runner) -> None:
    listed = run_cli("matches", "list", "--limit", "-1")
    assert listed.returncode == 2
    line = one_error_line(listed.stderr)
    assert "--limit" in line and "greater than or equal to 1" in line
    crawled = run_cli("crawl", "--platform", "replica", "--hashtag", "x", "--limit", "10000000")
    assert crawled.returncode == 2
    assert "less than or equal to 100000" in one_error_line(crawled.stderr)
    unknown = run_cli("nosuch")
    assert unknown.returncode == 2
    assert "No such command 'nosuch'" in one_error_line(unknown.stderr)


def test_help_still_shows(run_cli: Runner) -> None:
    bare = run_cli()
    assert "Usage: " in bare.stdout and "matches" in bare.stdout
    asked = run_cli("matches", "list", "--help")
    assert asked.returncode == 0 and "--limit" in asked.stdout


def test_an_invalid_setting_is_one_line(run_cli: Runner) -> None:
    result = run_cli("catalog", "list", env={"REELWATCH_MATCHER__HIGH_THRESHOLD": "-3"})
    assert result.returncode == 1
    assert one_error_line(result.stderr) == (
        "reelwatch: error: setting matcher.high_threshold = '-3': must be greater than or"
        " equal to 0 (from REELWATCH_MATCHER__HIGH_THRESHOLD)"
    )


def test_a_malformed_defaults_yaml_is_one_line(run_cli: Runner, tmp_path: Path) -> None:
    (tmp_path / "defaults.yaml").write_text("matcher:\n  high_threshold: [0.5\n")
    result = run_cli("catalog", "list", env={"REELWATCH_CONFIG_DIR": str(tmp_path)})
    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert f"{tmp_path / 'defaults.yaml'}, line 3" in line and "not valid YAML" in line


def test_an_overlong_argument_is_cut_in_the_error(run_cli: Runner, tmp_path: Path) -> None:
    name = str(tmp_path / ("a" * 100_000)) + ".mp4"
    result = run_cli("match", name)
    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert len(result.stderr) < 400
    assert "File name too long" in line and "characters]" in line


def test_hostile_media_is_refused_in_one_line(
    run_cli: Runner, catalogued: None, tmp_path: Path
) -> None:
    from tests.matcher.test_limits import write_png

    huge = write_png(tmp_path / "huge.png", 12000, 12000)
    bomb = write_png(tmp_path / "bomb.png", 20000, 20000)
    cut = tmp_path / "cut.png"
    noise = np.random.default_rng(3).integers(0, 255, (300, 300, 3), np.uint8)
    Image.fromarray(noise).save(cut)
    cut.write_bytes(cut.read_bytes()[:5000])
    empty = tmp_path / "empty.mp4"
    empty.touch()
    says = {
        huge: "huge.png: picture of 12000x12000 (144.0 megapixels), over the 50 megapixel limit",
        bomb: "bomb.png: image too large to decode",
        cut: "cut.png: truncated or corrupt image",
        empty: "empty.mp4: empty file",
    }
    for path, expected in says.items():
        matched = run_cli("match", str(path))
        assert matched.returncode == 1
        assert expected in one_error_line(matched.stderr)
        added = run_cli("catalog", "add", "--title", "Starfall Station", str(path))
        assert added.returncode == 1
        assert expected in one_error_line(added.stderr)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
def test_an_over_long_video_is_refused_by_match_not_by_catalog_add(
    run_cli: Runner, tmp_path: Path
) -> None:
    clip = tmp_path / "long.mp4"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
         "color=c=gray:s=64x64:r=1", "-t", "1000", "-c:v", "libx264", "-preset", "ultrafast",
         str(clip)],
        check=True,
    )  # fmt: skip
    added = run_cli("catalog", "add", "--title", "A Film", str(clip))
    assert added.returncode == 0, added.stderr
    matched = run_cli("match", str(clip))
    assert matched.returncode == 1
    assert one_error_line(matched.stderr) == (
        "reelwatch: error: long.mp4: 1000 s long, over the 900 s limit (download.max_duration_s)"
    )


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
def test_an_audio_only_file_shows_audio_only(
    run_cli: Runner, catalogued: None, tmp_path: Path
) -> None:
    song = tmp_path / "song.m4a"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "sine=f=440:d=4",
         "-c:a", "aac", str(song)],
        check=True,
    )  # fmt: skip
    result = run_cli("match", str(song))
    assert result.returncode == 0, result.stderr
    assert "audio only" in result.stdout and "None" not in result.stdout


HOSTILE = "Evil\x1b[2J\x1b[31mRed\rOver\nFAKE LINE\u202eelif.exe\u2066"


def test_stranger_text_reaches_the_terminal_escaped(run_cli: Runner, reference_clip: Path) -> None:
    added = run_cli("catalog", "add", "--title", HOSTILE, "--owner", "Own\x1b]0;x\x07er",
                    str(reference_clip))  # fmt: skip
    assert added.returncode == 0, added.stderr
    for out in (added.stdout, run_cli("catalog", "list").stdout):
        assert "\x1b" not in out and "\r" not in out and "\x07" not in out
        assert "\u202e" not in out and "\u2066" not in out
        assert "FAKE LINE" in out
        assert not any(line.startswith("FAKE LINE") for line in out.splitlines())
        assert "\\x1b[2J" in out and "\\u202e" in out
