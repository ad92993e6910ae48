"""Failed posts: which failed, why, and running them again.

A post whose step failed for good is recorded ``failed`` with its reason (``error``), when
(``failed_at``), at which step (``failed_step``), whether the fault was one worth retrying
whose retries ran out (``failed_transient``: 429s, timeouts) and a digest of the settings that
can make a post fail for good (``failed_settings``: the ``download`` section and the media
limits). Nothing re-runs a failed post by itself except a change of those settings:

- ``reelwatch posts retry`` (and the board's Retry buttons) puts the failed posts it selects
  back to ``discovered`` (counting a retry) and through the pipeline, in-process or queued;
- a crawl that lists a post again whose permanent failure was recorded under other settings
  (or before settings were recorded) re-runs it once: if it fails again it records the
  settings of now, so it waits for the next change. Posts that gave up on a transient fault
  wait for ``posts retry``.

Putting a post back is one conditional write (``expect=failed``), so two retries racing (the
command and the board, a crawl and a retry) start its chain once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import BaseModel

from reelwatch.errors import InputError
from reelwatch.models import Post, PostState, utcnow
from reelwatch.settings import Settings
from reelwatch.watches import WatchOptions, get_watch, parse_duration
from triage.stores.base import PostStateConflict, Store, as_utc

log = logging.getLogger(__name__)

FAILURE_SETTINGS = ("download", "limits")
"""Settings sections a permanent failure can depend on (where the downloader may fetch from,
size and duration limits); sections a build does not have are left out of the digest."""

_URL_RE = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)


def settings_digest(settings: Settings) -> str:
    """A short digest of the settings a permanent failure can depend on (FAILURE_SETTINGS)."""
    parts = {}
    for name in FAILURE_SETTINGS:
        section = getattr(settings, name, None)
        if isinstance(section, BaseModel):
            parts[name] = section.model_dump(mode="json")
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``--since``: an ISO date or time (UTC unless it names a zone), or a duration ago
    (``90m``, ``2h``, ``3d``, ``1w``)."""
    value = text.strip()
    try:
        return (now or utcnow()) - timedelta(seconds=parse_duration(value))
    except ValueError:
        pass
    try:
        return as_utc(datetime.fromisoformat(value))
    except ValueError:
        raise InputError(
            f"--since {text[:100]!r}: use an ISO date or time (2026-12-01, "
            "2026-12-01T08:00, 2026-12-01T08:00+02:00) or a duration ago (90m, 2h, 3d)"
        ) from None


def failed_when(post: Post) -> datetime:
    """When a failed post failed; posts that failed before reelwatch recorded the time count
    from when they were last seen."""
    return as_utc(post.failed_at or post.last_seen)


def reason_of(post: Post) -> str:
    """A post's failure as one short line (the step, then the error with URLs left out), so
    that posts failing the same way read the same."""
    error = _URL_RE.sub("<url>", " ".join((post.error or "unknown error").split()))
    return f"{post.failed_step}: {error}" if post.failed_step else error


def summarize(posts: Iterable[Post], most: int = 3) -> str:
    """``2 at download: refusing to download ...; 1 at fingerprint: ...`` (the commonest
    ``most`` reasons, then how many others)."""
    counts = Counter(reason_of(p) for p in posts)
    parts = [f"{n} {reason}" for reason, n in counts.most_common(most)]
    rest = sum(counts.values()) - sum(n for _, n in counts.most_common(most))
    if rest:
        parts.append(f"{rest} other")
    return "; ".join(parts)


@dataclass(frozen=True)
class FailedFilter:
    """Which failed posts a list or a retry takes; empty fields take any."""

    reason: str = ""
    """Case-insensitive text the error or the step contains."""
    since: datetime | None = None
    """Failed at or after this time."""
    platform: str = ""
    keys: tuple[str, ...] = ()

    def keep(self, post: Post) -> bool:
        if post.state != PostState.FAILED:
            return False
        if self.keys and post.key not in self.keys:
            return False
        if self.platform and post.platform != self.platform.strip().lower():
            return False
        if self.since is not None and failed_when(post) < as_utc(self.since):
            return False
        wanted = self.reason.strip().lower()
        return not wanted or wanted in f"{post.failed_step or ''} {post.error or ''}".lower()


