"""Download a post's video with yt-dlp into content-addressed storage.

Files land at ``media/<sha256[:2]>/<sha256>.<ext>`` so a repost of the same video is stored
and fingerprinted once, and running the step twice is harmless. Limits are enforced by yt-dlp
itself (``max_filesize`` aborts mid-download, ``match_filter`` rejects long videos before
any byte is fetched).

Only http(s) is fetched, and, unless ``download.allow_private_hosts`` is set, only from public
addresses: the post URL's host is looked up first for an early one-line refusal, and the
download runs inside :func:`workers.netguard.guard`, which checks the address of every
connection yt-dlp, its redirects and its extractors actually dial. The options keep yt-dlp in
the calling thread and on its native downloaders (no external program fetches a URL).
Errors come back in one line, URLs shortened; a full disk leaves no partial file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import os
import re
import shutil
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from yt_dlp.networking.exceptions import RequestError, TransportError
from yt_dlp.utils import DownloadError, match_filter_func

from crawler.ytdlp import new_youtube_dl
from reelwatch.digest import sha256_file
from reelwatch.errors import InputError, PermanentError, TransientError
from reelwatch.settings import Settings
from reelwatch.text import one_line
from workers import netguard

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
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
_DISK_FULL_MARKERS = tuple(os.strerror(code) for code in _DISK_FULL)
_NO_ADAPTER = re.compile(r"No connection adapters were found for '([A-Za-z][A-Za-z0-9+.-]*):")
_BUG_REPORT_TAIL = re.compile(r";? *please report this issue on .*$", re.IGNORECASE)
URL_SHOWN = 120
"""Characters of a URL an error message shows."""
MESSAGE_SHOWN = 400
"""Characters of yt-dlp's own message an error shows."""


@dataclass(frozen=True)
class Downloaded:
    path: Path
    sha256: str
    bytes: int
    media_url: str | None = None
    """The URL the bytes came from, as the downloader reports it (None: not named)."""


def short_url(url: str, limit: int = URL_SHOWN) -> str:
    """``url`` on one line, cut to ``limit`` characters (an error shows a URL once, briefly)."""
    return one_line(url, limit)


def _one_line(message: str, url: str) -> str:
    """yt-dlp's ``message`` on one line, the URL in it shortened, yt-dlp's bug-report tail
    dropped, cut to :data:`MESSAGE_SHOWN` characters."""
    if url:
        message = message.replace(url, short_url(url))
    message = _BUG_REPORT_TAIL.sub("", " ".join(message.split()))
    return message if len(message) <= MESSAGE_SHOWN else message[: MESSAGE_SHOWN - 1] + "…"


