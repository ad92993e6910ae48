"""`reelwatch demo --no-board`, twice, on a fresh data home: the issue's acceptance run."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelwatch.demo.content import generate_demo_content
from reelwatch.models import Confidence
from reelwatch.settings import load_settings
from tests.cli.conftest import Runner
from triage.stores import open_store

pytestmark = pytest.mark.slow


def test_demo_twice(run_cli: Runner, home: Path) -> None:
    first = run_cli("demo", "--no-board", timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    content = generate_demo_content(home / "demo" / "content")  # cached: same files
    settings = load_settings(home=home)
    with open_store(settings) as store:
        matches = store.list_matches()
    by_post: dict[str, list] = {}
    for m in matches:
        by_post.setdefault(m.post_id, []).append(m)

    for post in content.copies:
        found = {m.title: m.confidence for m in by_post.get(post.id, [])}
        assert found.get(post.expected_title) == Confidence.HIGH, (post.transform, found)
        assert all(c == Confidence.LOW for t, c in found.items() if t != post.expected_title)
    for post in content.unrelated:
        assert all(m.confidence == Confidence.LOW for m in by_post.get(post.id, []))

    highs = [m for m in matches if m.confidence == Confidence.HIGH]
    mail_dir = home / "demo" / "received-mail"
    mails = sorted(mail_dir.glob("*.eml"))
    assert len(mails) == len(highs) == len(content.copies)
    assert "copies found at high confidence" in first.stdout

    second = run_cli("demo", "--no-board", timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    with open_store(settings) as store:
        again = store.list_matches()
    assert sorted(m.id for m in again) == sorted(m.id for m in matches)
    assert sorted(mail_dir.glob("*.eml")) == mails
    assert "Alert emails received this run: 0" in second.stdout
