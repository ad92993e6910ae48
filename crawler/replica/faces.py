"""Other platforms' shapes on the replica: one module per platform face, one line here.

The replica's content is one list of TikTok-shaped items (:mod:`crawler.replica.site`); a
face module serves the same posts the way another platform does (Instagram's web API, X's
GraphQL, YouTube's Data API, RSS feeds...), so every source has a fixture to run its contract
tests against. A face module defines ``ROUTES``: ``(compiled path regex, function)`` pairs;
the function is called as ``function(handler, head=bool, query=dict, **named_groups)`` with
the request handler of :mod:`crawler.replica.server` (``handler.replica.catalog()``,
``handler._send_json``, ``handler._send_html``, ``handler._send``, ``handler._cookie``,
``handler.base_url``, ``handler._public_item``).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

FACE_MODULES: tuple[str, ...] = ("feeds", "social")
"""Modules under ``crawler.replica`` that add routes (``"feeds"`` for ``feeds.py``)."""

Route = tuple[re.Pattern[str], Callable[..., Any]]


@lru_cache(maxsize=1)
def face_routes() -> tuple[Route, ...]:
    routes: list[Route] = []
    for name in FACE_MODULES:
        module = importlib.import_module(f"crawler.replica.{name}")
        routes.extend(module.ROUTES)
    return tuple(routes)
