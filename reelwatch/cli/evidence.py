"""``reelwatch evidence``: evidence packs of matches, and checking them."""

from __future__ import annotations

import typer

evidence_app = typer.Typer(
    help="Evidence packs: export a match's proof as a folder or zip, verify a pack.",
    no_args_is_help=True,
)
