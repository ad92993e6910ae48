"""``reelwatch browser login PLATFORM``, run as a user would, against the replica's login
pages in a headless Chromium (``--fill`` types into the form what a person would)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from crawler import crawl_run
from crawler.replica import ReplicaServer
from crawler.replica.generate import generate_site
from reelwatch.settings import load_settings
from tests.cli.conftest import Runner

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplicaServer]:
    site = generate_site(tmp_path_factory.mktemp("login-site"), 3, "bridgerton")
    with ReplicaServer(site, page_size=2) as running:
        yield running


def env_for(server: ReplicaServer, *platforms: str) -> dict[str, str]:
    return {f"REELWATCH_CRAWL__SOURCES__{p.upper()}__BASE_URL": server.base_url for p in platforms}


def cookies(path: Path) -> dict[str, str]:
    return {c["name"]: c["value"] for c in json.loads(path.read_text())["cookies"]}


def test_login_saves_a_private_session_that_the_next_crawl_uses(
    run_cli: Runner, home: Path, server: ReplicaServer
) -> None:
    env = env_for(server, "instagram")
    result = run_cli("browser", "login", "instagram", "--headless", "--fill", "fan:secret", env=env)
    assert result.returncode == 0, result.stderr
    saved = home / "browser" / "instagram.json"
    assert f"saved the instagram session to {saved} (mode 0600)" in result.stdout
    assert "no setting needed" in result.stdout
    assert stat.S_IMODE(os.stat(saved).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(saved.parent).st_mode) == 0o700, "the folder we made is private"
    assert "sessionid" in cookies(saved)
    assert server.faults.refused["instagram_login"] == 1

    settings = load_settings(home=home)
    settings.crawl.sources["instagram"] = {"base_url": server.base_url, "idle_scrolls": 2}
    listed = crawl_run(settings, "instagram", "#bridgerton", limit=2)
    assert [p.post_id for p in listed.posts] == [f"7400{n:015d}" for n in range(2)]


def test_login_to_another_file_says_which_setting_to_make(
    run_cli: Runner, tmp_path: Path, server: ReplicaServer
) -> None:
    target = tmp_path / "sessions" / "x-team.json"
    result = run_cli(
        "browser",
        "login",
        "x",
        "--headless",
        "--fill",
        "fan:secret",
        "--state",
        str(target),
        env=env_for(server, "x"),
    )
    assert result.returncode == 0, result.stderr
    assert f"set REELWATCH_CRAWL__SOURCES__X__STORAGE_STATE={target}" in result.stdout
    assert {"auth_token", "ct0"} <= set(cookies(target))
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(target.parent).st_mode) == 0o700


def test_no_login_before_the_timeout_saves_nothing(
    run_cli: Runner, home: Path, server: ReplicaServer
) -> None:
    result = run_cli(
        "browser",
        "login",
        "instagram",
        "--headless",
        "--timeout",
        "2",
        env=env_for(server, "instagram"),
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == (
        "reelwatch: error: no instagram login within 2 s (no sessionid cookie); nothing saved"
    )
    assert not (home / "browser" / "instagram.json").exists()


def test_enter_saves_what_there_is_and_warns_without_the_cookie(
    home: Path, server: ReplicaServer
) -> None:
    env = {**os.environ, "REELWATCH_HOME": str(home), **env_for(server, "x")}
    result = subprocess.run(
        [sys.executable, "-m", "reelwatch", "browser", "login", "x", "--headless"],
        input="\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "warning: x set no auth_token cookie" in result.stderr
    assert (home / "browser" / "x.json").is_file()


def test_a_source_without_a_browser_has_nothing_to_log_in_to(run_cli: Runner) -> None:
    result = run_cli("browser", "login", "replica")
    assert result.returncode == 1
    assert "replica lists without a browser" in result.stderr
    assert "Traceback" not in result.stderr
