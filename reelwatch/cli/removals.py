"""``reelwatch removals``: re-checking posts whose notice was sent."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Column, Table

from reelwatch.cli import console, settings_of, terminal_safe

if TYPE_CHECKING:
    from reelwatch.models import Match
    from reelwatch.settings import Settings

removals_app = typer.Typer(
    help="Removal tracking: re-check posts whose notice was sent.", no_args_is_help=True
)

AsJson = Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.")]


@removals_app.command("check")
def check(
    ctx: typer.Context,
    every: Annotated[
        bool,
        typer.Option(
            "--all", help="Check every tracked match now, not only those whose check is due."
        ),
    ] = False,
    limit: Annotated[
        int | None,
        typer.Option(
            min=1, max=100_000, help="Check at most this many posts (default: removal.max_per_run)."
        ),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Re-check the posts of matches whose notice was sent (and of removed or reinstated
    ones) through their source, once, and mark them removed, still up or reinstated. With a
    broker the task is queued for the workers (beat sends it on its own every
    removal.schedule_every_s); without one it runs here and prints what it found."""
    settings = settings_of(ctx)
    settings.ensure_home()
    if not settings.eager:
        _queue(settings, every, limit, as_json)
        return
    from triage.stores import open_store
    from workers.removals import recheck

    with open_store(settings) as store:
        summary = recheck(settings, store, limit=limit, due_only=not every)
    if as_json:
        json.dump(summary.as_dict(), sys.stdout, ensure_ascii=False, indent=1)
        sys.stdout.write("\n")
        return
    if summary.results:
        table = Table("match", "check", "what the source said", "status")
        for r in summary.results:
            moved = (
                r.before.value if r.before == r.after else f"{r.before.value} -> {r.after.value}"
            )
            table.add_row(
                terminal_safe(r.match_id), r.outcome.value, terminal_safe(r.detail), moved
            )
        console.print(table)
    console.print(summary.line())


def _queue(settings: Settings, every: bool, limit: int | None, as_json: bool) -> None:
    from workers.app import configure
    from workers.tasks import RECHECK_QUEUE, recheck_removals

    configure(settings)
    sent = recheck_removals.apply_async(
        kwargs={"due_only": not every, "limit": limit}, queue=RECHECK_QUEUE
    )
    if as_json:
        json.dump({"queued": sent.id, "queue": RECHECK_QUEUE}, sys.stdout)
        sys.stdout.write("\n")
        return
    console.print(f"queued the re-check ({sent.id}) for the workers on the {RECHECK_QUEUE} queue")


def _row(settings: Settings, match: Match, now: datetime) -> dict[str, Any]:
    from workers.removals import is_due, is_tracked

    enf = match.enforcement
    tracked = is_tracked(settings, match, now)
    return {
        "match": match.id,
        "platform": match.platform,
        "account": match.account,
        "title": match.title_id,
        "url": match.post_url,
        "status": match.status.value,
        "notice": enf.notice_id,
        "notice_sent_at": enf.notice_sent_at.isoformat() if enf.notice_sent_at else None,
        "removed_at": enf.removed_at.isoformat() if enf.removed_at else None,
        "removal_s": enf.removal_s,
        "checked_at": enf.checked_at.isoformat() if enf.checked_at else None,
        "check": enf.check.value if enf.check else None,
        "check_detail": enf.check_detail,
        "checks_in_a_row": enf.checks,
        "tracked": tracked,
        "due": tracked and is_due(settings, match, now),
    }


@removals_app.command("list")
def list_tracked(
    ctx: typer.Context,
    status: Annotated[
        str | None,
        typer.Option(help="Only matches in this status: notice_sent, removed or reinstated."),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """List the matches removal tracking follows (notice sent, removed, reinstated), least
    recently checked first, with what their post's last re-check found."""
    from reelwatch.errors import InputError
    from reelwatch.models import utcnow
    from triage.accounting import human_duration, human_when
    from triage.stores import open_store
    from triage.stores.base import parse_status
    from workers.removals import TRACKED, tracked_matches

    settings = settings_of(ctx)
    wanted = parse_status(status.strip().lower()) if status else None
    if wanted is not None and wanted not in TRACKED:
        names = ", ".join(s.value for s in TRACKED)
        raise InputError(f"removal tracking follows {names}, not {wanted.value}")
    now = utcnow()
    with open_store(settings) as store:
        matches = [m for m in tracked_matches(store) if wanted is None or m.status == wanted]
    rows = [_row(settings, m, now) for m in matches]
    if as_json:
        json.dump(rows, sys.stdout, ensure_ascii=False, indent=1)
        sys.stdout.write("\n")
        return
    if not matches:
        console.print("no match is tracked (none has its notice marked sent)")
        return
    # Match ids are what other commands take: shown whole; the source's answer wraps instead.
    widest = min(max(len(m.id) for m in matches), 120)
    table = Table(
        Column("match", min_width=widest),
        "status",
        "time to removal",
        "last check",
        "found",
    )
    for m, row in zip(matches, rows, strict=True):
        enf = m.enforcement
        found = "-"
        if enf.check is not None:
            found = f"{enf.check.value}: {enf.check_detail}"
            if enf.checks > 1:
                found += f" ({enf.checks} in a row)"
        last = human_when(enf.checked_at)
        if not row["tracked"]:
            last += " (no longer checked)"
        elif row["due"]:
            last += " (due)"
        table.add_row(
            terminal_safe(m.id),
            m.status.value,
            human_duration(enf.removal_s),
            last,
            terminal_safe(found),
        )
    console.print(table)
    due = sum(1 for r in rows if r["due"])
    console.print(f"{len(matches)} tracked match(es), {due} due for a re-check")
