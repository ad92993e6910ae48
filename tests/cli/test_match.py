"""`reelwatch match --json` on a copy made here, outside the demo."""

from __future__ import annotations

import json
from pathlib import Path

from reelwatch.demo.media import crop, make_reference_clip, mirror, shrink, transform_file
from tests.cli.conftest import Runner


def test_match_names_title_with_segment_times(
    run_cli: Runner, reference_clip: Path, tmp_path: Path
) -> None:
    added = run_cli("catalog", "add", "--title", "Starfall Station", str(reference_clip))
    assert added.returncode == 0, added.stderr
    unrelated_ref = tmp_path / "other.mp4"

    make_reference_clip(["coffee"], unrelated_ref, seconds_per_photo=6, seed=5)
    added = run_cli("catalog", "add", "--title", "The Roastery", str(unrelated_ref))
    assert added.returncode == 0, added.stderr

    # Seconds 4..10 of the reference, mirrored, cropped to 80 % and re-encoded small.
    copy = transform_file(
        reference_clip,
        tmp_path / "copy.mp4",
        [mirror, crop, shrink],
        start=4.0,
        duration=6.0,
        crf=32,
    )
    result = run_cli("match", "--json", str(copy))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["input"] == str(copy)
    assert report["media"]["sha256"] and report["media"]["duration"] > 5
    best = report["matches"][0]
    assert best["title"] == "Starfall Station" and best["confidence"] == "high"
    assert all(m["confidence"] == "low" for m in report["matches"][1:])
    seg = max(best["segments"], key=lambda s: s["query_end"] - s["query_start"])
    assert seg["signal"] == "copy"
    assert abs(seg["query_start"] - 0.0) <= 2 and abs(seg["query_end"] - 6.0) <= 2
    assert abs(seg["ref_start"] - 4.0) <= 2 and abs(seg["ref_end"] - 10.0) <= 2


def test_match_json_carries_signal_scores_segments_and_ai_flags(
    run_cli: Runner, reference_clip: Path, tmp_path: Path
) -> None:
    added = run_cli(
        "catalog",
        "add",
        "--title",
        "Starfall Station",
        "--alias",
        "Starfall",
        "--hashtag",
        "starfallstation",
        str(reference_clip),
    )
    assert added.returncode == 0, added.stderr
    copy = transform_file(reference_clip, tmp_path / "copy.mp4", [mirror], start=4.0, duration=8.0)
    result = run_cli(
        "match",
        "--json",
        "--caption",
        "Starfall is back, made this with Sora",
        "--hashtag",
        "#sora",
        "--hashtag",
        "starfallstation",
        str(copy),
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ai"]["is_ai"] is True
    assert any("sora" in r.lower() for r in report["ai"]["reasons"])
    best = report["matches"][0]
    assert best["title"] == "Starfall Station" and best["confidence"] == "high"
    assert {"copy", "audio", "text"} <= set(best["signals"])
    by_signal = {s["signal"]: s for s in best["segments"]}
    assert set(by_signal) >= {"copy", "audio", "text"}
    audio = by_signal["audio"]
    assert abs(audio["offset"] - 4.0) <= 1.0 and "offset" in audio["note"]
    assert by_signal["copy"]["evidence"], "copy segments carry query/reference thumbnails"
    assert "starfall" in by_signal["text"]["note"].lower()
    assert report["signals_off"].get("embedding"), "the embedding signal says why it is off"
