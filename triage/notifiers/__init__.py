"""Alert channels, and the one place that builds them from the settings.

``NOTIFIERS`` is the registry: an explicit tuple whose channel names are checked for
uniqueness on import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reelwatch.registry import index_by_name, lookup
from triage.notifiers.base import Notifier
from triage.notifiers.email import EmailNotifier

if TYPE_CHECKING:
    from reelwatch.settings import Settings

NOTIFIERS: tuple[type[Notifier], ...] = (EmailNotifier,)


_BY_CHANNEL = index_by_name("alert channel", NOTIFIERS, lambda n: n.channel)


def notifier_class(channel: str) -> type[Notifier]:
    return lookup("alert channel", _BY_CHANNEL, channel)


def build_notifiers(settings: Settings) -> list[Notifier]:
    """The notifiers for ``settings.alerts.channels``, in that order."""
    return [notifier_class(c).from_settings(settings) for c in settings.alerts.channels]


__all__ = ["NOTIFIERS", "EmailNotifier", "Notifier", "build_notifiers", "notifier_class"]
