"""Alert delivery under stress: failing recipients, digests, a mail server that dies mid-run,
hostile text. Everything goes through a real aiosmtpd server (SmtpSink) and the SQLite store."""

from __future__ import annotations

import re
import smtplib
from collections import Counter
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest

from reelwatch.models import AlertStatus, Match, Post
from reelwatch.settings import Settings
from tests.triage.factories import make_match, make_post
from triage.alerts import HELD_FOR_DIGEST, deliver, deliver_many, flush_pending
from triage.notifiers import build_notifiers
from triage.smtp_sink import SmtpSink
from triage.stores import Store, open_store

ANA, BO = "ana@studio.test", "bo@studio.test"
BOARD = "http://board.test"


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    with open_store(settings) as s:
        yield s


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[SmtpSink]:
    with SmtpSink(save_dir=tmp_path / "received") as s:
        yield s


def mail_settings(settings: Settings, sink: SmtpSink, *, digest_threshold: int) -> Settings:
    settings.email.recipients = [ANA, BO]
    settings.email.board_url = BOARD
    settings.email.smtp_host = "127.0.0.1"
    settings.email.smtp_port = sink.port
    settings.email.timeout_s = 5
    # model_copy(update=) works whether or not AlertSettings declares the digest fields yet.
    settings.alerts = settings.alerts.model_copy(
        update={"digest_threshold": digest_threshold, "digest_window_s": 600.0}
    )
    return settings


def landed(
    store: Store, settings: Settings, count: int, *, watch: str = "crown", first: int = 1
) -> list[tuple[Match, Post | None]]:
    """``count`` high matches of ``watch``, each with its own evidence frame under the home."""
    settings.evidence_dir.mkdir(exist_ok=True)
    items: list[tuple[Match, Post | None]] = []
    for n in range(first, first + count):
        post_id = f"{watch}-{n}"
        frame = settings.evidence_dir / f"{post_id}.png"
        frame.write_bytes(b"\x89PNG\r\n\x1a\n" + post_id.encode())
        match = make_match(post_id, watch=watch, account=f"acct{n}")
        match.segments[0].evidence = [f"evidence/{frame.name}"]
        post = make_post(post_id, watch=watch)
        store.upsert_match(match)
        store.upsert_post(post)
        items.append((match, post))
    return items


def board_link(match: Match) -> str:
    return f"{BOARD}/matches/{match.id}"


def html_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def mails_to(sink: SmtpSink, recipient: str) -> list[EmailMessage]:
    return [r.message for r in sink.received if r.rcpt_tos == [recipient]]


def assert_each_match_in_exactly_one_mail(
    sink: SmtpSink, recipient: str, matches: list[Match]
) -> None:
    mails = mails_to(sink, recipient)
    for match in matches:
        holders = [m for m in mails if board_link(match) in text_of(m)]
        assert len(holders) == 1, f"{match.id} reached {recipient} {len(holders)} times"


# (1) per (match, recipient) never twice ------------------------------------------------------


def test_a_recipient_told_to_retry_later_is_retried_alone(
    settings: Settings, store: Store, sink: SmtpSink
) -> None:
    settings = mail_settings(settings, sink, digest_threshold=0)
    sink.defer_recipients = frozenset([BO])
    [(match, post)] = landed(store, settings, 1)
    notifiers = build_notifiers(settings)

    first = deliver(store, notifiers, match, post, settings)
    assert [(a.recipient, a.status) for a in first] == [
        (ANA, AlertStatus.SENT),
        (BO, AlertStatus.PENDING),
    ]
    assert first[1].error is not None and "450" in first[1].error
    (retry,) = flush_pending(store, notifiers, settings=settings)
    assert (retry.recipient, retry.status) == (BO, AlertStatus.PENDING)
    deliver(store, notifiers, match, post, settings)
    assert len(mails_to(sink, ANA)) == 1 and mails_to(sink, BO) == []

    sink.defer_recipients = frozenset()
    (done,) = flush_pending(store, notifiers, settings=settings)
    assert (done.recipient, done.status) == (BO, AlertStatus.SENT)
    assert flush_pending(store, notifiers, settings=settings) == []
    deliver(store, notifiers, match, post, settings)
    assert len(mails_to(sink, ANA)) == 1 and len(mails_to(sink, BO)) == 1
    assert {str(m["Message-ID"]) for m in sink.messages} == {
        a.message_id for a in store.list_alerts(AlertStatus.SENT)
    }


