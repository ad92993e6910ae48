"""``reelwatch notice``: takedown notices drafted from templates, and marking them sent."""

from __future__ import annotations

import typer

notice_app = typer.Typer(
    help="Takedown notices: draft them from config/notices/, list them, mark them sent.",
    no_args_is_help=True,
)
