"""The registry of discovery sources: one explicit tuple, checked for unique names.

To add a source, see :mod:`crawler.sources.base`, then list it in ``SOURCES``.
"""

from __future__ import annotations

from crawler.sources.base import (
    Collector,
    CrawlJob,
    DiscoverySpider,
    Query,
    Source,
    SourceFailure,
    SourceSettings,
)
from crawler.sources.instagram import InstagramSource
from crawler.sources.tiktok import ReplicaSource, TikTokSource, TikTokSpider
from crawler.sources.x import XSource
from crawler.sources.youtube import YouTubeSource
from crawler.sources.ytdlp import YtDlpSource
from reelwatch.registry import index_by_name, lookup

SOURCES: tuple[type[Source], ...] = (
    TikTokSource,
    InstagramSource,
    XSource,
    YouTubeSource,
    YtDlpSource,
    ReplicaSource,
)


_BY_NAME = index_by_name("source", SOURCES, lambda s: s.name)


def source_names() -> list[str]:
    return [s.name for s in SOURCES]


def get_source(platform: str) -> type[Source]:
    """The source for ``--platform``; InputError naming the known ones when there is none."""
    return lookup("platform", _BY_NAME, platform.strip().lower())


__all__ = [
    "SOURCES",
    "Collector",
    "CrawlJob",
    "DiscoverySpider",
    "InstagramSource",
    "Query",
    "ReplicaSource",
    "Source",
    "SourceFailure",
    "SourceSettings",
    "TikTokSource",
    "TikTokSpider",
    "XSource",
    "YouTubeSource",
    "YtDlpSource",
    "get_source",
    "source_names",
]
