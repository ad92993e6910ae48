"""Strangers' text (captions, platform answers, error messages, URLs) shown on one line."""

from __future__ import annotations


def one_line(text: object, limit: int) -> str:
    """``text`` with every run of whitespace (line breaks included) folded to one space, cut to
    ``limit`` characters; an ellipsis says it was cut."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
