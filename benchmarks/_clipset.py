"""The clip set of ``benchmarks/bench.py``: 60 s 720p uploads and short 9:16 posts, made from
the photos that ship with scikit-image, some copying the built-in evaluation titles.

Long clips (1280x720, 30 fps, H.264/AAC):

* ``long-0``: :func:`benchmarks.match_timing.make_query`: pans over photos, a person's photo
  when ``make test-data`` fetched one, under Starfall Station's song (lands that title; two
  of its photos are other titles' photos too);
* ``long-1``: unrelated pans over other photos with their own tunes, made in 15 s pieces
  joined by FFmpeg (a 60 s 720p clip in memory is 5 GB of frames);
* ``long-2``: ``long-0`` mirrored and cropped by FFmpeg (another upload of the same copy);
* ``long-3`` onwards: unrelated again, other photos.

Short clips (576x1024, 8 to 30 s, like real posts), alternating copies and unrelated ones so
any prefix of the list mixes both: excerpts of the titles' reference clips letterboxed into
9:16 (one mirrored with a caption burnt in, one cropped), Harbor Lights' theme under
unrelated pictures, and unrelated 9:16 pans.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from benchmarks.match_timing import make_query
from reelwatch.demo import audio, media
from reelwatch.demo.evalset import (
    BUILTIN_TITLES,
    DISTRACTOR_PHOTOS,
    face_photos_dir,
    write_builtin_references,
)

LONG_SIZE = (1280, 720)
LONG_FPS = 30
SHORT_SIZE = (576, 1024)
SHORT_FPS = 30
PIECE_S = 15.0
"""Unrelated long clips are made in pieces of this length (memory), then joined."""


@dataclass(frozen=True)
class BenchClip:
    name: str
    group: str
    """``"long"`` (60 s 720p) or ``"short"`` (9:16 posts)."""
    path: Path
    seconds: float
    size: tuple[int, int]
    expect: str | None
    """The catalogued title the clip copies, or ``None`` for an unrelated clip."""
    recipe: str


@dataclass(frozen=True)
class _Short:
    seconds: float
    title: str | None
    """Title whose reference clip is excerpted (``None``: unrelated pans)."""
    start: float = 0.0
    edits: tuple[str, ...] = ()
    theme: str | None = None
    """Title whose theme song is laid under unrelated pictures."""


_SHORTS: tuple[_Short, ...] = (
    _Short(10, "Starfall Station", start=3.0),
    _Short(12, None),
    _Short(15, "The Roastery", start=5.0, edits=("mirror", "caption")),
    _Short(25, None),
    _Short(8, "Whiskers of Bridgemoor", start=10.0, edits=("crop",)),
    _Short(30, None),
    _Short(20, None, theme="Harbor Lights"),
    _Short(18, None),
)
"""Durations 8 to 30 s; copies and unrelated posts alternate."""


_SEEDS = {t.name: t.seed for t in BUILTIN_TITLES}


def _ffmpeg(*args: str) -> None:
    subprocess.run(
        ["ffmpeg", "-nostdin", "-y", "-v", "error", *args], check=True, capture_output=True
    )


def _mirror_crop(src: Path, dst: Path) -> None:
    """``src`` flipped left-right and cropped to its centre 85 %, back at 1280x720."""
    w, h = LONG_SIZE
    _ffmpeg(
        "-i",
        str(src),
        "-vf",
        f"hflip,crop=iw*0.85:ih*0.85,scale={w}:{h}",
        "-c:v",
        "libx264",
        "-preset",
        "superfast",
        "-crf",
        "23",
        "-c:a",
        "aac",
        str(dst),
    )


def _unrelated_long(dst: Path, seconds: float, seed: int, work: Path) -> None:
    """Pans over distractor photos, ``PIECE_S`` s per piece, joined without re-encoding."""
    pieces: list[Path] = []
    left, k = seconds, 0
    while left > 1e-6:
        piece_s = min(PIECE_S, left)
        photos = DISTRACTOR_PHOTOS[(seed + k) % len(DISTRACTOR_PHOTOS)]
        path = work / f"{dst.stem}-piece{k}.mp4"
        media.make_reference_clip(
            photos,
            path,
            seconds_per_photo=piece_s / len(photos),
            size=LONG_SIZE,
            fps=LONG_FPS,
            seed=1000 + 10 * seed + k,
        )
        pieces.append(path)
        left -= piece_s
        k += 1
    listing = work / f"{dst.stem}-pieces.txt"
    listing.write_text("".join(f"file '{p.resolve()}'\n" for p in pieces))
    _ffmpeg("-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", str(dst))
    for p in pieces:
        p.unlink()
    listing.unlink()


def _short(spec: _Short, k: int, refs: Path, dst: Path) -> str:
    """Write short clip ``k`` to ``dst``; returns its recipe in words."""
    if spec.title is not None:
        reference = refs / spec.title / "reference.mp4"
        start = spec.start + 2.0 * (k // len(_SHORTS))  # a later round copies other seconds
        clip = media.read_clip(reference, start, spec.seconds)
        words = []
        if "mirror" in spec.edits:
            clip = media.mirror(clip)
            words.append("mirrored")
        if "crop" in spec.edits:
            clip = media.crop(clip, 0.8)
            words.append("cropped to 80 %")
        clip = media.letterbox_vertical(clip, SHORT_SIZE)
        if "caption" in spec.edits:
            clip = media.overlay_text(clip, "wait for the end", position="bottom")
            words.append("caption burnt in")
        media.write_clip(clip, dst)
        extra = f" ({', '.join(words)})" if words else ""
        return f"{spec.title} excerpt at {start:g} s, letterboxed 9:16{extra}"
    photos = DISTRACTOR_PHOTOS[(k + 3) % len(DISTRACTOR_PHOTOS)]
    media.make_reference_clip(
        photos,
        dst,
        seconds_per_photo=spec.seconds / len(photos),
        size=SHORT_SIZE,
        fps=SHORT_FPS,
        seed=2000 + k,
    )
    if spec.theme is None:
        return "unrelated 9:16 pans"
    clip = media.read_clip(dst)
    song = audio.song(clip.duration, _SEEDS[spec.theme])
    media.write_clip(audio.with_soundtrack(clip, song, volume=0.8), dst)
    return f"{spec.theme} theme under unrelated 9:16 pans"


def short_specs(n: int) -> list[_Short]:
    """The first ``n`` short clips' recipes (cycling through :data:`_SHORTS`)."""
    return [_SHORTS[k % len(_SHORTS)] for k in range(n)]


