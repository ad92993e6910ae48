"""``reelwatch kibana import``: put the data views and the dashboard into Kibana."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from reelwatch.cli import console, settings_of

kibana_app = typer.Typer(
    help="Kibana: import reelwatch's data views, visualizations and dashboard.",
    no_args_is_help=True,
)


@kibana_app.command("import")
def import_objects(
    ctx: typer.Context,
    url: Annotated[
        str | None,
        typer.Option(help="Kibana base URL (default $REELWATCH_KIBANA__URL or :5601 locally)."),
    ] = None,
    space: Annotated[
        str | None, typer.Option(help="Kibana space id (default: the default space).")
    ] = None,
    objects_dir: Annotated[
        Path | None,
        typer.Option("--dir", help="Folder of *.ndjson saved objects (default config/kibana)."),
    ] = None,
) -> None:
    """Import (overwriting) the saved objects; safe to run again after an upgrade.

    Credentials come from REELWATCH_KIBANA__USERNAME / __PASSWORD or __API_KEY; the board
    links point at REELWATCH_EMAIL__BOARD_URL.
    """
    from triage.kibana import import_saved_objects, load_saved_objects

    settings = settings_of(ctx)
    objects = load_saved_objects(settings.email.board_url, objects_dir)
    result = import_saved_objects(objects, settings.kibana, url=url, space=space)
    where = f" (space {result.space})" if result.space else ""
    console.print(f"imported {result.success_count} saved objects into {result.url}{where}")
    counts: dict[str, int] = {}
    for obj in result.objects:
        counts[obj.type] = counts.get(obj.type, 0) + 1
    console.print(", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())))
    console.print(f"dashboard: {result.dashboard_url}")
