"""Acting on a match in real Chromium: a reviewer downloads the evidence pack (it verifies),
drafts a notice, copies the letter, marks the notice sent with the platform's reference, sees
the match move to "notice sent" and the account's ledger count the notice, and opens the
title's accounting report.

Set ``REELWATCH_SCREENSHOTS=1`` to write the screenshots for the docs to ``docs/img/``
(board-notice.png, board-match-lifecycle.png, board-accounts.png, board-report.png);
otherwise they go to the test's temporary folder.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page

from reelwatch.models import Author, NoticeStatus, PostStats, TriageStatus, utcnow
from reelwatch.settings import Settings
from tests.triage.factories import T0, make_post
from tests.triage.test_board import BoardData, fill_store
from tests.triage.test_board_browser import CHROMIUM
from triage.board import BOARD_TOKEN_ENV
from triage.board.server import BoardServer
from triage.packs import verify_pack
from triage.stores import open_store

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason=f"needs Debian's chromium at {CHROMIUM}"),
]


@pytest.fixture
def board(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[BoardData]:
    """``fill_store``'s six matches, the contact details a notice needs, and some history in
    the ledger's window: @repeater's three matches confirmed last week, one of them taken
    down 19 hours after its notice."""
    monkeypatch.delenv(BOARD_TOKEN_ENV, raising=False)
    settings.notices = settings.notices.model_copy(
        update={
            "rights_owner": "Left Bank Pictures",
            "contact_name": "Ana Reviewer",
            "company": "Left Bank Pictures Ltd",
            "address": "1 Example Street, London",
            "email": "legal@leftbank.example",
            "phone": "+44 20 0000 0000",
            "authority": "Head of Content Protection",
        }
    )
    with open_store(settings) as store:
        data = fill_store(settings, store)
        week_ago = utcnow() - timedelta(days=7)
        for i, mid in enumerate(
            ["tiktok:7002:the-crown", "tiktok:7003:the-crown", "tiktok:9001:bridgerton"]
        ):
            store.set_status(mid, TriageStatus.CONFIRMED, actor="ana", at=week_ago + timedelta(i))
        removed = "tiktok:7003:the-crown"
        sent_at = week_ago + timedelta(days=3)
        store.set_status(removed, TriageStatus.NOTICE_SENT, actor="ana", at=sent_at)
        store.set_status(
            removed, TriageStatus.REMOVED, actor="recheck", at=sent_at + timedelta(hours=19)
        )
        store.upsert_post(
            make_post(
                "7001",
                author=Author(id="c1", handle="crownclips", followers=4321),
                posted_at=T0 - timedelta(days=2),
                stats=PostStats(views=48_200, likes=3100),
            )
        )
        yield data


@pytest.fixture
def page(browser: Browser, server: BoardServer) -> Iterator[tuple[Page, list[str]]]:
    """A page that may download and use the clipboard, and what it reported: JavaScript
    dialogs and console errors (a Content-Security-Policy violation is one)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    tab = context.new_page()
    reported: list[str] = []

    def on_dialog(dialog: object) -> None:
        reported.append("dialog: " + getattr(dialog, "message", "?"))
        dialog.dismiss()  # type: ignore[attr-defined]

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            reported.append(f"console: {message.text} ({message.location.get('url')})")

    tab.on("dialog", on_dialog)
    tab.on("console", on_console)
    yield tab, reported
    context.close()


def ledger_notices_sent(tab: Page, server: BoardServer, account: str) -> int:
    tab.goto(f"{server.url}/accounts/tiktok/{account}")
    return int(tab.inner_text("#ledger-notices-sent").strip())


