"""Signal plugins and their registry: one explicit tuple, checked for unique names.

To add a signal, see :mod:`matcher.signals.base`.
"""

from __future__ import annotations

from matcher.signals.base import Signal, SignalHit, SignalIndex, check_unique_names
from matcher.signals.copy import PdqCopySignal

SIGNALS: tuple[type[Signal], ...] = check_unique_names((PdqCopySignal,))


def signal_class(name: str) -> type[Signal]:
    """The registered signal called ``name`` (``KeyError`` if none)."""
    for cls in SIGNALS:
        if cls.name == name:
            return cls
    raise KeyError(name)


__all__ = ["SIGNALS", "PdqCopySignal", "Signal", "SignalHit", "SignalIndex", "signal_class"]
