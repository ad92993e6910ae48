"""Signal plugins and their registry: one explicit tuple, checked for unique names.

To add a signal, see :mod:`matcher.signals.base`.
"""

from __future__ import annotations

from matcher.signals.base import Signal, SignalHit, SignalIndex
from matcher.signals.copy import PdqCopySignal
from reelwatch.registry import index_by_name, lookup

SIGNALS: tuple[type[Signal], ...] = (PdqCopySignal,)
_BY_NAME = index_by_name("signal", SIGNALS, lambda s: s.name)


def signal_class(name: str) -> type[Signal]:
    """The registered signal called ``name`` (``InputError`` if none)."""
    return lookup("signal", _BY_NAME, name)


__all__ = ["SIGNALS", "PdqCopySignal", "Signal", "SignalHit", "SignalIndex", "signal_class"]
