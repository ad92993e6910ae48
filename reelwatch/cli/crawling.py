"""Discovery commands: ``crawl``, ``sources list`` and ``sources check``."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from reelwatch.cli import console, err_console, settings_of
from reelwatch.errors import InputError
from reelwatch.settings import MAX_CRAWL_LIMIT

sources_app = typer.Typer(help="Discovery sources: what each lists, whether each works.")


def _post_row(post: Any, is_new: bool, stored: Any = None) -> dict[str, Any]:
    return {
        "platform": post.platform,
        "id": post.post_id,
        "url": post.url,
        "posted_at": post.posted_at.isoformat() if post.posted_at else None,
        "author": post.author.handle or None,
        "new": is_new,
        "screenshot": post.provenance.screenshot,
        "state": stored.state.value if stored is not None else None,
        "error": stored.error if stored is not None else None,
        "failed_step": stored.failed_step if stored is not None else None,
    }


def crawl(
    ctx: typer.Context,
    platform: Annotated[
        str, typer.Option(help="Source: tiktok, youtube, instagram, x, ytdlp, replica.")
    ],
    hashtag: Annotated[str | None, typer.Option(help="Hashtag, with or without #.")] = None,
    query: Annotated[
        str | None,
        typer.Option(help="Instead of --hashtag: #tag, @account, search:words, or a URL."),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=MAX_CRAWL_LIMIT,
            help="Stop after this many posts (default crawl.default_limit).",
        ),
    ] = None,
    max_age: Annotated[
        str | None, typer.Option(help="Skip posts older than this (90m, 12h, 7d).")
    ] = None,
    process: Annotated[
        bool, typer.Option(help="Download, fingerprint, match and land new posts.")
    ] = True,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print the posts found as JSON (progress goes to stderr)."),
    ] = False,
) -> None:
    """Crawl one query now; new posts go through the pipeline (in-process by default).

    Shows live counts while listing and ends with a summary line; the counts are recorded
    per run (``reelwatch watch list`` shows a watch's latest).
    """
    from reelwatch.cli.ops import finish_processing, process_posts, progress_bar, replica_running
    from reelwatch.watches import WatchOptions, parse_duration
    from workers.app import configure
    from workers.tasks import pipeline

    settings = settings_of(ctx)
    if (hashtag is None) == (query is None):
        raise InputError("give either --hashtag or --query")
    text = f"#{hashtag.strip().lstrip('#')}" if hashtag is not None else str(query)
    try:
        age = parse_duration(max_age) if max_age else None
    except ValueError as exc:
        raise InputError(f"--max-age {max_age!r}: {exc}") from None
    settings.ensure_home()
    out = Console(stderr=True, markup=False, highlight=False) if as_json else console
    watch = WatchOptions(max_age_s=age)
    with replica_running(settings, platform.strip().lower()):
        configure(settings)
        p = pipeline()
        with out.status(f"listing {text} on {platform}…") as status:

            def on_found(n: int) -> None:
                status.update(f"listing {text} on {platform}: {n} found")

            found = p.discover_run(platform, text, limit=limit, watch=watch, on_found=on_found)
        if process and found.todo:
            with progress_bar(on=out) as progress:
                process_posts(settings, found.todo, watch, progress, found.run.query)
            finish_processing(settings, [found])
    stored = _stored_posts(settings, [p.key for p in found.posts])
    if as_json:
        new = set(found.new)
        rows = [_post_row(post, post.key in new, stored.get(post.key)) for post in found.posts]
        json.dump(rows, sys.stdout, ensure_ascii=False, indent=1)
        sys.stdout.write("\n")
    elif process and settings.eager and found.todo:
        from reelwatch.cli.ops import _report

        _report(settings, found.todo)
    out.print(found.run.summary(), soft_wrap=True)
    for line in _failure_lines(found.todo, found.retried, stored):
        out.print(line, soft_wrap=True)


def _stored_posts(settings: Any, keys: list[str]) -> dict[str, Any]:
    from triage.stores import open_store

    with open_store(settings) as store:
        return {k: p for k in keys if (p := store.get_post(k)) is not None}


def _failure_lines(todo: list[str], retried: list[str], stored: dict[str, Any]) -> list[str]:
    """Beside the summary: the failed posts of this run by reason, and the ones run again
    because the settings they failed under changed."""
    from reelwatch.models import PostState
    from workers.retry import summarize

    lines = []
    if retried:
        lines.append(f"{len(retried)} post(s) that had failed under other settings were run again")
    failed = [stored[k] for k in todo if k in stored and stored[k].state == PostState.FAILED]
    if failed:
        lines.append(
            f"failed: {summarize(failed)}; `reelwatch posts list` shows them, "
            "`reelwatch posts retry` runs them again"
        )
    return lines


@sources_app.command("list")
def sources_list(ctx: typer.Context) -> None:
    """The registered sources: what each lists, what it needs, where it points."""
    from crawler.sources import SOURCES

    settings = settings_of(ctx)
    table = Table("source", "lists", "needs", "base URL", "canary")
    for cls in SOURCES:
        try:
            source = cls(settings)
        except InputError as exc:
            table.add_row(cls.name, "-", "-", f"misconfigured: {exc}", "-")
            continue
        table.add_row(
            cls.name,
            ", ".join(sorted(cls.query_kinds)),
            ", ".join(sorted(cls.needs)) or "-",
            source.config.base_url or "-",
            str(source.canary_query() or "-"),
        )
    console.print(table)


@sources_app.command("check")
def sources_check(
    ctx: typer.Context,
    names: Annotated[
        list[str] | None, typer.Argument(help="Sources to check (default: every one).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
) -> None:
    """List a few posts from each configured source on its canary query and say, one line
    each, whether it works, and why not (empty body, captcha, HTTP status, parse error,
    login expired). Exits 1 when a checked source is broken."""
    from crawler.sources_check import check_sources

    settings = settings_of(ctx)
    settings.ensure_home()
    checks = check_sources(settings, names or None)
    if as_json:
        rows = [
            {"source": c.name, "state": c.state, "reason": c.reason, "detail": c.detail}
            for c in checks
        ]
        json.dump(rows, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        for check in checks:
            console.print(check.line(), soft_wrap=True)
    broken = [c for c in checks if c.broken]
    if broken:
        err_console.print(f"{len(broken)} source(s) broken: {', '.join(c.name for c in broken)}")
        raise typer.Exit(1)
