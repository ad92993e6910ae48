"""Celery tasks: thin wrappers over :class:`workers.pipeline.Pipeline`.

Each task takes ids and returns ids (or the small verdict of the match step), so a chain
``download → fingerprint → match → land → alert`` passes only what the next step needs.
A step whose post failed for good returns ``None`` and the rest of the chain no-ops.
``TransientError`` is retried with exponential backoff and jitter; when retries run out the
post records why.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task, chain
from celery.canvas import Signature

from reelwatch.errors import TransientError
from reelwatch.models import PostState, TitleMatch
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


class PipelineTask(Task):
    autoretry_for = (TransientError,)
    retry_backoff = 5
    retry_backoff_max = 600
    retry_jitter = True
    max_retries = 5
    acks_late = True
    reject_on_worker_lost = True

    def on_failure(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        key = args[0] if args and isinstance(args[0], str) else None
        if key and isinstance(exc, TransientError):
            pipeline().store.set_post_state(
                key, PostState.FAILED, error=f"gave up after {self.max_retries} retries: {exc}"
            )


@app.task(name="reelwatch.download", base=PipelineTask)
def download(key: str | None) -> str | None:
    if key is None:
        return None
    try:
        pipeline().download(key)
    except StepSkipped:
        return None
    return key


@app.task(name="reelwatch.fingerprint", base=PipelineTask)
def fingerprint(key: str | None) -> str | None:
    if key is None:
        return None
    try:
        pipeline().fingerprint(key)
    except StepSkipped:
        return None
    return key


@app.task(name="reelwatch.match", base=PipelineTask)
def match(key: str | None) -> dict[str, Any] | None:
    if key is None:
        return None
    try:
        found = pipeline().match(key)
    except StepSkipped:
        return None
    return {"post": key, "matches": [m.model_dump(mode="json") for m in found]}


@app.task(name="reelwatch.land", base=PipelineTask)
def land(verdict: dict[str, Any] | None) -> list[str] | None:
    if verdict is None:
        return None
    matches = [TitleMatch.model_validate(m) for m in verdict["matches"]]
    try:
        return pipeline().land(verdict["post"], matches)
    except StepSkipped:
        return None


@app.task(name="reelwatch.alert", base=PipelineTask)
def alert(match_ids: list[str] | None) -> list[str]:
    if not match_ids:
        return []
    return [a.id for a in pipeline().alert(match_ids)]


def post_chain(key: str) -> Signature:
    """The per-post chain; ``.apply_async()`` runs it in-process when eager."""
    return chain(download.s(key), fingerprint.s(), match.s(), land.s(), alert.s())


@app.task(name="reelwatch.crawl", base=PipelineTask)
def crawl(
    platform: str, hashtag: str, limit: int | None = None, watch: str | None = None
) -> dict[str, Any]:
    """Discover posts for one hashtag and start a chain for each that needs work.

    The chains are sent, never waited on (waiting on subtasks inside a task deadlocks pools).
    """
    posts, todo = pipeline().discover(platform, hashtag, limit=limit, watch=watch)
    for key in todo:
        post_chain(key).apply_async()
    return {"platform": platform, "hashtag": hashtag, "found": len(posts), "queued": todo}


@app.task(name="reelwatch.flush_alerts", base=PipelineTask)
def flush_alerts() -> int:
    """Retry alerts that a mail server that was away left pending."""
    from triage.alerts import flush_pending

    p = pipeline()
    return len(flush_pending(p.store, p.notifiers, p.settings))
