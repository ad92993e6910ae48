"""``reelwatch posts``: the posts the pipeline has seen, and running failed ones again."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from reelwatch.cli import console, settings_of
from reelwatch.errors import InputError
from reelwatch.text import one_line

if TYPE_CHECKING:
    from reelwatch.models import Post
    from reelwatch.settings import Settings
    from workers.retry import FailedFilter

posts_app = typer.Typer(
    help="Posts the pipeline has seen: list them, run failed ones again.", no_args_is_help=True
)

Reason = Annotated[
    str | None,
    typer.Option(help="Only failures whose reason or step contains this text (any case)."),
]
Since = Annotated[
    str | None,
    typer.Option(help="Only posts that failed since then: an ISO date/time or 90m, 2h, 3d ago."),
]
Platform = Annotated[str | None, typer.Option(help="Only posts of this platform.")]


def _flat(text: str | None, limit: int = 300) -> str:
    """Strangers' text (errors quote URLs and captions) on one line, bounded."""
    return one_line(text or "", limit)


def _filter(
    reason: str | None, since: str | None, platform: str | None, keys: list[str] | None = None
) -> FailedFilter:
    from workers.retry import FailedFilter, parse_since

    return FailedFilter(
        reason=reason or "",
        since=parse_since(since) if since else None,
        platform=platform or "",
        keys=tuple(k.strip() for k in keys or () if k.strip()),
    )


def _row(post: Post, digest: str) -> dict[str, Any]:
    from workers.retry import stale

    return {
        "key": post.key,
        "platform": post.platform,
        "post_id": post.post_id,
        "url": post.url,
        "state": post.state.value,
        "error": post.error,
        "failed_step": post.failed_step,
        "failed_at": post.failed_at.isoformat() if post.failed_at else None,
        "failed_transient": post.failed_transient,
        "settings_changed": stale(post, digest),
        "retries": post.retries,
        "watch": post.watch,
    }


def _table(posts: list[Post], digest: str) -> Table:
    from workers.retry import stale

    table = Table("post", "step", "failed at", "retries", "reason")
    for post in posts:
        when = post.failed_at.strftime("%Y-%m-%d %H:%M") if post.failed_at else "-"
        reason = _flat(post.error)
        if post.failed_transient:
            reason += " [gave up on a transient fault]"
        elif stale(post, digest):
            reason += " [settings changed since]"
        table.add_row(
            _flat(post.key, 120), post.failed_step or "-", when, str(post.retries), reason
        )
    return table


@posts_app.command("list")
def posts_list(
    ctx: typer.Context,
    state: Annotated[
        str, typer.Option(help="discovered, downloaded, fingerprinted, matched or failed.")
    ] = "failed",
    reason: Reason = None,
    since: Since = None,
    platform: Platform = None,
    limit: Annotated[int, typer.Option(min=1, max=1_000_000, help="Show at most this many.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print the posts as JSON.")] = False,
) -> None:
    """List posts in one state; failed posts (the default) latest failure first, with the step
    and the reason they failed."""
    from reelwatch.models import PostState
    from triage.stores import open_store
    from triage.stores.base import parse_post_state
    from workers.retry import select_failed, settings_digest

    settings = settings_of(ctx)
    wanted = parse_post_state(state.strip().lower())
    which = _filter(reason, since, platform)
    if wanted != PostState.FAILED and (reason or since):
        raise InputError("--reason and --since select failed posts; leave out --state")
    digest = settings_digest(settings)
    with open_store(settings) as store:
        if wanted == PostState.FAILED:
            posts = select_failed(store, which, limit=limit)
        else:
            listed = store.list_posts(wanted)
            posts = [p for p in listed if not platform or p.platform == platform][:limit]
    if as_json:
        json.dump([_row(p, digest) for p in posts], sys.stdout, ensure_ascii=False, indent=1)
        sys.stdout.write("\n")
        return
    if not posts:
        filtered = bool(reason or since or platform)
        console.print(f"no {wanted.value} posts" + (" match" if filtered else ""))
        return
    if wanted == PostState.FAILED:
        console.print(_table(posts, digest))
        console.print(f"{len(posts)} failed post(s); `reelwatch posts retry` runs them again")
    else:
        table = Table("post", "account", "first seen", "url")
        for p in posts:
            table.add_row(
                _flat(p.key, 120),
                _flat(f"@{p.author.handle}", 60),
                p.first_seen.strftime("%Y-%m-%d %H:%M"),
                _flat(p.url, 200),
            )
        console.print(table)


