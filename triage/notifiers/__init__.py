"""Alert channels, and the one place that builds them from the settings.

``NOTIFIERS`` is the registry: an explicit tuple whose channel names are checked for
uniqueness on import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reelwatch.errors import InputError
from triage.notifiers.base import Notifier
from triage.notifiers.email import EmailNotifier

if TYPE_CHECKING:
    from reelwatch.settings import Settings

NOTIFIERS: tuple[type[Notifier], ...] = (EmailNotifier,)


def _by_channel(notifiers: tuple[type[Notifier], ...]) -> dict[str, type[Notifier]]:
    channels = [n.channel for n in notifiers]
    duplicates = sorted({c for c in channels if channels.count(c) > 1})
    if duplicates:
        raise RuntimeError(f"notifier channels registered twice: {', '.join(duplicates)}")
    return dict(zip(channels, notifiers, strict=True))


_BY_CHANNEL = _by_channel(NOTIFIERS)


def notifier_class(channel: str) -> type[Notifier]:
    try:
        return _BY_CHANNEL[channel]
    except KeyError:
        available = ", ".join(sorted(_BY_CHANNEL))
        raise InputError(f"unknown alert channel {channel!r}; available: {available}") from None


def build_notifiers(settings: Settings) -> list[Notifier]:
    """The notifiers for ``settings.alerts.channels``, in that order."""
    return [notifier_class(c).from_settings(settings) for c in settings.alerts.channels]


__all__ = ["NOTIFIERS", "EmailNotifier", "Notifier", "build_notifiers", "notifier_class"]
