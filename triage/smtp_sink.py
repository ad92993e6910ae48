"""A real SMTP server that keeps what it receives: for the demo, tests and local runs.

It is aiosmtpd's threaded ``Controller`` on 127.0.0.1, so mail goes through the same smtplib
path as in production. aiosmtpd needs an explicit port; :func:`free_port` finds one.

    python -m triage.smtp_sink [--port N] [--dir D]
"""

from __future__ import annotations

import argparse
import hashlib
import signal
import socket
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
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

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
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content or b""
        data = raw if isinstance(raw, bytes) else raw.encode()
        message = BytesParser(policy=policy.default).parsebytes(data)
        assert isinstance(message, EmailMessage)
        self.sink._receive(
            ReceivedMail(str(envelope.mail_from), list(envelope.rcpt_tos), message), data
        )
        return "250 OK: queued"


class SmtpSink:
    """Accept mail on ``127.0.0.1:port`` and keep each message, parsed.

    ``reject_recipients`` answer 550 (to exercise permanent failures); ``auth`` requires a
    login with that (user, password) pair; ``save_dir`` also writes each message as ``.eml``.
    """

    def __init__(
        self,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        save_dir: Path | None = None,
        reject_recipients: Iterable[str] = (),
        auth: tuple[str, str] | None = None,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.save_dir = save_dir
        self.reject_recipients = frozenset(r.lower() for r in reject_recipients)
        self.auth = auth
        self._lock = threading.Lock()
        self._received: list[ReceivedMail] = []
        self._controller: Controller | None = None

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
            # A local test server: plaintext AUTH is the point, so do not require TLS for it.
            kwargs.update(authenticator=self._authenticate, auth_require_tls=False)
        controller = Controller(_Handler(self), hostname=self.host, port=self.port, **kwargs)
        controller.start()
        self._controller = controller
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

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
