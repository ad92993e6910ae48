"""Who may use the board, and proof that a state change came from the board's own form.

The board shows evidence and changes triage status, so:

* Without a token it only answers requests whose ``Host`` is a loopback name. That keeps a web
  page the reviewer happens to visit from reaching it through DNS rebinding.
* With a token (:func:`board_token`) every request needs it: an ``Authorization: Bearer``
  header (scripts), or a session cookie obtained by typing the token into the login form.
* Every browser session gets a signed cookie with a random id; forms carry a CSRF token derived
  from that id with the app's secret and are refused without it. Requests that authenticate
  with a Bearer header need no CSRF token: a cross-site page cannot make a browser send one.

The signing secret is made fresh for each app, so restarting the board signs everybody out.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reelwatch.settings import Settings

BOARD_TOKEN_ENV = "REELWATCH_BOARD__TOKEN"
"""Where the token comes from until ``Settings`` grows a ``board.token`` field (same variable:
pydantic-settings maps ``REELWATCH_BOARD__TOKEN`` onto ``settings.board.token``)."""

SESSION_COOKIE = "reelwatch_board"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def board_token(settings: Settings) -> str | None:
    """The configured access token, or None when the board is open to loopback callers.

    ``settings.board.token`` (``REELWATCH_BOARD__TOKEN`` when the settings were loaded) wins;
    the environment variable is read again otherwise, for settings made before it was set.
    Blank means unset.
    """
    configured = settings.board.token
    if configured is not None:
        value = configured.get_secret_value()
    else:
        value = os.environ.get(BOARD_TOKEN_ENV, "")
    return value.strip() or None


def is_loopback_host(host: str) -> bool:
    """True for names that only this machine can reach (``localhost``, 127.0.0.0/8, ``::1``)."""
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_without_port(host_header: str) -> str:
    """``127.0.0.1:8765`` -> ``127.0.0.1``; ``[::1]:8765`` -> ``::1``."""
    value = host_header.strip()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def same_secret(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


@dataclass(frozen=True)
class Session:
    id: str
    authenticated: bool


class SessionSigner:
    """Signs session cookies and derives per-session CSRF tokens with one random secret."""

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret or secrets.token_bytes(32)

    def _sign(self, message: str) -> str:
        return hmac.new(self._secret, message.encode("utf-8"), hashlib.sha256).hexdigest()

    def new(self, authenticated: bool = False) -> Session:
        return Session(secrets.token_urlsafe(24), authenticated)

    def dump(self, session: Session) -> str:
        body = f"{session.id}.{int(session.authenticated)}"
        return f"{body}.{self._sign('session:' + body)}"

    def load(self, cookie: str | None) -> Session | None:
        """The session a cookie carries, or None when it is missing, malformed or forged."""
        if not cookie or cookie.count(".") != 2:
            return None
        sid, flag, signature = cookie.split(".")
        if flag not in ("0", "1") or not sid:
            return None
        if not same_secret(signature, self._sign(f"session:{sid}.{flag}")):
            return None
        return Session(sid, flag == "1")

    def csrf_token(self, session: Session) -> str:
        return self._sign(f"csrf:{session.id}")

    def check_csrf(self, session: Session, token: str) -> bool:
        return bool(token) and same_secret(token, self.csrf_token(session))


def safe_next(target: str | None) -> str:
    """Where to go after logging in: only a path on this board, never another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return "/"
    return target
