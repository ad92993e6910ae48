"""``reelwatch report TITLE_ID``: the per-title accounting of every instance.

Without an output option it prints the figures (counts by status and platform, views
reached, first and last seen, AI-generated share, time to removal per platform). ``--csv``
writes every instance to PATH and the figures to ``<PATH stem>-summary.csv`` beside it;
``--html`` writes one self-contained printable page; ``--json`` prints everything as JSON.
The figures are :func:`triage.accounting.title_accounting`'s, as on the board's report page.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from reelwatch.cli import console, settings_of, terminal_safe
from reelwatch.errors import InputError

if TYPE_CHECKING:
    from triage.accounting import TitleAccounting


def report(
    ctx: typer.Context,
    title_id: Annotated[str, typer.Argument(help="Title id (as `reelwatch matches list` shows).")],
    csv_path: Annotated[
        Path | None,
        typer.Option(
            "--csv",
            help="Write every instance to this CSV, and the figures to <stem>-summary.csv.",
        ),
    ] = None,
    html_path: Annotated[
        Path | None,
        typer.Option("--html", help="Write the printable HTML accounting (images embedded)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the accounting as JSON.")] = False,
) -> None:
    """The accounting of one title: counts by status and platform, views reached, first and
    last seen, AI-generated share, time to removal, and every instance with its evidence."""
    from triage.accounting import (
        accounting_csv,
        accounting_html,
        accounting_summary_csv,
        title_accounting,
    )
    from triage.stores import open_store

    settings = settings_of(ctx)
    with open_store(settings) as store:
        acc = title_accounting(settings, store, title_id)
    if csv_path is not None:
        summary_path = summary_csv_path(csv_path)
        _write(csv_path, accounting_csv(acc))
        _write(summary_path, accounting_summary_csv(acc))
        console.print(f"wrote {acc.total} instances to {csv_path}, the figures to {summary_path}")
    if html_path is not None:
        _write(html_path, [accounting_html(settings, acc)])
        console.print(f"wrote the printable accounting of {acc.total} instances to {html_path}")
    if as_json:
        typer.echo(json.dumps(acc.to_json(), indent=2))
    elif csv_path is None and html_path is None:
        print_summary(acc)


def summary_csv_path(csv_path: Path) -> Path:
    """Where ``--csv PATH`` writes the figures: ``PATH``'s stem plus ``-summary``."""
    return csv_path.with_name(f"{csv_path.stem}-summary{csv_path.suffix or '.csv'}")


def _write(path: Path, chunks: Iterable[str]) -> None:
    """Write ``chunks`` to ``path`` whole or not at all (a temporary file, then a rename)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("w", encoding="utf-8", newline="") as f:
            for chunk in chunks:
                f.write(chunk)
        tmp.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None


def print_summary(acc: TitleAccounting) -> None:
    from triage.accounting import human_duration, human_share, human_when, status_label

    owner = f" · rights owner {terminal_safe(acc.owner)}" if acc.owner else ""
    console.print(
        f"{terminal_safe(acc.title)} ({terminal_safe(acc.title_id)}){owner}: "
        f"{acc.total} instance{'' if acc.total == 1 else 's'}, "
        f"generated {human_when(acc.generated_at)}"
    )
    platforms = list(acc.by_platform)
    counts = Table("status", *platforms, "all", title="Instances by status and platform")
    for column in counts.columns[1:]:
        column.justify = "right"
    for status, n in acc.by_status.items():
        cells = [str(acc.by_platform[p][status]) for p in platforms]
        counts.add_row(status_label(status), *cells, str(n))
    counts.add_row("total", *(str(acc.by_platform[p]["total"]) for p in platforms), str(acc.total))
    console.print(counts)
    unknown = f" (+{acc.views_unknown} without a play count)" if acc.views_unknown else ""
    console.print(f"views reached: {acc.views:,}{unknown}")
    console.print(
        f"first seen: {human_when(acc.first_seen)}; last seen: {human_when(acc.last_seen)}"
    )
    console.print(f"AI-generated: {human_share(acc.ai_share)} ({acc.ai_count} of {acc.total})")
    console.print(
        f"notices sent: {acc.removal.notices_sent}; instances noticed: {acc.removal.noticed}, "
        f"removed: {acc.removal.count}, still up: {acc.removal.still_up}"
    )
    removal = Table(
        "platform",
        "noticed",
        "removed",
        "still up",
        "median",
        "mean",
        "p90",
        "longest",
        title="Time to removal (notice sent -> post removed)",
    )
    for column in removal.columns[1:]:
        column.justify = "right"
    rows = [*acc.removal.by_platform.items(), ("all", acc.removal)]
    for platform, t in rows:
        removal.add_row(
            platform,
            str(t.noticed),
            str(t.count),
            str(t.still_up),
            human_duration(t.median_s),
            human_duration(t.mean_s),
            human_duration(t.p90_s),
            human_duration(t.max_s),
        )
    console.print(removal)
