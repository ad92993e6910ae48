"""Email alerts: one message per (match, recipient), over SMTP or into an outbox folder.

A watch that fires many alerts at once gets a digest instead (:meth:`EmailNotifier.send_digest`,
chosen by ``triage.alerts``): one message per recipient listing every match with its evidence
thumbnail, post link and board link. An account crossing the repeat-infringer threshold gets
one message per recipient too (:meth:`EmailNotifier.send_account_alert`): its ledger numbers
and its matches, each with its board link.

Bodies are Jinja2 templates shipped in ``triage/notifiers/templates/`` (``alert.html``,
``alert.txt``, ``digest.html``, ``digest.txt``, ``repeat.html``, ``repeat.txt``); the ``.html``
ones are autoescaped, the
``.txt`` ones are not (plain text has nothing to escape).

Everything in a match that came from a platform (caption, handle, hashtags, URLs, even the post
id) is hostile input: autoescaping makes it text in the HTML part, it is stripped of control
characters in both parts, capped in length, and never placed in a header except through
:func:`_header_text`, which removes line breaks. Without an SMTP host (the embedded default)
messages are written as ``<outbox>/<alert>.eml`` so nothing is lost and a person can open them.

SMTP credentials go only over TLS (``email.use_ssl``) or STARTTLS (``email.starttls``): with a
``username`` and neither, sending is refused before connecting (the alert stays pending) unless
``email.allow_plain_auth`` accepts the risk, which is logged as a warning; a server that does
not offer STARTTLS when it is asked for gets nothing, never a plain fallback.
"""

from __future__ import annotations

import hashlib
import logging
import mimetypes
import os
import re
import smtplib
import ssl
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

import jinja2

from reelwatch.errors import PermanentError, TransientError
from reelwatch.models import Alert, Match, Post, Segment, utcnow
from triage.notifiers.base import Notifier, SendsAccountAlerts, SendsDigests

if TYPE_CHECKING:
    from typing import Self

    from reelwatch.settings import Settings
    from triage.ledger import AccountLedger

log = logging.getLogger(__name__)

MAX_CAPTION_CHARS = 2000
MAX_HANDLE_CHARS = 100
MAX_SUBJECT_CHARS = 160
MAX_IMAGES = 8
MAX_IMAGE_BYTES = 5 * 1024 * 1024
"""Evidence images past these limits are left out rather than making the mail undeliverable."""
MAX_DIGEST_CAPTION_CHARS = 300
MAX_DIGEST_IMAGES = 50
MAX_DIGEST_IMAGE_BYTES = 15 * 1024 * 1024
"""A digest carries one thumbnail per match, up to these totals; later matches are still listed
(with their links), only without a picture."""

_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_HEADER_UNSAFE_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\s]+")
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
_FILENAME_UNSAFE_RE = re.compile(r"[^A-Za-z0-9._-]+")
_DOMAIN_UNSAFE_RE = re.compile(r"[^A-Za-z0-9.-]+")


@dataclass(frozen=True)
class _Image:
    cid: str
    """Content-ID without angle brackets, as ``cid:`` URLs in the HTML use it."""
    data: bytes
    maintype: str
    subtype: str
    filename: str


