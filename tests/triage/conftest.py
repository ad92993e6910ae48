"""Fixtures the board's test modules share: the seeded board (``fill_store``), a test client,
a live server on a free port, and Debian's Chromium driven by Playwright. A module that needs
more data defines its own ``board``; the others build on whichever ``board`` is in scope."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, sync_playwright

from reelwatch.settings import Settings
from tests.triage.test_board import LOCAL, BoardData, fill_store
from tests.triage.test_board_browser import CHROMIUM, CHROMIUM_ARGS
from triage.board import BOARD_TOKEN_ENV, create_app
from triage.board.server import BoardServer
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
