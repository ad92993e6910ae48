"""``reelwatch demo``: the whole flow on embedded defaults, on generated content.

Generates (once) fictional titles with reference clips and ~20 posts that copy them or not,
publishes the posts on the local replica platform, adds the titles to the catalog, starts
an SMTP sink, crawls the demo's hashtags, runs every new post through the pipeline
(in-process Celery), then shows the landed matches and the alert emails received. Running
it again lands nothing twice and sends no second email.
"""

from __future__ import annotations

import socket
import threading
import time
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from reelwatch.cli import console, settings_of
from reelwatch.models import Confidence, Match
from reelwatch.settings import Settings

if TYPE_CHECKING:  # the demo content module pulls in PyAV and NumPy: not at CLI start-up
    from reelwatch.demo.content import DemoContent

DEMO_WATCH = "demo"
DEMO_REPLICA_PORT = 8730
DEMO_BOARD_PORT = 8765
"""Where the demo's board listens when the port is free (the default ``email.board_url``)."""


def _free_or_zero(port: int) -> int:
    """The demo keeps a stable address (post URLs stay valid across runs) when it can."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return 0
    return port


def demo(
    ctx: typer.Context,
    no_board: Annotated[bool, typer.Option("--no-board", help="Exit when done.")] = False,
) -> None:
    """Run the whole flow on generated demo content and show what it found."""
    from crawler.replica.server import ReplicaServer
    from crawler.replica.site import ReplicaVideo, build_site
    from crawler.sources import ReplicaSource
    from matcher.catalog import Catalog
    from matcher.decode import probe
    from reelwatch.cli.ops import progress_bar, run_hashtags
    from reelwatch.demo.content import generate_demo_content
    from triage.smtp_sink import SmtpSink

    settings = settings_of(ctx)
    settings.ensure_home()
    settings.download.allow_private_hosts = True
    started = time.monotonic()
    demo_dir = settings.home / "demo"

    with progress_bar() as progress:
        task = progress.add_task("generate demo content", total=None)
        content = generate_demo_content(demo_dir / "content")
        progress.update(
            task,
            total=1,
            completed=1,
            description=f"demo content: {len(content.titles)} titles, {len(content.posts)} posts",
        )
        catalog = Catalog(settings)
        task = progress.add_task("index reference clips", total=len(content.titles))
        for t in content.titles:
            title = catalog.add_title(
                t.name,
                owner=t.owner,
                aliases=t.aliases,
                hashtags=t.hashtags,
                description=t.description,
            )
            catalog.add_assets(title.id, list(t.references))
            progress.advance(task)
    videos = []
    for p in content.posts:
        info = probe(Path(p.path))
        videos.append(
            ReplicaVideo(
                id=p.id,
                user=p.user,
                nickname=p.nickname,
                caption=p.caption,
                hashtags=p.hashtags,
                path=Path(p.path),
                create_time=p.create_time,
                duration=round(info.duration or 0),
                width=info.width or 0,
                height=info.height or 0,
                followers=p.followers,
                plays=p.plays,
                likes=p.likes,
                shares=p.shares,
                comments=p.comments,
                is_aigc=p.is_aigc,
                aigc_description=p.aigc_description,
            )
        )
    site = build_site(demo_dir / "site", videos)
    hashtags = list(dict.fromkeys(h for t in content.titles for h in t.hashtags))

    board = None
    if not no_board:
        from triage.board import create_app
        from triage.board.server import BoardServer

        # Up before the pipeline, so alert emails link to where the board really is.
        board = BoardServer(create_app(settings), port=_free_or_zero(DEMO_BOARD_PORT)).start()
        settings.email.board_url = board.url
    with (
        ReplicaServer(site, port=_free_or_zero(DEMO_REPLICA_PORT)) as replica,
        SmtpSink(save_dir=demo_dir / "received-mail") as sink,
    ):
        ReplicaSource.set_base_url(settings, replica.base_url)
        settings.email.smtp_host = "127.0.0.1"
        settings.email.smtp_port = sink.port
        settings.email.starttls = False
        settings.email.use_ssl = False
        settings.email.username = None
        console.print(f"replica platform at {replica.base_url}, SMTP sink on 127.0.0.1:{sink.port}")
        sent = run_hashtags(settings, "replica", hashtags, limit=None, watch=DEMO_WATCH)
        received = list(sink.messages)

    _summary(settings, content, received, len(sent), time.monotonic() - started)
    if board is not None:
        console.print(f"triage board at {board.url} (Ctrl-C to stop)")
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
        finally:
            board.stop()


def verdict(match: Match, expected_title: str | None) -> bool:
    """A demo match is right when a copy is found at high confidence under its own title,
    and anything else (an unrelated clip, a wrong title) stays low."""
    if expected_title == match.title:
        return match.confidence == Confidence.HIGH
    return match.confidence == Confidence.LOW


def _summary(
    settings: Settings,
    content: DemoContent,
    received: list[EmailMessage],
    processed: int,
    elapsed: float,
) -> None:
    from triage.stores import open_store

    posts = {p.id: p for p in content.posts}
    with open_store(settings) as store:
        found = [m for m in store.list_matches() if m.platform == "replica"]
    table = Table(
        "title",
        "platform",
        "account",
        "score",
        "tier",
        "post",
        "as expected",
        title=f"Matches landed ({len(found)})",
    )
    for m in found:
        truth = posts.get(m.post_id)
        expected = truth.expected_title if truth else None
        ok = (
            Text("yes", style="green")
            if verdict(m, expected)
            else Text(f"no ({expected or 'unrelated'})", style="red")
        )
        table.add_row(
            m.title,
            m.platform,
            f"@{m.account}",
            f"{m.score:.2f}",
            m.confidence.value,
            m.post_url,
            ok,
        )
    console.print(table)
    high = {(m.post_id, m.title) for m in found if m.confidence == Confidence.HIGH}
    copies_found = sum((p.id, p.expected_title) in high for p in content.copies)
    wrong = [
        m
        for m in found
        if not verdict(m, posts[m.post_id].expected_title if m.post_id in posts else None)
    ]
    colour = "green" if copies_found == len(content.copies) and not wrong else "red"
    console.print(
        f"copies found at high confidence: {copies_found}/{len(content.copies)}; "
        f"matches off expectation: {len(wrong)}",
        style=colour,
    )
    console.print(f"Alert emails received this run: {len(received)}")
    if received:
        mails = Table("to", "subject")
        for msg in received:
            mails.add_row(str(msg.get("To", "")), str(msg.get("Subject", "")))
        console.print(mails)
    console.print(f"{processed} new post(s) processed in {elapsed:.0f} s")
    console.print(f"data home: {settings.home}")
    best = next((m for m in found if m.confidence == Confidence.HIGH), None)
    if best is not None:
        # Strangers' ids go out as data, never as markup.
        console.print("Act on a match (the enforcement loop: docs/enforcement.md):")
        for line in (
            f"  reelwatch evidence export {best.id} --out packs/",
            f"  reelwatch notice draft {best.id}",
            f"  reelwatch report {best.title_id}",
        ):
            console.print(Text(line))
