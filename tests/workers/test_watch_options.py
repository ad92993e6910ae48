"""A watch's recipients and minimum confidence decide its alerts through every step, in-process
(``reelwatch watch run``) as on workers, without touching the global settings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from reelwatch.models import Confidence
from reelwatch.settings import Settings
from reelwatch.watches import WatchOptions
from tests.workers.conftest import COPY_ID, HOSTILE_ID, TAG, UNRELATED_ID, process_env
from triage.smtp_sink import SmtpSink
from triage.stores import open_store
from workers import tasks
from workers.app import configure


def recipients_of(sink: SmtpSink) -> list[str]:
    return sorted(r for mail in sink.received for r in mail.rcpt_tos)


def alerted_posts(sink: SmtpSink) -> set[str]:
    return {str(m["X-Reelwatch-Match"]).split(":")[1] for m in sink.messages}


def test_a_watch_below_the_global_tier_alerts_its_own_team(
    world_settings: Settings, sink: SmtpSink
) -> None:
    world_settings.alerts.min_confidence = Confidence.HIGH
    world_settings.email.recipients = ["everyone@studio.test"]
    configure(world_settings)
    watch = WatchOptions(
        name="wide",
        recipients=["team@studio.test", "lead@studio.test"],
        min_confidence=Confidence.LOW,
    )
    summary = tasks.crawl.delay("replica", TAG, None, watch.task_arg()).get()
    assert summary["watch"] == "wide"

    # Three matches reach the watch's tier (the unrelated clip's low one too), each told to
    # the watch's two recipients and to nobody from the settings.
    assert alerted_posts(sink) == {COPY_ID, HOSTILE_ID, UNRELATED_ID}
    assert recipients_of(sink) == sorted(["team@studio.test", "lead@studio.test"] * 3)
    with open_store(world_settings) as store:
        alerts = store.list_alerts()
    assert {a.recipient for a in alerts} == {"team@studio.test", "lead@studio.test"}
    # Running the watch did not change what other crawls get.
    assert world_settings.alerts.min_confidence == Confidence.HIGH
    assert world_settings.email.recipients == ["everyone@studio.test"]


def test_watch_run_applies_the_watchs_tier_and_recipients(
    world_settings: Settings, sink: SmtpSink, tmp_path: Path
) -> None:
    watchlist = tmp_path / "watchlist.yaml"
    watchlist.write_text(
        f"watches:\n  - name: strict\n    platform: replica\n    hashtags: [{TAG}]\n"
        "    min_confidence: high\n    max_age: 30d\n    recipients: [legal@studio.test]\n"
    )
    world_settings.alerts.min_confidence = Confidence.LOW
    world_settings.email.recipients = ["everyone@studio.test"]
    env = process_env(world_settings, REELWATCH_WATCHLIST=str(watchlist))

    listed = subprocess.run(
        [sys.executable, "-m", "reelwatch", "watch", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    assert "legal@studio.test" in listed.stdout and "30d" in listed.stdout

    ran = subprocess.run(
        [sys.executable, "-m", "reelwatch", "watch", "run", "strict"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stderr
    assert alerted_posts(sink) == {COPY_ID, HOSTILE_ID}
    assert recipients_of(sink) == ["legal@studio.test", "legal@studio.test"]
