"""Run a discovery crawl: :func:`crawl` in the caller, :func:`main` in a subprocess.

Scrapy runs on Twisted, whose reactor cannot be restarted within a process; the CLI and the
Celery workers crawl many times per process, so each crawl runs in a fresh
``python -m crawler.runner JOB REPORT`` process. The job file carries the Scrapy settings
derived from the caller's settings (so the child neither re-reads the environment nor sees the
rest of the settings tree, secrets included) and the spider's arguments; the child writes posts
as JSON lines to the file named in those Scrapy settings and a small JSON report saying how the
crawl ended.
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

from crawler.scrapy_settings import scrapy_settings
from crawler.sources import get_source
from reelwatch.errors import InputError, PermanentError, ReelwatchError, TransientError
from reelwatch.models import Post, normalize_hashtag
from reelwatch.settings import PROJECT_ROOT, Settings

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


def crawl(
    settings: Settings,
    platform: str,
    hashtag: str,
    limit: int | None = None,
    watch: str | None = None,
) -> list[Post]:
    """Discover up to ``limit`` posts (default ``settings.crawl.default_limit``) for a hashtag.

    Posts come newest first, each at most once. Raises :class:`InputError` for an unknown
    platform or hashtag or a platform without a configured URL, :class:`TransientError`
    (:class:`CrawlInterrupted` when some posts were found) when the platform keeps refusing
    (429/5xx after retries, garbage instead of data), :class:`PermanentError` for answers
    retrying cannot change (403, robots.txt).
    """
    source = get_source(platform)
    base_url = source.base_url(settings)
    tag = normalize_hashtag(hashtag)
    if not tag or not all(c.isalnum() or c == "_" for c in tag):
        raise InputError(f"{hashtag!r} is not a hashtag (letters, digits and _ only)")
    limit = settings.crawl.default_limit if limit is None else limit
    if limit < 0:
        raise InputError(f"limit must be 0 or more, not {limit}")
    if limit == 0:
        return []

    with tempfile.TemporaryDirectory(prefix="reelwatch-crawl-") as tmp:
        job_file, posts_file, report_file = (Path(tmp) / n for n in ("job", "posts", "report"))
        job = {
            "scrapy_settings": scrapy_settings(settings, posts_file=posts_file),
            "spider_args": {
                "platform": source.name,
                "base_url": base_url,
                "hashtag": tag,
                "limit": limit,
                "page_size": settings.crawl.page_size,
                "watch": watch,
            },
        }
        job_file.write_text(json.dumps(job))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH")) if p
        )
        timeout = _timeout_s(settings, limit)
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "crawler.runner", str(job_file), str(report_file)],
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise TransientError(
                f"crawling #{tag} on {source.name} took longer than {timeout:.0f} s; gave up"
            ) from exc
        if proc.stderr:
            logger.debug("crawl subprocess stderr:\n%s", proc.stderr)
        posts = _read_posts(posts_file)[:limit]
        report = _read_report(report_file)
        if report is None or report.get("status") == "bug":
            detail = (report or {}).get("message") or proc.stderr[-4000:]
            raise RuntimeError(
                f"the crawl subprocess failed (exit {proc.returncode}) for #{tag} on "
                f"{source.name}:\n{detail}"
            )
    if report["status"] == "failed":
        kind, message = report["kind"], report["message"]
        if kind == "transient" and posts:
            raise CrawlInterrupted(message, posts)
        raise _ERRORS[kind](message)
    return posts


def _timeout_s(settings: Settings, limit: int) -> float:
    """A ceiling for one crawl: every page timing out on every retry, plus start-up.

    Generous on purpose; it only exists so a wedged subprocess cannot hang a worker.
    """
    crawl = settings.crawl
    pages = math.ceil(limit / max(crawl.page_size, 1)) + 2
    per_request = crawl.timeout_s + crawl.download_delay + 60.0
    return 60.0 + pages * (crawl.retry_times + 1) * per_request


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
    from scrapy.crawler import CrawlerProcess

    process = CrawlerProcess(job["scrapy_settings"])
    spider_args = job["spider_args"]
    crawler = process.create_crawler(get_source(spider_args["platform"]).spider)
    process.crawl(crawler, **spider_args)
    process.start()

    stats = crawler.stats.get_stats() if crawler.stats else {}
    spider_errors = {k: v for k, v in stats.items() if str(k).startswith("spider_exceptions/")}
    failure = getattr(crawler.spider, "failure", None)
    if failure is not None:
        return {"status": "failed", "kind": failure.kind, "message": failure.message}
    if spider_errors:
        return {"status": "bug", "message": f"the spider raised: {spider_errors}"}
    return {"status": "ok"}


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


if __name__ == "__main__":
    sys.exit(main())
