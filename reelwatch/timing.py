"""Seconds spent in each stage of the pipeline, per process, for benchmarks and logs.

The pipeline, the fingerprinting and the matcher wrap their stages in :func:`stage`; the
totals are process-wide (threads add to the same table under a lock) and cost two
``perf_counter`` calls and a dict update per stage, so they are always on.
``benchmarks/bench.py`` reads them with :func:`totals` after resetting them with
:func:`reset`. Stage names are dotted: ``download``, ``decode``, ``signal.face``,
``search.copy``, ``evidence``, ``land``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class StageTotal:
    seconds: float = 0.0
    calls: int = 0


_lock = threading.Lock()
_totals: dict[str, StageTotal] = {}


def add(name: str, seconds: float) -> None:
    """Count ``seconds`` (one call) into stage ``name``."""
    with _lock:
        total = _totals.setdefault(name, StageTotal())
        total.seconds += seconds
        total.calls += 1


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Time the body into stage ``name`` (also when it raises)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        add(name, time.perf_counter() - start)


def totals() -> dict[str, StageTotal]:
    """A copy of every stage's totals so far."""
    with _lock:
        return {k: StageTotal(v.seconds, v.calls) for k, v in _totals.items()}


def reset() -> None:
    with _lock:
        _totals.clear()
