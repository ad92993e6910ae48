"""`reelwatch beat`: the schedule it would run, and a clear refusal without a broker."""

from __future__ import annotations

from tests.cli.conftest import Runner


def test_beat_needs_a_broker_but_shows_its_schedule_without_one(run_cli: Runner) -> None:
    shown = run_cli("beat", "--show")
    assert shown.returncode == 0, shown.stderr
    assert "watch:bridgerton:bridgerton" in shown.stdout and "reelwatch.crawl" in shown.stdout
    refused = run_cli("beat")
    assert refused.returncode == 1
    assert "no broker" in refused.stderr
