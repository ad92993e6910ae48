"""Run a discovery crawl: :func:`crawl_run` in the caller, :func:`main` in a subprocess.

Scrapy runs on Twisted, whose reactor cannot be restarted within a process, and a browser
source drives Chromium through Playwright, which must not share a process with Celery's
pool; the CLI and the workers crawl many times per process, so each crawl runs in a fresh
``python -m crawler.runner JOB REPORT`` process. The job file carries the crawl settings and
the data home (so the child neither re-reads the environment nor sees the rest of the
settings tree: store, mail and board secrets stay in the parent) and what to list; the child
writes posts as JSON lines as they are found and a small JSON report saying how the crawl
ended.
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from crawler.sources import get_source
from crawler.sources.base import MAX_LIMIT, Collector, CrawlJob, Query, SourceFailure
from reelwatch.errors import InputError, PermanentError, ReelwatchError, TransientError
from reelwatch.models import Post
from reelwatch.settings import PROJECT_ROOT, CrawlSettings, Settings

logger = logging.getLogger(__name__)

_ERRORS: dict[str, type[ReelwatchError]] = {
    "input": InputError,
    "transient": TransientError,
    "permanent": PermanentError,
}


class CrawlInterrupted(TransientError):
    """The platform failed mid-crawl; ``posts`` holds what was found before it did."""

    def __init__(self, message: str, posts: list[Post]) -> None:
        super().__init__(message)
        self.posts = posts
        self.reason = "interrupted"


@dataclass
class CrawlResult:
    """What one crawl listed and why it ended."""

    platform: str
    query: Query
    posts: list[Post] = field(default_factory=list)
    stop: str | None = None
    """``limit``, ``exhausted``, ``max_age`` or ``no_new``."""
    pages: int = 0
    too_old: int = 0
    cursor: str | None = None


def reason_of(error: BaseException) -> str:
    """The short reason code a source gave for a failure (``captcha``, ``empty_body``...)."""
    return str(getattr(error, "reason", "") or type(error).__name__)


def crawl_run(
    settings: Settings,
    platform: str,
    query: Query | str,
    limit: int | None = None,
    watch: str | None = None,
    max_age_s: float | None = None,
    on_found: Callable[[int], None] | None = None,
) -> CrawlResult:
    """List up to ``limit`` posts (default ``settings.crawl.default_limit``) for ``query``.

    ``query`` is a :class:`Query` or text (``#tag``, ``@account``, ``search:words``, a URL,
    or a bare hashtag). Posts come newest first where the platform orders them so, each at
    most once. Raises :class:`InputError` for an unknown platform, a query the source cannot
    list or a source without its settings, :class:`TransientError` (:class:`CrawlInterrupted`
    when some posts were found) when the platform keeps refusing (429/5xx after retries,
    garbage, a captcha), :class:`PermanentError` for answers retrying cannot change (403,
    robots.txt, an empty answer to unsigned requests, an expired login). Errors carry a
    ``reason`` code (:func:`reason_of`). ``on_found`` is called with the running count of
    posts found while the crawl goes on (for progress displays).
    """
    source_cls = get_source(platform)
    q = query if isinstance(query, Query) else Query.parse(query)
    source = source_cls(settings)
    source.check(q)
    limit = settings.crawl.default_limit if limit is None else limit
    if not 0 <= limit <= MAX_LIMIT:
        raise InputError(f"limit must be between 0 and {MAX_LIMIT}, not {limit}")
    limit = min(limit, source.limit_cap)
    result = CrawlResult(platform=source.name, query=q)
    if limit == 0:
        return result

    with tempfile.TemporaryDirectory(prefix="reelwatch-crawl-") as tmp:
        job_file, posts_file, report_file = (Path(tmp) / n for n in ("job", "posts", "report"))
        job = {
            "source": source.name,
            "home": str(settings.home),
            "crawl": settings.crawl.model_dump(mode="json"),
            "query": {"kind": q.kind, "value": q.value},
            "limit": limit,
            "watch": watch,
            "max_age_s": max_age_s,
            "posts_file": str(posts_file),
        }
        job_file.write_text(json.dumps(job))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH")) if p
        )
        timeout = _timeout_s(source, limit)
        returncode, stderr = _run_child(job_file, report_file, posts_file, env, timeout, on_found)
        if returncode is None:
            error = TransientError(f"listing {q} on {source.name} took longer than {timeout:.0f} s")
            error.reason = "timeout"  # type: ignore[attr-defined]
            raise error
        if stderr:
            logger.debug("crawl subprocess stderr:\n%s", stderr)
        result.posts = _read_posts(posts_file)[:limit]
        report = _read_report(report_file)
        if report is None or report.get("status") == "bug":
            detail = (report or {}).get("message") or stderr[-4000:]
            raise RuntimeError(
                f"the crawl subprocess failed (exit {returncode}) listing {q} on "
                f"{source.name}:\n{detail}"
            )
    result.stop = report.get("stop")
    result.pages = int(report.get("pages") or 0)
    result.too_old = int(report.get("too_old") or 0)
    result.cursor = report.get("cursor")
    if report["status"] == "failed":
        kind, message = report["kind"], report["message"]
        if kind == "transient" and result.posts:
            raise CrawlInterrupted(message, result.posts)
        failed = _ERRORS.get(kind, PermanentError)(message)
        failed.reason = report.get("reason") or "error"  # type: ignore[attr-defined]
        raise failed
    return result


def crawl(
    settings: Settings,
    platform: str,
    hashtag: Query | str,
    limit: int | None = None,
    watch: str | None = None,
    max_age_s: float | None = None,
) -> list[Post]:
    """The posts of :func:`crawl_run` (``hashtag`` may be any query text)."""
    return crawl_run(settings, platform, hashtag, limit, watch=watch, max_age_s=max_age_s).posts


def _run_child(
    job_file: Path,
    report_file: Path,
    posts_file: Path,
    env: dict[str, str],
    timeout: float,
    on_found: Callable[[int], None] | None,
) -> tuple[int | None, str]:
    """Run the crawl subprocess; (exit code or None on timeout, its stderr). While it runs,
    ``on_found`` hears how many posts it has written so far."""
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "crawler.runner", str(job_file), str(report_file)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        deadline = time.monotonic() + timeout
        counter = _LineCounter(posts_file)
        try:
            while True:
                try:
                    returncode: int | None = proc.wait(timeout=0.25)
                    break
                except subprocess.TimeoutExpired:
                    if time.monotonic() > deadline:
                        proc.kill()
                        proc.wait()
                        returncode = None
                        break
                if on_found is not None and counter.grew():
                    on_found(counter.lines)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        if on_found is not None:
            counter.grew()
            on_found(counter.lines)
        err.seek(0)
        return returncode, err.read()


class _LineCounter:
    """Counts the lines of a file another process appends to, reading only what is new."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.lines = 0

    def grew(self) -> bool:
        """Read what was appended since the last call; True when lines were added."""
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                added = f.read()
        except OSError:
            return False
        self.offset += len(added)
        new = added.count(b"\n")
        self.lines += new
        return new > 0


