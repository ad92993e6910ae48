"""The Celery application, configured from the reelwatch settings tree.

Without ``broker_url`` tasks run eagerly in the calling process (the embedded default);
with ``REELWATCH_BROKER_URL=redis://...`` the same tasks run on ``reelwatch worker``
processes. Queues: ``crawl`` (spiders), ``media`` (downloads), ``gpu`` (fingerprint and
match: the heavy part, put GPU workers here), ``land`` (store and alerts).
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from reelwatch.settings import Settings, get_settings

QUEUES = ("crawl", "media", "gpu", "land")

TASK_ROUTES = {
    "reelwatch.crawl": {"queue": "crawl"},
    "reelwatch.watch": {"queue": "crawl"},
    "reelwatch.download": {"queue": "media"},
    "reelwatch.fingerprint": {"queue": "gpu"},
    "reelwatch.match": {"queue": "gpu"},
    "reelwatch.land": {"queue": "land"},
    "reelwatch.alert": {"queue": "land"},
    "reelwatch.flush_alerts": {"queue": "land"},
    "reelwatch.sources_check": {"queue": "crawl"},
}

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
        "task_routes": TASK_ROUTES,
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
    from workers import tasks

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
