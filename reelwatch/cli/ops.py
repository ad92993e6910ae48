"""Operational commands: ``crawl``, ``watch``, ``worker``, ``beat``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from reelwatch.cli import console, settings_of
from reelwatch.errors import InputError
from reelwatch.settings import Settings

if TYPE_CHECKING:
    from reelwatch.watches import WatchOptions
    from workers.pipeline import Discovery

watch_app = typer.Typer(help="Watches: saved hashtag crawls.", no_args_is_help=True)


@contextmanager
def replica_running(settings: Settings, platform: str) -> Iterator[None]:
    """Serve the demo's replica site for the duration when crawling ``replica`` without one."""
    from crawler.replica.server import ReplicaServer
    from crawler.sources import ReplicaSource

    if platform != "replica" or ReplicaSource.configured_base_url(settings):
        yield
        return

    site = settings.home / "demo" / "site"
    if not (site / "site.json").exists():
        raise InputError(
            "no replica platform: run `reelwatch demo` once to generate its site, or serve one "
            "with `python -m crawler.replica --site DIR` and set "
            "REELWATCH_CRAWL__SOURCES__REPLICA__BASE_URL"
        )
    settings.download.allow_private_hosts = True
    with ReplicaServer(site) as server:
        ReplicaSource.set_base_url(settings, server.base_url)
        try:
            yield
        finally:
            ReplicaSource.set_base_url(settings, None)


def progress_bar(on: Console | None = None) -> Progress:
    """A progress bar on ``on`` (default: stdout; commands printing JSON pass stderr's)."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=on or console,
        transient=False,
    )


def run_hashtags(
    settings: Settings,
    platform: str,
    hashtags: list[str],
    limit: int | None,
    watch: WatchOptions | str | None,
) -> list[str]:
    """Discover posts for each hashtag and start their chains; returns keys sent for work.

    ``watch`` (its options, or just a name) goes with every chain, so its recipients and
    minimum confidence apply whether the chains run here or on workers; ``limit`` wins over
    the watch's.
    """
    from reelwatch.watches import WatchOptions
    from workers.app import configure
    from workers.tasks import pipeline

    configure(settings)
    options = WatchOptions.of(watch)
    sent: list[str] = []
    found = []
    with progress_bar() as progress:
        for tag in hashtags:
            task = progress.add_task(f"crawl #{tag}", total=None)
            discovery = pipeline().discover_run(platform, tag, limit=limit, watch=options)
            discovery.todo = [k for k in discovery.todo if k not in sent]
            n = len(discovery.posts)
            progress.update(
                task,
                total=n,
                completed=n,
                description=f"#{tag}: {n} posts, {len(discovery.todo)} new",
            )
            sent += process_posts(settings, discovery.todo, options, progress, f"#{tag}")
            found.append(discovery)
    finish_processing(settings, found)
    return sent


def process_posts(
    settings: Settings,
    keys: list[str],
    watch: WatchOptions,
    progress: Progress,
    label: str,
) -> list[str]:
    """Start the per-post chain of each key (in-process or on the queue), with progress.

    In-process, posts go in groups of ``workers.batch_posts``: the next posts download
    while a group is matched, and a group is fingerprinted together (shared model batches)
    before each post's chain runs on the cached fingerprints."""
    from reelwatch.timing import stage
    from workers.pipeline import DOWNLOAD_AHEAD, downloads_ahead
    from workers.tasks import pipeline, start_post

    verb = "process" if settings.eager else "queue"
    work = progress.add_task(f"{verb} {label}", total=len(keys))
    size = settings.workers.batch_posts if settings.eager else 1
    with stage("process"), downloads_ahead(settings, keys, max(DOWNLOAD_AHEAD, size)) as ready:
        for group in (keys[i : i + size] for i in range(0, len(keys), size)):
            for key in group:
                ready(key)
            if len(group) > 1:
                pipeline().fingerprint_many(group)
            for key in group:
                start_post(key, watch)
                progress.advance(work)
    return list(keys)


