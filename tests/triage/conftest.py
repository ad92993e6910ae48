"""Fixtures the triage test modules share: the seeded board (``fill_store``), a test client,
a live server on a free port, Debian's Chromium driven by Playwright, where screenshots go
(``docs/img`` with ``REELWATCH_SCREENSHOTS=1``), and an SMTP sink. A module that needs more
data defines its own ``board`` (or ``sink``); the others build on the one in scope."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, sync_playwright

from reelwatch.settings import PROJECT_ROOT, Settings
from tests.triage.test_board import LOCAL, BoardData, fill_store
from tests.triage.test_board_browser import CHROMIUM, CHROMIUM_ARGS
from triage.board import BOARD_TOKEN_ENV, create_app
from triage.board.server import BoardServer
from triage.smtp_sink import SmtpSink
from triage.stores import open_store


@pytest.fixture
def board(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[BoardData]:
    monkeypatch.delenv(BOARD_TOKEN_ENV, raising=False)
    with open_store(settings) as store:
        yield fill_store(settings, store)


@pytest.fixture
def client(board: BoardData) -> Iterator[TestClient]:
    with TestClient(create_app(board.settings, board.store), base_url=LOCAL) as c:
        yield c


@pytest.fixture
def server(board: BoardData) -> Iterator[BoardServer]:
    with BoardServer(create_app(board.settings, board.store)) as running:
        yield running


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def screenshot_dir(tmp_path: Path) -> Path:
    if os.environ.get("REELWATCH_SCREENSHOTS") == "1":
        target = PROJECT_ROOT / "docs" / "img"
        target.mkdir(parents=True, exist_ok=True)
        return target
    return tmp_path


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with SmtpSink() as s:
        yield s
