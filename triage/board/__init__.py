"""The built-in triage board: server-rendered pages over any Store.

``create_app(settings)`` builds the FastAPI app; ``reelwatch board`` serves it with uvicorn, and
:class:`~triage.board.server.BoardServer` runs it in a thread for the demo and the tests.
"""

from __future__ import annotations

from triage.board.app import BOARD_TOKEN_ENV, board_token, create_app

__all__ = ["BOARD_TOKEN_ENV", "board_token", "create_app"]
