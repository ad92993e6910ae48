"""Celery beat schedules from watchlists and the settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from celery.schedules import crontab

from reelwatch.errors import InputError
from reelwatch.settings import Settings
from reelwatch.watches import Watch, WatchOptions, load_watches
from workers.schedule import beat_schedule, parse_crontab


def test_each_watched_hashtag_is_crawled_on_its_crontab(settings: Settings) -> None:
    settings.beat.sources_check_schedule = ""
    watches = [
        Watch(
            name="bridgerton",
            platform="tiktok",
            hashtags=["#Bridgerton", "queencharlotte"],
            limit=50,
            schedule="15 */2 * * 1-5",
            min_confidence="medium",
            recipients=["legal@studio.test"],
            max_age="3d",
        ),
    ]
    schedule = beat_schedule(watches, settings)
    entry = schedule["watch:bridgerton:bridgerton"]
    assert entry["task"] == "reelwatch.crawl"
    assert entry["args"] == ("tiktok", "bridgerton")
    # The watch's alert settings and bounds travel in the message, as plain JSON, so a
    # worker with another watchlist (or none) still applies them.
    assert entry["kwargs"] == {
        "watch": {
            "name": "bridgerton",
            "recipients": ["legal@studio.test"],
            "min_confidence": "medium",
            "limit": 50,
            "max_age_s": 3 * 86400.0,
        }
    }
    assert WatchOptions.of(entry["kwargs"]["watch"]) == watches[0].options()
    assert entry["options"] == {"queue": "crawl"}
    cron = entry["schedule"]
    assert isinstance(cron, crontab)
    assert cron.minute == {15} and cron.hour == set(range(0, 24, 2))
    assert cron.day_of_week == {1, 2, 3, 4, 5}
    assert set(schedule) == {
        "watch:bridgerton:bridgerton",
        "watch:bridgerton:queencharlotte",
        "alerts:flush",
        "removals:recheck",
    }
    assert schedule["alerts:flush"]["task"] == "reelwatch.flush_alerts"


def test_the_shipped_watchlist_makes_a_schedule(settings: Settings) -> None:
    root = Path(__file__).resolve().parents[2]
    watches = load_watches(root / "config" / "watchlists" / "default.yaml")
    schedule = beat_schedule(watches, settings)
    assert sum(1 for k in schedule if k.startswith("watch:")) == sum(
        len(w.hashtags) for w in watches
    )


@pytest.mark.parametrize("expr", ["* * *", "61 * * * *", "every hour please ok now"])
def test_a_bad_crontab_is_a_clear_error(expr: str) -> None:
    with pytest.raises(InputError, match="watch 'x': schedule"):
        parse_crontab(expr, "watch 'x'")


def test_the_source_check_runs_on_its_own_crontab_unless_turned_off(settings: Settings) -> None:
    settings.beat.flush_alerts_every_s = 60
    schedule = beat_schedule([], settings)
    check = schedule["sources:check"]
    assert check["task"] == "reelwatch.sources_check"
    assert check["options"] == {"queue": "crawl"}
    assert check["schedule"].hour == {6} and check["schedule"].minute == {0}
    assert schedule["alerts:flush"]["schedule"] == 60

    settings.beat.sources_check_schedule = ""
    assert "sources:check" not in beat_schedule([], settings)

    settings.beat.sources_check_schedule = "at dawn"
    with pytest.raises(InputError, match=r"beat\.sources_check_schedule: schedule .at dawn."):
        beat_schedule([], settings)


def test_the_removal_recheck_runs_every_schedule_every_s_on_the_crawl_queue(
    settings: Settings,
) -> None:
    settings.removal.schedule_every_s = 42
    entry = beat_schedule([], settings)["removals:recheck"]
    assert entry["task"] == "reelwatch.recheck_removals"
    assert entry["schedule"] == 42
    assert entry["options"] == {"queue": "crawl"}
    from workers import tasks

    assert tasks.recheck_removals.name == entry["task"]
    assert entry["options"]["queue"] == tasks.RECHECK_QUEUE
