"""``reelwatch accounts``: the repeat-infringer ledger."""

from __future__ import annotations

import typer

accounts_app = typer.Typer(
    help="Repeat infringers: the account ledger over a rolling window.", no_args_is_help=True
)
