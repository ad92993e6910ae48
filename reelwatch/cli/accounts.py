"""``reelwatch accounts``: the repeat-infringer ledger.

``list`` prints every account with a match, riskiest first; ``show`` one account's ledger, why
it scores what it does, and its matches. The window, the score and the alert are
:mod:`triage.ledger`'s.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from reelwatch.cli import console, settings_of, terminal_safe
from reelwatch.errors import InputError

accounts_app = typer.Typer(
    help="Repeat infringers: the account ledger over a rolling window.", no_args_is_help=True
)


@accounts_app.command("list")
def list_accounts(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many.")] = None,
) -> None:
    """Every account with a match, on every platform, riskiest first.

    Confirmed, notices and removals count what happened in the rolling window
    (ledger.window_days); "also on" names other platforms where the same handle has matches,
    which may be another person."""
    from triage.ledger import account_ledger
    from triage.stores import open_store

    settings = settings_of(ctx)
    with open_store(settings) as store:
        ledgers = account_ledger(settings, store)[:limit]
    if as_json:
        typer.echo(json.dumps([ledger.to_json() for ledger in ledgers], indent=2))
        return
    if not ledgers:
        console.print("no accounts: no match names one yet")
        return
    days = f"{settings.ledger.window_days:g}d"
    table = Table(
        "platform",
        "account",
        "risk",
        f"confirmed {days}",
        f"notices {days}",
        f"removals {days}",
        "matches",
        "titles",
        "also on",
    )
    for ledger in ledgers:
        flag = " !" if ledger.over_threshold else ""
        table.add_row(
            ledger.platform,
            terminal_safe(f"@{ledger.account}"),
            f"{ledger.risk:g}",
            f"{ledger.confirmed}{flag}",
            str(ledger.notices_sent),
            str(ledger.removals),
            str(ledger.matches),
            terminal_safe(", ".join(ledger.titles)),
            ", ".join(ledger.also_on),
        )
    console.print(table)
    if any(ledger.over_threshold for ledger in ledgers):
        console.print(
            f"! at or over ledger.alert_threshold ({settings.ledger.alert_threshold} confirmed "
            f"in {settings.ledger.window_days:g} days)"
        )


@accounts_app.command("show")
def show_account(
    ctx: typer.Context,
    platform: Annotated[str, typer.Argument(help="Platform (tiktok, youtube, instagram, x...).")],
    account: Annotated[str, typer.Argument(help="Handle, with or without @ (any case).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object.")] = False,
) -> None:
    """One account's ledger: the window's figures, why it scores what it does, its matches."""
    from triage.ledger import account_matches, ledger_of
    from triage.stores import open_store

    settings = settings_of(ctx)
    with open_store(settings) as store:
        ledger = ledger_of(settings, store, platform, account)
        if ledger is None:
            raise InputError(f"no match names @{account.lstrip('@')} on {platform}")
        matches = account_matches(store, ledger)
    if as_json:
        data = ledger.to_json()
        data["match_list"] = [
            {
                "id": m.id,
                "title": m.title,
                "status": m.status.value,
                "confidence": m.confidence.value,
                "score": m.score,
                "post_url": m.post_url,
                "created_at": m.created_at.isoformat(),
                "confirmed_at": _iso(m.enforcement.confirmed_at),
            }
            for m in matches
        ]
        typer.echo(json.dumps(data, indent=2))
        return
    days = f"{ledger.window_days:g} days"
    over = "  (at or over the alert threshold)" if ledger.over_threshold else ""
    lines = [
        f"@{ledger.account} on {ledger.platform}: risk {ledger.risk:g}{over}",
        f"  in the last {days}: {ledger.confirmed} confirmed, {ledger.notices_sent} with a "
        f"notice sent, {ledger.removals} removed, {ledger.reinstated} reinstated",
        f"  all time: {ledger.matches} matches ("
        + ", ".join(f"{n} {s}" for s, n in sorted(ledger.statuses.items()))
        + f"), best {ledger.best.value}, {ledger.views:,} views",
        f"  titles: {', '.join(ledger.titles)}",
        f"  seen: {_day(ledger.first_seen)} to {_day(ledger.last_seen)}",
    ]
    if ledger.also_on:
        lines.append(f"  also on: {', '.join(ledger.also_on)} (same handle; may be another person)")
    lines.append("  why this risk:")
    lines += [f"    - {reason}" for reason in ledger.risk_reasons]
    for line in lines:
        console.print(terminal_safe(line))
    table = Table("match", "title", "status", "tier", "confirmed", "post")
    for m in matches:
        table.add_row(
            terminal_safe(m.id),
            terminal_safe(m.title),
            m.status.value,
            m.confidence.value,
            _day(m.enforcement.confirmed_at),
            terminal_safe(m.post_url),
        )
    console.print(table)


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def _day(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d") if at is not None else "-"
