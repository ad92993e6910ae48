"""Cells of the spreadsheets triage writes (the board's CSV export, the accounting, the
notices' form.csv): a stranger's text must show, never run, in a spreadsheet."""

from __future__ import annotations

from reelwatch.models import Match

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_cell(value: str) -> str:
    """A spreadsheet must show a stranger's text, not run it: formulas become text."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def matched_times(match: Match) -> str:
    """Where in the post each segment matched, in one line ("copy 1.5-3.5s; text (caption)")."""
    return "; ".join(
        f"{s.signal} {s.query_start:.1f}-{s.query_end:.1f}s" if s.timed else f"{s.signal} (caption)"
        for s in match.segments
    )
