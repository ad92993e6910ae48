"""``reelwatch report``: the per-title accounting of every instance."""

from __future__ import annotations

import typer

report_app = typer.Typer(
    help="Per-title accounting: counts by status and platform, views, time to removal.",
    no_args_is_help=True,
)
