"""``reelwatch removals``: re-checking posts whose notice was sent."""

from __future__ import annotations

import typer

removals_app = typer.Typer(
    help="Removal tracking: re-check posts whose notice was sent.", no_args_is_help=True
)
