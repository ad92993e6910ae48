"""One way to build a yt-dlp client: reelwatch's extractors first, its chatter in our logs.

Both listing (:mod:`crawler.sources.ytdlp`) and downloading (:mod:`workers.download`) need a
``YoutubeDL`` that knows the replica's pages (yt-dlp tries extractors in the order they were
added and its generic extractor claims every URL, so ours go first) and that keeps yt-dlp's
output out of the user's terminal; its errors come back as exceptions.

A download's client (``python_sockets_only=True``) keeps only the request handlers that dial
through Python's ``socket`` module (urllib, requests, websockets), so that the download guard
(:mod:`workers.netguard`) sees every connection; ``curl_cffi``, when installed, dials from C.
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


PYTHON_SOCKET_HANDLERS = frozenset({"Urllib", "Requests", "Websockets"})
"""yt-dlp request handlers (``RH_KEY``) whose connections go through Python's ``socket``."""


def new_youtube_dl(
    params: dict[str, Any], *, python_sockets_only: bool = False
) -> yt_dlp.YoutubeDL:
    """A ``YoutubeDL`` with ``params`` (quiet, logging to :class:`QuietLogger` unless they say
    otherwise) and reelwatch's extractors registered ahead of yt-dlp's own;
    ``python_sockets_only`` leaves out request handlers that dial outside Python."""
    ydl = yt_dlp.YoutubeDL(
        {"quiet": True, "no_warnings": True, "noprogress": True, "logger": QuietLogger(), **params},
        auto_init=False,
    )
    if python_sockets_only:
        _keep_python_socket_handlers(ydl)
    for extractor in ytdlp_extractors():
        ydl.add_info_extractor(extractor())
    ydl.add_default_info_extractors()
    return ydl


def _keep_python_socket_handlers(ydl: yt_dlp.YoutubeDL) -> None:
    # yt-dlp builds its request director lazily (a cached property) from every registered
    # handler; build it first, from the handlers that use Python sockets only.
    from yt_dlp.networking.common import _REQUEST_HANDLERS, _RH_PREFERENCES

    handlers = [h for key, h in _REQUEST_HANDLERS.items() if key in PYTHON_SOCKET_HANDLERS]
    director = ydl.build_request_director(handlers, _RH_PREFERENCES)
    previous = ydl.__dict__.pop("_request_director", None)
    if previous is not None:
        previous.close()
    ydl.__dict__["_request_director"] = director
