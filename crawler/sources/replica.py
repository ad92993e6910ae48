"""The local replica platform as a source: TikTok's structure, so TikTok's spider."""

from __future__ import annotations

from crawler.sources.base import Source
from crawler.sources.tiktok import TikTokSpider


class ReplicaSource(Source):
    """The replica served by :mod:`crawler.replica`, at ``settings.crawl.replica_url``."""

    name = "replica"
    spider = TikTokSpider
    url_setting = "replica_url"
    url_hint = " (start one with: python -m crawler.replica --site DIR)"