def finish_processing(settings: Settings, found: list[Discovery]) -> None:
    """After in-process chains: send alerts held for a digest (there is no beat to flush
    them) and count the posts that failed into each crawl's recorded run."""
    if not settings.eager or not any(d.todo for d in found):
        return
    from triage.alerts import flush_pending
    from workers.tasks import pipeline

    p = pipeline()
    flush_pending(p.store, p.notifiers, settings=settings)
    for discovery in found:
        p.record_failures(discovery)


def _report(settings: Settings, keys: list[str]) -> None:
    from triage.stores import open_store

    if not keys:
        console.print("nothing new")
        return
    if not settings.eager:
        from reelwatch.redact import redact_url

        console.print(f"{len(keys)} post(s) queued on {redact_url(settings.broker_url)}")
        return
    table = Table("post", "account", "state", "matches / error")
    with open_store(settings) as store:
        for key in keys:
            post = store.get_post(key)
            if post is None:
                continue
            matches = store.list_matches(post_key=key)
            detail = (
                post.error
                or ", ".join(f"{m.title} {m.score:.2f} {m.confidence.value}" for m in matches)
                or "-"
            )
            table.add_row(post.url, f"@{post.author.handle}", post.state.value, detail)
    console.print(table)


@watch_app.command("list")
def watch_list(ctx: typer.Context) -> None:
    """List the watches in the watchlist, with the alert settings each one runs with."""
    from crawler.state import CrawlState
    from reelwatch.watches import format_duration, load_watches

    settings = settings_of(ctx)
    table = Table(
        "name", "platform", "hashtags", "limit", "max age", "schedule", "alert at", "to", "last run"
    )
    state = CrawlState.of_home(settings.home)
    for w in load_watches(settings.watchlist_path):
        # A value the watch leaves to the settings is shown with "(default)".
        tier = w.min_confidence.value if w.min_confidence else None
        table.add_row(
            w.name,
            w.platform,
            " ".join(f"#{h}" for h in w.hashtags),
            str(w.limit),
            format_duration(w.max_age_s) if w.max_age_s else "-",
            w.schedule,
            tier or f"{settings.alerts.min_confidence.value} (default)",
            ", ".join(w.recipients) or f"{', '.join(settings.email.recipients)} (default)",
            _last_run(state, w.name),
        )
    state.close()
    console.print(table)


def _last_run(state: Any, watch: str) -> str:
    """The latest run of each of a watch's queries, added up: ``12-01 21:40 60 found, 58 new,
    2 known, 0 failed``; failures named."""
    latest: dict[str, Any] = {}
    for run in state.runs(watch=watch, limit=200):
        latest.setdefault(run.query, run)
    if not latest:
        return "never"
    runs = list(latest.values())
    when = max(r.started_at for r in runs).strftime("%m-%d %H:%M")
    totals = [sum(getattr(r, k) for r in runs) for k in ("found", "new", "known", "failed")]
    line = f"{when} {totals[0]} found, {totals[1]} new, {totals[2]} known, {totals[3]} failed"
    errors = [f"{r.query}: {r.error}" for r in runs if r.error]
    return line + ("; " + "; ".join(errors) if errors else "")


@watch_app.command("run")
def watch_run(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Watch name (see `watch list`).")],
) -> None:
    """Run one watch now: crawl each of its hashtags and process what is new.

    The watch's own recipients, minimum confidence, limit and max age go with its tasks, the
    same as when beat fires it.
    """
    from reelwatch.watches import get_watch

    settings = settings_of(ctx)
    settings.ensure_home()
    w = get_watch(settings.watchlist_path, name)
    with replica_running(settings, w.platform):
        sent = run_hashtags(settings, w.platform, w.hashtags, None, watch=w.options())
    _report(settings, sent)


