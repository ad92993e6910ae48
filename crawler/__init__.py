"""Discovery: find posts on platforms by hashtag, and the local replica platform.

Public interface:

- :func:`crawl_run` (``crawler.runner.crawl_run``): posts for one query (hashtag, search,
  account or URL) on one platform, listed by its source in a subprocess, with how the crawl
  ended; :func:`crawl` returns just the posts;
- :func:`ytdlp_extractors`: yt-dlp extractors for platforms yt-dlp does not know (the replica's
  post and account pages).

``crawl`` is loaded on first use so that ``python -m crawler.runner`` and
``python -m crawler.replica`` do not import their own module twice, and so that importing
the package stays cheap for code that only needs the replica.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crawler.runner import CrawlInterrupted, CrawlResult, crawl, crawl_run, reason_of


def ytdlp_extractors() -> list[type]:
    """InfoExtractor classes the download worker must register before yt-dlp's own.

    yt-dlp tries extractors in the order they were added and its generic extractor claims
    every URL, so build ``YoutubeDL(params, auto_init=False)``, call
    ``ydl.add_info_extractor(cls())`` for each class, then ``ydl.add_default_info_extractors()``.
    """
    from crawler.replica.ytdlp import ReplicaIE, ReplicaUserIE

    return [ReplicaIE, ReplicaUserIE]


def __getattr__(name: str) -> Any:
    if name in ("crawl", "crawl_run", "CrawlInterrupted", "CrawlResult", "reason_of"):
        from crawler import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'crawler' has no attribute {name!r}")


__all__ = [
    "CrawlInterrupted",
    "CrawlResult",
    "crawl",
    "crawl_run",
    "reason_of",
    "ytdlp_extractors",
]
