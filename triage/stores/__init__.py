"""Store backends, and the one place that picks one from the settings.

``STORES`` is the registry: an explicit tuple, so what is available is visible in one line and
a duplicate name fails on import rather than silently shadowing a backend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reelwatch.errors import InputError
from triage.stores.base import Store, StoreBusyError, StoreError
from triage.stores.sqlite import SQLiteStore

if TYPE_CHECKING:
    from reelwatch.settings import Settings

STORES: tuple[type[Store], ...] = (SQLiteStore,)


def _by_name(stores: tuple[type[Store], ...]) -> dict[str, type[Store]]:
    names = [s.name for s in stores]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise RuntimeError(f"store backends registered twice: {', '.join(duplicates)}")
    return dict(zip(names, stores, strict=True))


_BY_NAME = _by_name(STORES)


def store_class(name: str) -> type[Store]:
    try:
        return _BY_NAME[name]
    except KeyError:
        available = ", ".join(sorted(_BY_NAME))
        raise InputError(
            f"store backend {name!r} is not available; available: {available}"
        ) from None


def open_store(settings: Settings) -> Store:
    """Open the backend that ``settings.store.backend`` names."""
    return store_class(settings.store.backend).from_settings(settings)


__all__ = [
    "STORES",
    "SQLiteStore",
    "Store",
    "StoreBusyError",
    "StoreError",
    "open_store",
    "store_class",
]
