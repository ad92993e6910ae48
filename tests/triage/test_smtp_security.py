"""SMTP credentials only over STARTTLS or TLS, against real aiosmtpd servers.

A server that offers AUTH on a plain connection never sees an AUTH command unless
``email.allow_plain_auth`` says so; a server with STARTTLS (a certificate made here, trusted
through ``SSL_CERT_FILE``) gets the login after the handshake; a server that does not offer
STARTTLS when it is asked for gets nothing, never a plain fallback.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from reelwatch.models import AlertStatus
from reelwatch.settings import Settings
from tests.triage.factories import make_match
from triage.alerts import deliver, flush_pending
from triage.notifiers import build_notifiers
from triage.smtp_sink import SmtpSink
from triage.stores import Store, open_store

USER, PASSWORD = "alerts", "pw-8c1f0e-never-in-clear"
RECIPIENT = "ana@studio.test"


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    """A key and a certificate for 127.0.0.1 (``cryptography`` when installed, else openssl)."""
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        if shutil.which("openssl") is None:
            pytest.skip("neither cryptography nor the openssl CLI is installed")
        subprocess.run(
            [
                *("openssl", "req", "-x509", "-newkey", "ec"),
                *("-pkeyopt", "ec_paramgen_curve:P-256"),
                *("-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"),
                *("-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)),
            ],
            check=True,
            capture_output=True,
        )
        return cert, key
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private, hashes.SHA256())
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert, key


@pytest.fixture
def tls_context(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ssl.SSLContext:
    """A server context with a fresh self-signed certificate that this process trusts."""
    cert, key = _self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    with open_store(settings) as s:
        yield s


def with_login(settings: Settings, sink: SmtpSink, **email: object) -> Settings:
    settings.email.smtp_host = "127.0.0.1"
    settings.email.smtp_port = sink.port
    settings.email.timeout_s = 5
    settings.email.recipients = [RECIPIENT]
    settings.email.username = USER
    settings.email.password = SecretStr(PASSWORD)
    for name, value in email.items():
        setattr(settings.email, name, value)
    return settings


def test_plain_server_offering_auth_never_gets_the_password(
    settings: Settings, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    match = make_match()
    store.upsert_match(match)
    with SmtpSink(auth=(USER, PASSWORD)) as sink:
        with_login(settings, sink)
        with caplog.at_level(logging.INFO):
            (alert,) = deliver(store, build_notifiers(settings), match, None, settings)

        assert alert.status == AlertStatus.PENDING, "refused, not lost"
        assert alert.error is not None
        assert "email.starttls" in alert.error and "email.use_ssl" in alert.error
        assert "email.allow_plain_auth" in alert.error and "\n" not in alert.error
        assert sink.auth_commands == [], "the server never saw an AUTH command"
        assert sink.messages == []
        assert PASSWORD not in alert.error and PASSWORD not in caplog.text

        # Fixing the settings delivers the pending alert, once.
        settings.email.allow_plain_auth = True
        with caplog.at_level(logging.WARNING, logger="triage.notifiers.email"):
            (sent,) = flush_pending(store, build_notifiers(settings))
        assert sent.status == AlertStatus.SENT
        assert [m for m, encrypted in sink.auth_commands if not encrypted] != []
        assert len(sink.messages) == 1
        assert "allow_plain_auth is set" in caplog.text and "unencrypted" in caplog.text
        assert PASSWORD not in caplog.text


def test_starttls_server_gets_the_login_only_after_the_handshake(
    settings: Settings, store: Store, tls_context: ssl.SSLContext
) -> None:
    match = make_match()
    store.upsert_match(match)
    with SmtpSink(auth=(USER, PASSWORD), tls_context=tls_context) as sink:
        with_login(settings, sink, starttls=True)
        (alert,) = deliver(store, build_notifiers(settings), match, None, settings)
        assert alert.status == AlertStatus.SENT, alert.error
        assert sink.auth_commands and all(encrypted for _, encrypted in sink.auth_commands)
        assert len(sink.messages) == 1


def test_starttls_asked_but_not_offered_is_refused_without_a_plain_fallback(
    settings: Settings, store: Store
) -> None:
    match = make_match()
    store.upsert_match(match)
    with SmtpSink(auth=(USER, PASSWORD)) as sink:  # offers AUTH, no STARTTLS
        with_login(settings, sink, starttls=True)
        (alert,) = deliver(store, build_notifiers(settings), match, None, settings)
        assert alert.status == AlertStatus.PENDING
        assert alert.error is not None and "does not offer STARTTLS" in alert.error
        assert sink.auth_commands == [] and sink.messages == []


def test_an_untrusted_certificate_is_refused(
    settings: Settings, store: Store, tls_context: ssl.SSLContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", "/nonexistent/ca.pem")
    match = make_match()
    store.upsert_match(match)
    with SmtpSink(auth=(USER, PASSWORD), tls_context=tls_context) as sink:
        with_login(settings, sink, starttls=True)
        (alert,) = deliver(store, build_notifiers(settings), match, None, settings)
        assert alert.status == AlertStatus.PENDING
        assert alert.error is not None and "CERTIFICATE_VERIFY_FAILED" in alert.error
        assert sink.auth_commands == [] and sink.messages == []


def test_a_refused_login_over_starttls_never_quotes_the_password(
    settings: Settings, store: Store, tls_context: ssl.SSLContext, caplog: pytest.LogCaptureFixture
) -> None:
    match = make_match()
    store.upsert_match(match)
    with SmtpSink(auth=(USER, "the-right-one"), tls_context=tls_context) as sink:
        with_login(settings, sink, starttls=True)
        with caplog.at_level(logging.DEBUG):
            (alert,) = deliver(store, build_notifiers(settings), match, None, settings)
        assert alert.status == AlertStatus.PENDING
        assert alert.error is not None and "535" in alert.error
        assert PASSWORD not in alert.error and PASSWORD not in caplog.text
