"""The source check on beat: one email about broken sources, at most once per source a day,
delivered through a real SMTP server and remembered in a real Redis."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date

import pytest

from crawler.sources_check import SourceCheck as Check
from reelwatch.errors import TransientError
from reelwatch.settings import Settings
from triage.smtp_sink import SmtpSink, free_port
from workers import canary, tasks
from workers.app import configure
from workers.canary import alert_broken_sources, run_sources_check
from workers.claims import Claims

pytestmark = pytest.mark.redis

TEAM = ["ops@studio.test", "lead@studio.test"]
DAY = date(2026, 3, 2)


WORKS = Check("youtube", True, "works", "3 posts for #fyp")
SKIPPED = Check("instagram", False, "skipped", "no storage state; run reelwatch browser login")
TIKTOK = Check(
    "tiktok", False, "empty_body", "the platform answered unsigned requests with nothing"
)
X_LOGIN = Check("x", False, "login_expired", "log in again: reelwatch browser login x\r\nBcc: a@b")


@pytest.fixture
def mail_settings(settings: Settings, sink: SmtpSink) -> Settings:
    settings.email.smtp_host = "127.0.0.1"
    settings.email.smtp_port = sink.port
    settings.email.recipients = list(TEAM)
    settings.email.timeout_s = 5
    return settings


@pytest.fixture
def claims(redis_url: str) -> Iterator[Claims]:
    c = Claims(redis_url)
    yield c
    c.close()


def mails_to(sink: SmtpSink, recipient: str) -> list[str]:
    """The plain-text bodies ``recipient`` got, oldest first, with plain line ends."""
    bodies = []
    for mail in sink.received:
        if mail.rcpt_tos == [recipient]:
            part = mail.message.get_body(preferencelist=("plain",))
            assert part is not None
            bodies.append(str(part.get_content()).replace("\r\n", "\n"))
    return bodies


def test_broken_sources_make_one_email_per_recipient_once_a_day(
    mail_settings: Settings, sink: SmtpSink, claims: Claims
) -> None:
    states: Sequence[Check] = [WORKS, SKIPPED, TIKTOK, X_LOGIN]
    assert alert_broken_sources(mail_settings, states, claims, today=DAY) == ["tiktok", "x"]
    assert sorted(r for m in sink.received for r in m.rcpt_tos) == sorted(TEAM)
    subject = str(sink.messages[0]["Subject"])
    assert subject == "[reelwatch] 2 sources broken: tiktok, x"
    [text] = mails_to(sink, "ops@studio.test")
    assert "- tiktok: empty_body\n  the platform answered unsigned requests with nothing" in text
    assert "- x: login_expired" in text
    # Working and unconfigured sources are not news; a platform's words cannot add headers.
    assert "youtube" not in text and "instagram" not in text
    assert sink.messages[0]["Bcc"] is None

    # The same check again today (a second beat, a retry): nothing new, no email.
    assert alert_broken_sources(mail_settings, states, claims, today=DAY) == []
    assert len(sink.received) == 2

    # Another source breaks later that day: only it is news.
    worse = [*states, Check("ytdlp", False, "http_status", "HTTP 403 from the feed")]
    assert alert_broken_sources(mail_settings, worse, claims, today=DAY) == ["ytdlp"]
    [_, later] = mails_to(sink, "lead@studio.test")
    assert "- ytdlp: http_status" in later and "- tiktok" not in later
    assert "Still broken, already reported today: tiktok, x." in later

    # The next day they are reported again.
    tomorrow = date(2026, 3, 3)
    assert alert_broken_sources(mail_settings, worse, claims, today=tomorrow) == [
        "tiktok",
        "x",
        "ytdlp",
    ]
    assert len(sink.received) == 6


def test_all_working_means_no_email(
    mail_settings: Settings, sink: SmtpSink, claims: Claims
) -> None:
    assert alert_broken_sources(mail_settings, [WORKS, SKIPPED], claims, today=DAY) == []
    assert sink.received == []


def test_a_mail_server_that_is_away_gets_the_email_on_the_retry(
    mail_settings: Settings, sink: SmtpSink, claims: Claims
) -> None:
    mail_settings.email.smtp_port = free_port()
    with pytest.raises(TransientError, match="not delivered yet"):
        alert_broken_sources(mail_settings, [TIKTOK], claims, today=DAY)
    assert sink.received == []
    mail_settings.email.smtp_port = sink.port
    assert alert_broken_sources(mail_settings, [TIKTOK], claims, today=DAY) == ["tiktok"]
    assert len(sink.received) == 2


def test_the_task_checks_the_sources_and_alerts(
    mail_settings: Settings, sink: SmtpSink, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``reelwatch.sources_check`` as beat sends it (run in-process here)."""
    checked: list[Settings] = []

    def fake_check(settings: Settings) -> list[Check]:
        checked.append(settings)
        return [WORKS, TIKTOK]

    monkeypatch.setattr(canary, "crawler_check", fake_check)
    mail_settings.result_backend = redis_url
    configure(mail_settings)
    try:
        summary = tasks.sources_check.apply().get()
    finally:
        mail_settings.result_backend = None
        configure(mail_settings)
    assert checked == [mail_settings]
    assert summary == {
        "checked": ["youtube", "tiktok"],
        "broken": ["tiktok"],
        "alerted": ["tiktok"],
    }
    assert len(sink.received) == 2


def test_run_sources_check_uses_the_crawlers_check_by_default(
    mail_settings: Settings, claims: Claims, monkeypatch: pytest.MonkeyPatch
) -> None:
    import crawler.sources_check

    monkeypatch.setattr(crawler.sources_check, "check_sources", lambda settings: [WORKS])
    assert run_sources_check(mail_settings, claims) == {
        "checked": ["youtube"],
        "broken": [],
        "alerted": [],
    }


def test_without_a_mail_server_the_email_waits_in_the_outbox(
    settings: Settings, claims: Claims
) -> None:
    settings.email.smtp_host = None
    settings.email.recipients = ["ops@studio.test"]
    assert alert_broken_sources(settings, [TIKTOK], claims, today=DAY) == ["tiktok"]
    [eml] = settings.outbox_dir.glob("notice-*.eml")
    assert "tiktok: empty_body" in eml.read_text()