class EmailNotifier(Notifier, SendsDigests, SendsAccountAlerts):
    """Sends match alerts by email; see the module docstring for what it guarantees."""

    channel = "email"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.config = settings.email
        domain = parseaddr(self.config.sender)[1].rpartition("@")[2]
        self.domain = _DOMAIN_UNSAFE_RE.sub("", domain) or "reelwatch.localhost"

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls(settings)

    @property
    def recipients(self) -> list[str]:
        return list(self.config.recipients)

    def message_id(self, alert_id: str) -> str:
        """Deterministic, so a retried send carries the same Message-ID as the first try."""
        return f"<alert.{_digest(alert_id)[:32]}@{self.domain}>"

    def digest_token(self, matches: Sequence[Match], recipient: str) -> str:
        """Names a digest by the alerts it lists, whatever their order: the same digest retried
        gets the same Message-ID and outbox file."""
        ids = sorted(self._alert_id(m, recipient) for m in matches)
        return _digest("\n".join(ids))[:32]

    def send(self, match: Match, post: Post | None, recipient: str) -> str:
        message = self.build_message(match, post, recipient)
        self._deliver(message, self._alert_id(match, recipient))
        return str(message["Message-ID"])

    def send_digest(
        self, entries: Sequence[tuple[Match, Post | None]], recipient: str, watch: str | None
    ) -> str:
        message = self.build_digest(entries, recipient, watch)
        token = self.digest_token([m for m, _ in entries], recipient)
        self._deliver(message, f"digest-{token}")
        return str(message["Message-ID"])

    def send_account_alert(
        self, ledger: AccountLedger, matches: Sequence[Match], recipient: str, alert_id: str
    ) -> str:
        message = self.build_account_alert(ledger, matches, recipient, alert_id)
        self._deliver(message, alert_id)
        return str(message["Message-ID"])

    def send_notice(self, subject: str, text: str, recipient: str, key: str) -> str:
        """Send a plain-text notice that is not about a match (a source that stopped working)
        through the same SMTP server or outbox as alerts; returns its Message-ID.

        ``key`` names the notice (Message-ID, outbox file), so a retried send is recognisable.
        ``text`` may quote what a platform answered: it is stripped of control characters like
        every other body. Errors are sorted as for :meth:`send`.
        """
        message = EmailMessage()
        message["Subject"] = _header_text(subject, MAX_SUBJECT_CHARS)
        message["From"] = self.config.sender
        message["To"] = _recipient_address(recipient)
        message["Date"] = format_datetime(utcnow())
        message["Message-ID"] = f"<notice.{_digest(f'{key}:{recipient}')[:32]}@{self.domain}>"
        message.set_content(_plain(text))
        self._deliver(message, f"notice-{key}-{recipient}")
        return str(message["Message-ID"])

    def _deliver(self, message: EmailMessage, name: str) -> None:
        if self.config.smtp_host:
            self._send_smtp(message)
        else:
            self._write_outbox(message, name)

    def _alert_id(self, match: Match, recipient: str) -> str:
        return Alert(match_id=match.id, channel=self.channel, recipient=recipient).id

    # Building ------------------------------------------------------------------------------
    def build_message(self, match: Match, post: Post | None, recipient: str) -> EmailMessage:
        """The alert as a multipart/alternative message (plain text, HTML with inline images)."""
        address = _recipient_address(recipient)
        alert_id = self._alert_id(match, recipient)
        account = _account(match, post)
        images = self._evidence_images(match, alert_id)

        return self._assemble(
            subject=f"[reelwatch] {match.confidence.value.upper()} match: {match.title} by "
            f"@{account}",
            to=address,
            message_id=self.message_id(alert_id),
            extra={"X-Reelwatch-Match": _header_text(match.id, 200)},
            text=self._text(match, post, account),
            html=self._html(match, post, account, images),
            images=[i for segment_images in images for i in segment_images],
        )

    def _assemble(
        self,
        *,
        subject: str,
        to: str,
        message_id: str,
        extra: dict[str, str],
        text: str,
        html: str,
        images: Sequence[_Image],
    ) -> EmailMessage:
        """Headers (the subject made header-safe), a text part, and an HTML part with
        ``images`` attached inline by their content ids."""
        message = EmailMessage()
        message["Subject"] = _header_text(subject, MAX_SUBJECT_CHARS)
        message["From"] = self.config.sender
        message["To"] = to
        message["Date"] = format_datetime(utcnow())
        message["Message-ID"] = message_id
        for name, value in extra.items():
            message[name] = value
        message.set_content(text)
        message.add_alternative(html, subtype="html")
        html_part = message.get_body(preferencelist=("html",))
        assert html_part is not None
        for image in images:
            html_part.add_related(
                image.data,
                image.maintype,
                image.subtype,
                cid=f"<{image.cid}>",
                disposition="inline",
                filename=image.filename,
            )
        return message

    def build_digest(
        self, entries: Sequence[tuple[Match, Post | None]], recipient: str, watch: str | None
    ) -> EmailMessage:
        """One multipart/alternative message listing every entry; each match gets its first
        evidence image inline (within the digest limits), its post link and its board link."""
        if not entries:
            raise PermanentError("a digest needs at least one match")
        address = _recipient_address(recipient)
        matches = [m for m, _ in entries]
        token = self.digest_token(matches, recipient)
        budget = _ImageBudget(MAX_DIGEST_IMAGES, MAX_DIGEST_IMAGE_BYTES)
        rows: list[_DigestRow] = []
        for number, (match, post) in enumerate(entries, 1):
            thumb = self._thumbnail(match, f"d{number}.{token[:16]}@{self.domain}", budget)
            rows.append(_DigestRow(match, post, _account(match, post), thumb))
        watch_name = _plain(_cap(watch, MAX_HANDLE_CHARS)) if watch else "(no watch)"

        return self._assemble(
            subject=f"[reelwatch] digest: {len(rows)} matches for watch {watch_name}",
            to=address,
            message_id=f"<digest.{token}@{self.domain}>",
            extra={"X-Reelwatch-Watch": _header_text(watch, 200)} if watch else {},
            text=self._digest_text(rows, watch_name),
            html=self._digest_html(rows, watch_name),
            images=[row.thumbnail for row in rows if row.thumbnail is not None],
        )

    def build_account_alert(
        self, ledger: AccountLedger, matches: Sequence[Match], recipient: str, alert_id: str
    ) -> EmailMessage:
        """The repeat-infringer alert: the account's ledger numbers, why it scores what it
        does, and ``matches`` with their post and board links (no images: the matches' own
        alerts carried those)."""
        address = _recipient_address(recipient)
        account = _header_text(ledger.account, MAX_HANDLE_CHARS)
        platform = _header_text(ledger.platform, MAX_HANDLE_CHARS)
        days = f"{ledger.window_days:g} days"
        values: dict[str, object] = {
            "account": _plain(account),
            "platform": _plain(platform),
            "days": days,
            "confirmed": ledger.confirmed,
            "facts": self._ledger_facts(ledger, days),
            "reasons": [_plain(r) for r in ledger.risk_reasons],
            "also_on": [_plain(p) for p in ledger.also_on],
            "rows": [self._ledger_row(m) for m in matches],
            "more": max(0, ledger.matches - len(matches)),
            "account_link": self.account_link(ledger),
        }
        return self._assemble(
            subject=f"[reelwatch] repeat infringer @{account} on {platform} "
            f"({ledger.confirmed} confirmed in {days})",
            to=address,
            message_id=self.message_id(alert_id),
            extra={"X-Reelwatch-Account": _header_text(f"{platform}:{account}", 200)},
            text=_render("repeat.txt", **values),
            html=_render("repeat.html", **values),
            images=[],
        )

    def account_link(self, ledger: AccountLedger) -> str:
        """The account's page on the board."""
        return (
            f"{self.config.board_url.rstrip('/')}/accounts/{quote(ledger.platform, safe='')}/"
            f"{quote(ledger.account, safe='@')}"
        )

    def _ledger_facts(self, ledger: AccountLedger, days: str) -> list[tuple[str, str]]:
        def when(at: datetime | None) -> str:
            return at.strftime("%Y-%m-%d %H:%M UTC") if at is not None else "-"

        statuses = ", ".join(f"{n} {s}" for s, n in sorted(ledger.statuses.items()))
        return [
            ("Risk", f"{ledger.risk:g}"),
            (f"Confirmed (last {days})", str(ledger.confirmed)),
            (f"Notices sent (last {days})", str(ledger.notices_sent)),
            (f"Removals (last {days})", str(ledger.removals)),
            (f"Reinstated (last {days})", str(ledger.reinstated)),
            ("Matches (all time)", f"{ledger.matches} ({statuses})"),
            ("Titles", _plain(_cap(", ".join(ledger.titles), MAX_CAPTION_CHARS))),
            ("Views reached", f"{ledger.views:,}"),
            ("First seen", when(ledger.first_seen)),
            ("Last seen", when(ledger.last_seen)),
        ]

    def _ledger_row(self, match: Match) -> dict[str, object]:
        return {
            "title": _plain(match.title),
            "status": match.status.value,
            "confidence": match.confidence.value,
            "score": f"{match.score:.2f}",
            "post": _plain(_cap(match.post_url, 500)),
            "board_link": self.board_link(match),
        }

    def _digest_text(self, rows: list[_DigestRow], watch_name: str) -> str:
        return _render("digest.txt", watch=watch_name, rows=self._digest_rows(rows))

    def _digest_html(self, rows: list[_DigestRow], watch_name: str) -> str:
        return _render("digest.html", watch=watch_name, rows=self._digest_rows(rows))

    def _digest_rows(self, rows: list[_DigestRow]) -> list[dict[str, object]]:
        return [
            {
                "confidence": row.match.confidence.value.upper(),
                "title": _plain(row.match.title),
                "facts": _facts(row.match, row.post, row.account, MAX_DIGEST_CAPTION_CHARS),
                "thumbnail": row.thumbnail.cid if row.thumbnail is not None else None,
                "board_link": self.board_link(row.match),
            }
            for row in rows
        ]

    def _thumbnail(self, match: Match, cid: str, budget: _ImageBudget) -> _Image | None:
        """The first usable evidence image of ``match``, if the digest budget allows it."""
        for segment in match.segments:
            for relative in segment.evidence:
                found = self._evidence_file(relative)
                if found is None:
                    continue
                path, maintype, subtype = found
                if not budget.take(path.stat().st_size):
                    return None
                return _Image(cid, path.read_bytes(), maintype, subtype, path.name)
        return None

    def board_link(self, match: Match) -> str:
        return f"{self.config.board_url.rstrip('/')}/matches/{quote(match.id, safe=':@')}"

    def _text(self, match: Match, post: Post | None, account: str) -> str:
        return _render(
            "alert.txt",
            **self._alert_values(match, post, account),
            segments=[{"text": _plain(_segment_text(s))} for s in match.segments],
        )

    def _html(
        self, match: Match, post: Post | None, account: str, images: list[list[_Image]]
    ) -> str:
        segments = [
            {"text": _plain(_segment_text(segment)), "images": segment_images}
            for segment, segment_images in zip(match.segments, images, strict=True)
        ]
        return _render("alert.html", **self._alert_values(match, post, account), segments=segments)

    def _alert_values(self, match: Match, post: Post | None, account: str) -> dict[str, object]:
        return {
            "confidence": match.confidence.value.upper(),
            "title": _plain(match.title),
            "facts": _facts(match, post, account),
            "board_link": self.board_link(match),
        }

    def _evidence_images(self, match: Match, alert_id: str) -> list[list[_Image]]:
        """Per segment, the evidence images that exist under the data home.

        Paths outside the home (``../``, absolute paths elsewhere) are ignored: evidence paths
        are data, and the mail must not become a way to exfiltrate files.
        """
        tag = _digest(alert_id)[:16]
        count = 0
        result: list[list[_Image]] = []
        for segment in match.segments:
            found: list[_Image] = []
            for relative in segment.evidence:
                if count >= MAX_IMAGES:
                    break
                usable = self._evidence_file(relative)
                if usable is None:
                    continue
                path, maintype, subtype = usable
                cid = f"evidence{count}.{tag}@{self.domain}"
                found.append(_Image(cid, path.read_bytes(), maintype, subtype, path.name))
                count += 1
            result.append(found)
        return result

    def _evidence_file(self, relative: str) -> tuple[Path, str, str] | None:
        """(path, maintype, subtype) of an evidence image that may be mailed, else None."""
        home = self.settings.home.resolve()
        path = (home / relative).resolve()
        mime, _ = mimetypes.guess_type(path.name)
        if (
            not path.is_relative_to(home)
            or not path.is_file()
            or not mime
            or not mime.startswith("image/")
            or path.stat().st_size > MAX_IMAGE_BYTES
        ):
            return None
        maintype, subtype = mime.split("/", 1)
        return path, maintype, subtype

    # Delivering ----------------------------------------------------------------------------
    def _send_smtp(self, message: EmailMessage) -> None:
        config = self.config
        assert config.smtp_host is not None
        sender = parseaddr(config.sender)[1]
        recipient = str(message["To"])
        where = f"{config.smtp_host}:{config.smtp_port}"
        encrypted = config.use_ssl or config.starttls
        if config.username and not encrypted:
            if not config.allow_plain_auth:
                # Checked before connecting: the password never leaves this process.
                raise TransientError(
                    f"refusing to send the SMTP password for email.username to {where} over a "
                    "plain connection: set email.starttls or email.use_ssl (or "
                    "email.allow_plain_auth to accept that risk); the alert stays pending"
                )
            log.warning(
                "email.allow_plain_auth is set: the SMTP password for %s goes to %s "
                "unencrypted (set email.starttls or email.use_ssl)",
                config.username,
                where,
            )
        smtp_class = smtplib.SMTP_SSL if config.use_ssl else smtplib.SMTP
        try:
            with smtp_class(config.smtp_host, config.smtp_port, timeout=config.timeout_s) as smtp:
                if config.starttls and not config.use_ssl:
                    smtp.ehlo()
                    if not smtp.has_extn("starttls"):
                        # Never fall back to a plain session: it would carry the password
                        # and the alert in clear past whoever stripped STARTTLS.
                        raise TransientError(
                            f"{where} does not offer STARTTLS, which email.starttls asks for; "
                            "nothing was sent (check the port, or use email.use_ssl)"
                        )
                    smtp.starttls(context=ssl.create_default_context())
                if config.username:
                    password = config.password.get_secret_value() if config.password else ""
                    smtp.login(config.username, password)
                smtp.send_message(message, from_addr=sender, to_addrs=[recipient])
        except smtplib.SMTPRecipientsRefused as e:
            code, reply = next(iter(e.recipients.values()), (0, b""))
            raise _refused(code, f"{where} refused {recipient}: {code} {_reply(reply)}") from None
        except smtplib.SMTPDataError as e:
            text = f"{where} refused the message: {e.smtp_code} {_reply(e.smtp_error)}"
            raise _refused(e.smtp_code, text) from None
        except smtplib.SMTPResponseException as e:
            # Login, sender and greeting failures are configuration problems: keep the alert
            # pending so it goes out once the settings are fixed.
            raise TransientError(f"{where} answered {e.smtp_code} {_reply(e.smtp_error)}") from None
        except (smtplib.SMTPException, OSError) as e:
            raise TransientError(f"cannot deliver mail through {where}: {e}") from None

    def _write_outbox(self, message: EmailMessage, key: str) -> None:
        outbox = self.settings.outbox_dir
        name = f"{_FILENAME_UNSAFE_RE.sub('_', key)[:100]}-{_digest(key)[:12]}.eml"
        try:
            outbox.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=outbox, suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                f.write(message.as_bytes())
            os.replace(tmp, outbox / name)
        except OSError as e:
            raise TransientError(f"cannot write the alert to {outbox}: {e}") from None


