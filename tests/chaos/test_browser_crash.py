"""Chromium killed (``kill -9``) in the middle of a browser-mode crawl of the signed replica:
the crawl ends in one transient error that keeps the posts it had listed (they are stored,
waiting to be processed, and the run is recorded with why it ended), and the next run lists
the rest: no post missing, none new twice.

A browser session cannot start at a saved cursor (the platform's own page script fetches
each page as the reader scrolls), so the next run lists from the newest post again and
recognises the posts it already has as known.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest

from crawler import CrawlInterrupted
from crawler.replica import ReplicaServer
from crawler.replica.generate import generate_site
from crawler.sources import TikTokSource
from crawler.state import CrawlState
from reelwatch.models import PostState, post_key
from reelwatch.settings import Settings
from triage.stores import open_store
from workers.pipeline import Pipeline

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.browser,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium not installed"),
]

POSTS = 80
KILL_AT = 20


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _chromium_under(root: int) -> list[int]:
    """Chromium processes descended from ``root`` (the crawl subprocess's browser)."""
    tree, found, todo = _children(), [], [root]
    while todo:
        pid = todo.pop()
        for child in tree.get(pid, []):
            todo.append(child)
            try:
                name = (Path("/proc") / str(child) / "comm").read_text().strip()
            except OSError:
                continue
            if "chrom" in name:
                found.append(child)
    return found


def test_chromium_killed_mid_crawl_keeps_what_it_listed_and_the_next_run_lists_the_rest(
    settings: Settings, tmp_path: Path
) -> None:
    site = generate_site(tmp_path / "site", POSTS, "bridgerton")
    every = {post_key("tiktok", f"7400{n:015d}") for n in range(POSTS)}
    killed: list[int] = []

    def kill_chromium(found: int) -> None:
        if found >= KILL_AT and not killed:
            for pid in _chromium_under(os.getpid()):
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                except ProcessLookupError:
                    pass

    with ReplicaServer(site, page_size=20, signed=True) as server:
        TikTokSource.set_base_url(settings, server.base_url)
        settings.crawl.sources["tiktok"].update(scroll_wait_s=2.0, idle_scrolls=2)
        pipeline = Pipeline(settings)
        try:
            with pytest.raises(CrawlInterrupted) as caught:
                pipeline.discover_run("tiktok", "#bridgerton", limit=POSTS, on_found=kill_chromium)
            assert killed, "no Chromium process was found to kill"
            assert "browser" in str(caught.value)
            first = {p.key for p in caught.value.posts}
            assert KILL_AT <= len(first) < POSTS
            with open_store(settings) as store:
                kept = {k: store.get_post(k) for k in every}
            stored = {k for k, p in kept.items() if p is not None}
            assert stored == first, "the posts listed before the crash were not all kept"
            assert {kept[k].state for k in first} == {PostState.DISCOVERED}  # type: ignore[union-attr]

            second = pipeline.discover_run("tiktok", "#bridgerton", limit=POSTS)
        finally:
            pipeline.close()

    assert {p.key for p in second.posts} == every
    assert set(second.new) == every - first and set(second.known) == first
    # Nothing was processed yet, so every post (old and new) is still to do, each once.
    assert sorted(second.todo) == sorted(every)
    with open_store(settings) as store:
        assert all(store.get_post(k) is not None for k in every)
    with CrawlState.of_home(settings.home) as state:
        runs = state.runs()
    assert len(runs) == 2
    latest, crashed = runs
    assert crashed.error and "browser" in crashed.error and crashed.found == len(first)
    assert latest.error is None and latest.found == POSTS and latest.new == POSTS - len(first)
