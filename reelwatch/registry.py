"""Plugin registries: an explicit tuple of classes per extension point, indexed by name.

Each extension point (sources, signals, stores, notifiers) lists its plugins in one tuple so
what is available is visible in one line; :func:`index_by_name` refuses two plugins with one
name at import, and :func:`lookup` turns a name a user typed into the class or an
``InputError`` that lists the choices.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

from reelwatch.errors import InputError

T = TypeVar("T")


def index_by_name(
    kind: str, plugins: Iterable[type[T]], name_of: Callable[[type[T]], str]
) -> dict[str, type[T]]:
    """``{name: plugin}``; two plugins with one name are a programming error (ValueError)."""
    index: dict[str, type[T]] = {}
    for plugin in plugins:
        name = name_of(plugin)
        if name in index:
            raise ValueError(
                f"two {kind}s are named {name!r}: "
                f"{index[name].__qualname__} and {plugin.__qualname__}"
            )
        index[name] = plugin
    return index


def lookup(kind: str, index: Mapping[str, type[T]], name: str) -> type[T]:
    """The plugin called ``name``, or an ``InputError`` naming the ones there are."""
    try:
        return index[name]
    except KeyError:
        available = ", ".join(sorted(index))
        raise InputError(f"unknown {kind} {name!r}; available: {available}") from None
