"""Celery tasks: thin wrappers over :class:`workers.pipeline.Pipeline`.

Each task takes ids and returns ids (or the small verdict of the match step), so a chain
``download → fingerprint → match → land → alert`` passes only what the next step needs.
The watch that started a crawl travels as a JSON dict (:class:`~reelwatch.watches.WatchOptions`)
in the ``watch`` argument of ``crawl``, ``land`` and ``alert``: its minimum confidence decides
what lands in the alert tier, its recipients who is told. A worker never looks a watch up by
name, since its machine may have another watchlist or none.
A step whose post failed for good returns ``None`` and the rest of the chain passes it on
(:class:`PostStepTask`). ``TransientError`` is retried with exponential backoff and jitter;
when retries run out the post records why.
"""

from __future__ import annotations

import logging
import random
from typing import Any

from celery import Task, chain
from celery.canvas import Signature

from reelwatch.errors import TransientError
from reelwatch.models import TitleMatch
from reelwatch.settings import Settings
from reelwatch.watches import WatchOptions
from workers.app import app, current_settings
from workers.pipeline import Pipeline, StepSkipped

log = logging.getLogger(__name__)
_pipeline: dict[str, Pipeline] = {}


def pipeline() -> Pipeline:
    """The process's pipeline, built from the current settings on first use."""
    if "p" not in _pipeline:
        _pipeline["p"] = Pipeline(current_settings())
    return _pipeline["p"]


def reset_pipeline() -> None:
    old = _pipeline.pop("p", None)
    if old is not None:
        old.close()


def retry_countdown(settings: Settings, retries: int) -> float:
    """Seconds before retry number ``retries + 1``: ``workers.retry_backoff_s`` doubled per
    retry already made, capped at ``workers.retry_backoff_max_s``, drawn between half and all
    of that (jitter that still guarantees the backoff's half, so retries always span a known
    minimum: Celery's own full jitter may wait almost nothing each time)."""
    policy = settings.workers
    ceiling = min(policy.retry_backoff_max_s, policy.retry_backoff_s * 2 ** min(retries, 32))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


class PipelineTask(Task):
    """Retry policy of every reelwatch task: a transient fault is retried after an exponential
    backoff (:func:`retry_countdown`), ``workers.max_retries`` times; a task is acknowledged
    only once it ran, and one whose worker died is handed out again (see
    :func:`workers.app.broker_transport_options`)."""

    acks_late = True
    reject_on_worker_lost = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except TransientError as exc:
            settings = current_settings()
            retries, most = self.request.retries, settings.workers.max_retries
            countdown = retry_countdown(settings, retries)
            if retries < most:
                key = _post_key(args[0]) if args else None
                log.info(
                    "%s %s: retry %d of %d in %.1f s: %s",
                    self.name,
                    key or "-",
                    retries + 1,
                    most,
                    countdown,
                    exc,
                )
            raise self.retry(exc=exc, countdown=countdown, max_retries=most) from exc


def _post_key(arg: Any) -> str | None:
    """The post a chain step works on: a key, or the match step's verdict."""
    if isinstance(arg, str):
        return arg
    if isinstance(arg, dict):
        return arg.get("post")
    return None


