"""Alert emails end to end: deliver() through EmailNotifier into a real SMTP server."""

from __future__ import annotations

import smtplib
import subprocess
import sys
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from reelwatch.errors import InputError
from reelwatch.models import Alert, AlertStatus, Confidence, Match, Post
from reelwatch.settings import Settings
from tests.triage.factories import make_match, make_post
from triage.alerts import deliver, flush_pending
from triage.notifiers import EmailNotifier, Notifier, build_notifiers
from triage.smtp_sink import SmtpSink, free_port
from triage.stores import Store, open_store

RECIPIENTS = ["ana@studio.test", "bo@studio.test"]
EVIDENCE = b"\x89PNG\r\n\x1a\n-evidence-frame-"


@pytest.fixture
def mail_settings(settings: Settings) -> Settings:
    settings.email.recipients = list(RECIPIENTS)
    settings.email.board_url = "http://board.test/"
    settings.email.timeout_s = 5
    settings.evidence_dir.mkdir(exist_ok=True)
    (settings.evidence_dir / "q.png").write_bytes(EVIDENCE)
    return settings


def use_smtp(settings: Settings, port: int) -> Settings:
    settings.email.smtp_host = "127.0.0.1"
    settings.email.smtp_port = port
    return settings


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    with open_store(settings) as s:
        yield s


def landed(store: Store, **fields: Any) -> Match:
    match = make_match(**fields)
    match.segments[0].evidence = ["evidence/q.png", "evidence/missing.png", "../../etc/passwd"]
    store.upsert_match(match)
    store.upsert_post(make_post(match.post_id))
    return match


def body(message: EmailMessage, kind: str) -> str:
    part = message.get_body(preferencelist=(kind,))
    assert part is not None, f"no text/{kind} part"
    return str(part.get_content())


def test_high_match_emails_every_recipient_with_text_html_image_and_board_link(
    mail_settings: Settings, store: Store, sink: SmtpSink
) -> None:
    settings = use_smtp(mail_settings, sink.port)
    match = landed(store)

    alerts = deliver(
        store, build_notifiers(settings), match, store.get_post(match.post_key), settings
    )

    assert [(a.recipient, a.status) for a in alerts] == [(r, AlertStatus.SENT) for r in RECIPIENTS]
    assert sorted(r for mail in sink.received for r in mail.rcpt_tos) == RECIPIENTS
    mail = sink.messages[0]
    assert mail["Message-ID"] == alerts[0].message_id
    assert "The Crown" in mail["Subject"] and "@fan" in mail["Subject"]
    board = "http://board.test/matches/tiktok:7001:the-crown"
    text, html = body(mail, "plain"), body(mail, "html")
    for content in (text, html):
        assert "The Crown" in content
        assert "0.90" in content
        assert "https://www.tiktok.com/@fan/video/7001" in content
        assert "0:03.0–0:12.5" in content and "1:01.0–1:10.5" in content
        assert board in content
    images = [p for p in mail.walk() if p.get_content_maintype() == "image"]
    assert len(images) == 1, "only the evidence that exists under the home is attached"
    assert images[0].get_content() == EVIDENCE
    cid = str(images[0]["Content-ID"]).strip("<>")
    assert f"cid:{cid}" in html


def test_delivering_twice_sends_one_email_per_recipient(
    mail_settings: Settings, store: Store, sink: SmtpSink
) -> None:
    settings = use_smtp(mail_settings, sink.port)
    match = landed(store)
    notifiers = build_notifiers(settings)

    deliver(store, notifiers, match, None, settings)
    with open_store(settings) as other_worker:
        again = deliver(other_worker, notifiers, match, None, settings)
    flush_pending(store, notifiers)

    assert [a.status for a in again] == [AlertStatus.SENT, AlertStatus.SENT]
    assert len(sink.messages) == len(RECIPIENTS)


def test_matches_below_the_threshold_are_not_alerted(
    mail_settings: Settings, store: Store, sink: SmtpSink
) -> None:
    settings = use_smtp(mail_settings, sink.port)
    match = landed(store, score=0.6, confidence=Confidence.MEDIUM)
    assert deliver(store, build_notifiers(settings), match, None, settings) == []
    settings.alerts.min_confidence = Confidence.MEDIUM
    assert len(deliver(store, build_notifiers(settings), match, None, settings)) == 2
    assert len(sink.messages) == 2


def test_hostile_caption_and_handle_are_escaped_and_cannot_inject_headers(
    mail_settings: Settings, store: Store, sink: SmtpSink
) -> None:
    settings = use_smtp(mail_settings, sink.port)
    settings.email.recipients = ["ana@studio.test"]
    hostile = "<script>alert(1)</script>\r\nBcc: victim@evil.test\r\n\r\n"
    match = landed(
        store,
        caption=hostile + "A" * 100_000,
        account="evil\r\nBcc: spy@evil.test\nX-Injected: 1",
        title="Crown <b>\r\nBcc: t@evil.test",
    )

    (alert,) = deliver(store, build_notifiers(settings), match, None, settings)

    assert alert.status == AlertStatus.SENT
    (mail,) = sink.received
    assert mail.rcpt_tos == ["ana@studio.test"]
    message = mail.message
    assert message["Bcc"] is None and message["X-Injected"] is None
    subject = str(message["Subject"])
    assert "\n" not in subject and "\r" not in subject and len(subject) <= 160
    html = body(message, "html")
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Crown &lt;b&gt;" in html
    assert len(message.as_bytes()) < 40_000, "a 100k caption is capped, not mailed whole"