@dataclass
class _ImageBudget:
    """What is left of a digest's allowance for inline images."""

    images: int
    size: int

    def take(self, size: int) -> bool:
        if self.images <= 0 or size > self.size:
            return False
        self.images -= 1
        self.size -= size
        return True


@dataclass(frozen=True)
class _DigestRow:
    match: Match
    post: Post | None
    account: str
    thumbnail: _Image | None


_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
    autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
"""Bodies: ``.html`` templates autoescaped, ``.txt`` ones not."""
_TEMPLATES.tests["web_url"] = lambda value: _is_web_url(str(value))


def _render(name: str, **values: object) -> str:
    return _TEMPLATES.get_template(name).render(**values)


def _recipient_address(recipient: str) -> str:
    address = parseaddr(recipient)[1]
    if _CONTROL_RE.search(recipient) or "\n" in recipient or "@" not in address:
        raise PermanentError(f"not an email address: {recipient!r}")
    return address


def _account(match: Match, post: Post | None) -> str:
    handle = match.account or (post.author.handle if post is not None else "") or "unknown"
    return _header_text(handle.lstrip("@"), MAX_HANDLE_CHARS)


def _facts(
    match: Match, post: Post | None, account: str, caption_chars: int = MAX_CAPTION_CHARS
) -> list[tuple[str, str]]:
    """The match at a glance, as (label, plain text) rows; both bodies render these."""
    rows = [
        ("Title", _plain(match.title)),
        ("Score", f"{match.score:.2f} ({match.confidence.value})"),
        ("Platform", _plain(match.platform)),
        ("Account", f"@{account}"),
        ("Post", _plain(match.post_url)),
        ("Caption", _plain(_cap(match.caption, caption_chars))),
    ]
    if post is not None and post.stats.views is not None:
        rows.append(("Views", str(post.stats.views)))
    if match.signals:
        rows.append(("Signals", _plain(_signals(match))))
    if match.ai.is_ai:
        rows.append(("AI-made", f"yes ({_plain('; '.join(match.ai.reasons))})"))
    return rows