# (2) digests -----------------------------------------------------------------------------------


def test_a_watch_firing_many_at_once_sends_one_digest_per_recipient(
    settings: Settings, store: Store, sink: SmtpSink
) -> None:
    settings = mail_settings(settings, sink, digest_threshold=5)
    items = landed(store, settings, 7)
    notifiers = build_notifiers(settings)

    alerts = deliver_many(store, notifiers, items, settings)

    assert len(alerts) == 14 and all(a.status == AlertStatus.SENT for a in alerts)
    assert len(sink.received) == 2
    for recipient in (ANA, BO):
        (digest,) = mails_to(sink, recipient)
        mine = [a for a in alerts if a.recipient == recipient]
        assert {a.message_id for a in mine} == {str(digest["Message-ID"])}
        assert "7 matches" in str(digest["Subject"]) and "crown" in str(digest["Subject"])
        html, text = html_of(digest), text_of(digest)
        for match, _ in items:
            for content in (html, text):
                assert board_link(match) in content
                assert match.post_url in content
            assert f'<a href="{match.post_url}">' in html
        images = [p for p in digest.walk() if p.get_content_maintype() == "image"]
        assert sorted(bytes(p.get_content()) for p in images) == sorted(
            b"\x89PNG\r\n\x1a\n" + m.post_id.encode() for m, _ in items
        )
        for image in images:
            assert f"cid:{str(image['Content-ID']).strip('<>')}" in html
    assert_each_match_in_exactly_one_mail(sink, ANA, [m for m, _ in items])

    deliver_many(store, notifiers, items, settings)
    assert flush_pending(store, notifiers, settings=settings) == []
    assert len(sink.received) == 2


def test_at_or_below_the_threshold_each_alert_is_its_own_email(
    settings: Settings, store: Store, sink: SmtpSink
) -> None:
    settings = mail_settings(settings, sink, digest_threshold=5)
    items = landed(store, settings, 5)
    alerts = deliver_many(store, build_notifiers(settings), items, settings)
    assert all(a.status == AlertStatus.SENT for a in alerts)
    assert len(sink.received) == 10
    assert len({a.message_id for a in alerts}) == 10


def test_alerts_one_at_a_time_past_the_threshold_are_held_then_flushed_as_one_digest(
    settings: Settings, store: Store, sink: SmtpSink
) -> None:
    settings = mail_settings(settings, sink, digest_threshold=3)
    crown = landed(store, settings, 8)
    other = landed(store, settings, 1, watch="other")
    notifiers = build_notifiers(settings)

    for match, post in crown[:4] + other + crown[4:]:
        deliver(store, notifiers, match, post, settings)

    assert len(mails_to(sink, ANA)) == 4, "3 crown alerts and the other watch's one"
    held = store.list_alerts(AlertStatus.PENDING)
    assert len(held) == 10 and all(a.error and a.error.startswith(HELD_FOR_DIGEST) for a in held)

    flushed = flush_pending(store, notifiers, settings=settings)

    assert len(flushed) == 10 and all(a.status == AlertStatus.SENT for a in flushed)
    for recipient in (ANA, BO):
        mails = mails_to(sink, recipient)
        assert len(mails) == 5
        digests = [m for m in mails if "digest" in str(m["Subject"])]
        assert len(digests) == 1 and "5 matches" in str(digests[0]["Subject"])
        assert_each_match_in_exactly_one_mail(sink, recipient, [m for m, _ in crown + other])
    assert flush_pending(store, notifiers, settings=settings) == []
    assert len(sink.received) == 10


