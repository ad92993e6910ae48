"""``reelwatch catalog``: the studio's IP catalog (titles, talents, reference assets)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from reelwatch.cli import console, settings_of

app = typer.Typer(
    help="Manage the IP catalog: titles and their reference media.", no_args_is_help=True
)


@app.command("add")
def add(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="Reference media files (video, image).")],
    title: Annotated[str, typer.Option("--title", help="Title name, e.g. 'Bridgerton'.")],
    owner: Annotated[str, typer.Option(help="Rights owner.")] = "",
    alias: Annotated[list[str] | None, typer.Option(help="Another name (repeatable).")] = None,
    hashtag: Annotated[list[str] | None, typer.Option(help="A hashtag (repeatable).")] = None,
    description: Annotated[str, typer.Option(help="Short description.")] = "",
    talent: Annotated[str | None, typer.Option(help="Person shown (for face assets).")] = None,
    kind: Annotated[str, typer.Option(help="auto|video|image|audio|face")] = "auto",
) -> None:
    """Add reference media to a title (creating the title if new) and index it."""
    from matcher.catalog import Catalog

    catalog = Catalog(settings_of(ctx))
    t = catalog.add_title(
        title,
        owner=owner,
        aliases=alias or [],
        hashtags=hashtag or [],
        description=description,
        talents=[talent] if talent else [],
    )
    assets = catalog.add_assets(t.id, paths, kind=kind, talent=talent)
    console.print(f"{t.name} ({t.id}): {len(assets)} asset(s) indexed", style="bold")
    for a in assets:
        console.print(f"  {a.kind.value:6} {a.id}  {a.name}")


@app.command("list")
def list_(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List titles and their assets."""
    from matcher.catalog import Catalog

    catalog = Catalog(settings_of(ctx))
    titles = catalog.titles()
    if as_json:
        out = []
        for t in titles:
            d = t.model_dump(mode="json")
            d["assets"] = [a.model_dump(mode="json") for a in catalog.assets(t.id)]
            out.append(d)
        typer.echo(json.dumps(out, indent=2))
        return
    if not titles:
        console.print("The catalog is empty: add titles with `reelwatch catalog add`.")
        return
    table = Table("title", "id", "owner", "hashtags", "assets")
    for t in titles:
        table.add_row(
            t.name,
            t.id,
            t.owner,
            " ".join(f"#{h}" for h in t.hashtags),
            str(len(catalog.assets(t.id))),
        )
    console.print(table)


@app.command("build")
def build(ctx: typer.Context) -> None:
    """Rebuild every index from the catalog's assets."""
    from matcher.catalog import Catalog

    stats = Catalog(settings_of(ctx)).build()
    console.print("index rebuilt: " + ", ".join(f"{k}={v}" for k, v in stats.items()))


@app.command("remove")
def remove(
    ctx: typer.Context,
    title_id: Annotated[str, typer.Argument(help="Title id (see `catalog list`).")],
) -> None:
    """Remove a title and its assets from the catalog and the indexes."""
    from matcher.catalog import Catalog

    Catalog(settings_of(ctx)).remove_title(title_id)
    console.print(f"removed {title_id}")
