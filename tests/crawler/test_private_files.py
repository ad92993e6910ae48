"""Files that hold a session (storage state, persistent profiles) live in private folders, and
a proxy's password never sits in the address Chromium is given."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from crawler.browser import playwright_proxy, private_dir


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """A umask that would make new folders world-readable, as on many machines."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_private_dir_makes_each_missing_folder_0700_and_leaves_existing_ones(
    tmp_path: Path, loose_umask: None
) -> None:
    os.chmod(tmp_path, 0o755)
    target = tmp_path / "home" / "browser" / "profile"
    assert private_dir(target) == target
    assert [mode(p) for p in (tmp_path / "home", tmp_path / "home" / "browser", target)] == [
        0o700
    ] * 3
    assert mode(tmp_path) == 0o755, "a folder that was there is the user's: not changed"
    os.chmod(target, 0o750)
    private_dir(target)
    assert mode(target) == 0o750


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://proxy.test:3128", {"server": "http://proxy.test:3128"}),
        (
            "http://user:p%40ss@proxy.test:3128",
            {"server": "http://proxy.test:3128", "username": "user", "password": "p@ss"},
        ),
        (
            "socks5://only-user@[::1]:1080",
            {"server": "socks5://[::1]:1080", "username": "only-user", "password": ""},
        ),
    ],
)
def test_proxy_credentials_go_to_chromium_apart_from_the_address(
    url: str, expected: dict[str, str]
) -> None:
    assert playwright_proxy(url) == expected
