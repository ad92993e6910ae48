"""Keeping secrets out of logs, error lines and ``--json``.

Secrets reach output three ways: a URL that carries credentials (``redis://:pw@host``,
``https://user:pw@es:9200``, a proxy ``http://user:pw@proxy:3128``), a library that quotes a
value it was given (a proxy error, a refused key), and our own messages. So:

- :func:`redact_url` masks the password of one URL (``https://user:***@host``); code puts
  URLs into messages through it.
- :func:`redact_text` masks every URL password in free text and every secret value
  :func:`register_settings` learnt from the settings (``SecretStr`` fields, passwords in any
  URL setting, ``password``/``token``/``api_key``/``secret``/``cookie`` keys of source
  blocks, proxies' passwords).
- :func:`install` registers the settings' secrets and makes every log record pass through
  :func:`redact_text` when it is created (a log-record factory, so records of every logger
  and every handler are covered, Celery's and the Elasticsearch transport's included, and a
  traceback attached to a record is masked too). The CLI calls it first thing and prints its
  one-line errors through :func:`redact_text`.

Values shorter than :data:`MIN_SECRET_CHARS` are not masked in free text (masking ``a``
everywhere would make every log unreadable); URL passwords are masked whatever their length.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import BaseModel, SecretBytes, SecretStr

MASK = "***"
MIN_SECRET_CHARS = 4
SECRET_KEY_RE = re.compile(r"(password|passwd|secret|token|api_?key|cookie|credential)", re.I)
"""Keys of free-form setting blocks (``crawl.sources.<name>``) whose values are secrets."""

_URL_PASSWORD_RE = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^:@/\s\"'<>]*:)(?P<password>[^@/\s\"'<>]+)(?=@)"
)
"""``scheme://user:PASSWORD@`` (the user may be empty, as in ``redis://:pw@host``)."""

_lock = threading.Lock()
_secrets: set[str] = set()
_installed = False


def redact_url(url: str | None) -> str:
    """``url`` with its password (if any) replaced by ``***``; the user name stays, as it
    says which account without giving it away. Not a URL: masked as free text."""
    if not url:
        return ""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return redact_text(url)
    if password is None:
        return redact_text(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{parts.username or ''}:{MASK}@{host}" + (f":{port}" if port is not None else "")
    return redact_text(urlunsplit(parts._replace(netloc=netloc)))


def redact_text(text: str) -> str:
    """``text`` with URL passwords and every registered secret masked."""
    if not text:
        return text
    out = _URL_PASSWORD_RE.sub(lambda m: m.group("head") + MASK, text)
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)
    for secret in known:
        if secret in out:
            out = out.replace(secret, MASK)
    return out


def register_secret(value: str | SecretStr | SecretBytes | None) -> None:
    """Mask ``value`` wherever :func:`redact_text` sees it from now on."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    elif isinstance(value, SecretBytes):
        value = value.get_secret_value().decode(errors="replace")
    if not value:
        return
    candidates = {value, unquote(value)}
    with _lock:
        _secrets.update(v for v in candidates if len(v) >= MIN_SECRET_CHARS)


def url_password(url: str) -> str | None:
    """The password inside ``url`` (as written and decoded), or None."""
    try:
        return urlsplit(url).password
    except ValueError:
        match = _URL_PASSWORD_RE.search(url)
        return match.group("password") if match else None


def secrets_in(value: Any, key: str = "") -> Iterable[str]:
    """Every secret a settings tree (a model, mapping, list or value) holds; see the module
    docstring for what counts."""
    if isinstance(value, SecretStr):
        yield value.get_secret_value()
    elif isinstance(value, SecretBytes):
        yield value.get_secret_value().decode(errors="replace")
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from secrets_in(getattr(value, name, None), name)
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from secrets_in(v, str(k))
    elif isinstance(value, list | tuple | set | frozenset):
        for v in value:
            yield from secrets_in(v, key)
    elif isinstance(value, str):
        if SECRET_KEY_RE.search(key):
            yield value
        elif "://" in value:
            password = url_password(value)
            if password:
                yield password


def register_settings(settings: Any) -> None:
    """Learn every secret in ``settings`` (see :func:`secrets_in`)."""
    for secret in secrets_in(settings):
        register_secret(secret)


def forget_secrets() -> None:
    """Drop every registered secret (tests)."""
    with _lock:
        _secrets.clear()


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    """Mask secrets in ``record``'s message and attached traceback, in place."""
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: leave it to the handler to report
        return record
    masked = redact_text(message)
    if masked != message:
        record.msg = masked
        record.args = None
    if record.exc_info and record.exc_info[0] is not None:
        text = logging.Formatter().formatException(record.exc_info)
        masked = redact_text(text)
        if masked != text:
            record.exc_text = masked
    if record.stack_info:
        record.stack_info = redact_text(record.stack_info)
    return record


def install(settings: Any | None = None) -> None:
    """Register ``settings``' secrets and mask secrets in every log record made from now on
    (idempotent: the record factory is wrapped once)."""
    global _installed
    if settings is not None:
        register_settings(settings)
    with _lock:
        if _installed:
            return
        _installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return redact_record(previous(*args, **kwargs))

    logging.setLogRecordFactory(factory)


class RedactingFilter(logging.Filter):
    """The same masking as a handler filter, for handlers made outside :func:`install`'s
    reach (another process's logging setup)."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


__all__ = [
    "MASK",
    "RedactingFilter",
    "forget_secrets",
    "install",
    "redact_record",
    "redact_text",
    "redact_url",
    "register_secret",
    "register_settings",
    "secrets_in",
    "url_password",
]
