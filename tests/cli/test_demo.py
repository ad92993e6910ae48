"""`reelwatch demo --no-board`, twice, on a fresh data home: the issue's acceptance run."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from email.parser import BytesParser
from email.policy import default
from pathlib import Path

import pytest

from reelwatch.demo.content import generate_demo_content
from reelwatch.models import Confidence, Match
from reelwatch.settings import load_settings
from tests.cli.conftest import Runner
from triage.stores import open_store

pytestmark = pytest.mark.slow


def _plain_text(path: Path) -> str:
    """The decoded text/plain part of a saved email."""
    with path.open("rb") as f:
        msg = BytesParser(policy=default).parse(f)
    part = msg.get_body(preferencelist=("plain",))
    assert part is not None, path
    return str(part.get_content())  # type: ignore[attr-defined]


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
    assert len(highs) == len(content.copies)
    # One watch fires 15 times at once: the first alerts go out one by one, the rest as one
    # digest. Every high match is in exactly one email, and every alert is marked sent.
    mail_dir = home / "demo" / "received-mail"
    mails = sorted(mail_dir.glob("*.eml"))
    threshold = settings.alerts.digest_threshold
    assert len(mails) == threshold + 1
    bodies = [_plain_text(p) for p in mails]
    for m in highs:
        assert sum(m.post_url in b for b in bodies) == 1, m.post_url
    with open_store(settings) as store:
        assert all(a.status.value == "sent" for a in store.list_alerts())
        assert len(store.list_alerts()) == len(highs)
    assert "copies found at high confidence" in first.stdout

    second = run_cli("demo", "--no-board", timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    _demo_opens_the_board(home, highs[0])
    with open_store(settings) as store:
        again = store.list_matches()
    assert sorted(m.id for m in again) == sorted(m.id for m in matches)
    assert sorted(mail_dir.glob("*.eml")) == mails
    assert "Alert emails received this run: 0" in second.stdout


def _demo_opens_the_board(home: Path, match: Match) -> None:
    """Without --no-board the demo (here a third run: nothing new) serves the board on its
    matches until interrupted."""
    env = {**os.environ, "REELWATCH_HOME": str(home)}
    env.pop("REELWATCH_BROKER_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "reelwatch", "demo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        url = None
        deadline = time.monotonic() + 300
        for line in proc.stdout:
            m = re.search(r"triage board at (http://127\.0\.0\.1:\d+)", line)
            if m:
                url = m.group(1)
                break
            assert time.monotonic() < deadline, "the demo never opened the board"
        assert url is not None, "the demo exited without opening the board"
        # Keep reading what it prints, so a full pipe never blocks it (and its exit).
        rest: list[str] = []
        drain = threading.Thread(target=lambda: rest.extend(proc.stdout or []), daemon=True)
        drain.start()
        with urllib.request.urlopen(f"{url}/?tier=high", timeout=30) as resp:
            queue = resp.read().decode()
        assert resp.status == 200 and f"@{match.account}" in queue
        match_page = f"{url}/matches/{urllib.parse.quote(match.id, safe='')}"
        with urllib.request.urlopen(match_page, timeout=30) as resp:
            page = resp.read().decode()
        assert resp.status == 200 and match.post_url in page
    finally:
        proc.send_signal(signal.SIGINT)
        # It exits at once on an idle machine; with another job on both cores, stopping the
        # board and the interpreter's exit (torch, ONNX Runtime) once took over 30 s.
        proc.wait(timeout=120)
    assert proc.returncode == 0