def test_export_draft_mark_sent_and_see_status_and_ledger(
    server: BoardServer,
    board: BoardData,
    page: tuple[Page, list[str]],
    screenshot_dir: Path,
    tmp_path: Path,
) -> None:
    tab, reported = page
    mid = board.main_id
    assert ledger_notices_sent(tab, server, "crownclips") == 0

    # The queue: a picture per match, a chip per status.
    tab.goto(server.url + "/")
    thumbs = tab.eval_on_selector_all(
        "tr.match-row img.thumb", "imgs => imgs.map(i => [i.complete, i.naturalWidth > 0])"
    )
    assert len(thumbs) == 6
    tab.wait_for_function(
        "() => [...document.querySelectorAll('img.thumb')].every(i => i.complete"
        " && i.naturalWidth > 0)"
    )

    # Confirm, then export the evidence pack: a zip that verifies.
    tab.goto(f"{server.url}/matches/{mid}")
    tab.fill("form.status-form input[name=actor]", "ana")
    with tab.expect_navigation():
        tab.click("button[name=status][value=confirmed]")
    assert tab.inner_text("#current-status").strip() == "confirmed"
    with tab.expect_download() as download_info:
        tab.click("a#export-pack")
    download = download_info.value
    assert download.suggested_filename == "tiktok_7001_the-crown.zip"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    check = verify_pack(saved)
    assert check.ok, check.problems
    assert check.files >= 6

    # Draft a notice: the letter, and the platform form's fields to copy.
    tab.fill("form.notice-form input[name=actor]", "ana")
    with tab.expect_navigation():
        tab.click("button#draft-notice")
    assert "/notices/n-" in tab.url
    notice_id = tab.url.rsplit("/", 1)[1]
    assert tab.inner_text("#notice-status").strip() == "drafted"
    letter = tab.inner_text("pre#notice-text")
    assert "https://www.tiktok.com/@fan/video/7001" in letter
    assert "good faith" in letter.lower()
    assert tab.locator("#missing-contact").count() == 0
    assert tab.locator("tr.form-field").count() >= 3
    tab.click("button[data-copy=notice-text]")
    tab.wait_for_function(
        "() => document.querySelector('button[data-copy=notice-text]').textContent === 'Copied'"
    )
    assert tab.evaluate("() => navigator.clipboard.readText()") == letter
    tab.fill("form#mark-sent input[name=reference]", "TT-2025-0042")
    tab.fill("form#mark-sent input[name=actor]", "ana")
    tab.screenshot(path=str(screenshot_dir / "board-notice.png"), full_page=True)

    # Mark it sent: the notice and the match change.
    with tab.expect_navigation():
        tab.click("form#mark-sent button[type=submit]")
    assert tab.inner_text("#notice-status").strip() == "sent"
    assert tab.inner_text("#notice-reference").strip() == "TT-2025-0042"
    assert tab.locator("form#mark-sent").count() == 0
    notice = board.store.get_notice(notice_id)
    assert notice is not None and notice.status == NoticeStatus.SENT
    assert notice.sent_by == "ana"

    with tab.expect_navigation():
        tab.click(f'ul.notice-matches li[data-match-id="{mid}"] a.open-match')
    assert tab.inner_text("#current-status").strip() == "notice sent"
    current = tab.eval_on_selector("ol.lifecycle-steps li.current", "li => li.dataset.status")
    assert current == "notice_sent"
    reached = tab.eval_on_selector_all(
        "ol.lifecycle-steps li.reached", "lis => lis.map(li => li.dataset.status)"
    )
    assert reached == ["new", "confirmed", "notice_drafted", "notice_sent"]
    assert tab.inner_text("a.notice-link") == notice_id
    stored = board.store.get_match(mid)
    assert stored is not None and stored.status == TriageStatus.NOTICE_SENT
    tab.locator("section.lifecycle").screenshot(
        path=str(screenshot_dir / "board-match-lifecycle.png")
    )

    # The account's ledger counts the notice.
    assert ledger_notices_sent(tab, server, "crownclips") == 1
    tab.goto(server.url + "/accounts")
    rows = tab.eval_on_selector_all(
        "tr.account-row", "rows => rows.map(r => [r.dataset.account, r.cells[4].innerText])"
    )
    assert rows[0][0] == "tiktok/repeater"  # three confirmed: over the threshold, riskiest
    assert ["tiktok/crownclips", "1"] in rows
    assert tab.locator("tr.account-row").first.locator(".badge.repeat").count() == 1
    tab.screenshot(path=str(screenshot_dir / "board-accounts.png"), full_page=True)

    # The title's accounting report.
    tab.goto(server.url + "/titles/the-crown/report")
    assert tab.inner_text("#fig-total").strip() == "4"
    assert tab.inner_text("#fig-removal").startswith("median 19 h")
    assert tab.inner_text("#fig-notices").strip() == "1"
    tab.wait_for_function(
        "() => [...document.querySelectorAll('.report-table img')].every(i => i.complete"
        " && i.naturalWidth > 0)"
    )
    tab.screenshot(path=str(screenshot_dir / "board-report.png"), full_page=True)

    assert reported == []
