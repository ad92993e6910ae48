"""``reelwatch evidence``: evidence packs of matches, and checking them.

``export`` writes one pack per match (a folder, or a zip with ``--zip``) from what was stored
at capture time, and prints each pack's path; ``verify`` checks packs against their
manifests and exits 1 when any file is missing, changed, unlisted or unsafe. See
:mod:`triage.packs` for what a pack holds.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from reelwatch.cli import console, error_line, settings_of
from reelwatch.errors import ReelwatchError

evidence_app = typer.Typer(
    help="Evidence packs: export a match's proof as a folder or zip, verify a pack.",
    no_args_is_help=True,
)


@evidence_app.command("export")
def export(
    ctx: typer.Context,
    match_ids: Annotated[
        list[str], typer.Argument(help="Match ids (see `reelwatch matches list`).")
    ],
    out: Annotated[Path, typer.Option("--out", help="Folder the packs are written in.")],
    as_zip: Annotated[bool, typer.Option("--zip", help="One zip per match, not a folder.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON list.")] = False,
) -> None:
    """Write one evidence pack per match and print each pack's path.

    A match that cannot be packed (unknown, its pack already there, a stored file changed
    since capture) gets one error line; the others are still written, and the exit status
    is 1."""
    from triage.packs import export_pack
    from triage.stores import open_store

    settings = settings_of(ctx)
    rows = []
    failed = False
    with open_store(settings) as store:
        for match_id in dict.fromkeys(match_ids):
            try:
                path = export_pack(settings, store, match_id, out, as_zip=as_zip)
            except ReelwatchError as exc:
                failed = True
                print(error_line(exc), file=sys.stderr)
                rows.append({"match_id": match_id, "path": None, "error": str(exc)})
                continue
            rows.append({"match_id": match_id, "path": str(path)})
            if not as_json:
                console.print(str(path), soft_wrap=True)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    if failed:
        raise typer.Exit(1)


@evidence_app.command("verify")
def verify(
    packs: Annotated[list[Path], typer.Argument(help="Pack folders or zips.")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON list.")] = False,
) -> None:
    """Check packs against their manifests; exit 1 if any file is missing, changed, not in
    the manifest, or would leave the pack. Nothing is extracted."""
    from triage.packs import verify_pack

    checks = [verify_pack(p) for p in packs]
    if as_json:
        typer.echo(json.dumps([c.to_json() for c in checks], indent=2))
    else:
        for c in checks:
            if c.ok:
                console.print(f"OK  {c.path}  ({c.files} files match the manifest)", soft_wrap=True)
            else:
                console.print(f"FAILED  {c.path}  ({len(c.problems)} problems)", soft_wrap=True)
                for problem in c.problems:
                    console.print(f"  {problem}", soft_wrap=True)
    if not all(c.ok for c in checks):
        raise typer.Exit(1)
