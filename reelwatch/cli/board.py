"""``reelwatch board``: serve the triage board.

It binds 127.0.0.1 by default. Binding any other address exposes evidence and triage actions
to the network, so it is refused unless an access token is configured.
"""

from __future__ import annotations

from typing import Annotated

import typer

from reelwatch.cli import console, settings_of
from reelwatch.errors import InputError


def board(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to bind; non-loopback needs a token.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="Port to listen on.", min=0, max=65535)] = 8765,
) -> None:
    """Serve the triage board: queue, evidence, decisions, accounts, exports."""
    import uvicorn

    from triage.board import BOARD_TOKEN_ENV, board_token, create_app
    from triage.board.security import is_loopback_host

    settings = settings_of(ctx)
    if not is_loopback_host(host) and board_token(settings) is None:
        raise InputError(
            f"refusing to serve the board on {host}, which other machines can reach, without "
            f"an access token: set {BOARD_TOKEN_ENV} or bind 127.0.0.1"
        )
    settings.ensure_home()
    app = create_app(settings)
    shown = f"[{host}]" if ":" in host else host
    console.print(f"reelwatch board on http://{shown}:{port} (Ctrl-C stops it)")
    uvicorn.run(app, host=host, port=port, log_level="warning", proxy_headers=False)