@posts_app.command("retry")
def posts_retry(
    ctx: typer.Context,
    keys: Annotated[
        list[str] | None,
        typer.Argument(help="Post keys (platform:post_id) to retry; default every failed post."),
    ] = None,
    reason: Reason = None,
    since: Since = None,
    platform: Platform = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be retried; change nothing.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the outcome as JSON (progress on stderr).")
    ] = False,
) -> None:
    """Run failed posts through the pipeline again (in-process, or queued for the workers when
    a broker is set) and say how they ended.

    Besides the posts selected, posts that failed for good under settings that changed since
    (the download section, the media limits) run again too, as a crawl would run them.
    """
    from triage.stores import open_store
    from workers.retry import FailedFilter, select_failed, settings_digest, stale

    settings = settings_of(ctx)
    which = _filter(reason, since, platform, keys)
    digest = settings_digest(settings)
    settings.ensure_home()
    with open_store(settings) as store:
        selected = select_failed(store, which)
        chosen = {p.key for p in selected}
        scope = FailedFilter(platform=which.platform)
        changed = [
            p for p in select_failed(store, scope) if p.key not in chosen and stale(p, digest)
        ]
    todo = selected + changed
    out = Console(stderr=True, markup=False, highlight=False) if as_json else console
    if dry_run:
        _print_plan(out, todo, len(changed), digest, as_json)
        return
    if not todo:
        _finish(out, as_json, settings, [], 0, "nothing to retry")
        return
    retried = _retry(settings, todo, out)
    from workers.retry import outcome

    with open_store(settings) as store:
        result = outcome(settings, store, retried)
    extra = len({p.key for p in changed} & set(retried))
    line = result.line()
    if extra:
        line += f" ({extra} of them failed under settings that have changed since)"
    _finish(out, as_json, settings, retried, extra, line, result.posts)


def _retry(settings: Settings, todo: list[Post], out: Console) -> list[str]:
    """Put ``todo`` back and run (or queue) their chains, each with its watch's options."""
    from reelwatch.cli.ops import process_posts, progress_bar
    from triage.stores import open_store
    from workers.app import configure
    from workers.retry import by_watch, put_back

    configure(settings)
    with open_store(settings) as store:
        retried = put_back(store, todo)
        groups = by_watch(settings, store, retried)
    with progress_bar(on=out) as progress:
        for watch, keys in groups:
            process_posts(settings, keys, watch, progress, f"retry {watch.name or 'posts'}")
    if settings.eager and retried:
        from triage.alerts import flush_pending
        from workers.tasks import pipeline

        p = pipeline()
        flush_pending(p.store, p.notifiers, settings=settings)
    return retried


def _print_plan(out: Console, todo: list[Post], changed: int, digest: str, as_json: bool) -> None:
    if as_json:
        rows = [_row(p, digest) for p in todo]
        json.dump({"dry_run": True, "would_retry": rows}, sys.stdout, ensure_ascii=False, indent=1)
        sys.stdout.write("\n")
        return
    if not todo:
        out.print("nothing to retry")
        return
    out.print(_table(todo, digest))
    note = f" ({changed} failed under settings that have changed since)" if changed else ""
    out.print(f"would retry {len(todo)} post(s){note}; nothing was changed")


def _finish(
    out: Console,
    as_json: bool,
    settings: Settings,
    retried: list[str],
    changed: int,
    line: str,
    posts: list[Post] | None = None,
) -> None:
    if as_json:
        from workers.retry import settings_digest

        digest = settings_digest(settings)
        payload = {
            "retried": len(retried),
            "settings_changed": changed,
            "queued": not settings.eager,
            "summary": line,
            "posts": [_row(p, digest) for p in posts or []],
        }
        json.dump(payload, sys.stdout, ensure_ascii=False, indent=1)
        sys.stdout.write("\n")
        return
    if posts and settings.eager:
        table = Table("post", "state", "matches / error")
        from triage.stores import open_store

        with open_store(settings) as store:
            for post in posts:
                matches = store.list_matches(post_key=post.key)
                detail = _flat(post.error) or ", ".join(
                    f"{_flat(m.title, 80)} {m.score:.2f} {m.confidence.value}" for m in matches
                )
                table.add_row(_flat(post.key, 120), post.state.value, detail or "-")
        console.print(table)
    out.print(line, soft_wrap=True)
