"""``reelwatch notice`` through the real console entry point, on an SQLite store in the
test's data home."""

from __future__ import annotations

import json
from pathlib import Path

from reelwatch.models import TriageStatus
from reelwatch.settings import Settings
from tests.cli.conftest import Runner
from tests.triage.factories import make_match
from triage.stores import open_store

CONTACT_ENV = {
    "REELWATCH_NOTICES__CONTACT_NAME": "Jane Doe",
    "REELWATCH_NOTICES__EMAIL": "copyright@studio.example",
}


def test_notice_draft_list_show_sent_and_bad_ids(
    settings: Settings, run_cli: Runner, tmp_path: Path
) -> None:
    with open_store(settings) as store:
        for post_id, account in [("1", "fan"), ("2", "fan"), ("3", "other")]:
            store.upsert_match(
                make_match(
                    post_id,
                    account=account,
                    post_url=f"https://www.tiktok.com/@{account}/video/{post_id}",
                )
            )
        store.upsert_match(make_match("4"))
        store.set_status("tiktok:4:the-crown", "dismissed")

    out = tmp_path / "drafts"
    ids = ["tiktok:1:the-crown", "tiktok:2:the-crown", "tiktok:3:the-crown"]
    drafted = run_cli("notice", "draft", *ids, "--out", str(out), "--json", env=CONTACT_ENV)
    assert drafted.returncode == 0, drafted.stderr
    notices = json.loads(drafted.stdout)
    by_account = {n["account"]: n for n in notices}
    assert sorted(by_account) == ["fan", "other"]
    fan = by_account["fan"]
    assert fan["urls"] == [
        "https://www.tiktok.com/@fan/video/1",
        "https://www.tiktok.com/@fan/video/2",
    ]
    assert fan["files"] == [
        str(out / fan["id"] / name)
        for name in ("notice.txt", "notice.html", "form.json", "form.csv")
    ]
    assert (out / fan["id"] / "notice.txt").read_text() == fan["text"]
    # Contact name and email are set; the rest are named once, on one warning line.
    warning = [ln for ln in drafted.stderr.splitlines() if "warning" in ln]
    assert len(warning) == 1
    assert "notices.company, notices.address, notices.phone" in warning[0]
    assert "notices.email" not in warning[0]

    listed = run_cli("notice", "list", "--status", "drafted", "--json")
    assert listed.returncode == 0, listed.stderr
    assert sorted(n["id"] for n in json.loads(listed.stdout)) == sorted(n["id"] for n in notices)

    shown = run_cli("notice", "show", fan["id"])
    assert shown.returncode == 0, shown.stderr
    assert "https://www.tiktok.com/@fan/video/2" in shown.stdout
    assert "under penalty of perjury" in shown.stdout

    sent = run_cli("notice", "sent", fan["id"], "--reference", "TT-42", "--actor", "jane")
    assert sent.returncode == 0, sent.stderr
    assert "reference TT-42" in sent.stdout and "2 notice_sent" in sent.stdout
    with open_store(settings) as store:
        for mid in ids[:2]:
            m = store.get_match(mid)
            assert m is not None
            assert m.status == TriageStatus.NOTICE_SENT
            assert m.enforcement.notice_sent_at is not None
        other = store.get_match(ids[2])
        assert other is not None and other.status == TriageStatus.NOTICE_DRAFTED

    for args, message in [
        (["tiktok:404:the-crown"], "unknown match 'tiktok:404:the-crown'"),
        (["tiktok:4:the-crown"], "match 'tiktok:4:the-crown' is dismissed"),
        (["tiktok:1:the-crown", "--platform", "youtube"], "is on tiktok, not youtube"),
    ]:
        bad = run_cli("notice", "draft", *args)
        assert bad.returncode == 1
        assert bad.stderr.startswith("reelwatch: error: ")
        assert message in bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1
        assert "Traceback" not in bad.stderr

    withdrawn = run_cli("notice", "withdraw", by_account["other"]["id"])
    assert withdrawn.returncode == 0, withdrawn.stderr
    again = run_cli("notice", "sent", by_account["other"]["id"])
    assert again.returncode == 1
    assert "was withdrawn" in again.stderr


def test_drafting_can_make_an_account_a_repeat_infringer(
    settings: Settings, run_cli: Runner
) -> None:
    """A notice drafted on new matches counts as their confirmation in the ledger: an account
    crossing ``ledger.alert_threshold`` there is alerted on (to the outbox without SMTP), once
    for the account however many of its matches the notice names."""
    with open_store(settings) as store:
        for post_id in ("7101", "7102"):
            store.upsert_match(make_match(post_id, account="serial"))
    env = {**CONTACT_ENV, "REELWATCH_LEDGER__ALERT_THRESHOLD": "2"}
    ids = ["tiktok:7101:the-crown", "tiktok:7102:the-crown"]
    drafted = run_cli("notice", "draft", *ids, env=env)
    assert drafted.returncode == 0, drafted.stderr
    assert "repeat-infringer alert account:tiktok:serial" in drafted.stdout
    with open_store(settings) as store:
        alerts = [a for a in store.list_alerts() if a.match_id.startswith("account:")]
    assert len(alerts) == len(settings.email.recipients)
    assert "serial" in alerts[0].match_id
    again = run_cli("notice", "draft", ids[0], env=env)  # redrafting alerts no one again
    assert again.returncode == 0, again.stderr
    with open_store(settings) as store:
        assert len([a for a in store.list_alerts() if a.match_id.startswith("account:")]) == len(
            alerts
        )
