"""The repeat-infringer alert end to end: after_status_change through EmailNotifier into a
real SMTP server (aiosmtpd), once per crossing, from any number of processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest

from reelwatch.models import Alert, AlertStatus, Match, TriageStatus, utcnow
from reelwatch.settings import Settings
from tests.triage.factories import make_match, make_post
from tests.triage.test_email_alerts import use_smtp
from triage.alerts import deliver, flush_pending
from triage.ledger import account_alert_key, after_status_change
from triage.notifiers import build_notifiers
from triage.smtp_sink import SmtpSink, free_port
from triage.stores import Store, open_store

RECIPIENTS = ["ana@studio.test", "bo@studio.test"]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def mail_settings(settings: Settings) -> Settings:
    settings.email.recipients = list(RECIPIENTS)
    settings.email.board_url = "http://board.test/"
    settings.email.timeout_s = 5
    settings.ledger.alert_threshold = 3
    return settings


@pytest.fixture
def store(mail_settings: Settings) -> Iterator[Store]:
    with open_store(mail_settings) as s:
        yield s


def land(store: Store, post_id: str, account: str = "fan", **fields: Any) -> Match:
    match = make_match(post_id, account=account, views=1000, **fields)
    store.upsert_match(match)
    store.upsert_post(make_post(post_id))
    return match


def confirm(settings: Settings, store: Store, match: Match, *, days_ago: float = 0) -> Alert | None:
    """What the CLI and the board do: record the status, then call the hook."""
    at = utcnow() - timedelta(days=days_ago)
    changed = store.set_status(match.id, TriageStatus.CONFIRMED, actor="test", at=at)
    return after_status_change(settings, store, changed)


def body(message: EmailMessage, kind: str) -> str:
    part = message.get_body(preferencelist=(kind,))
    assert part is not None, f"no text/{kind} part"
    return str(part.get_content())


def test_crossing_the_threshold_emails_every_recipient_once_with_the_ledger_and_links(
    mail_settings: Settings, store: Store, sink: SmtpSink
) -> None:
    settings = use_smtp(mail_settings, sink.port)
    matches = [land(store, str(n), "@Fan", title_id=t) for n, t in enumerate(["a", "b", "c"])]
    land(store, "9", "fan", platform="instagram")

    assert confirm(settings, store, matches[0]) is None
    assert confirm(settings, store, matches[1]) is None
    assert sink.messages == []
    alert = confirm(settings, store, matches[2])

    assert alert is not None and alert.status == AlertStatus.SENT
    assert alert.match_id == "account:tiktok:fan:repeat"
    assert sorted(r for mail in sink.received for r in mail.rcpt_tos) == RECIPIENTS
    mail = sink.messages[0]
    assert mail["Subject"] == "[reelwatch] repeat infringer @Fan on tiktok (3 confirmed in 90 days)"
    assert mail["Message-ID"] == alert.message_id
    text, html = body(mail, "plain"), body(mail, "html")
    for content in (text, html):
        for m in matches:
            assert f"http://board.test/matches/{m.id}" in content
            assert m.post_url in content
        assert "http://board.test/accounts/tiktok/Fan" in content
        assert "3 confirmed match" in content
        assert "instagram" in content and "may be another person" in content
    assert "Confirmed (last 90 days):     3" in text
    assert "Views reached:" in text and "3,000" in text

    # Again, and a fourth confirmation: the crossing was told already.
    assert after_status_change(settings, store, matches[2]) is None
    assert confirm(settings, store, land(store, "4", "fan")) is None
    with open_store(settings) as other:
        assert after_status_change(settings, other, matches[0]) is None
    assert len(sink.messages) == len(RECIPIENTS)
    sent = store.list_alerts(AlertStatus.SENT)
    assert {a.id for a in sent} == {f"account:tiktok:fan:repeat:email:{r}" for r in RECIPIENTS}


_RACER = """
import sys, time
from reelwatch.settings import load_settings
from triage.ledger import after_status_change
from triage.stores import open_store

home, port, match_id, start = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
settings = load_settings(home=home)
settings.email.smtp_host, settings.email.smtp_port = "127.0.0.1", port
settings.email.recipients = ["ana@studio.test", "bo@studio.test"]
settings.ledger.alert_threshold = 3
with open_store(settings) as store:
    match = store.get_match(match_id)
    time.sleep(max(0.0, start - time.time()))
    alert = after_status_change(settings, store, match)