def select_failed(store: Store, which: FailedFilter, limit: int | None = None) -> list[Post]:
    """Failed posts ``which`` takes, latest failure first. Keys it names must be known posts
    that failed (else one ``InputError`` naming the first that is not), so a retry of named
    posts retries all of them or none."""
    if which.keys:
        posts = []
        for key in which.keys:
            post = store.get_post(key)
            if post is None:
                raise InputError(f"unknown post {key!r} (a post key is platform:post_id)")
            if post.state != PostState.FAILED:
                raise InputError(
                    f"post {key!r} is {post.state.value}, not failed; only failed posts are retried"
                )
            posts.append(post)
    else:
        posts = store.list_posts(PostState.FAILED)
    kept = sorted((p for p in posts if which.keep(p)), key=failed_when, reverse=True)
    return kept if limit is None else kept[: max(limit, 0)]


def stale(post: Post, digest: str) -> bool:
    """True for a permanent failure recorded under other settings (or none recorded)."""
    return (
        post.state == PostState.FAILED
        and not post.failed_transient
        and post.failed_settings != digest
    )


def put_back(store: Store, posts: Iterable[Post]) -> list[str]:
    """Move failed posts back to ``discovered`` (a retry counted); the keys this call moved.
    A post another process put back (or that is no longer failed) is left out."""
    moved = []
    for post in posts:
        try:
            store.set_post_state(
                post.key,
                PostState.DISCOVERED,
                media_sha256=post.media_sha256,
                expect=PostState.FAILED,
            )
        except PostStateConflict:
            log.info("post %s was put back by another run", post.key)
            continue
        moved.append(post.key)
    return moved


def watch_of(settings: Settings, name: str | None) -> WatchOptions:
    """The options a retried post runs with: its watch's, from this machine's watchlist, so
    its matches alert the watch's recipients at the watch's tier; the settings' defaults
    when it came from no watch, or the watch is gone."""
    if not name:
        return WatchOptions()
    try:
        return get_watch(settings.watchlist_path, name).options()
    except InputError as exc:
        log.info("post of watch %r retried with the default options: %s", name, exc)
        return WatchOptions(name=name)


def by_watch(
    settings: Settings, store: Store, keys: Sequence[str]
) -> list[tuple[WatchOptions, list[str]]]:
    """``keys`` grouped by the options of the watch that found each post (in their order)."""
    groups: dict[str | None, list[str]] = {}
    for key in keys:
        post = store.get_post(key)
        groups.setdefault(post.watch if post else None, []).append(key)
    return [(watch_of(settings, name), group) for name, group in groups.items()]


@dataclass
class Outcome:
    """How retried posts ended: by state, and the failures' reasons."""

    retried: list[str]
    posts: list[Post]
    queued: bool

    @property
    def counts(self) -> Counter[str]:
        return Counter(p.state.value for p in self.posts)

    def line(self) -> str:
        """``3 retried: 2 matched, 1 failed (1 download: ...)`` or ``3 retried: queued``."""
        if not self.retried:
            return "nothing to retry"
        head = f"{len(self.retried)} retried"
        if self.queued:
            return f"{head}: queued for the workers"
        counts = self.counts
        order = [s.value for s in PostState]
        parts = [f"{counts[s]} {s}" for s in order if counts[s]]
        failed = [p for p in self.posts if p.state == PostState.FAILED]
        tail = f" ({summarize(failed)})" if failed else ""
        return f"{head}: {', '.join(parts)}{tail}"


def outcome(settings: Settings, store: Store, keys: Sequence[str]) -> Outcome:
    posts = [p for p in (store.get_post(k) for k in keys) if p is not None]
    return Outcome(retried=list(keys), posts=posts, queued=not settings.eager)


def start_chains(
    settings: Settings,
    store: Store,
    keys: Sequence[str],
    advance: Callable[[], None] | None = None,
) -> None:
    """Send the chain of each put-back post with its watch's options, one after another (the
    board's retries; the command line uses the crawl's batched processing instead)."""
    from workers.tasks import start_post

    for watch, group in by_watch(settings, store, keys):
        for key in group:
            start_post(key, watch)
            if advance is not None:
                advance()
