"""The files the board serves: evidence images, stored media, and a thumbnail per match.

Evidence paths in a Match are relative to ``settings.home`` and must lie under
``settings.evidence_dir``; media files are ``settings.media_dir/<sha[:2]>/<sha>.<ext>``. Every
path is resolved and refused outside its folder, so a crafted segment or URL reads nothing else.

The queue's thumbnail of a match, in order of preference: the first evidence image of its
segments (the post's own frame, served by ``/evidence``); else a poster frame of the stored
media, decoded once with PyAV and cached as ``settings.evidence_dir/thumbs/<sha256>.jpg``
(served by ``/thumbs/<sha256>.jpg``); else a neutral placeholder (``/static/placeholder.svg``),
e.g. for audio-only media or a file that is not on this machine.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import av
from PIL import Image

from reelwatch.models import Match
from triage.files import SHA256_RE, media_file, resolve_under

if TYPE_CHECKING:
    from reelwatch.settings import Settings

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif"})
PLACEHOLDER_URL = "/static/placeholder.svg"
THUMB_SIZE = (160, 120)
POSTER_AT_S = 1.0
"""Where the poster frame is taken: one second in (the first frame is often black), or the
middle of a shorter clip."""
MAX_FRAMES_DECODED = 600
"""A poster never decodes more than this many frames (a broken or odd file gives up early)."""


# Evidence and media paths -------------------------------------------------------------------
def evidence_url(settings: Settings, path: str) -> str | None:
    """The board URL of an evidence file, or None if the path is not under the evidence dir."""
    candidate = Path(path)
    full = candidate if candidate.is_absolute() else settings.home / candidate
    try:
        relative = full.relative_to(settings.evidence_dir)
    except ValueError:
        return None
    if ".." in relative.parts or not relative.parts:
        return None
    return "/evidence/" + quote(relative.as_posix())


# Thumbnails ------------------------------------------------------------------------------
def thumbs_dir(settings: Settings) -> Path:
    return settings.evidence_dir / "thumbs"


def poster_path(settings: Settings, sha256: str) -> Path:
    return thumbs_dir(settings) / f"{sha256}.jpg"


def poster_frame(media: Path, out: Path) -> Path | None:
    """Write a JPEG poster frame of the video ``media`` to ``out``; None when the file has no
    decodable video frame (audio only, damaged). The file appears whole or not at all."""
    try:
        image = _first_frame_after(media)
    except (av.FFmpegError, OSError, ValueError) as exc:
        log.info("no poster frame for %s: %s", media.name, " ".join(str(exc).split()))
        return None
    if image is None:
        return None
    image.thumbnail(THUMB_SIZE)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=".", suffix=".jpg")
    try:
        with os.fdopen(fd, "wb") as f:
            image.convert("RGB").save(f, "JPEG", quality=80)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def _first_frame_after(media: Path) -> Image.Image | None:
    with av.open(str(media)) as container:
        if not container.streams.video:
            return None
        stream = container.streams.video[0]
        duration = (
            float(stream.duration * stream.time_base)
            if stream.duration and stream.time_base
            else None
        )
        if duration is None and container.duration:
            duration = container.duration / 1_000_000
        at = POSTER_AT_S if duration is None or duration > 2 * POSTER_AT_S else (duration or 0) / 2
        fallback: Image.Image | None = None
        for i, frame in enumerate(container.decode(stream)):
            if fallback is None:
                fallback = frame.to_image()
            if frame.time is not None and frame.time >= at:
                return frame.to_image()
            if i >= MAX_FRAMES_DECODED:
                break
        return fallback


def poster_for(settings: Settings, sha256: str) -> Path | None:
    """The cached poster of the stored media with this hash, made now if it is not there yet;
    None for a malformed hash, media not on this machine, or media without a video frame."""
    if not SHA256_RE.fullmatch(sha256):
        return None
    cached = poster_path(settings, sha256)
    if cached.is_file():
        return cached
    media = media_file(settings, sha256)
    if media is None:
        return None
    return poster_frame(media, cached)


def first_evidence_image(settings: Settings, match: Match) -> str | None:
    """The board URL of the first evidence image of ``match`` that exists on this machine."""
    for segment in match.segments:
        for path in segment.evidence:
            url = evidence_url(settings, path)
            if url is None or Path(path).suffix.lower() not in IMAGE_SUFFIXES:
                continue
            full = Path(path) if Path(path).is_absolute() else settings.home / path
            relative = full.relative_to(settings.evidence_dir).as_posix()
            if resolve_under(settings.evidence_dir, relative) is not None:
                return url
    return None


def thumbnail_url(settings: Settings, match: Match) -> str:
    """What the queue shows for ``match`` (see the module docstring)."""
    found = first_evidence_image(settings, match)
    if found is not None:
        return found
    sha = match.media_sha256
    if (
        sha
        and SHA256_RE.fullmatch(sha)
        and (poster_path(settings, sha).is_file() or media_file(settings, sha) is not None)
    ):
        return f"/thumbs/{sha}.jpg"
    return PLACEHOLDER_URL