def _timeout_s(source: Any, limit: int) -> float:
    """A ceiling for one crawl: every page timing out on every retry, scrolling to the end,
    a screenshot per post, plus start-up. Generous on purpose; it only exists so a wedged
    subprocess cannot hang a worker."""
    crawl = source.settings.crawl
    per_request = source.timeout_s + crawl.download_delay + 60.0
    pages = math.ceil(limit / source.page_size) + 2
    ceiling = 60.0 + pages * (crawl.retry_times + 1) * per_request
    if "browser" in source.needs:
        config = source.config
        ceiling += config.max_scrolls * (config.scroll_wait_s + source.timeout_s)
        ceiling += limit * source.timeout_s if config.screenshots else 0.0
    return ceiling


def _read_posts(path: Path) -> list[Post]:
    if not path.exists():
        return []
    return [Post.model_validate_json(line) for line in path.read_text().splitlines() if line]


def _read_report(path: Path) -> dict[str, Any] | None:
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) else None


# -- the subprocess ---------------------------------------------------------------------------
def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Run one crawl in this process (once per process: Twisted) and describe how it ended."""
    settings = Settings(home=Path(job["home"]), crawl=CrawlSettings.model_validate(job["crawl"]))
    source = get_source(job["source"])(settings)
    query = Query(job["query"]["kind"], job["query"]["value"])
    crawl_job = CrawlJob(
        query=query,
        limit=int(job["limit"]),
        watch=job.get("watch"),
        max_age_s=job.get("max_age_s"),
        captures_dir=settings.home / "captures" / source.name,
    )
    with Path(job["posts_file"]).open("a", encoding="utf-8") as out_file:
        return _run_source(source, crawl_job, out_file)


def _run_source(source: Any, crawl_job: CrawlJob, out_file: IO[str]) -> dict[str, Any]:
    def sink(post: Post) -> None:
        out_file.write(post.model_dump_json() + "\n")
        out_file.flush()

    collector = Collector(limit=crawl_job.limit, max_age_s=crawl_job.max_age_s, sink=sink)
    report: dict[str, Any]
    try:
        source.discover(crawl_job, collector)
        if collector.stop is None:
            collector.stop = "limit" if collector.full else "exhausted"
        report = {"status": "ok"}
    except SourceFailure as failure:
        collector.stop = "failed"
        report = {
            "status": "failed",
            "kind": failure.kind,
            "reason": failure.reason,
            "message": failure.message,
        }
    except ReelwatchError as exc:
        collector.stop = "failed"
        kind = next((k for k, cls in _ERRORS.items() if isinstance(exc, cls)), "permanent")
        report = {"status": "failed", "kind": kind, "reason": "error", "message": str(exc)}
    except _browser_errors() as exc:
        # Chromium died or was killed mid-crawl (its target closed): what was listed before is
        # kept, and the crawl is worth running again.
        collector.stop = "failed"
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        report = {
            "status": "failed",
            "kind": "transient",
            "reason": "browser_crashed",
            "message": f"the browser failed mid-crawl: {first}",
        }
    report.update(
        stop=collector.stop,
        pages=collector.pages,
        too_old=collector.too_old,
        cursor=collector.cursor,
    )
    return report


def _browser_errors() -> tuple[type[BaseException], ...]:
    """Playwright's error class (a browser or page that went away), when Playwright is
    installed; sources that meet it on purpose turn it into a :class:`SourceFailure` first."""
    try:
        from playwright.sync_api import Error
    except ImportError:
        return ()
    return (Error,)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m crawler.runner JOB_FILE REPORT_FILE", file=sys.stderr)
        return 2
    job_file, report_file = (Path(a) for a in args)
    try:
        report = run_job(json.loads(job_file.read_text()))
    except Exception:
        report = {"status": "bug", "message": traceback.format_exc()}
    report_file.write_text(json.dumps(report))
    return 0 if report["status"] == "ok" else 1


__all__ = ["CrawlInterrupted", "CrawlResult", "crawl", "crawl_run", "reason_of"]


if __name__ == "__main__":
    sys.exit(main())
