"""``reelwatch report TITLE_ID`` run as a user would, over a real SQLite store in the data home."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from reelwatch.settings import Settings
from tests.cli.conftest import Runner
from tests.triage.test_accounting import EXPECTED, HOSTILE_CAPTION, TITLE, seed_accounting
from triage.stores import open_store


@pytest.fixture
def seeded(settings: Settings) -> dict[str, str]:
    with open_store(settings) as store:
        return seed_accounting(store, settings)


def test_report_writes_csv_and_html(
    run_cli: Runner, seeded: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "out" / "the-crown.csv"
    page = tmp_path / "out" / "the-crown.html"
    done = run_cli("report", TITLE, "--csv", str(out), "--html", str(page))
    assert done.returncode == 0, done.stderr
    assert "wrote 9 instances to" in done.stdout
    summary = out.with_name("the-crown-summary.csv")
    assert str(summary) in done.stdout
    with out.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["match_id"] for r in rows) == sorted(seeded.values())
    with summary.open(newline="") as f:
        figures = {(r[0], r[1], r[2]): r[3] for r in csv.reader(f)}
    assert figures[("views", "", "")] == str(EXPECTED["views"])
    assert figures[("removal_median_s", "tiktok", "")] == "3600"
    html = page.read_text(encoding="utf-8")
    assert sorted(re.findall(r'data-match-id="([^"]+)"', html)) == sorted(seeded.values())
    assert "data:image/png;base64," in html
    assert HOSTILE_CAPTION not in html and "&lt;script&gt;" in html
    assert not list(out.parent.glob(".*.tmp"))  # written whole, nothing left behind


def test_report_prints_the_summary(run_cli: Runner, seeded: dict[str, str]) -> None:
    done = run_cli("report", TITLE)
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert "The Crown (the-crown)" in text and "9 instances" in text
    assert re.search(r"│ removed\s+│\s+0 │\s+3 │\s+1 │\s+4 │", text), text
    assert "views reached: 6,607 (+2 without a play count)" in text
    assert "AI-generated: 33.3% (3 of 9)" in text
    # Time to removal per platform: tiktok median 1 h, mean 1 h 30 min; youtube 1 d 14 h.
    assert re.search(r"│ tiktok\s+│\s+4 │\s+3 │\s+1 │\s+1 h │ 1 h 30 min │", text), text
    # y2 came down, then back: removed (it has a time to removal) and still up.
    assert re.search(r"│ youtube\s+│\s+2 │\s+2 │\s+1 │\s+1 d 14 h │", text), text
    assert re.search(r"│ all\s+│\s+6 │\s+5 │\s+2 │\s+3 h │\s+16 h 6 min │", text), text


def test_report_json(run_cli: Runner, seeded: dict[str, str]) -> None:
    done = run_cli("report", TITLE, "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["total"] == 9 and data["views"] == EXPECTED["views"]
    assert data["by_status"] == EXPECTED["by_status"]
    assert data["removal"]["median_s"] == 10800.0
    assert data["removal"]["by_platform"]["youtube"]["mean_s"] == 136800.0
    assert {i["match_id"] for i in data["instances"]} == set(seeded.values())


def test_unknown_title_is_one_line(run_cli: Runner, seeded: dict[str, str]) -> None:
    done = run_cli("report", "no-such-title")
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("reelwatch: error: no matches of title 'no-such-title'")


def test_unwritable_output_is_one_line(
    run_cli: Runner, seeded: dict[str, str], tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    done = run_cli("report", TITLE, "--html", str(blocker / "x.html"))
    assert done.returncode == 1
    assert done.stderr.startswith("reelwatch: error: cannot write ")
    assert len(done.stderr.splitlines()) == 1
