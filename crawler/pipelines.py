"""Scrapy item pipeline: append each discovered Post to a JSON-lines file.

This is how the crawl subprocess hands its results to :func:`crawler.crawl`: one
``Post.model_dump_json()`` per line, written as items arrive so a crawl that fails late
still returns what it found.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from scrapy.exceptions import NotConfigured

from reelwatch.models import Post

if TYPE_CHECKING:
    from typing import Self

    from scrapy.crawler import Crawler

OUTPUT_SETTING = "REELWATCH_POSTS_FILE"


class PostJsonLinesPipeline:
    """Writes Posts to the file named by the ``REELWATCH_POSTS_FILE`` Scrapy setting."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        path = crawler.settings.get(OUTPUT_SETTING)
        if not path:
            raise NotConfigured(f"{OUTPUT_SETTING} is not set")
        return cls(Path(path))

    def open_spider(self) -> None:
        self._file = self.path.open("a", encoding="utf-8")

    def close_spider(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def process_item(self, item: Any) -> Any:
        if isinstance(item, Post) and self._file is not None:
            self._file.write(item.model_dump_json() + "\n")
            self._file.flush()
        return item
