"""Download a post's video with yt-dlp into content-addressed storage.

Files land at ``media/<sha256[:2]>/<sha256>.<ext>`` so a repost of the same video is stored
and fingerprinted once, and running the step twice is harmless. Limits are enforced by yt-dlp
itself (``max_filesize`` aborts mid-download, ``match_filter`` rejects long videos before
any byte is fetched). Only http(s) URLs that resolve to public addresses are fetched unless
``download.allow_private_hosts`` is set.
"""

from __future__ import annotations

import ipaddress
import logging
import shutil
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from yt_dlp.utils import DownloadError, match_filter_func

from crawler.ytdlp import new_youtube_dl
from matcher.decode import sha256_file
from reelwatch.errors import InputError, PermanentError, TransientError
from reelwatch.settings import Settings

log = logging.getLogger(__name__)

_TRANSIENT_MARKERS = (
    "HTTP Error 429",
    "HTTP Error 500",
    "HTTP Error 502",
    "HTTP Error 503",
    "HTTP Error 504",
    "timed out",
    "Connection refused",
    "Connection reset",
    "Temporary failure in name resolution",
    "Remote end closed connection",
)


@dataclass(frozen=True)
class Downloaded:
    path: Path
    sha256: str
    bytes: int


def check_url_allowed(url: str, allow_private: bool) -> None:
    """Refuse non-http(s) URLs and, unless allowed, hosts on private or loopback addresses."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise InputError(f"not an http(s) URL: {url[:200]!r}")
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parsed.hostname, parsed.port or 443, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise TransientError(f"cannot resolve {parsed.hostname}: {exc}") from exc
    for info in infos:
        addr = ipaddress.ip_address(info[4][0])
        if not addr.is_global:
            raise PermanentError(
                f"refusing to download from {parsed.hostname} ({addr}): not a public address "
                "(set download.allow_private_hosts to allow it)"
            )


def store_content_addressed(src: Path, media_dir: Path) -> Downloaded:
    """Move ``src`` to its content address under ``media_dir``; an existing copy wins."""
    sha = sha256_file(src)
    ext = src.suffix.lower() or ".bin"
    dest = media_dir / sha[:2] / f"{sha}{ext}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        src.unlink(missing_ok=True)
    else:
        shutil.move(str(src), dest)
    return Downloaded(path=dest, sha256=sha, bytes=dest.stat().st_size)


def _ydl_options(settings: Settings, workdir: Path) -> dict[str, Any]:
    limits = settings.download
    return {
        "outtmpl": str(workdir / "%(id)s.%(ext)s"),
        "format": "best[ext=mp4]/best",
        "noplaylist": True,
        "max_filesize": int(limits.max_filesize_mb * 1024 * 1024),
        "match_filter": match_filter_func(f"duration <=? {limits.max_duration_s:g}"),
        "socket_timeout": limits.socket_timeout_s,
        "retries": limits.retries,
        "http_headers": {"User-Agent": settings.crawl.user_agent},
    }


def download(settings: Settings, url: str) -> Downloaded:
    """Fetch the video behind ``url`` (a post page or a direct media URL).

    Raises ``TransientError`` for faults worth retrying (429, 5xx, timeouts) and
    ``PermanentError`` for the rest (removed video, over the size or duration limit).
    """
    check_url_allowed(url, settings.download.allow_private_hosts)
    workdir = settings.media_dir / "tmp" / uuid.uuid4().hex
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        with new_youtube_dl(_ydl_options(settings, workdir)) as ydl:
            try:
                info = ydl.extract_info(url, download=True)
            except DownloadError as exc:
                message = str(exc).removeprefix("ERROR: ").strip()
                if any(marker in message for marker in _TRANSIENT_MARKERS):
                    raise TransientError(f"download of {url} failed: {message}") from exc
                raise PermanentError(f"download of {url} failed: {message}") from exc
        files = [p for p in workdir.iterdir() if p.is_file() and not p.name.endswith(".part")]
        if info is None:
            raise PermanentError(
                f"{url}: skipped, longer than {settings.download.max_duration_s:g} s"
            )
        if not files:
            raise PermanentError(
                f"{url}: nothing downloaded (larger than "
                f"{settings.download.max_filesize_mb:g} MB or no downloadable format)"
            )
        return store_content_addressed(
            max(files, key=lambda p: p.stat().st_size), settings.media_dir
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
