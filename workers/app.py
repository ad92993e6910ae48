"""The Celery application, configured from the reelwatch settings tree.

Without ``broker_url`` tasks run eagerly in the calling process (the embedded default);
with ``REELWATCH_BROKER_URL=redis://...`` the same tasks run on ``reelwatch worker``
processes. Queues: ``crawl`` (spiders), ``media`` (downloads), ``match`` (fingerprint and
match, the heavy part, on CPU workers), ``gpu`` (the same two tasks when
``workers.match_queue`` sends them to GPU workers instead), ``land`` (store and alerts).
Only a machine with a usable CUDA device serves ``gpu`` (:func:`gpu_unavailable_reason`).
"""

from __future__ import annotations

from typing import Any

from celery import Celery

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
        "broker_transport_options": {"visibility_timeout": 2 * LONGEST_TASK_S},
        "result_backend_transport_options": {"visibility_timeout": 2 * LONGEST_TASK_S},
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
        "enable_utc": True,
    }


app = Celery("reelwatch", include=["workers.tasks"])
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
