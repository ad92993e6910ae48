"""``reelwatch crawl`` and ``reelwatch sources`` as a user runs them, against a signed replica
served by ``python -m crawler.replica --signed`` in its own process."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from crawler.replica.generate import generate_site
from crawler.state import CrawlState
from tests.cli.conftest import Runner

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def signed_replica(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``python -m crawler.replica --signed`` with 80 posts under #bridgerton."""
    site = generate_site(tmp_path_factory.mktemp("cli-signed"), 80, "bridgerton")
    proc = subprocess.Popen(
        [sys.executable, "-m", "crawler.replica", "--signed", "--site", str(site)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    assert url.startswith("http://127.0.0.1:")
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def env_for(url: str, **extra: str) -> dict[str, str]:
    return {
        "REELWATCH_CRAWL__SOURCES__TIKTOK__BASE_URL": url,
        "REELWATCH_DOWNLOAD__ALLOW_PRIVATE_HOSTS": "true",
        **extra,
    }


def test_lists_60_distinct_posts_as_json_without_processing(
    run_cli: Runner, signed_replica: str, home: Path
) -> None:
    args = ("crawl", "--platform", "tiktok", "--hashtag", "Bridgerton", "--limit", "60")
    done = run_cli(*args, "--no-process", "--json", env=env_for(signed_replica))
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert len(rows) == 60 and len({r["id"] for r in rows}) == 60
    assert {r["platform"] for r in rows} == {"tiktok"}
    assert all(r["new"] and r["url"].startswith(signed_replica) and r["posted_at"] for r in rows)
    assert "60 found, 60 new, 0 known, 0 failed (stopped: limit)" in done.stderr
    # Run again: the same posts are known now, and the runs are on record.
    again = run_cli(*args, "--no-process", "--json", env=env_for(signed_replica))
    assert not any(r["new"] for r in json.loads(again.stdout))
    with CrawlState.of_home(home) as state:
        runs = state.runs()
    assert [(r.found, r.new, r.known) for r in runs[:2]] == [(60, 0, 60), (60, 60, 0)]


def test_the_plain_http_path_exits_non_zero_with_one_line(
    run_cli: Runner, signed_replica: str
) -> None:
    done = run_cli(
        "crawl",
        "--platform",
        "tiktok",
        "--hashtag",
        "bridgerton",
        "--no-process",
        "--json",
        env=env_for(signed_replica, REELWATCH_CRAWL__SOURCES__TIKTOK__MODE="http"),
    )
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("reelwatch: error")]
    assert len(errors) == 1
    assert "answered unsigned item-list requests with nothing" in errors[0]
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def test_a_captcha_stops_the_crawl_with_a_one_line_reason(run_cli: Runner, tmp_path: Path) -> None:
    site = generate_site(tmp_path / "site", 3, "bridgerton")
    proc = subprocess.Popen(
        [sys.executable, "-m", "crawler.replica", "--signed", "--captcha", "--site", str(site)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        done = run_cli(
            "crawl",
            "--platform",
            "tiktok",
            "--hashtag",
            "bridgerton",
            "--no-process",
            env=env_for(url),
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("reelwatch: error")]
    assert "captcha" in line


def test_sources_check_reports_each_source_in_one_line(
    run_cli: Runner, signed_replica: str
) -> None:
    done = run_cli(
        "sources",
        "check",
        "tiktok",
        "replica",
        "instagram",
        env=env_for(signed_replica, REELWATCH_CRAWL__SOURCES__TIKTOK__CANARY="#bridgerton"),
    )
    lines = done.stdout.strip().splitlines()
    by_name = {line.split(":", 1)[0]: line for line in lines}
    assert by_name["tiktok"].startswith("tiktok: works (3 posts for #bridgerton)")
    assert by_name["replica"].startswith("replica: skipped")
    assert by_name["instagram"].startswith("instagram: skipped (not logged in")
    assert len(lines) == len(by_name), "one line per source"
    # A source that answers unsigned requests with nothing is broken, with the reason.
    broken = run_cli(
        "sources",
        "check",
        "tiktok",
        env=env_for(
            signed_replica,
            REELWATCH_CRAWL__SOURCES__TIKTOK__CANARY="#bridgerton",
            REELWATCH_CRAWL__SOURCES__TIKTOK__MODE="http",
        ),
    )
    assert broken.returncode == 1
    assert broken.stdout.startswith("tiktok: broken (empty_body): ")
    assert len(broken.stdout.strip().splitlines()) == 1


def test_a_bad_query_or_max_age_is_one_line(run_cli: Runner) -> None:
    for args, expected in [
        (("--hashtag", "bad tag!"), "is not a hashtag"),
        (("--hashtag", "x", "--max-age", "soon"), "--max-age"),
        (("--hashtag", "x", "--query", "#y"), "either --hashtag or --query"),
        (("--query", "@someone"), "cannot list a account query"),
    ]:
        done = run_cli("crawl", "--platform", "tiktok", *args, "--no-process")
        assert done.returncode == 1, args
        assert expected in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_watch_list_shows_each_watchs_last_run(run_cli: Runner, home: Path) -> None:
    from datetime import UTC, datetime

    from crawler.state import CrawlRun

    with CrawlState.of_home(home) as state:
        started = datetime(2026, 12, 1, 21, 40, tzinfo=UTC)
        for query, found, new in (("#starfall", 10, 4), ("#starfallstation", 5, 5)):
            state.record(
                CrawlRun("replica", query, "demo", started, started, found, new, found - new, 1)
            )
    done = run_cli("watch", "list")
    assert done.returncode == 0, done.stderr
    rows = {
        line.strip("│ ").split()[0]: line
        for line in done.stdout.splitlines()
        if line.strip("│ ").startswith(("demo ", "bridgerton "))
    }
    # The table wraps the cell: its first line carries the time and the first counts.
    assert "12-01 21:40 15 found, 9 new," in rows["demo"], "both queries' runs added up"
    assert rows["bridgerton"].rstrip(" │").endswith("never"), "a watch that never ran says so"
