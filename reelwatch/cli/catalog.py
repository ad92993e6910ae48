"""``reelwatch catalog``: the studio's IP catalog (titles, talents, reference assets)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from reelwatch.cli import console, err_console, settings_of, terminal_safe
from reelwatch.errors import InputError

Box = tuple[int, int, int, int]

app = typer.Typer(
    help="Manage the IP catalog: titles and their reference media.", no_args_is_help=True
)


@app.command("add")
def add(
    ctx: typer.Context,
    paths: Annotated[
        list[Path], typer.Argument(help="Reference media: videos, stills, soundtracks, photos.")
    ],
    title: Annotated[str, typer.Option("--title", help="Title name, e.g. 'Bridgerton'.")],
    owner: Annotated[str, typer.Option(help="Rights owner.")] = "",
    alias: Annotated[list[str] | None, typer.Option(help="Another name (repeatable).")] = None,
    hashtag: Annotated[list[str] | None, typer.Option(help="A hashtag (repeatable).")] = None,
    description: Annotated[str, typer.Option(help="Short description.")] = "",
    talent: Annotated[str | None, typer.Option(help="Person shown (for face assets).")] = None,
    kind: Annotated[
        str, typer.Option(help="auto|video|image|audio|face (auto: face when --talent is given)")
    ] = "auto",
    face_box: Annotated[
        list[str] | None,
        typer.Option(
            "--face-box",
            metavar="[PHOTO=]X0,Y0,X1,Y1",
            help="Where the talent is in a photo, in pixels of the photo as a viewer shows it "
            "(left, top, right, bottom). Repeatable, one per photo: PHOTO=X0,Y0,X1,Y1, where "
            "PHOTO is one of the files given (its path or file name); the PHOTO= part may be "
            "left out when a single file is given. Without it the face that agrees with the "
            "rest of the talent's gallery is chosen.",
        ),
    ] = None,
) -> None:
    """Add reference media to a title (creating the title if new) and index it.

    Photos of an actor go in as face assets of each title they play in:
    ``--talent 'Jane Doe' photo1.jpg photo2.jpg`` (the talent's gallery).

    Every usable file is added; each file that cannot be used is named on stderr with why,
    and leaves nothing behind. The exit status is 0 when at least one file is in the title
    afterwards, 1 when none could be added (then a title this command created is removed
    again)."""
    from matcher.catalog import AssetsRefused, Catalog

    boxes = _parse_face_boxes(face_box or [], paths)
    catalog = Catalog(settings_of(ctx))
    existed = catalog.get_title(title) is not None
    t = catalog.add_title(
        title,
        owner=owner,
        aliases=alias or [],
        hashtags=hashtag or [],
        description=description,
    )
    if kind == "auto" and talent:
        kind = "face"
    try:
        assets = catalog.add_assets(t.id, paths, kind=kind, talent=talent, face_boxes=boxes)
    except InputError as exc:
        if not existed:
            catalog.discard_empty_title(t.id)
        if isinstance(exc, AssetsRefused) and len(exc.refused) > 1:
            for r in exc.refused:
                err_console.print(f"refused {terminal_safe(r.reason)}")
            raise InputError(
                f"nothing added to {t.name}: all {len(exc.refused)} files were refused"
            ) from None
        raise
    safe = terminal_safe
    console.print(f"{safe(t.name)} ({t.id}): {len(assets)} asset(s) indexed", style="bold")
    for a in assets:
        console.print(f"  {a.kind.value:6} {a.id}  {safe(a.name)}{_box_text(a.face_box)}")
        for note in a.notes:
            console.print(f"         note: {safe(note)}")
    for r in assets.refused:
        err_console.print(f"refused {safe(r.reason)}")


def _box_text(box: Box | None) -> str:
    return f"  face at {','.join(map(str, box))}" if box else ""


def _parse_face_boxes(specs: list[str], paths: list[Path]) -> dict[Path, Box]:
    """``--face-box`` values -> boxes by the path they apply to; ``InputError`` for a box
    that is not four pixel numbers or names no file of the add."""
    boxes: dict[Path, Box] = {}
    for spec in specs:
        photo, sep, coords = spec.rpartition("=")
        if not sep:
            if len(paths) != 1:
                raise InputError(
                    f"--face-box {spec}: name the photo (--face-box PHOTO=X0,Y0,X1,Y1) when "
                    f"several files are given"
                )
            target = paths[0]
        else:
            hits = [p for p in paths if p.resolve() == Path(photo).resolve()] or [
                p for p in paths if p.name == photo
            ]
            if len(set(hits)) != 1:
                problem = "is not one of the files given" if not hits else "names several files"
                raise InputError(f"--face-box {spec}: {photo} {problem}")
            target = hits[0]
        try:
            box = tuple(int(v) for v in coords.split(","))
        except ValueError:
            box = ()
        if len(box) != 4 or not 0 <= box[0] < box[2] or not 0 <= box[1] < box[3]:
            raise InputError(
                f"--face-box {spec}: expected X0,Y0,X1,Y1 in whole pixels with X0 < X1 and "
                f"Y0 < Y1 (left, top, right, bottom)"
            )
        if target in boxes:
            raise InputError(f"--face-box: two boxes for {target.name}")
        boxes[target] = (box[0], box[1], box[2], box[3])
    return boxes


@app.command("list")
def list_(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List titles and their assets."""
    from matcher.accel import describe as describe_device
    from matcher.catalog import Catalog
    from matcher.fingerprint import signal_status

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
    table = Table("title", "id", "owner", "hashtags", "assets", "policy")
    for t in titles:
        kinds: dict[str, int] = {}
        for a in catalog.assets(t.id):
            kinds[a.kind.value] = kinds.get(a.kind.value, 0) + 1
        table.add_row(
            terminal_safe(t.name),
            t.id,
            terminal_safe(t.owner),
            terminal_safe(" ".join(f"#{h}" for h in t.hashtags)),
            ", ".join(f"{n} {k}" for k, n in kinds.items()) or "0",
            t.policy.describe(),
        )
    console.print(table)
    noted = [a for t in titles for a in catalog.assets(t.id) if a.notes or a.face_box]
    if noted:
        console.print("assets with notes:")
        for a in noted:
            console.print(f"  {a.id}  {terminal_safe(a.name)}{_box_text(a.face_box)}")
            for note in a.notes:
                console.print(f"    note: {terminal_safe(note)}")
    status = signal_status(catalog.settings)
    console.print(
        "signals: "
        + ", ".join(name if why is None else f"{name} (off: {why})" for name, why in status.items())
    )
    console.print(describe_device(catalog.settings.matcher.device), markup=False)


@app.command("policy")
def policy(
    ctx: typer.Context,
    title_id: Annotated[str, typer.Argument(help="Title id (see `catalog list`).")],
    min_seconds: Annotated[
        float, typer.Option(help="Seconds of the post the counted signals must match.")
    ] = 0.0,
    min_share: Annotated[
        float, typer.Option(help="Or this share (0-1) of the post; either one is enough.")
    ] = 0.0,
    signal: Annotated[
        list[str] | None,
        typer.Option(help="A signal that counts for this title (repeatable; default: all)."),
    ] = None,
    hold: Annotated[
        bool, typer.Option("--hold/--no-hold", help="Hold matches for review (never alert).")
    ] = False,
) -> None:
    """Set a title's match policy (replaces the previous one; no options: the default)."""
    from matcher.catalog import Catalog
    from reelwatch.errors import InputError
    from reelwatch.models import TitlePolicy

    if min_seconds < 0 or not 0.0 <= min_share <= 1.0:
        raise InputError("--min-seconds must be >= 0 and --min-share between 0 and 1")
    p = TitlePolicy(
        min_matched_s=min_seconds,
        min_query_share=min_share,
        signals=list(dict.fromkeys(signal or [])),
        hold_for_review=hold,
    )
    t = Catalog(settings_of(ctx)).set_policy(title_id, p)
    console.print(f"{t.name} ({t.id}): policy {t.policy.describe()}")


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
