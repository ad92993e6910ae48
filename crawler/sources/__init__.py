"""The registry of discovery sources: one explicit tuple, checked for unique names.

To add a source, see :mod:`crawler.sources.base`, then list it in ``SOURCES``.
"""

from __future__ import annotations

from crawler.sources.base import CrawlFailure, DiscoverySpider, Source
from crawler.sources.replica import ReplicaSource
from crawler.sources.tiktok import TikTokSource, TikTokSpider
from reelwatch.errors import InputError

SOURCES: tuple[type[Source], ...] = (TikTokSource, ReplicaSource)


def _check_unique(sources: tuple[type[Source], ...]) -> dict[str, type[Source]]:
    by_name: dict[str, type[Source]] = {}
    for source in sources:
        if source.name in by_name:
            raise ValueError(
                f"two sources are named {source.name!r}: "
                f"{by_name[source.name].__qualname__} and {source.__qualname__}"
            )
        by_name[source.name] = source
    return by_name


_BY_NAME = _check_unique(SOURCES)


def source_names() -> list[str]:
    return [s.name for s in SOURCES]


def get_source(platform: str) -> type[Source]:
    """The source for ``--platform``; InputError naming the known ones when there is none."""
    source = _BY_NAME.get(platform.strip().lower())
    if source is None:
        raise InputError(
            f"unknown platform {platform!r}; known platforms: {', '.join(source_names())}"
        )
    return source


__all__ = [
    "SOURCES",
    "CrawlFailure",
    "DiscoverySpider",
    "ReplicaSource",
    "Source",
    "TikTokSource",
    "TikTokSpider",
    "get_source",
    "source_names",
]
