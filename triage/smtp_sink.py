"""A real SMTP server that keeps what it receives: for the demo, tests and local runs.

It is aiosmtpd's threaded ``Controller`` on 127.0.0.1, so mail goes through the same smtplib
path as in production. aiosmtpd needs an explicit port; :func:`free_port` finds one.

Besides keeping mail it can misbehave on purpose, so tests exercise the failures a real mail
server causes: ``reject_recipients`` (550, permanent), ``defer_recipients`` (450, try later),
and :meth:`SmtpSink.crash_after`, which kills the server in the middle of a message exactly like
a crashed process (the message is not kept, the connection drops, new connections are refused)
until :meth:`SmtpSink.restart` brings it back on the same port.

    python -m triage.smtp_sink [--port N] [--dir D]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import signal
import socket
import ssl
import sys
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session, syntax

if TYPE_CHECKING:
    from typing import Self


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the OS picks it by binding port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class _Handler:
    """aiosmtpd hooks; runs on the controller's event-loop thread."""

    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if self.sink.auth is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address.lower() in self.sink.reject_recipients:
            return "550 5.1.1 No such user here"
        if address.lower() in self.sink.defer_recipients:
            return "450 4.2.1 Mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.sink._crash_now():
            # Die before the message is kept: stop listening (new connections are refused)
            # and drop this one without a reply, as a killed process would.
            self.sink._stop_listening()
            if isinstance(server.transport, asyncio.WriteTransport):
                server.transport.abort()
            return "421 4.3.2 Shutting down"  # nobody reads it: the connection is gone
        raw = envelope.original_content or envelope.content or b""
        data = raw if isinstance(raw, bytes) else raw.encode()
        message = BytesParser(policy=policy.default).parsebytes(data)
        assert isinstance(message, EmailMessage)
        self.sink._receive(
            ReceivedMail(str(envelope.mail_from), list(envelope.rcpt_tos), message), data
        )
        return "250 OK: queued"


class _RecordingSMTP(SMTP):
    """aiosmtpd's server, noting each AUTH command in its sink before handling it."""

    def __init__(self, sink: SmtpSink, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sink = sink

    @syntax("AUTH <mechanism>")
    async def smtp_AUTH(self, arg: str) -> None:
        with self.sink._lock:
            mechanism = arg.split(" ", 1)[0].upper() if arg else ""
            self.sink.auth_commands.append((mechanism, self._tls_protocol is not None))
        await super().smtp_AUTH(arg)


class _Controller(Controller):
    def __init__(self, sink: SmtpSink, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sink = sink

    def factory(self) -> SMTP:
        return _RecordingSMTP(self.sink, self.handler, **self.SMTP_kwargs)


class SmtpSink:
    """Accept mail on ``127.0.0.1:port`` and keep each message, parsed.

    ``reject_recipients`` answer 550 (to exercise permanent failures), ``defer_recipients``
    answer 450 (transient ones; the set may be changed while running); ``auth`` requires a
    login with that (user, password) pair; ``save_dir`` also writes each message as ``.eml``.

    ``tls_context`` offers STARTTLS with that server context; AUTH is then offered only
    after it, as real servers do. Without it AUTH (when ``auth`` is set) is offered on the
    plain connection. ``auth_commands`` lists every AUTH command the server received, with
    whether the session was encrypted by then, so tests can show a password was never sent.
    """

    def __init__(
        self,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        save_dir: Path | None = None,
        reject_recipients: Iterable[str] = (),
        defer_recipients: Iterable[str] = (),
        auth: tuple[str, str] | None = None,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.save_dir = save_dir
        self.reject_recipients = frozenset(r.lower() for r in reject_recipients)
        self.defer_recipients = frozenset(r.lower() for r in defer_recipients)
        self.auth = auth
        self.tls_context = tls_context
        self.auth_commands: list[tuple[str, bool]] = []
        """(mechanism, encrypted) of each AUTH command received."""
        self.crashed = threading.Event()
        """Set once :meth:`crash_after` has killed the server; cleared by a (re)start."""
        self._lock = threading.Lock()
        self._received: list[ReceivedMail] = []
        self._controller: Controller | None = None
        self._accept_before_crash: int | None = None

    @property
    def received(self) -> list[ReceivedMail]:
        with self._lock:
            return list(self._received)

    @property
    def messages(self) -> list[EmailMessage]:
        return [r.message for r in self.received]

    def start(self) -> Self:
        if self._controller is not None:
            return self
        kwargs: dict[str, Any] = {}
        if self.auth is not None:
            # Without TLS, plaintext AUTH is the point (tests of a client that must refuse it).
            kwargs.update(
                authenticator=self._authenticate, auth_require_tls=self.tls_context is not None
            )
        if self.tls_context is not None:
            kwargs.update(tls_context=self.tls_context)
        controller = _Controller(self, _Handler(self), hostname=self.host, port=self.port, **kwargs)
        controller.start()
        self._controller = controller
        self.crashed.clear()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def restart(self) -> Self:
        """Stop (a crashed server too) and listen again on the same port."""
        self.stop()
        return self.start()

    def crash_after(self, accepted: int) -> None:
        """Accept ``accepted`` more messages, then die while the next one is being received.

        The dying message is not kept and its sender sees the connection drop; every later
        connection is refused until :meth:`restart`. Deterministic, unlike killing the server
        from another thread at some moment.
        """
        if accepted < 0:
            raise ValueError("accepted must be >= 0")
        with self._lock:
            self._accept_before_crash = accepted

    def _crash_now(self) -> bool:
        with self._lock:
            if self.crashed.is_set():
                return True
            if self._accept_before_crash is None:
                return False
            if self._accept_before_crash > 0:
                self._accept_before_crash -= 1
                return False
            self._accept_before_crash = None
            self.crashed.set()
            return True

    def _stop_listening(self) -> None:
        """Close the listening socket now (runs on the event-loop thread)."""
        controller = self._controller
        if controller is not None and controller.server is not None:
            controller.server.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            self.auth is not None
            and isinstance(data, LoginPassword)
            and (data.login.decode(errors="replace"), data.password.decode(errors="replace"))
            == self.auth
        )
        return AuthResult(success=ok, handled=False)

    def _receive(self, mail: ReceivedMail, data: bytes) -> None:
        with self._lock:
            self._received.append(mail)
            number = len(self._received)
        if self.save_dir is not None:
            self.save_dir.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha256(data).hexdigest()[:12]
            (self.save_dir / f"{number:05d}-{digest}.eml").write_bytes(data)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m triage.smtp_sink", description="Run a local SMTP sink until Ctrl-C."
    )
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: free)")
    parser.add_argument("--dir", type=Path, default=None, help="also save messages here as .eml")
    args = parser.parse_args(argv)
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    with SmtpSink(args.port, save_dir=args.dir) as sink:
        print(f"SMTP sink listening on {sink.host}:{sink.port}", flush=True)
        seen = 0
        while not stopping.wait(0.5):
            received = sink.received
            for mail in received[seen:]:
                print(f"{', '.join(mail.rcpt_tos)}: {mail.message['Subject']}", flush=True)
            seen = len(received)
    return 0


if __name__ == "__main__":
    sys.exit(main())