def write_references(refs: Path) -> None:
    """The built-in evaluation titles' references (what the catalog indexes)."""
    write_builtin_references(refs)


def build_clipset(
    out: Path, refs: Path, n_long: int, n_short: int, long_seconds: float = 60.0
) -> list[BenchClip]:
    """Make ``n_long`` long and ``n_short`` short clips under ``out``; ``refs`` holds the
    built-in titles' references (:func:`write_references`), which the short copies excerpt."""
    out.mkdir(parents=True, exist_ok=True)
    clips: list[BenchClip] = []
    faces = face_photos_dir()
    for k in range(n_long):
        path = out / f"long-{k}.mp4"
        if k == 0:
            make_query(path, long_seconds, faces / "obama2.jpg" if faces else None)
            expect: str | None = BUILTIN_TITLES[0].name
            recipe = "pans over the astronaut, coffee and chelsea photos (the references of three "
            recipe += "titles show them too)" + (", a person's photo" if faces else "")
            recipe += f", {expect}'s song at 70 %"
        elif k == 2:
            _mirror_crop(clips[0].path, path)
            expect, recipe = clips[0].expect, "long-0 mirrored and cropped to 85 %"
        else:
            _unrelated_long(path, long_seconds, k, out)
            expect, recipe = None, "unrelated pans over photos"
        clips.append(BenchClip(path.stem, "long", path, long_seconds, LONG_SIZE, expect, recipe))
    for k, spec in enumerate(short_specs(n_short)):
        path = out / f"short-{k}.mp4"
        recipe = _short(spec, k, refs, path)
        expect = spec.title or spec.theme
        clips.append(BenchClip(path.stem, "short", path, spec.seconds, SHORT_SIZE, expect, recipe))
    return clips
