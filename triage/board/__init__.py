"""The built-in triage board: server-rendered pages over any Store.

``create_app(settings)`` builds the FastAPI app; ``reelwatch board`` serves it with uvicorn, and
:class:`~triage.board.server.BoardServer` runs it in a thread for the demo and the tests.

The app is imported on first use of ``create_app`` or ``board_token``, not with the package:
the libraries the board calls (:mod:`triage.packs`, :mod:`triage.accounting`) themselves use
``triage.board.files`` and ``triage.board.queries``, and importing one of them first must not
pull in the app while it is half imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from triage.board.security import BOARD_TOKEN_ENV

if TYPE_CHECKING:
    from triage.board.app import board_token, create_app

__all__ = ["BOARD_TOKEN_ENV", "board_token", "create_app"]


def __getattr__(name: str) -> Any:
    if name in ("board_token", "create_app"):
        from triage.board import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
