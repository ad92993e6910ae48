"""The per-post pipeline: discover → download → fingerprint → match → land → alert.

Celery tasks in :mod:`workers.tasks` are thin wrappers around these methods. Every step
takes the post's identity (``platform:post_id``), reads what it needs from the Store, and
is safe to run twice: files are content-addressed, fingerprints are cached by sha256,
matches and alerts have deterministic ids.

Expected failures (``InputError``, ``PermanentError``) are recorded on the post, which is
then skipped by the remaining steps; ``TransientError`` propagates so Celery can retry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import crawler
from crawler.sources import Query
from matcher.decode import probe
from matcher.engine import Matcher, QueryContext
from matcher.signals.provenance import ai_flags, trust_anchors_pem
from reelwatch.errors import InputError, PermanentError, ReelwatchError
from reelwatch.models import (
    Alert,
    Confidence,
    Match,
    Media,
    Post,
    PostState,
    TitleMatch,
    utcnow,
)
from reelwatch.settings import Settings
from reelwatch.timing import stage
from reelwatch.watches import WatchOptions
from triage.alerts import deliver
from triage.notifiers import EmailNotifier, build_notifiers
from triage.notifiers.base import Notifier
from triage.stores import open_store
from triage.stores.base import Store

if TYPE_CHECKING:
    from crawler.state import CrawlRun
from workers.download import download

log = logging.getLogger(__name__)


UNFINISHED = frozenset({PostState.DISCOVERED, PostState.DOWNLOADED, PostState.FINGERPRINTED})
"""States of a post whose chain has not ended; a crawl that finds such a post again runs it."""


class StepSkipped(Exception):
    """The post failed earlier (or just now) with a recorded, non-retryable error."""


@dataclass
class Discovery:
    """What one crawl found: every post, which keys were new or known, which need work."""

    posts: list[Post]
    run: CrawlRun
    new: list[str] = field(default_factory=list)
    known: list[str] = field(default_factory=list)
    todo: list[str] = field(default_factory=list)
    retried: list[str] = field(default_factory=list)
    """Known posts that had failed for good under other settings, put back to run again (also
    in ``todo``)."""


class Pipeline:
    """Holds the parts one process needs (store, matcher, notifiers), opened lazily."""

    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        self.settings = settings
        settings.ensure_home()
        self._store = store

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = open_store(self.settings)
        return self._store

    @cached_property
    def matcher(self) -> Matcher:
        return Matcher(self.settings)

    @cached_property
    def notifiers(self) -> list[Notifier]:
        return build_notifiers(self.settings)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def discover_run(
        self,
        platform: str,
        query: str,
        limit: int | None = None,
        watch: WatchOptions | None = None,
        on_found: Callable[[int], None] | None = None,
    ) -> Discovery:
        """List one query (``#tag``, ``@account``, ``search:words``, a URL) and keep what it
        found: every post upserted (known posts only when their stats are due a refresh,
        ``crawl.stats_refresh_s``), the run and its counts recorded in the crawl state, the
        query's cursor and newest post time remembered. Known posts are not processed again
        unless they never finished (still ``discovered``, ``downloaded`` or ``fingerprinted``),
        so a crash between discovery and processing, or a step a dying worker took from the
        broker without recording it, loses nothing (the steps are idempotent), or they
        failed for good under settings that have changed since (put back once, see
        :mod:`workers.retry`). A crawl the platform interrupted keeps what it found, records
        it, then raises.
        """
        from crawler.state import CrawlRun, CrawlState
        from workers.retry import put_back, settings_digest, stale

        watch = watch or WatchOptions()
        q = Query.parse(query)
        run = CrawlRun(source=platform.lower(), query=str(q), watch=watch.name, started_at=utcnow())
        interrupted: crawler.CrawlInterrupted | None = None
        with CrawlState.of_home(self.settings.home) as state:
            try:
                result = crawler.crawl_run(
                    self.settings,
                    platform,
                    q,
                    limit=limit if limit is not None else watch.limit,
                    watch=watch.name,
                    max_age_s=watch.max_age_s,
                    on_found=on_found,
                )
                posts, run.stop, cursor = result.posts, result.stop, result.cursor
            except crawler.CrawlInterrupted as exc:
                posts, cursor, interrupted = exc.posts, None, exc
                run.error = str(exc)
            except ReelwatchError as exc:
                run.error, run.finished_at = str(exc), utcnow()
                state.record(run)
                raise
            found = Discovery(posts=posts, run=run)
            refresh = timedelta(seconds=self.settings.crawl.stats_refresh_s)
            digest = settings_digest(self.settings)
            rerun: list[Post] = []
            for post in posts:
                stored = self.store.get_post(post.key)
                if stored is None:
                    self.store.upsert_post(post)
                    found.new.append(post.key)
                    found.todo.append(post.key)
                    continue
                found.known.append(post.key)
                if utcnow() - stored.last_seen >= refresh:
                    self.store.upsert_post(post)
                if stored.state in UNFINISHED:
                    found.todo.append(post.key)
                elif stale(stored, digest):
                    rerun.append(stored)
            found.retried = put_back(self.store, rerun)
            found.todo.extend(found.retried)
            run.found, run.new, run.known = len(posts), len(found.new), len(found.known)
            run.finished_at = utcnow()
            state.record(run)
            dated = [p.posted_at for p in posts if p.posted_at is not None]
            state.remember(run.source, run.query, cursor, max(dated) if dated else None)
        if interrupted is not None:
            raise interrupted
        return found

    def record_failures(self, found: Discovery) -> None:
        """Count the posts of a discovery whose processing failed into its recorded run."""
        from crawler.state import CrawlState

        failed = 0
        for key in found.todo:
            post = self.store.get_post(key)
            if post is not None and post.state == PostState.FAILED:
                failed += 1
        found.run.failed = failed
        with CrawlState.of_home(self.settings.home) as state:
            state.record(found.run)

    # -- steps ------------------------------------------------------------------------------
    def discover(
        self,
        platform: str,
        hashtag: str,
        limit: int | None = None,
        watch: WatchOptions | None = None,
    ) -> tuple[list[Post], list[str]]:
        """Crawl one hashtag (or any query text); return (all posts, keys that need work).

        ``limit`` wins over the watch's; the watch's max age bounds how far back the crawl
        lists. This is :meth:`discover_run` (posts kept, run recorded) for callers that need
        only the posts and the work.
        """
        found = self.discover_run(platform, hashtag, limit=limit, watch=watch)
        return found.posts, found.todo

    @contextmanager
    def _recording(self, key: str, step: str) -> Iterator[Post]:
        """Run one ``step`` of a post; an expected failure is recorded on the post (reason,
        step, time and the settings it failed under, see :mod:`workers.retry`) and skips the
        steps after it."""
        post = self.store.get_post(key)
        if post is None:
            raise InputError(f"unknown post {key!r}")
        if post.state == PostState.FAILED:
            raise StepSkipped(post.error or "failed earlier")
        try:
            yield post
        except (InputError, PermanentError) as exc:
            log.warning("post %s failed at %s: %s", key, step, exc)
            self.record_failure(key, step, str(exc))
            raise StepSkipped(str(exc)) from exc

    def record_failure(self, key: str, step: str, error: str, *, transient: bool = False) -> Post:
        """Record that ``key`` failed at ``step``: why, when, and under which settings."""
        from workers.retry import settings_digest

        return self.store.set_post_state(
            key,
            PostState.FAILED,
            error=error,
            step=step,
            settings_digest=settings_digest(self.settings),
            transient=transient,
        )

    def media_path(self, sha256: str) -> Path:
        matches = sorted((self.settings.media_dir / sha256[:2]).glob(f"{sha256}.*"))
        if not matches:
            raise PermanentError(f"media {sha256[:12]} is not in the media store")
        return matches[0]

    def download(self, key: str) -> str:
        """Fetch the post's video; returns its sha256."""
        with self._recording(key, "download") as post:
            if post.media_sha256:
                try:
                    self.media_path(post.media_sha256)
                    return post.media_sha256
                except PermanentError:
                    pass
            with stage("download"):
                got = download(self.settings, post.url)
                media = probe(got.path, sha256=got.sha256)
            self.store.upsert_media(self._captured(media, post, got.media_url))
            self.store.set_post_state(key, PostState.DOWNLOADED, media_sha256=got.sha256)
            return got.sha256

    def _captured(self, media: Media, post: Post, media_url: str | None) -> Media:
        """``media`` with when, where from and for which post it was captured; a file stored
        before (a repost of the same video) keeps its first capture."""
        known = self.store.get_media(media.sha256)
        if known is not None and known.captured_at is not None:
            fields = ("captured_at", "source_url", "media_url", "first_post")
            return media.model_copy(update={f: getattr(known, f) for f in fields})
        return media.model_copy(
            update={
                "captured_at": utcnow(),
                "source_url": post.url,
                "media_url": media_url,
                "first_post": post.key,
            }
        )

    def fingerprint(self, key: str) -> str:
        with self._recording(key, "fingerprint") as post:
            sha = self._sha(post)
            self.matcher.fingerprint(self.media_path(sha), sha256=sha)
            self.store.set_post_state(key, PostState.FINGERPRINTED)
            return sha

    def fingerprint_many(self, keys: Sequence[str]) -> int:
        """Fingerprint several downloaded posts together, so the models see their frames in
        shared batches; their chains' fingerprint steps then read the cache. Posts not yet
        downloaded, failed earlier or whose media does not decode are left to their chains
        (which record why). Returns how many were fingerprinted."""
        items: list[tuple[Path, str]] = []
        for key in keys:
            post = self.store.get_post(key)
            if post is None or post.state == PostState.FAILED or not post.media_sha256:
                continue
            try:
                items.append((self.media_path(post.media_sha256), post.media_sha256))
            except PermanentError:
                continue
        if not items:
            return 0
        try:
            results = self.matcher.fingerprint_many(items)
        except Exception:  # each chain's own fingerprint step meets it again and records it
            log.warning("fingerprinting %d posts together failed", len(items), exc_info=True)
            return 0
        return sum(not isinstance(r, InputError) for r in results)

    def match(self, key: str) -> list[TitleMatch]:
        with self._recording(key, "match") as post:
            sha = self._sha(post)
            context = QueryContext(
                caption=post.caption,
                hashtags=tuple(post.hashtags),
                ai_label=post.ai_label,
                is_ai_labelled=post.is_ai_labelled,
            )
            report = self.matcher.match_file(self.media_path(sha), sha256=sha, context=context)
            return list(report.matches)

    def land(
        self, key: str, matches: list[TitleMatch], min_confidence: Confidence | None = None
    ) -> list[str]:
        """Upsert one Match per title; returns ids of matches that reach the alert tier.

        The tier is the watch's ``min_confidence`` when the crawl carried one, else
        ``settings.alerts.min_confidence``.
        """
        threshold = min_confidence or self.settings.alerts.min_confidence
        with self._recording(key, "land") as post:
            with stage("provenance"):
                ai = ai_flags(
                    media_path=self.media_path(self._sha(post)),
                    ai_label=post.ai_label,
                    is_ai_labelled=post.is_ai_labelled,
                    hashtags=post.hashtags,
                    caption=post.caption,
                    trust_anchors=trust_anchors_pem(self.settings.matcher.c2pa_trust_anchors),
                )
            landed = [
                Match(
                    **dict(tm),
                    post_key=post.key,
                    platform=post.platform,
                    post_id=post.post_id,
                    post_url=post.url,
                    account=post.author.handle,
                    caption=post.caption,
                    hashtags=post.hashtags,
                    ai=ai,
                    media_sha256=post.media_sha256,
                    watch=post.watch,
                    views=post.stats.views,
                    updated_at=utcnow(),
                )
                for tm in matches
            ]
            # One batch per post: a bulk request on Elasticsearch, one by one on SQLite.
            with stage("land"):
                self.store.upsert_matches(landed)
            alert_ids = [m.id for m in landed if m.confidence.at_least(threshold)]
            self.store.set_post_state(key, PostState.MATCHED)
            return alert_ids

    def alert(self, match_ids: list[str], watch: WatchOptions | None = None) -> list[Alert]:
        """Tell the watch's recipients (else the settings') about each match, once each.

        The watch's ``min_confidence`` is applied again here, so an alert step run on its own
        (a retry, a replayed message) cannot alert below it either.
        """
        watch = watch or WatchOptions()
        recipients = {EmailNotifier.channel: watch.recipients} if watch.recipients else None
        sent: list[Alert] = []
        for mid in match_ids:
            match = self.store.get_match(mid)
            if match is None:
                continue
            post = self.store.get_post(match.post_key)
            sent.extend(
                deliver(
                    self.store,
                    self.notifiers,
                    match,
                    post,
                    self.settings,
                    min_confidence=watch.min_confidence,
                    recipients=recipients,
                )
            )
        return sent

    def _sha(self, post: Post) -> str:
        if not post.media_sha256:
            raise PermanentError("post has no downloaded media")
        return post.media_sha256


DOWNLOAD_AHEAD = 2
"""Posts an in-process run downloads ahead of the one it is matching."""


def _download_quietly(pipeline: Pipeline, key: str) -> None:
    """Download one post ahead of its chain. A failure is recorded on the post (as the
    chain's own download step records it) or, when worth retrying, left to that step."""
    try:
        pipeline.download(key)
    except (StepSkipped, ReelwatchError) as exc:
        log.debug("download ahead of %s left to its chain: %s", key, exc)
    except Exception:  # the chain's own download step meets it again and reports it
        log.debug("download ahead of %s failed", key, exc_info=True)


@contextmanager
def downloads_ahead(
    settings: Settings, keys: Sequence[str], ahead: int = DOWNLOAD_AHEAD
) -> Iterator[Callable[[str], None]]:
    """While posts are processed one after another in this process, download the next
    ``ahead`` of ``keys`` in a background thread, so the network and the decoder's reads
    overlap with the matching of the post before.

    Yields ``ready(key)``: call it before starting ``key``'s chain; it waits for that post's
    download (never raises) and starts the next one. The chain's download step then finds
    the media in the store and goes on. With a broker (the chain runs on workers), or one
    post, it does nothing.
    """
    if not settings.eager or ahead <= 0 or len(keys) < 2:
        yield lambda key: None
        return
    fetcher = Pipeline(settings)
    pool = ThreadPoolExecutor(1, thread_name_prefix="reelwatch-download")
    queued: dict[str, Future[None]] = {}
    upcoming = iter(keys)

    def queue_next() -> None:
        key = next(upcoming, None)
        if key is not None:
            queued[key] = pool.submit(_download_quietly, fetcher, key)

    def ready(key: str) -> None:
        job = queued.pop(key, None)
        if job is not None:
            job.result()
        queue_next()

    for _ in range(ahead):
        queue_next()
    try:
        yield ready
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        fetcher.close()
