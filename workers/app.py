"""The Celery application, configured from the reelwatch settings tree.

Without ``broker_url`` tasks run eagerly in the calling process (the embedded default);
with ``REELWATCH_BROKER_URL=redis://...`` the same tasks run on ``reelwatch worker``
processes. Queues: ``crawl`` (spiders), ``media`` (downloads), ``match`` (fingerprint and
match, the heavy part, on CPU workers), ``gpu`` (the same two tasks when
``workers.match_queue`` sends them to GPU workers instead), ``land`` (store and alerts).
Only a machine with a usable CUDA device serves ``gpu`` (:func:`gpu_unavailable_reason`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import Celery, bootsteps

from reelwatch.settings import Settings, get_settings

QUEUES = ("crawl", "media", "match", "gpu", "land")
DEFAULT_WORKER_QUEUES = ("crawl", "media", "match", "land")
"""What ``reelwatch worker`` serves without ``--queues``: every queue a CPU machine can run."""

MATCH_TASKS = ("reelwatch.fingerprint", "reelwatch.match")
"""The tasks that go to ``workers.match_queue`` (``match`` or ``gpu``)."""

_FIXED_ROUTES = {
    "reelwatch.crawl": "crawl",
    "reelwatch.watch": "crawl",
    "reelwatch.download": "media",
    "reelwatch.land": "land",
    "reelwatch.alert": "land",
    "reelwatch.flush_alerts": "land",
    "reelwatch.sources_check": "crawl",
    "reelwatch.recheck_removals": "crawl",
}


def task_routes(settings: Settings) -> dict[str, dict[str, str]]:
    """Each task's queue. Fingerprint and match go to ``settings.workers.match_queue``.

    Celery routes a chain's next step in the process that finishes the step before it, so
    every process that sends or runs tasks (workers, beat, the CLI) must see the same setting.
    """
    routes = {name: {"queue": queue} for name, queue in _FIXED_ROUTES.items()}
    for name in MATCH_TASKS:
        routes[name] = {"queue": settings.workers.match_queue}
    return routes


def gpu_unavailable_reason() -> str | None:
    """Why this machine cannot serve the ``gpu`` queue, or ``None`` when it can: some part
    of the matcher (onnxruntime, faiss or torch) must be able to use CUDA here
    (:func:`matcher.accel.cuda_available`)."""
    from matcher.accel import cuda_available, cuda_missing

    if cuda_available():
        return None
    return "; ".join(cuda_missing()) or "no CUDA device"


LONGEST_TASK_S = 30 * 60

PUBLISH_RETRY_POLICY = {
    "max_retries": 60,
    "interval_start": 0.5,
    "interval_step": 0.5,
    "interval_max": 3.0,
}
"""Sending a task while the broker is away is retried for about two and a half minutes."""


def broker_transport_options(settings: Settings) -> dict[str, Any]:
    """How the Redis broker hands out again what a lost worker held.

    A task stays on the broker, invisible, from the moment a worker takes it until the worker
    acknowledges it after running it (``acks_late``). A worker that dies without saying so
    (``kill -9``, a lost machine) leaves it there; after ``workers.visibility_timeout_s`` any
    live worker's sweep (every tenth of that, at most 10 s apart) puts it back on its queue.
    Live workers renew what they hold (:class:`RenewHeldTasks`), so a timeout far shorter
    than the longest task (Celery's default is an hour) is safe.
    """
    timeout = settings.workers.visibility_timeout_s
    return {
        "visibility_timeout": timeout,
        "unacked_restore_interval": min(10.0, max(1.0, timeout / 10)),
        "unacked_restore_throttle": 1,
    }


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings derived from ours; nothing else configures Celery."""
    broker = settings.broker_url
    backend = settings.result_backend or (broker if broker and broker.startswith("redis") else None)
    return {
        "broker_url": broker or "memory://",
        "result_backend": backend,
        "task_always_eager": broker is None,
        # In-process, a retry must re-run the task rather than surface as an exception;
        # callers see a task's final error through its result (see tasks.start_post).
        "task_eager_propagates": False,
        "task_store_eager_result": False,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_routes": task_routes(settings),
        "task_default_queue": "land",
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_expires": 24 * 3600,
        "task_time_limit": LONGEST_TASK_S,
        "task_soft_time_limit": LONGEST_TASK_S - 60,
        "broker_transport_options": broker_transport_options(settings),
        "result_backend_transport_options": {
            "visibility_timeout": settings.workers.visibility_timeout_s
        },
        "broker_connection_retry_on_startup": True,
        # A worker that finishes a step while Redis is away (restarting) must still send the
        # next step of the chain once it is back, not drop the post: Celery's default gives
        # up on a publish after three tries within a second.
        "task_publish_retry": True,
        "task_publish_retry_policy": PUBLISH_RETRY_POLICY,
        "result_backend_always_retry": True,
        "result_backend_max_retries": 60,
        "worker_hijack_root_logger": False,
        "enable_utc": True,
    }


class RenewHeldTasks(bootsteps.StartStopStep):
    """A worker's consumer step: every quarter of ``workers.visibility_timeout_s``, mark the
    tasks this worker holds (running, or waiting for a retry's countdown) as seen now on the
    Redis broker, so its sweep hands out only what a dead worker left behind.

    Kombu's Redis transport keeps each unacknowledged message in a hash and its delivery
    time in a sorted set (``unacked_index``); the sweep restores entries older than the
    visibility timeout. Renewing rewrites the time of entries that still exist (``ZADD XX``),
    never re-adds an acknowledged one. A broker that is away is skipped until it is back.
    """

    requires = ("celery.worker.consumer.tasks:Tasks",)
    label = "renew held tasks"

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self._tref: Any = None

    def start(self, parent: Any) -> None:
        timeout = float(parent.app.conf.broker_transport_options.get("visibility_timeout") or 0)
        if not timeout or parent.timer is None:
            return
        self._tref = parent.timer.call_repeatedly(timeout / 4, self.renew, (parent,))

    def stop(self, parent: Any) -> None:
        if self._tref is not None:
            self._tref.cancel()
            self._tref = None

    shutdown = stop

    def renew(self, parent: Any) -> int:
        """Renew the held tasks now; returns how many entries were renewed."""
        consumer = getattr(parent, "task_consumer", None)
        channel: Any = getattr(consumer, "channel", None)
        qos = getattr(channel, "qos", None)
        key = getattr(channel, "unacked_index_key", None)
        if channel is None or qos is None or key is None:
            return 0  # not the Redis transport: nothing to renew
        held = [tag for tag in list(qos._delivered) if tag not in qos._dirty]
        if not held:
            return 0
        now = time.time()
        try:
            with channel.conn_or_acquire() as client:
                return int(client.zadd(key, dict.fromkeys(held, now), xx=True, ch=True) or 0)
        except Exception as exc:  # the broker away: the consumer reconnects; renew next turn
            log.debug("could not renew %d held tasks: %s", len(held), exc)
            return 0


log = logging.getLogger(__name__)
app = Celery("reelwatch", include=["workers.tasks"])
app.steps["consumer"].add(RenewHeldTasks)
_current: dict[str, Settings] = {}


def configure(settings: Settings) -> Celery:
    """Point the app (and the tasks' pipeline) at ``settings``; call before sending tasks."""
    from reelwatch import redact
    from workers import tasks

    # Workers log broker, store and mail errors: mask the settings' secrets in them.
    redact.install(settings)
    _current["settings"] = settings
    config = celery_config(settings)
    changed = any(app.conf.get(k) != config[k] for k in ("broker_url", "result_backend"))
    app.conf.update(config)
    if changed:
        # Celery caches the result backend and the producer pool on first use; a process
        # that switches broker (tests, a CLI that configures after import) must drop them.
        app._backend_cache = None
        app._local.__dict__.pop("backend", None)
        app.__dict__.pop("amqp", None)
        app.close()
    tasks.reset_pipeline()
    return app


def current_settings() -> Settings:
    if "settings" not in _current:
        _current["settings"] = get_settings()
        app.conf.update(celery_config(_current["settings"]))
    return _current["settings"]


app.conf.update(celery_config(current_settings()))
