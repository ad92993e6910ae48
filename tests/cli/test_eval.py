"""`reelwatch eval DIR` on a small user-style reference folder: one title, its soundtrack,
the transformations, two distractor sources."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from tests.cli.conftest import Runner


@pytest.mark.slow
def test_eval_builds_a_labelled_set_and_reports_every_signal(
    run_cli: Runner, reference_clip: Path, tmp_path: Path
) -> None:
    refs = tmp_path / "refs"
    (refs / "Starfall Station").mkdir(parents=True)
    shutil.copyfile(reference_clip, refs / "Starfall Station" / "trailer.mp4")
    (refs / "titles.yaml").write_text(
        yaml.safe_dump({"Starfall Station": {"owner": "Northlight", "hashtags": ["starfall"]}})
    )
    result = run_cli("eval", str(refs), "--json", "--distractors", "2", timeout=900)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    transforms = report["recall_by_transform"]
    assert {"mirror", "picture-in-picture", "speed 1.25x", "heavy re-encode"} <= set(transforms)
    assert report["copies"] == sum(t["copies"] for t in transforms.values()) >= 12
    assert report["distractors"] == 4
    assert {"copy", "audio", "text", "fused"} <= set(report["micro_ap"])
    assert report["micro_ap"]["fused"] >= 0.95
    assert report["false_high"] == []
    assert report["timing"]["within_1s"] == 1.0
    assert report["errors"] == []
    # The queries are kept and reused: a second run builds nothing new.
    made = sorted(p.name for p in (refs / ".eval" / "queries").glob("*.mp4"))
    again = run_cli("eval", str(refs), "--distractors", "2", timeout=900)
    assert again.returncode == 0, again.stderr
    assert "micro-average precision" in again.stdout and "fused" in again.stdout
    assert sorted(p.name for p in (refs / ".eval" / "queries").glob("*.mp4")) == made


def test_eval_of_a_file_is_a_clear_error(run_cli: Runner, tmp_path: Path) -> None:
    f = tmp_path / "notes.txt"
    f.write_text("x")
    result = run_cli("eval", str(f))
    assert result.returncode == 1
    assert "not a directory" in result.stderr