def worker(
    ctx: typer.Context,
    queues: Annotated[
        str,
        typer.Option(
            help="Comma-separated queues: crawl, media, match, land, and gpu on a machine with "
            "CUDA (fingerprint and match go to gpu when workers.match_queue is gpu)."
        ),
    ] = "crawl,media,match,land",
    concurrency: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
) -> None:
    """Run a Celery worker (needs REELWATCH_BROKER_URL, e.g. redis://127.0.0.1:6379/0).

    Several workers, on one machine or many, may serve the same queues of one broker; each
    task runs on one of them. Workers on other machines need the same data home (a shared
    mount; see docs/architecture.md, "Scaling out").
    """
    import logging
    import os

    from workers.app import QUEUES, configure, gpu_unavailable_reason

    settings = settings_of(ctx)
    if settings.eager:
        raise InputError("no broker: set REELWATCH_BROKER_URL (e.g. redis://127.0.0.1:6379/0)")
    wanted = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = set(wanted) - set(QUEUES)
    if unknown or not wanted:
        named = ", ".join(sorted(unknown)) or repr(queues)
        raise InputError(f"unknown queue(s): {named}; known: {', '.join(QUEUES)}")
    if "gpu" in wanted:
        why = gpu_unavailable_reason()
        if why:
            raise InputError(f"this machine cannot serve the gpu queue (no usable CUDA): {why}")
        if settings.workers.match_queue != "gpu":
            typer.echo(
                "reelwatch: warning: fingerprint and match go to the match queue "
                "(workers.match_queue); set REELWATCH_WORKERS__MATCH_QUEUE=gpu everywhere "
                "for this worker's gpu queue to get work",
                err=True,
            )
    settings.ensure_home()
    app = configure(settings)
    # The CLI keeps Celery's loggers at WARNING unless -v; a worker logs at its own level
    # (each task received and done, and the post each step works on).
    for name in ("celery", "workers"):
        logging.getLogger(name).setLevel(loglevel.upper())
    served = ",".join(wanted)
    app.worker_main(
        [
            "worker",
            "-Q",
            served,
            "-c",
            str(concurrency),
            "--loglevel",
            loglevel,
            "--without-gossip",
            "--without-mingle",
            # Unique per process, so several workers on one host keep their own reply queues.
            "-n",
            f"reelwatch-{served.replace(',', '-')}-{os.getpid()}@%h",
        ]
    )


def beat(
    ctx: typer.Context,
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
    show: Annotated[
        bool, typer.Option("--show", help="Print the schedule built from the watchlist and exit.")
    ] = False,
) -> None:
    """Run Celery beat: crawl each watch's hashtags on its crontab (needs a Redis broker).

    Each watch's options travel with its crawls. The schedule file under the data home keeps
    the last runs across restarts, and a claim in Redis per firing lets two beats run against
    one Redis without firing anything twice.
    """
    import json
    import logging

    from reelwatch.watches import load_watches
    from workers.schedule import beat_schedule

    settings = settings_of(ctx)
    schedule = beat_schedule(load_watches(settings.watchlist_path), settings)
    if show:
        table = Table("entry", "task", "schedule", "args", "watch")
        for name, entry in schedule.items():
            carried = entry.get("kwargs", {}).get("watch")
            table.add_row(
                name,
                entry["task"],
                str(entry["schedule"]),
                repr(entry.get("args", ())),
                json.dumps(carried) if carried else "",
            )
        console.print(table)
        return
    if settings.eager:
        raise InputError("no broker: set REELWATCH_BROKER_URL (e.g. redis://127.0.0.1:6379/0)")
    from workers.claims import redis_url

    if redis_url(settings) is None:
        raise InputError(
            "beat keeps its lock in Redis: use a redis:// broker or set REELWATCH_RESULT_BACKEND "
            "to redis://HOST:PORT/DB"
        )
    from workers.app import configure

    settings.ensure_home()
    app = configure(settings)
    app.conf.beat_schedule = schedule
    for name in ("workers", "celery.beat"):
        logging.getLogger(name).setLevel(loglevel.upper())
    app.Beat(
        loglevel=loglevel,
        scheduler="workers.beat:LockingScheduler",
        schedule=str(settings.beat_schedule_path),
    ).run()