print(alert.status.value if alert else "none")
"""


def test_two_processes_crossing_at_once_send_one_email_per_recipient(
    mail_settings: Settings, store: Store, sink: SmtpSink
) -> None:
    matches = [land(store, str(n)) for n in range(3)]
    for m in matches:
        store.set_status(m.id, TriageStatus.CONFIRMED, actor="test")
    start = time.time() + 3
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    racers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _RACER,
                str(mail_settings.home),
                str(sink.port),
                matches[n].id,
                str(start),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )
        for n in range(2)
    ]
    outputs = [r.communicate(timeout=120) for r in racers]

    assert [r.returncode for r in racers] == [0, 0], [err for _, err in outputs]
    said = sorted(out.strip() for out, _ in outputs)
    assert "sent" in said, said
    assert len(sink.messages) == len(RECIPIENTS)
    assert sorted(r for mail in sink.received for r in mail.rcpt_tos) == RECIPIENTS


def test_no_alert_below_the_threshold_nor_with_threshold_zero(
    mail_settings: Settings, store: Store, sink: SmtpSink
) -> None:
    settings = use_smtp(mail_settings, sink.port)
    old = land(store, "old")
    assert confirm(settings, store, old, days_ago=91) is None
    for n in range(2):
        assert confirm(settings, store, land(store, str(n))) is None
    assert sink.messages == [], "the confirmation 91 days ago is out of the window"

    settings.ledger.alert_threshold = 0
    for n in range(2, 6):
        assert confirm(settings, store, land(store, str(n))) is None
    assert sink.messages == []
    assert store.list_alerts() == []


def test_dismissing_or_other_statuses_never_alert_under_the_threshold(
    mail_settings: Settings, store: Store, sink: SmtpSink
) -> None:
    settings = use_smtp(mail_settings, sink.port)
    a, b, c = land(store, "1"), land(store, "2"), land(store, "3")
    confirm(settings, store, a)
    confirm(settings, store, b)
    dismissed = store.set_status(c.id, TriageStatus.DISMISSED, actor="test")
    assert after_status_change(settings, store, dismissed) is None
    assert after_status_change(settings, store, land(store, "4", account="")) is None
    assert sink.messages == []


def test_hostile_handles_are_escaped_and_cannot_inject_headers(
    mail_settings: Settings, store: Store, sink: SmtpSink
) -> None:
    settings = use_smtp(mail_settings, sink.port)
    settings.email.recipients = ["ana@studio.test"]
    hostile = "<script>alert(1)</script>\r\nBcc: spy@evil.test\nX-Injected: 1"
    matches = [
        land(store, str(n), hostile, title=f"Crown <b>{n}</b>\r\nBcc: t@evil.test")
        for n in range(3)
    ]
    for m in matches:
        alert = confirm(settings, store, m)

    assert alert is not None and alert.status == AlertStatus.SENT
    (mail,) = sink.received
    assert mail.rcpt_tos == ["ana@studio.test"]
    message = mail.message
    assert message["Bcc"] is None and message["X-Injected"] is None
    subject = str(message["Subject"])
    assert "\n" not in subject and "\r" not in subject and subject.startswith("[reelwatch]")
    html = body(message, "html")
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>0</b>" not in html and "Crown &lt;b&gt;0&lt;/b&gt;" in html
    account_link = html.split('href="http://board.test/accounts/tiktok/', 1)[1].split('"')[0]
    assert "<" not in account_link and " " not in account_link and "\n" not in account_link
    lines = body(message, "plain").splitlines()
    assert not any(line.startswith(("X-Injected", "Bcc: spy")) for line in lines)
    assert "@<script>alert(1)</script> Bcc: spy@evil.test X-Injected: 1 on tiktok" in lines[0]


def test_without_smtp_the_alert_lands_in_the_outbox(mail_settings: Settings, store: Store) -> None:
    assert mail_settings.email.smtp_host is None
    for n in range(3):
        alert = confirm(mail_settings, store, land(store, str(n)))

    assert alert is not None and alert.status == AlertStatus.SENT
    files = sorted(mail_settings.outbox_dir.glob("*.eml"))
    assert len(files) == len(RECIPIENTS)
    parsed = [BytesParser(policy=policy.default).parsebytes(f.read_bytes()) for f in files]
    assert sorted(str(m["To"]) for m in parsed) == RECIPIENTS
    assert all("repeat infringer @fan on tiktok" in str(m["Subject"]) for m in parsed)


def test_server_down_leaves_it_pending_and_the_beat_flush_sends_it_once(
    mail_settings: Settings, store: Store
) -> None:
    port = free_port()
    settings = use_smtp(mail_settings, port)
    matches = [land(store, str(n)) for n in range(3)]
    for m in matches:
        alert = confirm(settings, store, m)
    assert alert is not None and alert.status == AlertStatus.PENDING
    assert alert.error is not None and f"127.0.0.1:{port}" in alert.error
    notifiers = build_notifiers(settings)

    with SmtpSink(port) as sink:
        assert flush_pending(store, notifiers) == [], "without settings it waits, unharmed"
        assert len(store.list_alerts(AlertStatus.PENDING)) == 2
        flushed = flush_pending(store, notifiers, settings=settings)
        assert [a.status for a in flushed] == [AlertStatus.SENT] * 2
        assert flush_pending(store, notifiers, settings=settings) == []
        assert after_status_change(settings, store, matches[0]) is None
        assert len(sink.messages) == 2
        assert "3 confirmed in 90 days" in str(sink.messages[0]["Subject"])


def test_the_flush_fails_an_account_alert_whose_account_is_gone_and_goes_on(
    mail_settings: Settings, store: Store, sink: SmtpSink
) -> None:
    settings = use_smtp(mail_settings, sink.port)
    settings.email.recipients = ["ana@studio.test"]
    match = land(store, "1")
    ghost = Alert(
        match_id=account_alert_key("tiktok", "nobody"), channel="email", recipient="ana@studio.test"
    )
    store.claim_alert(ghost)
    store.update_alert(ghost.model_copy(update={"error": "server away"}))
    stranger = Alert(match_id=match.id, channel="email", recipient="ana@studio.test")
    store.claim_alert(stranger)
    store.update_alert(stranger.model_copy(update={"error": "server away"}))

    flushed = {a.id: a for a in flush_pending(store, build_notifiers(settings), settings=settings)}

    assert flushed[ghost.id].status == AlertStatus.FAILED
    assert (
        flushed[ghost.id].error
        == "the account @nobody on tiktok has no match in the store any more"
    )
    assert flushed[stranger.id].status == AlertStatus.SENT, "the match alert still went out"
    assert len(sink.messages) == 1


def test_an_account_alert_does_not_count_towards_a_watch_digest(
    mail_settings: Settings, store: Store, sink: SmtpSink
) -> None:
    settings = use_smtp(mail_settings, sink.port)
    settings.email.recipients = ["ana@studio.test"]
    settings.alerts.digest_threshold = 1
    for n in range(3):
        confirm(settings, store, land(store, str(n), watch=None))
    assert len(sink.messages) == 1

    loner = land(store, "solo", "someone", watch=None)
    (alert,) = deliver(store, build_notifiers(settings), loner, None, settings)

    assert alert.status == AlertStatus.SENT, alert.error
    assert len(sink.messages) == 2


def test_a_second_crossing_after_the_count_fell_below_alerts_again_once(
    mail_settings: Settings, store: Store, sink: SmtpSink
) -> None:
    settings = use_smtp(mail_settings, sink.port)
    settings.email.recipients = ["ana@studio.test"]
    old = [land(store, f"old{n}") for n in range(3)]
    for n, m in enumerate(old):
        store.set_status(
            m.id, TriageStatus.CONFIRMED, at=utcnow() - timedelta(days=200 - n), actor="test"
        )
    first = Alert(
        match_id=account_alert_key("tiktok", "fan"),
        channel="email",
        recipient="ana@studio.test",
        created_at=utcnow() - timedelta(days=197),
    )
    assert store.claim_alert(first)
    store.update_alert(first.model_copy(update={"status": AlertStatus.SENT}))

    fresh = [land(store, f"new{n}") for n in range(3)]
    results = [confirm(settings, store, m) for m in fresh]

    assert results[:2] == [None, None]
    assert results[2] is not None and results[2].match_id == "account:tiktok:fan:repeat:2"
    assert len(sink.messages) == 1
    # Confirming one of them again is no new crossing.
    assert confirm(settings, store, fresh[0]) is None
    assert len(sink.messages) == 1


def test_reconfirming_a_match_after_the_alert_is_no_new_crossing(
    mail_settings: Settings, store: Store, sink: SmtpSink
) -> None:
    settings = use_smtp(mail_settings, sink.port)
    matches = [land(store, str(n)) for n in range(3)]
    for m in matches:
        confirm(settings, store, m)
    assert len(sink.messages) == 2
    store.set_status(matches[0].id, TriageStatus.NEW, actor="test")
    assert confirm(settings, store, matches[0]) is None
    notice = store.set_status(matches[1].id, TriageStatus.NOTICE_SENT, actor="test")
    assert after_status_change(settings, store, notice) is None
    assert len(sink.messages) == 2
