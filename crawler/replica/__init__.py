"""The replica platform: a local, TikTok-shaped site for the demo and the tests.

:mod:`crawler.replica.site` writes a site folder, :class:`ReplicaServer` serves it, and
:mod:`crawler.replica.ytdlp` teaches yt-dlp to download from it.
"""

from __future__ import annotations

from crawler.replica.server import ALWAYS, Faults, ReplicaServer
from crawler.replica.site import ReplicaVideo, build_site, challenge_id, load_items

__all__ = [
    "ALWAYS",
    "Faults",
    "ReplicaServer",
    "ReplicaVideo",
    "build_site",
    "challenge_id",
    "load_items",
]
