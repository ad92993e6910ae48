"""``reelwatch notice``: takedown notices drafted from templates, and marking them sent."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from reelwatch.cli import console, settings_of, terminal_safe
from reelwatch.models import Notice, NoticeStatus

if TYPE_CHECKING:
    from reelwatch.settings import Settings
    from triage.stores.base import Store

notice_app = typer.Typer(
    help="Takedown notices: draft them from config/notices/, list them, mark them sent.",
    no_args_is_help=True,
)


def _row(notice: Notice, files: list[Path] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = notice.model_dump(mode="json")
    if files is not None:
        data["files"] = [str(p) for p in files]
    return data


def _when(notice: Notice) -> str:
    return f"{notice.created_at:%Y-%m-%d %H:%M}"


@notice_app.command("draft")
def draft(
    ctx: typer.Context,
    match_ids: Annotated[
        list[str], typer.Argument(help="Match ids (platform:post_id:title_id).", show_default=False)
    ],
    platform: Annotated[
        str | None, typer.Option(help="Refuse matches of any other platform.")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Write each notice to DIR/<notice id>/ (default: <home>/notices)."),
    ] = None,
    actor: Annotated[str, typer.Option(help="Who drafted it.")] = "cli",
    as_json: Annotated[bool, typer.Option("--json", help="Print the notices as JSON.")] = False,
) -> None:
    """Draft takedown notices: one per platform, account and title among the matches, with
    every URL, the DMCA 512(c)(3) elements and the platform form's fields. Nothing is sent:
    submit the letter or the form yourself, then run `reelwatch notice sent ID`."""
    from triage.notices import draft_notices, missing_contact, write_notice
    from triage.stores import open_store

    settings = settings_of(ctx)
    settings.ensure_home()
    with open_store(settings) as store:
        notices = draft_notices(settings, store, match_ids, platform=platform, actor=actor)
        # A notice on a new match counts as its confirmation in the ledger.
        _repeat_alerts(settings, store, [i for n in notices for i in n.match_ids])
    folder = out or settings.notices_dir
    written = [
        (n, write_notice(n, folder / n.id, templates_dir=settings.notice_templates_dir))
        for n in notices
    ]
    missing = missing_contact(settings)
    if missing:
        print(
            "reelwatch: warning: notice settings not set, placeholders left in the letter: "
            + ", ".join(missing)
            + " (set them in config/defaults.yaml or as REELWATCH_NOTICES__<NAME>)",
            file=sys.stderr,
        )
    if as_json:
        typer.echo(json.dumps([_row(n, files) for n, files in written], indent=2))
        return
    for n, files in written:
        count = len(n.urls)
        console.print(
            f"{n.id}  {n.platform}  @{terminal_safe(n.account.lstrip('@'))}  "
            f"{terminal_safe(n.title)}  {count} URL{'s' if count != 1 else ''}"
        )
        for path in files:
            console.print(f"  {terminal_safe(path)}")
    console.print("drafted only: nothing was sent")


@notice_app.command("list")
def list_notices(
    ctx: typer.Context,
    status: Annotated[NoticeStatus | None, typer.Option(help="Only this status.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """List notices, newest first."""
    from triage.stores import open_store

    with open_store(settings_of(ctx)) as store:
        found = store.list_notices(status=status)
    if as_json:
        typer.echo(json.dumps([_row(n) for n in found], indent=2))
        return
    if not found:
        console.print("no notices")
        return
    table = Table("id", "status", "platform", "account", "title", "URLs", "drafted", "sent")
    for n in found:
        table.add_row(
            n.id,
            n.status.value,
            terminal_safe(n.platform),
            terminal_safe(f"@{n.account.lstrip('@')}"),
            terminal_safe(n.title),
            str(len(n.urls)),
            _when(n),
            f"{n.sent_at:%Y-%m-%d %H:%M}" if n.sent_at else "",
        )
    console.print(table)


@notice_app.command("show")
def show(
    ctx: typer.Context,
    notice_id: Annotated[str, typer.Argument(help="Notice id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print it as JSON.")] = False,
) -> None:
    """Show a notice: its state, its letter and its form's fields."""
    from triage.notices import get_notice
    from triage.stores import open_store

    with open_store(settings_of(ctx)) as store:
        n = get_notice(store, notice_id)
    if as_json:
        typer.echo(json.dumps(_row(n), indent=2))
        return
    safe = terminal_safe
    console.print(f"notice {n.id}: {n.status.value}")
    console.print(f"  platform {safe(n.platform)}, account @{safe(n.account.lstrip('@'))}")
    console.print(f"  title {safe(n.title)} ({safe(n.title_id)})")
    console.print(f"  drafted {_when(n)} by {safe(n.created_by or '-')}")
    if n.sent_at:
        ref = f", reference {safe(n.reference)}" if n.reference else ""
        console.print(f"  sent {n.sent_at:%Y-%m-%d %H:%M} by {safe(n.sent_by or '-')}{ref}")
    console.print(f"  matches: {', '.join(safe(m) for m in n.match_ids)}")
    if n.form_url:
        console.print(f"  form: {safe(n.form_url)}")
    console.print("")
    console.print(n.text.rstrip("\n"))
    if n.form:
        console.print("")
        console.print("Form fields:")
        for label, value in n.form.items():
            console.print(f"  {safe(label)}:")
            for line in value.splitlines() or [""]:
                console.print(f"    {safe(line)}")