def test_a_digest_refused_for_good_falls_back_to_single_alerts_and_loses_none(
    settings: Settings, store: Store, tmp_path: Path
) -> None:
    with SmtpSink(reject_recipients=[BO]) as sink:
        settings = mail_settings(settings, sink, digest_threshold=2)
        items = landed(store, settings, 3)
        alerts = deliver_many(store, build_notifiers(settings), items, settings)
        assert len(mails_to(sink, ANA)) == 1
    by_recipient = Counter((a.recipient, a.status) for a in alerts)
    assert by_recipient == {(ANA, AlertStatus.SENT): 3, (BO, AlertStatus.FAILED): 3}
    assert all("550" in (a.error or "") for a in alerts if a.recipient == BO)


def test_without_smtp_host_a_digest_lands_in_the_outbox(settings: Settings, store: Store) -> None:
    settings.email.recipients = [ANA]
    settings.alerts = settings.alerts.model_copy(update={"digest_threshold": 2})
    items = landed(store, settings, 3)
    alerts = deliver_many(store, build_notifiers(settings), items, settings)
    (eml,) = settings.outbox_dir.glob("*.eml")
    parsed = BytesParser(policy=policy.default).parsebytes(eml.read_bytes())
    assert isinstance(parsed, EmailMessage)
    assert {a.message_id for a in alerts} == {str(parsed["Message-ID"])}
    assert all(m.id in text_of(parsed) for m, _ in items)


# (3) the done-when: the mail server dies mid-run --------------------------------------------


def test_killing_the_smtp_server_mid_run_then_restarting_delivers_every_alert_exactly_once(
    settings: Settings, store: Store, sink: SmtpSink
) -> None:
    settings = mail_settings(settings, sink, digest_threshold=0)
    items = landed(store, settings, 10)
    notifiers = build_notifiers(settings)
    sink.crash_after(7)

    during = deliver_many(store, notifiers, items, settings)

    assert sink.crashed.is_set()
    assert len(sink.received) == 7
    assert Counter(a.status for a in during) == {AlertStatus.SENT: 7, AlertStatus.PENDING: 13}
    assert all(
        a.error and f"127.0.0.1:{sink.port}" in a.error
        for a in during
        if a.status == AlertStatus.PENDING
    )
    still_down = flush_pending(store, notifiers, settings=settings)
    assert len(still_down) == 13 and all(a.status == AlertStatus.PENDING for a in still_down)

    sink.restart()
    flushed = flush_pending(store, notifiers, settings=settings)
    deliver_many(store, notifiers, items, settings)

    assert len(flushed) == 13 and all(a.status == AlertStatus.SENT for a in flushed)
    assert flush_pending(store, notifiers, settings=settings) == []
    alerts = store.list_alerts()
    assert len(alerts) == 20 and all(a.status == AlertStatus.SENT for a in alerts)
    received = Counter(str(m["Message-ID"]) for m in sink.messages)
    assert set(received.values()) == {1}, "no Message-ID arrived twice"
    assert set(received) == {a.message_id for a in alerts}
    assert len(received) == 20


def test_killing_the_server_while_alerts_stream_in_loses_none_and_digests_the_rest(
    settings: Settings, store: Store, sink: SmtpSink
) -> None:
    settings = mail_settings(settings, sink, digest_threshold=3)
    items = landed(store, settings, 8)
    notifiers = build_notifiers(settings)
    sink.crash_after(4)

    for match, post in items:
        deliver(store, notifiers, match, post, settings)

    assert sink.crashed.is_set() and len(sink.received) == 4
    assert len(store.list_alerts(AlertStatus.PENDING)) == 12
    sink.restart()
    flush_pending(store, notifiers, settings=settings)

    alerts = store.list_alerts()
    assert all(a.status == AlertStatus.SENT for a in alerts)
    received = Counter(str(m["Message-ID"]) for m in sink.messages)
    assert set(received.values()) == {1}
    assert set(received) == {a.message_id for a in alerts}
    for recipient in (ANA, BO):
        assert len(mails_to(sink, recipient)) == 3, "two single alerts, then one digest"
        assert_each_match_in_exactly_one_mail(sink, recipient, [m for m, _ in items])


