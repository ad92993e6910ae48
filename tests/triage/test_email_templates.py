"""Alert emails are rendered from the Jinja2 templates shipped with the package: the HTML ones
autoescaped, the text ones not; hostile platform text stays inert in both and in headers."""

from __future__ import annotations

import tomllib
from email.message import EmailMessage
from fnmatch import fnmatch
from html.parser import HTMLParser
from pathlib import Path

import pytest

from reelwatch.models import Match
from reelwatch.settings import Settings
from tests.triage.factories import make_match
from triage.ledger import build_ledgers
from triage.notifiers.email import TEMPLATES_DIR, EmailNotifier

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = (
    '<script>alert(1)</script>"><img src=x onerror=alert(2)></td></table>'
    "{{ 7*7 }}{% raw %}\r\nBcc: victim@evil.test\r\n\r\n\u2028X-Injected: 1"
)
TAGS = {"html", "head", "meta", "body", "h2", "h3", "table", "tr", "th", "td", "ul", "ol", "li"}
TAGS |= {"br", "img", "a", "p"}


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags_of(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(html)
    return parser.tags


def hostile_match(post_id: str = "666", **fields: str) -> Match:
    return make_match(
        post_id,
        caption="cap " + HOSTILE,
        account="evil" + HOSTILE,
        title="Crown " + HOSTILE,
        **fields,
    )


def parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    return str(text.get_content()), str(html.get_content())


def assert_inert(html: str) -> None:
    tags = tags_of(html)
    assert {t for t, _ in tags} <= TAGS, "only the template's own elements"
    for tag, attrs in tags:
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        if tag == "img":
            assert str(attrs["src"]).startswith("cid:")
        if tag == "a":
            assert str(attrs["href"]).startswith(("http://", "https://"))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "{{ 7*7 }}" in html, "platform text is data, never a template"


def test_templates_ship_with_the_package_under_its_package_data() -> None:
    names = sorted(p.name for p in TEMPLATES_DIR.iterdir())
    assert names == [
        "alert.html",
        "alert.txt",
        "digest.html",
        "digest.txt",
        "repeat.html",
        "repeat.txt",
    ]
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["*"]
    assert all(any(fnmatch(n, p) for p in patterns) for n in names), "each is installed"


def test_alert_html_is_autoescaped_text_is_not_and_the_subject_is_one_line(
    settings: Settings,
) -> None:
    notifier = EmailNotifier(settings)
    message = notifier.build_message(hostile_match(), None, "ana@studio.test")

    subject = str(message["Subject"])
    assert "\r" not in subject and "\n" not in subject and "\u2028" not in subject
    assert message["Bcc"] is None and message["X-Injected"] is None
    text, html = parts(message)
    assert_inert(html)
    assert "Crown &lt;script&gt;" in html and "&#34;&gt;&lt;img src=x onerror" in html
    # Plain text has nothing to escape: the caption reads as it was written, minus controls.
    assert "<script>alert(1)</script>" in text and "&lt;" not in text
    assert "\r" not in text and "\u2028" not in text


def test_digest_html_is_autoescaped_and_its_subject_is_one_line(settings: Settings) -> None:
    notifier = EmailNotifier(settings)
    entries = [(hostile_match("666"), None), (hostile_match("667"), None)]
    message = notifier.build_digest(entries, "ana@studio.test", "w\r\nBcc: x@evil.test" + HOSTILE)

    subject = str(message["Subject"])
    assert "\r" not in subject and "\n" not in subject
    assert message["Bcc"] is None
    text, html = parts(message)
    assert_inert(html)
    assert html.count("<li>") == 2 and text.count("Triage it:") == 2


def test_repeat_infringer_html_is_autoescaped_and_its_subject_is_one_line(
    settings: Settings,
) -> None:
    notifier = EmailNotifier(settings)
    matches = [
        hostile_match("666", platform="x"),
        make_match("667", account="evil" + HOSTILE, platform="x", post_url="javascript:alert(1)"),
    ]
    (ledger,) = build_ledgers(matches, settings)
    message = notifier.build_account_alert(ledger, matches, "ana@studio.test", ledger.alert_key)

    subject = str(message["Subject"])
    assert "\r" not in subject and "\n" not in subject and "\u2028" not in subject
    assert subject.startswith("[reelwatch] repeat infringer @evil<script>")
    assert message["Bcc"] is None and message["X-Injected"] is None
    text, html = parts(message)
    assert_inert(html)
    assert html.count("<li>") >= 2 and text.count("Triage:") == 2
    hrefs = [a["href"] for t, a in tags_of(html) if t == "a"]
    assert "javascript:alert(1)" not in hrefs, "a post URL that is not a web URL is not linked"
    assert "\r" not in text and "\u2028" not in text


@pytest.mark.parametrize("url", ["javascript:alert(1)", "data:text/html,<script>x</script>"])
def test_a_post_url_that_is_not_a_web_url_is_shown_not_linked(settings: Settings, url: str) -> None:
    notifier = EmailNotifier(settings)
    match = make_match(post_url=url)
    _, html = parts(notifier.build_message(match, None, "ana@studio.test"))
    hrefs = [a["href"] for t, a in tags_of(html) if t == "a"]
    assert hrefs == ["http://127.0.0.1:8765/matches/tiktok:7001:the-crown"]
    assert "<script>" not in html