@notice_app.command("sent")
def sent(
    ctx: typer.Context,
    notice_id: Annotated[str, typer.Argument(help="Notice id.")],
    reference: Annotated[str, typer.Option(help="The platform's case or ticket number.")] = "",
    actor: Annotated[str, typer.Option(help="Who sent it.")] = "cli",
) -> None:
    """Record that you sent a notice: its matches move to notice_sent and their posts'
    re-checks start. Marking it sent again changes nothing."""
    from triage.notices import mark_sent
    from triage.stores import open_store

    with open_store(settings_of(ctx)) as store:
        n = mark_sent(settings_of(ctx), store, notice_id, actor=actor, reference=reference)
        _repeat_alerts(settings_of(ctx), store, n.match_ids)
        statuses = [m.status.value if m else "deleted" for m in map(store.get_match, n.match_ids)]
    when = f"{n.sent_at:%Y-%m-%d %H:%M} UTC" if n.sent_at else ""
    ref = f", reference {terminal_safe(n.reference)}" if n.reference else ""
    counts = ", ".join(f"{statuses.count(s)} {s}" for s in dict.fromkeys(statuses))
    console.print(f"{n.id}: sent {when}{ref}; matches: {counts}")


@notice_app.command("withdraw")
def withdraw(
    ctx: typer.Context,
    notice_id: Annotated[str, typer.Argument(help="Notice id.")],
    actor: Annotated[str, typer.Option(help="Who withdrew it.")] = "cli",
) -> None:
    """Withdraw a notice: it is kept as withdrawn, and the matches it had moved go back to
    confirmed."""
    from triage.notices import withdraw_notice
    from triage.stores import open_store

    with open_store(settings_of(ctx)) as store:
        n = withdraw_notice(settings_of(ctx), store, notice_id, actor=actor)
        _repeat_alerts(settings_of(ctx), store, n.match_ids)
    console.print(f"{n.id}: {n.status.value}")


def _repeat_alerts(settings: Settings, store: Store, match_ids: list[str]) -> None:
    """The repeat-infringer check after statuses changed (as ``matches set-status`` and the
    board run it), with one line per account that crossed the threshold."""
    from triage.ledger import after_status_changes

    for alert in after_status_changes(settings, store, match_ids):
        state = alert.status.value + (f" ({alert.error})" if alert.error else "")
        console.print(terminal_safe(f"repeat-infringer alert {alert.match_id}: {state}"))