# (4) hostile text ------------------------------------------------------------------------------

HOSTILE = "<script>alert(1)</script>\r\nBcc: victim@evil.test\r\n\r\nX-Injected: 1\n"
ALLOWED_HEADERS = {
    "subject",
    "from",
    "to",
    "date",
    "message-id",
    "x-reelwatch-match",
    "x-reelwatch-watch",
    "content-type",
    "content-transfer-encoding",
    "mime-version",
    "content-id",
    "content-disposition",
}


def raw_mails(sink: SmtpSink) -> list[bytes]:
    assert sink.save_dir is not None
    return [p.read_bytes() for p in sorted(sink.save_dir.glob("*.eml"))]


def assert_headers_safe(raw: bytes) -> Message:
    """Every header of every part is one logical line, and only headers we write exist."""
    top = BytesParser(policy=policy.compat32).parsebytes(raw)
    for part in top.walk():
        for name, value in part.items():
            assert name.lower() in ALLOWED_HEADERS, f"unexpected header {name}"
            unfolded = re.sub(r"\r?\n[ \t]", " ", str(value))
            assert "\r" not in unfolded and "\n" not in unfolded, f"{name} spans lines"
    head = raw.split(b"\r\n\r\n", 1)[0]
    for line in head.split(b"\r\n"):
        assert line[:1] in (b" ", b"\t") or line.split(b":", 1)[0].lower().decode() in (
            ALLOWED_HEADERS
        ), line[:80]
    return top


@pytest.mark.parametrize("digest", [False, True], ids=["single", "digest"])
def test_hostile_caption_handle_title_and_watch_never_reach_a_header(
    settings: Settings, store: Store, sink: SmtpSink, digest: bool
) -> None:
    settings = mail_settings(settings, sink, digest_threshold=1 if digest else 0)
    settings.email.recipients = [ANA]
    fields: dict[str, Any] = {
        "caption": HOSTILE + "A" * 100_000,
        "account": "evil" + HOSTILE,
        "title": "Crown " + HOSTILE,
        "watch": "w" + HOSTILE,
    }
    items: list[tuple[Match, Post | None]] = []
    for post_id in ("666", "667"):
        match = make_match(post_id, **fields)
        store.upsert_match(match)
        items.append((match, None))

    alerts = deliver_many(store, build_notifiers(settings), items, settings)

    assert [a.status for a in alerts] == [AlertStatus.SENT, AlertStatus.SENT]
    raws = raw_mails(sink)
    assert len(raws) == (1 if digest else 2)
    assert all(r.rcpt_tos == [ANA] for r in sink.received)
    for raw in raws:
        assert len(raw) < 60_000, "a 100k caption is capped, not mailed whole"
        assert_headers_safe(raw)
        parsed = BytesParser(policy=policy.default).parsebytes(raw)
        assert isinstance(parsed, EmailMessage)
        assert parsed["Bcc"] is None and parsed["X-Injected"] is None
        assert ("digest" in str(parsed["Subject"])) is digest
        html = html_of(parsed)
        assert "<script>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "Crown &lt;script&gt;" in html


def test_sink_crash_refuses_new_connections_until_restarted(sink: SmtpSink) -> None:
    sink.crash_after(0)
    with (
        pytest.raises(smtplib.SMTPServerDisconnected),
        smtplib.SMTP("127.0.0.1", sink.port, timeout=5) as smtp,
    ):
        smtp.sendmail("a@b.test", ["c@d.test"], b"Subject: lost\r\n\r\nx\r\n")
    with pytest.raises(OSError):
        smtplib.SMTP("127.0.0.1", sink.port, timeout=5)
    assert sink.received == []
    sink.restart()
    with smtplib.SMTP("127.0.0.1", sink.port, timeout=5) as smtp:
        smtp.sendmail("a@b.test", ["c@d.test"], b"Subject: kept\r\n\r\nx\r\n")
    assert [str(m["Subject"]) for m in sink.messages] == ["kept"]