class PostStepTask(PipelineTask):
    """A step of the per-post chain; its argument is the previous step's result.

    ``None`` means the post dropped out earlier, so the step passes ``None`` on; a post whose
    failure is recorded (``StepSkipped``) drops out the same way. When retries on a transient
    fault run out, the post records why. Each run logs ``<task name> <post key>`` (INFO), so
    a worker's log says which posts it worked on (Celery's own lines name only task ids).
    """

    def __call__(self, arg: Any, *args: Any, **kwargs: Any) -> Any:
        if arg is None:
            return None
        key = _post_key(arg)
        if key is not None:
            log.info("%s %s", self.name, key)
        try:
            return super().__call__(arg, *args, **kwargs)
        except StepSkipped:
            return None

    def on_failure(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        key = _post_key(args[0]) if args else None
        if key and isinstance(exc, TransientError):
            retries = current_settings().workers.max_retries
            pipeline().record_failure(
                key,
                self.name.removeprefix("reelwatch."),
                f"gave up after {retries} retries: {exc}",
                transient=True,
            )


@app.task(name="reelwatch.download", base=PostStepTask)
def download(key: str) -> str:
    pipeline().download(key)
    return key


@app.task(name="reelwatch.fingerprint", base=PostStepTask)
def fingerprint(key: str) -> str:
    pipeline().fingerprint(key)
    return key


@app.task(name="reelwatch.match", base=PostStepTask)
def match(key: str) -> dict[str, Any]:
    found = pipeline().match(key)
    return {"post": key, "matches": [m.model_dump(mode="json") for m in found]}


WatchArg = dict[str, Any] | str | None
"""A watch in task arguments: :meth:`WatchOptions.task_arg`'s dict, or (older messages) a name."""


@app.task(name="reelwatch.land", base=PostStepTask)
def land(verdict: dict[str, Any], watch: WatchArg = None) -> list[str]:
    matches = [TitleMatch.model_validate(m) for m in verdict["matches"]]
    threshold = WatchOptions.of(watch).min_confidence
    return pipeline().land(verdict["post"], matches, min_confidence=threshold)


@app.task(name="reelwatch.alert", base=PostStepTask)
def alert(match_ids: list[str], watch: WatchArg = None) -> list[str]:
    return [a.id for a in pipeline().alert(match_ids, watch=WatchOptions.of(watch))]


def post_chain(key: str, watch: WatchOptions | None = None) -> Signature:
    """The per-post chain ``download → fingerprint → match → land → alert``; the steps that
    decide who hears about a match carry ``watch``."""
    carried = (watch or WatchOptions()).task_arg()
    return chain(
        download.s(key),
        fingerprint.s(),
        match.s(),
        land.s(watch=carried),
        alert.s(watch=carried),
    )


def start_post(key: str, watch: WatchOptions | None = None) -> None:
    """Send the per-post chain without waiting on it.

    In-process (eager) the chain runs now; a transient fault whose retries ran out has been
    recorded on the post by then, so it is logged and the caller goes on with other posts.
    """
    try:
        result = post_chain(key, watch).apply_async()
        if app.conf.task_always_eager:
            # The chain has already run in this process: get() only re-raises its error,
            # so the guard against waiting on subtasks does not apply.
            result.get(disable_sync_subtasks=False)
    except TransientError as exc:
        log.warning("post %s failed: %s", key, exc)


@app.task(name="reelwatch.crawl", base=PipelineTask)
def crawl(
    platform: str, hashtag: str, limit: int | None = None, watch: WatchArg = None
) -> dict[str, Any]:
    """Discover posts for one hashtag and start a chain for each that needs work.

    ``watch`` (see :data:`WatchArg`) bounds the crawl and goes on with every chain; ``limit``
    wins over the watch's. The chains are sent, never waited on (waiting on subtasks inside a
    task deadlocks pools).
    """
    options = WatchOptions.of(watch)
    posts, todo = pipeline().discover(platform, hashtag, limit=limit, watch=options)
    for key in todo:
        start_post(key, options)
    return {
        "platform": platform,
        "hashtag": hashtag,
        "watch": options.name,
        "found": len(posts),
        "queued": todo,
    }


@app.task(name="reelwatch.flush_alerts", base=PipelineTask)
def flush_alerts() -> int:
    """Retry alerts that a mail server that was away left pending."""
    from triage.alerts import flush_pending

    p = pipeline()
    return len(flush_pending(p.store, p.notifiers, settings=p.settings))


@app.task(name="reelwatch.sources_check", base=PipelineTask)
def sources_check() -> dict[str, list[str]]:
    """Check every configured source; email about broken ones, once per source a day.

    Beat sends it on ``settings.beat.sources_check_schedule``; see :mod:`workers.canary`.
    """
    from workers.canary import run_sources_check
    from workers.claims import Claims

    settings = current_settings()
    claims = Claims.from_settings(settings, "the source check's alert")
    try:
        return run_sources_check(settings, claims)
    finally:
        claims.close()


RECHECK_QUEUE = "crawl"


@app.task(name="reelwatch.recheck_removals", base=PipelineTask)
def recheck_removals(due_only: bool = True, limit: int | None = None) -> dict[str, Any]:
    """Re-check the posts whose notice was sent and move their matches (removed, still up,
    reinstated); see :mod:`workers.removals`. Beat sends it every
    ``removal.schedule_every_s``; ``reelwatch removals check`` runs it once. Both send it to
    the ``crawl`` queue (:data:`RECHECK_QUEUE`): it fetches platform pages, as crawls do."""
    from workers.removals import recheck

    p = pipeline()
    return recheck(p.settings, p.store, due_only=due_only, limit=limit).as_dict()
