"""`reelwatch beat`: the schedule it would run, and clear refusals without a broker or Redis."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.cli.conftest import Runner


def test_beat_needs_a_broker_but_shows_its_schedule_without_one(run_cli: Runner) -> None:
    shown = run_cli("beat", "--show")
    assert shown.returncode == 0, shown.stderr
    assert "watch:bridgerton:bridgerton" in shown.stdout and "reelwatch.crawl" in shown.stdout
    # What each crawl carries, and the daily source check.
    assert '"limit": 200' in shown.stdout
    assert "sources:check" in shown.stdout and "reelwatch.sources_check" in shown.stdout
    refused = run_cli("beat")
    assert refused.returncode == 1
    assert "no broker" in refused.stderr


def test_beat_refuses_a_broker_without_redis_for_its_lock(home: Path) -> None:
    env = {
        **os.environ,
        "REELWATCH_HOME": str(home),
        "REELWATCH_BROKER_URL": "amqp://guest@127.0.0.1:5672//",
    }
    env.pop("REELWATCH_RESULT_BACKEND", None)
    refused = subprocess.run(
        [sys.executable, "-m", "reelwatch", "beat"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        "reelwatch: error: beat keeps its lock in Redis: use a redis:// broker or set "
        "REELWATCH_RESULT_BACKEND to redis://HOST:PORT/DB"
    ]


def test_beat_names_the_watchlist_line_of_a_mistake(home: Path, tmp_path: Path) -> None:
    watchlist = tmp_path / "watches.yaml"
    watchlist.write_text(
        "watches:\n  - name: a\n    platform: replica\n    hashtags: [a]\n"
        '    schedule: "0 25 * * *"\n'
    )
    env = {**os.environ, "REELWATCH_HOME": str(home), "REELWATCH_WATCHLIST": str(watchlist)}
    shown = subprocess.run(
        [sys.executable, "-m", "reelwatch", "beat", "--show"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 1
    assert shown.stderr.startswith(
        f"reelwatch: error: watchlist {watchlist} line 5: watches[0].schedule: schedule "
        "'0 25 * * *' is not a valid crontab"
    )
