"""Evidence pictures besides frame thumbnails: both soundtracks at a match's offset, and how
alike the two sides are along a segment.

A reviewer cannot hear a JPEG, but can see that two spectrograms line up: the sound picture
stacks a few seconds of the post's soundtrack over the reference's at the aligned offset
(scaled by the segment's speed, so a 1.25x copy shows the same notes over the same width).
The strip is one bar per sampled query time across a segment: tall and green where that
moment matched closely, short and amber where it matched loosely, empty where nothing on
the segment's time line matched. Both are small images written next to the thumbnails, so
the board, the emails and the evidence packs show them like any other evidence file.
"""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw

from matcher.decode import check_file
from reelwatch.digest import sha256_file
from reelwatch.errors import InputError
from reelwatch.models import EvidenceFile

SOUND_WINDOW_S = 4.0
"""Seconds of the post's soundtrack a sound picture shows."""
SOUND_SIZE = (480, 96)
"""Width and height in pixels of each side of a sound picture."""
STRIP_SIZE = (480, 40)
FFT = 2048
"""128 ms windows at 16 kHz: fine enough in frequency to tell notes a semitone apart."""
HOP = 160
LOW_HZ, HIGH_HZ = 80.0, 4000.0
"""The frequency range a sound picture shows, on a log axis (tunes, bass and voices)."""


def read_audio(path: Path, start: float, seconds: float, rate: int) -> np.ndarray:
    """Mono float32 at ``rate`` of ``[start, start + seconds)`` of a file's soundtrack (shorter
    at the end of the file). Seeks near ``start`` first, so a window deep in a film costs a
    fraction of decoding all of it. ``InputError`` when there is no readable soundtrack."""
    check_file(path)
    start = max(0.0, start)
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise InputError(f"{path.name}: no soundtrack")
            stream = container.streams.audio[0]
            if start > 0 and stream.time_base:
                container.seek(int(start / stream.time_base), stream=stream, backward=True)
            resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
            chunks: list[np.ndarray] = []
            first: float | None = None
            got = 0
            need = round((seconds + 1.0) * rate)
            for frame in container.decode(stream):
                if first is None:
                    first = float(frame.time) if frame.time is not None else 0.0
                for rf in resampler.resample(frame):
                    chunks.append(rf.to_ndarray().reshape(-1))
                    got += len(chunks[-1])
                if first + got / rate >= start + seconds:
                    break
    except av.FFmpegError as exc:
        raise InputError(f"{path.name}: unreadable soundtrack ({exc})") from None
    if not chunks or first is None:
        raise InputError(f"{path.name}: no audio at {start:.1f} s")
    pcm = np.concatenate(chunks)[:need]
    a0 = max(0, round((start - first) * rate))
    return pcm[a0 : a0 + round(seconds * rate)].astype(np.float32)


def spectrogram(audio: np.ndarray, rate: int, size: tuple[int, int]) -> np.ndarray:
    """A ``size`` (width, height) grey picture of ``audio``'s log-magnitude spectrogram, low
    frequencies at the bottom, :data:`LOW_HZ`-:data:`HIGH_HZ` on a log axis (a transposed
    tune is the same shape moved up or down), levels from its loudest bin down 60 dB."""
    width, height = size
    if len(audio) < FFT:
        audio = np.pad(audio, (0, FFT - len(audio)))
    n = 1 + (len(audio) - FFT) // HOP
    frames = np.lib.stride_tricks.sliding_window_view(audio, FFT)[::HOP][:n]
    mag = np.abs(np.fft.rfft(frames * np.hanning(FFT), axis=1))
    bins = np.geomspace(LOW_HZ, HIGH_HZ, height) / (rate / FFT)
    picked = mag[:, np.clip(bins.round().astype(int), 0, mag.shape[1] - 1)]
    db = 20 * np.log10(picked + 1e-9)
    db = np.clip((db - (db.max() - 60.0)) / 60.0, 0.0, 1.0)
    img = Image.fromarray((255 * db.T[::-1]).astype(np.uint8))
    return np.asarray(img.resize((width, height), Image.Resampling.BILINEAR))


