"""The shared plugin registry helpers every extension point uses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from crawler.sources import SOURCES, get_source
from matcher.signals import SIGNALS, signal_class
from reelwatch.errors import InputError
from reelwatch.registry import index_by_name, lookup
from triage.notifiers import NOTIFIERS
from triage.stores import STORES


class _Plugin:
    name = "alpha"


class _Twin:
    name = "alpha"


def test_two_plugins_with_one_name_are_refused() -> None:
    with pytest.raises(ValueError, match="two widgets are named 'alpha': _Plugin and _Twin"):
        index_by_name("widget", (_Plugin, _Twin), lambda p: p.name)


def test_unknown_name_lists_the_choices() -> None:
    index = index_by_name("widget", (_Plugin,), lambda p: p.name)
    assert lookup("widget", index, "alpha") is _Plugin
    with pytest.raises(InputError, match="unknown widget 'beta'; available: alpha"):
        lookup("widget", index, "beta")


@pytest.mark.parametrize(
    ("plugins", "name_of"),
    [
        (SOURCES, lambda p: p.name),
        (SIGNALS, lambda p: p.name),
        (STORES, lambda p: p.name),
        (NOTIFIERS, lambda p: p.channel),
    ],
)
def test_every_registry_is_indexable(
    plugins: tuple[type, ...], name_of: Callable[[Any], str]
) -> None:
    assert len(index_by_name("plugin", plugins, name_of)) == len(plugins)


def test_lookups_go_through_the_registries() -> None:
    assert signal_class("copy").__name__ == "PdqCopySignal"
    assert get_source("REPLICA").name == "replica"
    with pytest.raises(InputError, match="unknown platform 'myspace'"):
        get_source("myspace")