def check_url_allowed(url: str, allow_private: bool) -> None:
    """Refuse non-http(s) URLs and, unless allowed, hosts that resolve to private or loopback
    addresses now (an early refusal; :mod:`workers.netguard` checks each connection)."""
    try:
        parsed = urlparse(url)
        hostname, port = parsed.hostname, parsed.port
    except ValueError as exc:
        raise InputError(f"not a valid URL: {short_url(url)!r} ({exc})") from None
    if parsed.scheme not in netguard.ALLOWED_SCHEMES or not hostname:
        raise InputError(f"not an http(s) URL: {short_url(url)!r}")
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(hostname, port or 443, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise TransientError(f"cannot resolve {short_url(hostname)}: {exc}") from exc
    for info in infos:
        reason = netguard.address_refusal(str(info[4][0]))
        if reason is not None:
            raise PermanentError(
                f"refusing to download from {short_url(hostname)}: {reason}; "
                "set download.allow_private_hosts to allow it"
            )


def _disk_full(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _DISK_FULL:
            return True
        current = current.__cause__ or current.__context__
    return any(marker in str(exc) for marker in _DISK_FULL_MARKERS)


def _disk_full_error(settings: Settings, url: str) -> TransientError:
    return TransientError(
        f"no space left on device under {settings.media_dir} while downloading "
        f"{short_url(url)}; nothing was kept (free space and retry)"
    )


def _download_error(
    exc: DownloadError | RequestError,
    guard: netguard.Guard,
    settings: Settings,
    url: str,
) -> Exception:
    """The one-line reelwatch error for a failed yt-dlp download."""
    if guard.refusals:
        hint = "; set download.allow_private_hosts to allow it" if guard.address_refused else ""
        return PermanentError(f"download of {short_url(url)} refused: {guard.refusals[0]}{hint}")
    if _disk_full(exc):
        return _disk_full_error(settings, url)
    message = str(exc).removeprefix("ERROR: ").strip()
    scheme = _NO_ADAPTER.search(message)
    if scheme:  # requests has no adapter for it: a redirect or link to file://, ftp://...
        return PermanentError(
            f"download of {short_url(url)} refused: it leads to a {scheme.group(1)} URL; "
            "only http(s) is fetched"
        )
    shown = _one_line(message, url)
    transient = isinstance(exc, (DownloadError, TransportError))
    if transient and any(marker in message for marker in _TRANSIENT_MARKERS):
        return TransientError(f"download of {short_url(url)} failed: {shown}")
    return PermanentError(f"download of {short_url(url)} failed: {shown}")


def store_content_addressed(src: Path, media_dir: Path) -> Downloaded:
    """Move ``src`` to its content address under ``media_dir``; an existing copy wins.

    The file appears under its address whole or not at all (a copy across file systems goes
    to a temporary name first), and a stored file is never replaced: the address is created by
    a hard link, which fails when it exists (two workers storing one video at once both end
    with the first one's file)."""
    sha = sha256_file(src)
    ext = src.suffix.lower() or ".bin"
    dest = media_dir / sha[:2] / f"{sha}{ext}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not dest.exists():
        try:
            link_new(src, dest)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            partial = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.part")
            try:
                shutil.copyfile(src, partial)
                link_new(partial, dest)
            finally:
                partial.unlink(missing_ok=True)
    src.unlink(missing_ok=True)
    return Downloaded(path=dest, sha256=sha, bytes=dest.stat().st_size)


def link_new(src: Path, dest: Path) -> None:
    """Give ``src``'s bytes the name ``dest`` unless that name exists (then the file there is
    kept as it is): ``os.link`` never replaces a file, where ``os.replace`` would."""
    with contextlib.suppress(FileExistsError):
        os.link(src, dest)


def _media_url(info: dict[str, Any]) -> str | None:
    """The URL yt-dlp fetched the stored file from (its chosen format's)."""
    for entry in info.get("requested_downloads") or [info]:
        media_url = entry.get("url") if isinstance(entry, dict) else None
        if isinstance(media_url, str) and media_url:
            return media_url
    return None


def _ydl_options(settings: Settings, workdir: Path) -> dict[str, Any]:
    limits = settings.download
    return {
        "outtmpl": str(workdir / "%(id)s.%(ext)s"),
        # Formats yt-dlp fetches itself (http(s), HLS, DASH segments): never one that needs
        # an external program (rtmp, rtsp, mms...), which would dial out of the guard's sight.
        "format": "best[ext=mp4][protocol^=http]/best[protocol^=http]/best[protocol^=m3u8]",
        "hls_prefer_native": True,
        "concurrent_fragment_downloads": 1,
        "enable_file_urls": False,
        "noplaylist": True,
        "max_filesize": int(limits.max_filesize_mb * 1024 * 1024),
        "match_filter": match_filter_func(f"duration <=? {limits.max_duration_s:g}"),
        "socket_timeout": limits.socket_timeout_s,
        "retries": limits.retries,
        "http_headers": {"User-Agent": settings.crawl.user_agent},
    }


def download(settings: Settings, url: str) -> Downloaded:
    """Fetch the video behind ``url`` (a post page or a direct media URL).

    Raises ``TransientError`` for faults worth retrying (429, 5xx, timeouts, a full disk),
    ``PermanentError`` for the rest (removed video, over the size or duration limit, a
    connection the guard refused) and ``InputError`` for a URL that is not http(s). Each
    message is one line. Nothing is left under ``media/tmp`` whatever happens.
    """
    allow_private = settings.download.allow_private_hosts
    check_url_allowed(url, allow_private)
    workdir = settings.media_dir / "tmp" / uuid.uuid4().hex
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        with netguard.guard(allow_private=allow_private) as guard:
            with new_youtube_dl(_ydl_options(settings, workdir), python_sockets_only=True) as ydl:
                try:
                    info = ydl.extract_info(url, download=True)
                except (DownloadError, RequestError) as exc:
                    # yt-dlp wraps most faults in DownloadError; a request its handler
                    # refuses outright (requests: no adapter for a redirect's scheme) escapes
                    # as the bare RequestError.
                    raise _download_error(exc, guard, settings, url) from exc
            if guard.refusals:
                log.warning("download of %s: refused %s", short_url(url), guard.refusals)
        files = [p for p in workdir.iterdir() if p.is_file() and not p.name.endswith(".part")]
        if info is None:
            raise PermanentError(
                f"{short_url(url)}: skipped, longer than {settings.download.max_duration_s:g} s"
            )
        if not files:
            raise PermanentError(
                f"{short_url(url)}: nothing downloaded (larger than "
                f"{settings.download.max_filesize_mb:g} MB or no downloadable format)"
            )
        stored = store_content_addressed(
            max(files, key=lambda p: p.stat().st_size), settings.media_dir
        )
        return dataclasses.replace(stored, media_url=_media_url(info))
    except OSError as exc:
        if _disk_full(exc):
            raise _disk_full_error(settings, url) from exc
        raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