def sound_picture(
    query: np.ndarray, reference: np.ndarray, rate: int, *, label: str = ""
) -> Image.Image:
    """The post's soundtrack (top) over the reference's (bottom), each a spectrogram of the
    same width, with a thin rule between them and ``label`` in the corner."""
    w, h = SOUND_SIZE
    top = spectrogram(query, rate, SOUND_SIZE)
    bottom = spectrogram(reference, rate, SOUND_SIZE)
    canvas = np.full((2 * h + 4, w), 40, np.uint8)
    canvas[:h] = top
    canvas[h + 4 :] = bottom
    rgb = np.stack([canvas * 0.55, canvas * 0.9, canvas], axis=-1).astype(np.uint8)
    img = Image.fromarray(rgb)
    draw = ImageDraw.Draw(img)
    draw.text((4, 2), "post", fill=(255, 255, 255))
    draw.text((4, h + 6), "reference", fill=(255, 255, 255))
    if label:
        draw.text((w - 6 * len(label) - 4, 2), label, fill=(255, 230, 120))
    return img


def strip_picture(closeness: Sequence[float]) -> Image.Image:
    """One bar per sampled time across a segment: height and colour by ``closeness`` (in
    [0, 1]; NaN where nothing matched, drawn as an empty slot with a red tick)."""
    w, h = STRIP_SIZE
    img = Image.new("RGB", (w, h), (250, 250, 250))
    draw = ImageDraw.Draw(img)
    n = max(1, len(closeness))
    slot = w / n
    for i, c in enumerate(closeness):
        x0, x1 = round(i * slot), max(round(i * slot) + 1, round((i + 1) * slot) - 1)
        if c is None or math.isnan(c):
            draw.rectangle((x0, h - 3, x1, h - 1), fill=(200, 60, 60))
            continue
        c = min(1.0, max(0.0, float(c)))
        colour = (60, 160, 80) if c >= 0.6 else (230, 160, 40)
        draw.rectangle((x0, round(h - 2 - c * (h - 4)), x1, h - 1), fill=colour)
    return img


def save_picture(img: Image.Image, dst: Path) -> Path:
    """Write ``img`` (PNG or JPEG by the suffix of ``dst``) and :func:`publish` it; returns the
    path it is at (``dst``, or a versioned name beside it when ``dst`` holds other bytes)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_beside(dst)
    try:
        if dst.suffix == ".png":
            img.save(tmp, format="PNG", optimize=True)
        else:
            img.convert("RGB").save(tmp, format="JPEG", quality=85)
        return publish(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)


def temp_beside(dst: Path) -> Path:
    """A unique temporary name in ``dst``'s folder (so publishing it is one link on one file
    system, and workers writing the same picture at once, on a shared folder too, never mix)."""
    return dst.with_name(f".{dst.name}.{uuid.uuid4().hex}.tmp")


def publish(tmp: Path, dst: Path) -> Path:
    """Give the complete file ``tmp`` the name ``dst`` without ever replacing a file there.

    Evidence is never overwritten in place: the name is created by a hard link, which fails
    when it exists (no window where ``dst`` is half written or swapped). When ``dst`` already
    holds the same bytes, ``dst`` is the answer; when it holds other bytes, the new file is
    published beside it under a name carrying its own sha256 (``<stem>.<sha[:16]><suffix>``).
    ``tmp`` is left for the caller to remove. Returns the path the bytes are at."""
    sha = sha256_file(tmp)
    for target in (dst, dst.with_name(f"{dst.stem}.{sha[:16]}{dst.suffix}")):
        try:
            os.link(tmp, target)
            return target
        except FileExistsError:
            if same_bytes(target, sha, tmp.stat().st_size):
                return target
    raise OSError(f"{dst.name}: both {dst.name} and its versioned name hold other bytes")


def same_bytes(path: Path, sha256: str, size: int) -> bool:
    try:
        return path.stat().st_size == size and sha256_file(path) == sha256
    except OSError:
        return False


def evidence_record(home: Path, relative: str) -> EvidenceFile:
    """The :class:`EvidenceFile` of an evidence path as stored on a segment (relative to
    ``home``, or absolute when it lies outside); ``OSError`` when it cannot be read."""
    path = Path(relative)
    if not path.is_absolute():
        path = home / path
    return EvidenceFile(path=relative, sha256=sha256_file(path), bytes=path.stat().st_size)