def test_without_smtp_host_alerts_land_in_the_outbox(mail_settings: Settings, store: Store) -> None:
    assert mail_settings.email.smtp_host is None
    match = landed(store)

    alerts = deliver(store, build_notifiers(mail_settings), match, None, mail_settings)
    deliver(store, build_notifiers(mail_settings), match, None, mail_settings)

    assert all(a.status == AlertStatus.SENT for a in alerts)
    files = sorted(mail_settings.outbox_dir.glob("*.eml"))
    assert len(files) == 2
    parsed = [BytesParser(policy=policy.default).parsebytes(f.read_bytes()) for f in files]
    assert sorted(str(m["To"]) for m in parsed) == RECIPIENTS
    assert {str(m["Message-ID"]) for m in parsed} == {a.message_id for a in alerts}
    assert isinstance(parsed[0], EmailMessage)
    assert "tiktok:7001:the-crown" in body(parsed[0], "html")


def test_server_down_keeps_alerts_pending_until_flush_delivers_them_once(
    mail_settings: Settings, store: Store
) -> None:
    port = free_port()
    settings = use_smtp(mail_settings, port)
    match = landed(store)
    notifiers = build_notifiers(settings)

    down = deliver(store, notifiers, match, None, settings)

    assert [a.status for a in down] == [AlertStatus.PENDING] * 2
    assert all(a.error and f"127.0.0.1:{port}" in a.error for a in down)
    with SmtpSink(port) as sink:
        flushed = flush_pending(store, notifiers)
        assert [a.status for a in flushed] == [AlertStatus.SENT] * 2
        assert flush_pending(store, notifiers) == []
        deliver(store, notifiers, match, None, settings)
        assert len(sink.messages) == 2
    sent = store.list_alerts(AlertStatus.SENT)
    assert {a.message_id for a in sent} == {a.message_id for a in flushed}


def test_rejected_recipient_fails_for_good_and_is_not_retried(
    mail_settings: Settings, store: Store
) -> None:
    match = landed(store)
    with SmtpSink(reject_recipients=["bo@studio.test"]) as sink:
        settings = use_smtp(mail_settings, sink.port)
        notifiers = build_notifiers(settings)
        alerts = deliver(store, notifiers, match, None, settings)
        assert [(a.recipient, a.status) for a in alerts] == [
            ("ana@studio.test", AlertStatus.SENT),
            ("bo@studio.test", AlertStatus.FAILED),
        ]
        assert alerts[1].error is not None and "550" in alerts[1].error
        assert flush_pending(store, notifiers) == []
        assert len(sink.messages) == 1


def test_smtp_login_uses_the_secret_password(mail_settings: Settings, store: Store) -> None:
    match = landed(store)
    with SmtpSink(auth=("alerts", "s3cret")) as sink:
        settings = use_smtp(mail_settings, sink.port)
        settings.email.username = "alerts"
        settings.email.password = SecretStr("wrong")
        # A local server without TLS: plain AUTH has to be allowed (test_smtp_security.py).
        settings.email.allow_plain_auth = True
        notifiers = build_notifiers(settings)
        refused = deliver(store, notifiers, match, None, settings)
        assert [a.status for a in refused] == [AlertStatus.PENDING] * 2
        assert all(a.error and "535" in a.error for a in refused)
        assert "wrong" not in str(refused)

        settings.email.password = SecretStr("s3cret")
        assert len(flush_pending(store, build_notifiers(settings))) == 2
        assert len(sink.messages) == 2


def test_alert_of_a_worker_that_died_mid_send_is_retried_after_its_lease(
    mail_settings: Settings, store: Store, sink: SmtpSink
) -> None:
    settings = use_smtp(mail_settings, sink.port)
    settings.email.recipients = ["ana@studio.test"]
    match = landed(store)
    store.claim_alert(Alert(match_id=match.id, channel="email", recipient="ana@studio.test"))
    notifiers = build_notifiers(settings)

    assert flush_pending(store, notifiers) == [], "the lease is still fresh"
    assert deliver(store, notifiers, match, None, settings)[0].status == AlertStatus.PENDING
    assert sink.messages == []
    (retried,) = flush_pending(store, notifiers, lease_s=0)
    assert retried.status == AlertStatus.SENT
    assert len(sink.messages) == 1


def test_a_crashing_notifier_keeps_the_alert_pending(mail_settings: Settings, store: Store) -> None:
    class Broken(EmailNotifier):
        def send(self, match: Match, post: Post | None, recipient: str) -> str:
            raise RuntimeError("template bug")

    match = landed(store)
    notifiers: list[Notifier] = [Broken(mail_settings)]
    alerts = deliver(store, notifiers, match, None, mail_settings)
    assert [a.status for a in alerts] == [AlertStatus.PENDING] * 2
    assert all(a.error == "RuntimeError: template bug" for a in alerts)


def test_unknown_channel_is_an_input_error(settings: Settings) -> None:
    settings.alerts.channels = ["email", "pager"]
    with pytest.raises(InputError, match="pager"):
        build_notifiers(settings)


def test_sink_runs_standalone_and_saves_eml(tmp_path: Path) -> None:
    port = free_port()
    saved = tmp_path / "mail"
    proc = subprocess.Popen(
        [sys.executable, "-m", "triage.smtp_sink", "--port", str(port), "--dir", str(saved)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert proc.stdout is not None
        assert f"127.0.0.1:{port}" in proc.stdout.readline()
        with smtplib.SMTP("127.0.0.1", port, timeout=5) as smtp:
            smtp.sendmail("a@b.test", ["c@d.test"], b"Subject: hello\r\n\r\nbody\r\n")
        assert "hello" in proc.stdout.readline()
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
    (eml,) = saved.glob("*.eml")
    assert b"Subject: hello" in eml.read_bytes()
