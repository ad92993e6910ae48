"""The Notifier contract: one channel that tells people about a match.

Adding a channel
----------------
1. Subclass :class:`Notifier` in ``triage/notifiers/<channel>.py``; set ``channel`` (the name
   used in ``settings.alerts.channels`` and in alert ids), implement ``from_settings``,
   ``recipients`` and ``send``.
2. Add the class to ``NOTIFIERS`` in ``triage/notifiers/__init__.py``.
3. ``send`` must sort its failures: :class:`~reelwatch.errors.TransientError` when trying again
   later may work (server down, 4xx), :class:`~reelwatch.errors.PermanentError` when this
   recipient or message will never be accepted. ``triage.alerts`` turns the first into a
   pending alert that ``flush_pending`` retries and the second into a failed one.

4. Optionally also subclass :class:`SendsDigests` when the channel can tell about many matches
   in one message; ``triage.alerts`` then throttles a watch that fires many at once into one
   digest per recipient. A channel without it simply gets one message per alert.
5. Optionally subclass :class:`SendsAccountAlerts` when the channel can tell about a repeat
   infringer (an account crossing ``settings.ledger.alert_threshold``, see
   :mod:`triage.ledger`); a channel without it is not told about accounts.

Notifiers do not decide *whether* to alert or remember what they sent: ``triage.alerts`` does
that through the Store, so that the never-twice guarantee lives in one place.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Self

    from reelwatch.models import Match, Post
    from reelwatch.settings import Settings
    from triage.ledger import AccountLedger


class Notifier(ABC):
    channel: ClassVar[str]

    @classmethod
    @abstractmethod
    def from_settings(cls, settings: Settings) -> Self: ...

    @property
    @abstractmethod
    def recipients(self) -> list[str]:
        """Who hears about every alerted match on this channel."""

    @abstractmethod
    def send(self, match: Match, post: Post | None, recipient: str) -> str:
        """Deliver one alert and return the message id the channel knows it by.

        ``post`` adds detail (stats, followers) when the store still has it. The message id
        must be derived from the alert id, so that a retried delivery is recognisable as the
        same alert by whoever receives it.
        """


class SendsDigests(ABC):
    """Capability mixin: one message about many matches, for one recipient.

    ``triage.alerts`` uses it to throttle a watch that fires many alerts at once; it records
    every listed alert as sent with the message id returned here, so a digest must list all of
    ``entries`` or raise.
    """

    @abstractmethod
    def send_digest(
        self, entries: Sequence[tuple[Match, Post | None]], recipient: str, watch: str | None
    ) -> str:
        """Deliver one digest of ``entries`` (oldest first) and return its message id.

        The id must be derived from the alert ids of ``entries``, so that a retry of the same
        digest is recognisable. Errors are sorted as for :meth:`Notifier.send`.
        """


class SendsAccountAlerts(ABC):
    """Capability mixin: tell about an account that crossed the repeat-infringer threshold."""

    @abstractmethod
    def send_account_alert(
        self, ledger: AccountLedger, matches: Sequence[Match], recipient: str, alert_id: str
    ) -> str:
        """Deliver one repeat-infringer alert about ``ledger``'s account, listing ``matches``
        (in ledger order), and return its message id, derived from ``alert_id`` so a retry is
        recognisable. Errors are sorted as for :meth:`Notifier.send`."""
