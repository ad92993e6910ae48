"""One way to build a yt-dlp client: reelwatch's extractors first, its chatter in our logs.

Both listing (:mod:`crawler.sources.ytdlp`) and downloading (:mod:`workers.download`) need a
``YoutubeDL`` that knows the replica's pages (yt-dlp tries extractors in the order they were
added and its generic extractor claims every URL, so ours go first) and that keeps yt-dlp's
output out of the user's terminal; its errors come back as exceptions.
"""

from __future__ import annotations

import logging
from typing import Any

import yt_dlp

from crawler import ytdlp_extractors

logger = logging.getLogger("crawler.ytdlp")


class QuietLogger:
    """yt-dlp logger: debug and info to our debug log, warnings and errors to our info log."""

    def debug(self, msg: str) -> None:
        logger.debug("yt-dlp: %s", msg)

    info = debug

    def warning(self, msg: str) -> None:
        logger.info("yt-dlp: %s", msg)

    def error(self, msg: str) -> None:
        logger.info("yt-dlp: %s", msg)


def new_youtube_dl(params: dict[str, Any]) -> yt_dlp.YoutubeDL:
    """A ``YoutubeDL`` with ``params`` (quiet, logging to :class:`QuietLogger` unless they say
    otherwise) and reelwatch's extractors registered ahead of yt-dlp's own."""
    ydl = yt_dlp.YoutubeDL(
        {"quiet": True, "no_warnings": True, "noprogress": True, "logger": QuietLogger(), **params},
        auto_init=False,
    )
    for extractor in ytdlp_extractors():
        ydl.add_info_extractor(extractor())
    ydl.add_default_info_extractors()
    return ydl
