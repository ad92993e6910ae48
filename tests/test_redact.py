"""reelwatch.redact: URL passwords and the settings' secrets never reach a log line or error."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from reelwatch import redact
from reelwatch.redact import MASK, redact_text, redact_url, secrets_in
from reelwatch.settings import Settings


@pytest.fixture(autouse=True)
def fresh_secrets() -> Iterator[None]:
    redact.forget_secrets()
    yield
    redact.forget_secrets()


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://:brokerpw@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("https://elastic:p%40ss@es.test:9200/", "https://elastic:***@es.test:9200/"),
        ("http://user:pass@proxy:3128", "http://user:***@proxy:3128"),
        ("http://[::1]:9200", "http://[::1]:9200"),
        ("https://www.tiktok.com/@fan/video/7001", "https://www.tiktok.com/@fan/video/7001"),
        (None, ""),
    ],
)
def test_redact_url_masks_the_password_and_keeps_the_rest(url: str | None, masked: str) -> None:
    assert redact_url(url) == masked


def test_free_text_loses_url_passwords_and_registered_secrets() -> None:
    redact.register_secret("tok-3141")
    text = "proxy http://u:pw1@p:3128 refused; token tok-3141; post https://x.test/@fan/1"
    assert redact_text(text) == (
        f"proxy http://u:{MASK}@p:3128 refused; token {MASK}; post https://x.test/@fan/1"
    )


def test_every_secret_in_the_settings_is_found() -> None:
    settings = Settings(
        broker_url="redis://:M-broker@h:6379/0",
        result_backend="redis://:M-backend@h:6379/1",
        store={"elasticsearch_url": "https://u:M-es@h:9200"},
        email={"password": "M-mail", "username": "alerts"},
        board={"token": "M-board"},
        kibana={"password": "M-kibana", "api_key": "M-kibana-key"},
        crawl={
            "sources": {
                "youtube": {"api_key": "M-youtube", "proxy": "http://u:M-proxy@p:3128"},
                "x": {"session_cookie_value": "M-cookie"},
            }
        },
    )
    found = set(secrets_in(settings))
    assert found == {
        "M-broker",
        "M-backend",
        "M-es",
        "M-mail",
        "M-board",
        "M-kibana",
        "M-kibana-key",
        "M-youtube",
        "M-proxy",
        "M-cookie",
    }
    assert "alerts" not in found, "a user name is not a secret"


def test_installed_logging_masks_messages_args_and_tracebacks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    redact.install(Settings(email={"password": "M-mail-secret"}))
    log = logging.getLogger("reelwatch.test.redact")
    with caplog.at_level(logging.INFO, logger="reelwatch.test.redact"):
        log.info("login as alerts with %s to %s", "M-mail-secret", "redis://:pw9@h/0")
        try:
            raise ValueError("refused M-mail-secret")
        except ValueError:
            log.exception("send failed")
    assert "M-mail-secret" not in caplog.text and "pw9" not in caplog.text
    assert caplog.records[0].getMessage() == f"login as alerts with {MASK} to redis://:{MASK}@h/0"
    assert f"ValueError: refused {MASK}" in caplog.text


def test_short_values_are_not_masked_everywhere() -> None:
    redact.register_secret("ab")
    assert redact_text("a cab ride") == "a cab ride"
    assert redact_text("redis://:ab@h/0") == f"redis://:{MASK}@h/0"
