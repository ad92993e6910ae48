"""The board in real Chromium: a reviewer filters the queue, opens a match, sees both frames,
and confirms it with a note; the decision lands in the store with its history.

Set ``REELWATCH_SCREENSHOTS=1`` to write the screenshots for the docs to ``docs/img/``
(otherwise they go to the test's temporary folder).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from reelwatch.models import TriageStatus
from tests.triage.test_board import HOSTILE_CAPTION, HOSTILE_ID, BoardData
from triage.board.server import BoardServer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason=f"needs Debian's chromium at {CHROMIUM}"),
]

EVIDENCE_LOADED = """selector => {
  const images = [...document.querySelectorAll(selector)];
  return images.length > 0 && images.every(i => i.complete && i.naturalWidth > 0);
}"""


@pytest.fixture
def page(browser: Browser) -> Iterator[tuple[Page, list[str]]]:
    """A page, and the JavaScript dialogs it opened (a hostile caption must open none)."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    tab = context.new_page()
    dialogs: list[str] = []

    def on_dialog(dialog: object) -> None:
        dialogs.append(getattr(dialog, "message", "?"))
        dialog.dismiss()  # type: ignore[attr-defined]

    tab.on("dialog", on_dialog)
    yield tab, dialogs
    context.close()


def row_ids(tab: Page) -> list[str]:
    return tab.eval_on_selector_all("tr.match-row", "rows => rows.map(r => r.dataset.matchId)")


def test_reviewer_filters_opens_sees_frames_and_confirms(
    server: BoardServer,
    board: BoardData,
    page: tuple[Page, list[str]],
    screenshot_dir: Path,
) -> None:
    tab, dialogs = page
    tab.goto(server.url + "/")
    assert len(row_ids(tab)) == 6

    tab.select_option("select[name=title]", "the-crown")
    with tab.expect_navigation():
        tab.click("form.filters button[type=submit]")
    assert "title=the-crown" in tab.url
    ids = row_ids(tab)
    assert ids == [
        "tiktok:7001:the-crown",
        HOSTILE_ID,
        "tiktok:7002:the-crown",
        "tiktok:7003:the-crown",
    ]
    tab.screenshot(path=str(screenshot_dir / "board-queue.png"), full_page=True)

    with tab.expect_navigation():
        tab.click('tr[data-match-id="tiktok:7001:the-crown"] a.open-match')
    tab.wait_for_function(EVIDENCE_LOADED, arg=".segment-copy figure.evidence img")
    widths = tab.eval_on_selector_all(
        ".segment-copy figure.evidence img", "imgs => imgs.map(i => i.naturalWidth)"
    )
    assert widths == [320, 320]
    tab.wait_for_function(EVIDENCE_LOADED, arg=".segment-face figure.evidence img")

    tab.wait_for_function("() => document.getElementById('clip').readyState >= 1")
    duration = tab.eval_on_selector("#clip", "v => v.duration")
    assert duration > 3.5
    tab.click("button[data-seek='1.50']")
    tab.wait_for_function("() => document.getElementById('clip').currentTime >= 1.5")
    tab.screenshot(path=str(screenshot_dir / "board-match.png"), full_page=True)

    note = "Frame-exact copy of S1E1; notice goes out today."
    tab.fill("textarea[name=note]", note)
    tab.fill("form.status-form input[name=actor]", "ana")
    with tab.expect_navigation():
        tab.click("button[name=status][value=confirmed]")
    assert tab.inner_text("#current-status").strip() == "confirmed"
    assert tab.inner_text("tr.history-entry td.note") == note

    stored = board.store.get_match(board.main_id)
    assert stored is not None
    assert stored.status == TriageStatus.CONFIRMED
    assert [(h.status, h.note, h.actor) for h in stored.history] == [
        (TriageStatus.CONFIRMED, note, "ana")
    ]
    assert dialogs == []


def test_hostile_caption_shows_as_text_in_the_browser(
    server: BoardServer, page: tuple[Page, list[str]]
) -> None:
    tab, dialogs = page
    tab.goto(server.url + "/")
    tab.goto(f"{server.url}/matches/{HOSTILE_ID}")
    caption = tab.inner_text("pre.caption")
    assert caption.startswith("<script>alert('caption')</script>\nBcc: victim@example.com\n")
    assert len(caption) >= len(HOSTILE_CAPTION) - 2
    assert tab.inner_text(".facts a.account") == '@<img src=x onerror="alert(1)">'
    injected = tab.evaluate(
        "() => document.querySelectorAll('main script, main img[src=x], main b').length"
    )
    assert injected == 0
    assert dialogs == []