def _header_text(text: str, limit: int) -> str:
    """One line of header-safe text: every line break and control character becomes a space."""
    return _cap(_HEADER_UNSAFE_RE.sub(" ", text).strip(), limit)


def _plain(text: str) -> str:
    """Text for the body: line breaks normalised, other control characters removed."""
    return _CONTROL_RE.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def _cap(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _is_web_url(url: str) -> bool:
    return urlsplit(url).scheme in ("http", "https")


def _signals(match: Match) -> str:
    ordered = sorted(match.signals.items(), key=lambda kv: -kv[1])
    return ", ".join(f"{name} {score:.2f}" for name, score in ordered)


def _segment_text(segment: Segment) -> str:
    return (
        f"{segment.signal}: post {_clock(segment.query_start)}–{_clock(segment.query_end)} "
        f"matches {segment.ref_asset} {_clock(segment.ref_start)}–{_clock(segment.ref_end)}"
        f" (score {segment.score:.2f})"
    )


def _clock(seconds: float) -> str:
    minutes, rest = divmod(max(seconds, 0.0), 60)
    return f"{int(minutes)}:{rest:04.1f}"


def _digest(alert_id: str) -> str:
    """A stable token for an alert that is safe in headers and file names."""
    return hashlib.sha256(alert_id.encode()).hexdigest()


def _refused(code: int, text: str) -> PermanentError | TransientError:
    """A 5xx reply will never change; anything else may pass."""
    return PermanentError(text) if 500 <= code < 600 else TransientError(text)


def _reply(reply: bytes | str) -> str:
    text = reply.decode(errors="replace") if isinstance(reply, bytes) else reply
    return _header_text(text, 300)
