"""The Store contract: where posts, media, matches and alerts land for triage.

Adding a backend
----------------
1. Subclass :class:`Store` in ``triage/stores/<name>.py``; set ``name`` to the value that
   ``settings.store.backend`` uses to pick it, and implement every abstract method plus
   ``from_settings``.
2. Add the class to ``STORES`` in ``triage/stores/__init__.py`` (names must be unique; that is
   checked on import).
3. Run the shared contract suite on it: subclass ``tests.triage.store_contract.StoreContract``
   and give it a ``store_settings`` fixture that points ``open_store`` at your backend.

Re-crawl and re-match rules live here (:func:`merge_post`, :func:`merge_match`), not in the
backends, so every backend updates records the same way. Backends only have to make each
read-merge-write atomic, because several Celery workers write to one store at once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from enum import Enum
from types import TracebackType
from typing import TYPE_CHECKING, ClassVar, TypeVar

from reelwatch.errors import InputError, ReelwatchError, TransientError
from reelwatch.models import (
    Alert,
    AlertStatus,
    Confidence,
    HistoryEntry,
    Match,
    Media,
    Notice,
    NoticeStatus,
    Post,
    PostState,
    TriageStatus,
    utcnow,
)

if TYPE_CHECKING:
    from typing import Self

    from reelwatch.settings import Settings


class StoreError(ReelwatchError):
    """The store cannot be opened or used (bad path, not a database, newer schema)."""


class StoreBusyError(StoreError, TransientError):
    """The store stayed locked or unreachable past its timeout; retrying may succeed."""


class PostStateConflict(InputError):
    """A post is not in the state a change expected (another process moved it first)."""


class Store(ABC):
    """Persistence for everything triage shows and alerting relies on.

    Every method is safe to call from several processes sharing one store. Identities are the
    model's deterministic ids (``Post.key``, ``Match.id``, ``Alert.id``, ``Media.sha256``), so
    calling an upsert twice is harmless.
    """

    name: ClassVar[str]

    @classmethod
    @abstractmethod
    def from_settings(cls, settings: Settings) -> Self:
        """Open the backend as ``settings`` describe; raise :class:`StoreError` if it cannot."""

    # Posts ---------------------------------------------------------------------------------
    @abstractmethod
    def upsert_post(self, post: Post) -> bool:
        """Insert or merge a post (see :func:`merge_post`); True if it was not known before."""

    def upsert_posts(self, posts: Iterable[Post]) -> int:
        """Land many posts (same merge as :meth:`upsert_post`); how many were new. Backends
        with a bulk API override this; the default lands them one by one."""
        return sum(self.upsert_post(p) for p in posts)

    @abstractmethod
    def get_post(self, key: str) -> Post | None: ...

    @abstractmethod
    def has_post(self, key: str) -> bool: ...

    @abstractmethod
    def set_post_state(
        self,
        key: str,
        state: PostState | str,
        *,
        error: str | None = None,
        media_sha256: str | None = None,
        step: str | None = None,
        settings_digest: str | None = None,
        transient: bool = False,
        expect: PostState | str | None = None,
    ) -> Post:
        """Move a post along the pipeline (the change is :func:`apply_post_state`).

        ``error`` replaces the stored one (so moving on from ``failed`` clears it);
        ``media_sha256`` is kept unless given. Moving to ``failed`` records when, at which
        ``step``, under which settings (``settings_digest``) and whether the fault was
        ``transient``; moving from ``failed`` back to ``discovered`` counts a retry. With
        ``expect``, the post must be in that state now, else :class:`PostStateConflict` and
        nothing changes (how two retries racing put a post back once). Unknown key ->
        :class:`InputError`.
        """

    @abstractmethod
    def list_posts(
        self, state: PostState | str | None = None, limit: int | None = None
    ) -> list[Post]:
        """Posts oldest-first (by ``first_seen``), so a pipeline draining them is fair."""

    # Media ---------------------------------------------------------------------------------
    @abstractmethod
    def upsert_media(self, media: Media) -> None: ...

    @abstractmethod
    def get_media(self, sha256: str) -> Media | None: ...

    # Matches -------------------------------------------------------------------------------
    @abstractmethod
    def upsert_match(self, match: Match) -> bool:
        """Insert or merge a match (see :func:`merge_match`); True if it was not known before."""

    def upsert_matches(self, matches: Iterable[Match]) -> int:
        """Land many matches (same merge as :meth:`upsert_match`); how many were new. Backends
        with a bulk API override this; the default lands them one by one."""
        return sum(self.upsert_match(m) for m in matches)

    @abstractmethod
    def get_match(self, id: str) -> Match | None: ...

    @abstractmethod
    def list_matches(
        self,
        *,
        status: TriageStatus | str | None = None,
        min_confidence: Confidence | str | None = None,
        title_id: str | None = None,
        platform: str | None = None,
        post_key: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Match]:
        """Matches worth looking at first come first: tier desc, score desc, updated_at desc.

        Every filter given must hold: ``status`` exactly, ``min_confidence`` or a higher tier,
        ``title_id``, ``platform`` and ``post_key`` (one post's matches) exactly. An unknown
        status or tier -> :class:`InputError`.
        """

    @abstractmethod
    def count_matches(
        self,
        *,
        status: TriageStatus | str | None = None,
        min_confidence: Confidence | str | None = None,
        title_id: str | None = None,
        platform: str | None = None,
        post_key: str | None = None,
    ) -> int:
        """How many matches :meth:`list_matches` returns for the same filters, unpaged."""

    @abstractmethod
    def update_match(self, match_id: str, change: Callable[[Match], object]) -> Match:
        """Apply ``change`` to the stored match and write it back, atomically (no other
        writer's change in between is lost); the match as written. ``change`` edits the match
        in place and may raise to abort (nothing is written). Unknown id -> :class:`InputError`.
        """

    def set_status(
        self,
        match_id: str,
        status: TriageStatus | str,
        note: str = "",
        actor: str = "",
        *,
        at: datetime | None = None,
        notice_id: str | None = None,
    ) -> Match:
        """Record a triage decision (see :func:`apply_status`) and append it to the history.

        A non-empty ``note`` also becomes the match's current note. Unknown id or status ->
        :class:`InputError`.
        """
        new_status = parse_status(status)
        when = at or utcnow()
        return self.update_match(
            match_id,
            lambda m: apply_status(
                m, new_status, note=note, actor=actor, at=when, notice_id=notice_id
            ),
        )

    # Notices -------------------------------------------------------------------------------
    @abstractmethod
    def upsert_notice(self, notice: Notice) -> None:
        """Write a notice (its id is its identity; a second write replaces the first)."""

    @abstractmethod
    def get_notice(self, id: str) -> Notice | None: ...

    @abstractmethod
    def list_notices(
        self,
        *,
        status: NoticeStatus | str | None = None,
        match_id: str | None = None,
        platform: str | None = None,
        account: str | None = None,
    ) -> list[Notice]:
        """Notices newest first; every filter given must hold (``match_id``: notices that name
        that match). Unknown status -> :class:`InputError`."""

    # Alerts --------------------------------------------------------------------------------
    @abstractmethod
    def claim_alert(self, alert: Alert) -> bool:
        """Atomically insert ``alert`` unless one with its id exists; True if this call won.

        The winner also holds the attempt lease (see :meth:`lease_alert`). This is the one
        place that guarantees an alert is never sent twice, even with workers racing.
        """

    @abstractmethod
    def lease_alert(self, alert_id: str, *, lease_s: float) -> Alert | None:
        """Atomically take a *pending* alert for another delivery attempt.

        Returns None when the alert is unknown, not pending, or another attempt holds it and
        started less than ``lease_s`` seconds ago (an older lease belongs to a worker that died
        mid-send and is taken over).
        """

    @abstractmethod
    def update_alert(self, alert: Alert) -> None:
        """Record the outcome of an attempt and release its lease.

        An alert already ``sent`` stays sent: a late, stale attempt cannot reopen it. Unknown id
        -> :class:`InputError`.
        """

    @abstractmethod
    def get_alert(self, id: str) -> Alert | None: ...

    @abstractmethod
    def list_alerts(self, status: AlertStatus | str | None = None) -> list[Alert]:
        """Alerts oldest-first."""

    # Lifecycle -----------------------------------------------------------------------------
    @abstractmethod
    def close(self) -> None:
        """Release connections; calling it twice is harmless."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def merge_post(existing: Post, new: Post) -> Post:
    """What a re-crawl of a known post changes.

    Fresh observations win (caption, hashtags, stats, author, URLs, AI label, provenance,
    ``last_seen``); the first sighting keeps ``first_seen`` and the watch/hashtag that found
    it. Pipeline progress is kept unless ``new`` carries progress of its own: a crawler hands
    over ``discovered`` posts, and that must not reset a matched post to the start.
    """
    merged = new.model_copy(deep=True)
    merged.first_seen = min(existing.first_seen, new.first_seen, key=as_utc)
    merged.last_seen = max(existing.last_seen, new.last_seen, key=as_utc)
    merged.posted_at = new.posted_at or existing.posted_at
    merged.media_url = new.media_url or existing.media_url
    merged.duration = new.duration if new.duration is not None else existing.duration
    merged.watch = existing.watch or new.watch
    merged.hashtag = existing.hashtag or new.hashtag
    if new.state == PostState.DISCOVERED:
        merged.state = existing.state
        merged.error = existing.error
        for name in _FAILURE_FIELDS:
            setattr(merged, name, getattr(existing, name))
    merged.media_sha256 = new.media_sha256 or existing.media_sha256
    merged.retries = max(existing.retries, new.retries)
    return merged


_FAILURE_FIELDS = ("failed_at", "failed_step", "failed_settings", "failed_transient")


def apply_post_state(
    post: Post | None,
    key: str,
    state: PostState | str,
    *,
    error: str | None = None,
    media_sha256: str | None = None,
    step: str | None = None,
    settings_digest: str | None = None,
    transient: bool = False,
    expect: PostState | str | None = None,
) -> Post:
    """What :meth:`Store.set_post_state` changes on the stored ``post`` (None: unknown key);
    every backend applies it inside its own atomic read-modify-write."""
    new_state = parse_post_state(state)
    if post is None:
        raise InputError(f"unknown post {key!r}")
    if expect is not None and post.state != parse_post_state(expect):
        raise PostStateConflict(
            f"post {key!r} is {post.state.value}, not {parse_post_state(expect).value}"
        )
    if post.state == PostState.FAILED and new_state == PostState.DISCOVERED:
        post.retries += 1
    post.state = new_state
    post.error = error
    if media_sha256 is not None:
        post.media_sha256 = media_sha256
    failed = new_state == PostState.FAILED
    post.failed_at = utcnow() if failed else None
    post.failed_step = step if failed else None
    post.failed_settings = settings_digest if failed else None
    post.failed_transient = transient and failed
    return post


def merge_match(existing: Match, new: Match) -> Match:
    """What re-matching a known (post, title) pair changes.

    The matcher's verdict and the post's details are refreshed; triage work (status, assignee,
    note, history) and ``created_at`` belong to people and are never overwritten by a re-run.
    An evidence file recorded before keeps its first sha256 and size: evidence is never
    rewritten in place, so a file that reads otherwise now was changed, and a re-run must
    not record the change as the original (``reelwatch verify`` reports it).
    """
    merged = new.model_copy(deep=True)
    merged.created_at = existing.created_at
    merged.status = existing.status
    merged.assignee = existing.assignee
    merged.note = existing.note
    merged.history = [h.model_copy() for h in existing.history]
    merged.enforcement = existing.enforcement.model_copy(deep=True)
    merged.views = new.views if new.views is not None else existing.views
    merged.work = new.work or existing.work
    first = {e.path: e for s in existing.segments for e in s.evidence_files}
    for seg in merged.segments:
        seg.evidence_files = [first.get(e.path, e) for e in seg.evidence_files]
    return merged


def apply_status(
    match: Match,
    status: TriageStatus,
    *,
    note: str = "",
    actor: str = "",
    at: datetime | None = None,
    notice_id: str | None = None,
) -> Match:
    """What a status change does to ``match`` (in place; every backend applies it inside its
    own atomic update): the status, the note, a history entry, the time the status was
    entered and, on the first removal after a notice was sent, the time to removal."""
    when = at or utcnow()
    enf = match.enforcement
    match.status = status
    if note:
        match.note = note
    match.history.append(HistoryEntry(at=when, status=status, note=note, actor=actor))
    if status.at_field is not None:
        setattr(enf, status.at_field, when)
    if notice_id is not None:
        enf.notice_id = notice_id
    if status == TriageStatus.REMOVED and enf.removal_s is None and enf.notice_sent_at:
        enf.removal_s = max(0.0, (as_utc(when) - as_utc(enf.notice_sent_at)).total_seconds())
    return match


E = TypeVar("E", bound=Enum)


def parse_enum(kind: type[E], value: E | str, what: str) -> E:
    """``value`` as a member of ``kind``, or an ``InputError`` that lists the choices."""
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(str(m.value) for m in kind)
        raise InputError(f"unknown {what} {value!r}; use one of: {choices}") from None


def parse_status(status: TriageStatus | str) -> TriageStatus:
    return parse_enum(TriageStatus, status, "triage status")


def parse_confidence(confidence: Confidence | str) -> Confidence:
    return parse_enum(Confidence, confidence, "confidence")


def parse_post_state(state: PostState | str) -> PostState:
    return parse_enum(PostState, state, "post state")


def parse_notice_status(status: NoticeStatus | str) -> NoticeStatus:
    return parse_enum(NoticeStatus, status, "notice status")


def parse_alert_status(status: AlertStatus | str) -> AlertStatus:
    return parse_enum(AlertStatus, status, "alert status")


def as_utc(dt: datetime) -> datetime:
    """Naive datetimes are taken as UTC so that old and new records compare and sort."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
