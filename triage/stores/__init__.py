"""Store backends, and the one place that picks one from the settings.

``STORES`` is the registry: an explicit tuple, so what is available is visible in one line and
a duplicate name fails on import rather than silently shadowing a backend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reelwatch.registry import index_by_name, lookup
from triage.stores.base import Store, StoreBusyError, StoreError
from triage.stores.elasticsearch import ElasticsearchStore
from triage.stores.sqlite import SQLiteStore

if TYPE_CHECKING:
    from reelwatch.settings import Settings

STORES: tuple[type[Store], ...] = (SQLiteStore, ElasticsearchStore)


_BY_NAME = index_by_name("store backend", STORES, lambda s: s.name)


def store_class(name: str) -> type[Store]:
    return lookup("store backend", _BY_NAME, name)


def open_store(settings: Settings) -> Store:
    """Open the backend that ``settings.store.backend`` names."""
    return store_class(settings.store.backend).from_settings(settings)


__all__ = [
    "STORES",
    "ElasticsearchStore",
    "SQLiteStore",
    "Store",
    "StoreBusyError",
    "StoreError",
    "open_store",
    "store_class",
]
