"""Deterministic synthesis of demo and test media.

Reference clips are Ken Burns pans and zooms over the real photographs that ship with
scikit-image, with a generated melody as the soundtrack, so the matcher sees natural-image
statistics rather than synthetic noise. The transformations are the edits real infringers
apply to re-uploads (excerpts, crops, mirrors, 9:16 letterboxing over a blurred fill, text and
sticker overlays, speed changes, small heavily compressed re-encodes); each is a pure function
``Clip -> Clip`` so they compose without re-encoding in between, and :func:`transform_file`
encodes the result once.

This module is part of the pure core: it must not import crawler/, matcher/, workers/ or
triage/. Everything here is seeded; the same arguments give the same frames and samples.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

SAMPLE_RATE = 22050
"""Audio sample rate of every generated clip (AAC, stereo)."""

PhotoLike = str | np.ndarray
Transform = Callable[["Clip"], "Clip"]


@dataclass(frozen=True)
class Clip:
    """Decoded frames and audio held in memory between transformations.

    ``frames`` are RGB ``uint8`` arrays of one size; ``audio`` is ``float32`` of shape
    ``(channels, samples)`` in [-1, 1] at ``sample_rate``.
    """

    frames: tuple[np.ndarray, ...]
    fps: float
    audio: np.ndarray
    sample_rate: int = SAMPLE_RATE

    @property
    def duration(self) -> float:
        return len(self.frames) / self.fps

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the frames."""
        h, w = self.frames[0].shape[:2]
        return w, h


# Photos and reference clips ------------------------------------------------------------------


def load_photo(name: str) -> np.ndarray:
    """An RGB ``uint8`` photo from ``skimage.data`` by name (``"astronaut"``, ``"coffee"``...).

    Grey-scale and RGBA photos are converted to RGB. Only photos bundled with scikit-image
    work offline; ``ValueError`` for names that are not a photo there.
    """
    from skimage import data

    loader = getattr(data, name, None)
    if loader is None or name.startswith("_"):
        raise ValueError(f"no photo named {name!r} in skimage.data")
    raw = loader()
    img = np.asarray(raw[0] if isinstance(raw, tuple) else raw)  # stereo pairs: left view
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return np.ascontiguousarray(img[..., :3])


def _photo(p: PhotoLike) -> np.ndarray:
    return load_photo(p) if isinstance(p, str) else np.ascontiguousarray(p[..., :3])


def _ken_burns_frames(
    photo: np.ndarray, n: int, size: tuple[int, int], rng: np.random.Generator
) -> list[np.ndarray]:
    """``n`` frames panning and zooming from one random window of the photo to another."""
    h0, w0 = photo.shape[:2]
    aspect = size[0] / size[1]
    full_w = min(w0, h0 * aspect)
    full_h = full_w / aspect

    def window() -> np.ndarray:
        z = rng.uniform(0.6, 1.0)
        w, h = full_w * z, full_h * z
        return np.array([rng.uniform(0, w0 - w), rng.uniform(0, h0 - h), w, h])

    a, b = window(), window()
    img = Image.fromarray(photo)
    # Scale the photo once so the tightest window is about output size: per-frame resizes
    # then stay near 1:1, which is several times cheaper than shrinking a large photo.
    pre = min(1.0, size[0] / (0.6 * full_w))
    if pre < 0.95:
        img = img.resize((round(w0 * pre), round(h0 * pre)), Image.Resampling.LANCZOS)
        a, b = a * pre, b * pre
    u = np.linspace(0.0, 1.0, n)
    u = u * u * (3 - 2 * u)  # ease in and out like a camera move
    boxes = [tuple((a + (b - a) * k).tolist()) for k in u]

    def render(box: tuple[float, ...]) -> np.ndarray:
        x, y, w, h = box
        return np.asarray(img.resize(size, Image.Resampling.BILINEAR, box=(x, y, x + w, y + h)))

    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(render, boxes))


def melody(
    seconds: float,
    seed: int,
    sample_rate: int = SAMPLE_RATE,
    *,
    notes_seed: int | None = None,
    transpose: int = 0,
    tempo: float = 1.0,
    partials: tuple[float, ...] = (1.0, 0.3),
) -> np.ndarray:
    """A seeded stereo tune (pentatonic notes with harmonics and envelopes), ``(2, n)``.

    The key comes from ``seed``, the notes from ``notes_seed`` (default: ``seed``): another
    ``notes_seed`` is another tune in the same key, on the same instrument. ``transpose``
    (semitones), ``tempo`` (1.25 plays the notes 25% faster) and ``partials`` (amplitudes
    of the harmonics: the instrument) re-play the same tune as a re-creation would.
    """
    rng = np.random.default_rng(seed)
    n_total = round(seconds * sample_rate)
    out = np.zeros(n_total, dtype=np.float64)
    root = 196.0 * 2 ** ((rng.integers(0, 12) + transpose) / 12)
    if notes_seed is not None:
        rng = np.random.default_rng(notes_seed)
    scale = np.array([0, 2, 4, 7, 9, 12, 14, 16])
    pos = 0
    while pos < n_total:
        dur = int(sample_rate * rng.choice([0.25, 0.375, 0.5]) / tempo)
        freq = root * 2 ** (rng.choice(scale) / 12)
        t = np.arange(min(dur, n_total - pos)) / sample_rate
        env = np.minimum(1.0, t / 0.01) * np.exp(-3.0 * t)
        tone = sum(a * np.sin(2 * np.pi * (k + 1) * freq * t) for k, a in enumerate(partials))
        out[pos : pos + len(t)] = 0.25 * env * tone
        pos += dur
    pan = 0.15 * np.sin(np.linspace(0, 2 * np.pi, n_total))
    return np.stack([out * (1 - pan), out * (1 + pan)]).astype(np.float32)


def make_reference_clip(
    photos: Sequence[PhotoLike],
    out_path: Path,
    *,
    seconds_per_photo: float,
    size: tuple[int, int] = (640, 360),
    fps: int = 24,
    seed: int,
    crf: int = 23,
) -> Path:
    """Write an H.264/AAC MP4 of Ken Burns moves over ``photos`` with a seeded melody.

    Each photo gets ``seconds_per_photo`` with its own pan and zoom (hard cuts between
    photos), and the soundtrack depends on ``seed`` so every clip sounds different.
    """
    rng = np.random.default_rng(seed)
    n = round(seconds_per_photo * fps)
    frames: list[np.ndarray] = []
    for p in photos:
        frames.extend(_ken_burns_frames(_photo(p), n, size, rng))
    clip = Clip(tuple(frames), float(fps), melody(len(frames) / fps, seed))
    return write_clip(clip, out_path, crf=crf)


# Reading and writing -------------------------------------------------------------------------


def read_clip(path: Path, start: float = 0.0, duration: float | None = None) -> Clip:
    """Decode ``[start, start + duration)`` of a video into memory (all of it by default)."""
    end = math.inf if duration is None else start + duration
    frames: list[np.ndarray] = []
    chunks: list[np.ndarray] = []
    with av.open(str(path)) as container:
        vs = container.streams.video[0]
        fps = float(vs.average_rate or 24)
        has_audio = bool(container.streams.audio)
        streams = [vs, container.streams.audio[0]] if has_audio else [vs]
        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=SAMPLE_RATE)
        past_end, audio_samples = False, 0
        for packet in container.demux(*streams):
            for frame in packet.decode():
                if isinstance(frame, av.VideoFrame):
                    t = frame.time if frame.time is not None else len(frames) / fps
                    if start - 0.5 / fps <= t < end - 0.5 / fps:
                        frames.append(frame.to_ndarray(format="rgb24"))
                    past_end = t > end + 1.0
                elif isinstance(frame, av.AudioFrame):
                    for rf in resampler.resample(frame):
                        chunks.append(rf.to_ndarray())
                        audio_samples += chunks[-1].shape[1]
            if past_end and (not has_audio or audio_samples > (end + 1.0) * SAMPLE_RATE):
                break
    if not frames:
        raise ValueError(f"{path}: no frames in [{start}, {end})")
    audio = np.concatenate(chunks, axis=1) if chunks else np.zeros((2, 0), np.float32)
    a0 = round(start * SAMPLE_RATE)
    a1 = a0 + round(len(frames) / fps * SAMPLE_RATE)
    audio = audio[:, a0:a1]
    if audio.shape[1] < a1 - a0:
        audio = np.pad(audio, ((0, 0), (0, a1 - a0 - audio.shape[1])))
    return Clip(tuple(frames), fps, audio.astype(np.float32))


def write_clip(clip: Clip, out_path: Path, *, crf: int = 23, preset: str = "superfast") -> Path:
    """Encode ``clip`` as H.264 (yuv420p) + AAC in MP4; frames are cropped to even sizes."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    w, h = clip.size
    w, h = w - w % 2, h - h % 2
    rate = Fraction(clip.fps).limit_denominator(1001)
    tmp = out_path.with_name(out_path.name + ".part")
    with av.open(str(tmp), "w", format="mp4") as container:
        vs = container.add_stream("libx264", rate=rate)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.options = {"crf": str(crf), "preset": preset}
        aus = container.add_stream("aac", rate=clip.sample_rate)
        aus.layout = "stereo"
        aus.options = {"aac_coder": "fast"}
        for frame in clip.frames:
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[:h, :w]), format="rgb24")
            container.mux(vs.encode(vf))
        container.mux(vs.encode(None))
        audio = np.clip(clip.audio, -1, 1).astype(np.float32)
        step = 1024
        for i in range(0, audio.shape[1], step):
            chunk = np.ascontiguousarray(audio[:, i : i + step])
            af = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            af.sample_rate = clip.sample_rate
            af.pts = i
            container.mux(aus.encode(af))
        container.mux(aus.encode(None))
    tmp.replace(out_path)
    return out_path


def transform_file(
    src: Path,
    dst: Path,
    transforms: Sequence[Transform] = (),
    *,
    start: float = 0.0,
    duration: float | None = None,
    crf: int = 23,
) -> Path:
    """Read ``[start, start + duration)`` of ``src``, apply ``transforms`` in order, encode once."""
    clip = read_clip(src, start, duration)
    for t in transforms:
        clip = t(clip)
    return write_clip(clip, dst, crf=crf)


# Transformations (Clip -> Clip) ---------------------------------------------------------------


def _map_frames(clip: Clip, fn: Callable[[np.ndarray], np.ndarray]) -> Clip:
    """Apply ``fn`` to every frame; two threads, since Pillow releases the GIL while it
    resizes and filters (results keep their order, so output stays deterministic)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        return replace(clip, frames=tuple(pool.map(fn, clip.frames)))


def _resize(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.fromarray(frame).resize(size, Image.Resampling.BILINEAR))


def excerpt(clip: Clip, start: float, duration: float) -> Clip:
    """The ``duration`` seconds from ``start`` (frames and audio)."""
    i0 = round(start * clip.fps)
    i1 = min(len(clip.frames), i0 + round(duration * clip.fps))
    if i0 >= i1:
        raise ValueError(f"empty excerpt at {start}s of a {clip.duration:.1f}s clip")
    a0, a1 = round(i0 / clip.fps * clip.sample_rate), round(i1 / clip.fps * clip.sample_rate)
    return replace(clip, frames=clip.frames[i0:i1], audio=clip.audio[:, a0:a1])


def crop(clip: Clip, fraction: float = 0.8) -> Clip:
    """Zoom into the centre ``fraction`` of each frame, scaled back to the original size."""
    w, h = clip.size
    cw, ch = round(w * fraction), round(h * fraction)
    x, y = (w - cw) // 2, (h - ch) // 2
    return _map_frames(clip, lambda f: _resize(f[y : y + ch, x : x + cw], (w, h)))


def mirror(clip: Clip) -> Clip:
    """Flip left-right, the oldest trick against naive matching."""
    return _map_frames(clip, lambda f: np.ascontiguousarray(f[:, ::-1]))


def letterbox_vertical(clip: Clip, size: tuple[int, int] = (360, 640)) -> Clip:
    """Fit the frame into a 9:16 canvas over a blurred, darkened, zoomed copy of itself.

    This is how most landscape clips are re-uploaded to TikTok, Reels and Shorts. The blur
    runs on a small copy and is scaled up: the same look at a fraction of the cost.
    """
    out_w, out_h = size
    w, h = clip.size
    fit_w, fit_h = out_w, round(h * out_w / w)
    fit_h -= fit_h % 2
    y0 = (out_h - fit_h) // 2
    cover_w = round(w * out_h / h)

    small_w, small_h = max(1, cover_w // 8), max(1, out_h // 8)
    sx0 = (cover_w - out_w) / 2 / 8

    def one(frame: np.ndarray) -> np.ndarray:
        img = Image.fromarray(frame)
        small = img.resize((small_w, small_h), Image.Resampling.BILINEAR)
        small = small.filter(ImageFilter.GaussianBlur(3))
        bg = small.resize(
            (out_w, out_h), Image.Resampling.BILINEAR, box=(sx0, 0, sx0 + out_w / 8, small_h)
        )
        canvas = (np.asarray(bg, dtype=np.uint16) * 3 // 5).astype(np.uint8)
        canvas[y0 : y0 + fit_h] = np.asarray(img.resize((fit_w, fit_h), Image.Resampling.BILINEAR))
        return canvas

    return _map_frames(clip, one)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _sticker(draw: ImageDraw.ImageDraw, cx: int, cy: int, r: int, colour: str) -> None:
    """A heart-shaped "emoji" sticker (colour fonts are not portable; shapes are)."""
    draw.ellipse((cx - r, cy - r, cx, cy), fill=colour)
    draw.ellipse((cx, cy - r, cx + r, cy), fill=colour)
    draw.polygon([(cx - r, cy - r // 3), (cx + r, cy - r // 3), (cx, cy + r)], fill=colour)


def overlay_text(clip: Clip, text: str, *, stickers: int = 2, position: str = "top") -> Clip:
    """Burn in a caption (white with a black outline) and a few heart stickers.

    ``position`` is ``"top"``, ``"bottom"`` or ``"middle"``; sizes scale with the frame so the
    overlay covers a similar share of small and large frames.
    """
    w, h = clip.size
    size = max(12, w // 18)
    font = _font(size)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    box = probe.textbbox((0, 0), text, font=font, stroke_width=2)
    tx = max(0, (w - (box[2] - box[0])) // 2)
    ty = {"top": h // 12, "bottom": h - h // 12 - size, "middle": h // 2}.get(position, h // 12)
    colours = ["#ff3b5c", "#ffd400", "#25f4ee"]

    def one(frame: np.ndarray) -> np.ndarray:
        img = Image.fromarray(frame)
        draw = ImageDraw.Draw(img)
        draw.text((tx, ty), text, font=font, fill="white", stroke_width=2, stroke_fill="black")
        for k in range(stickers):
            _sticker(draw, w - (k + 1) * size * 2, h - size * 3, size // 2 + 4, colours[k % 3])
        return np.asarray(img)

    return _map_frames(clip, one)


def change_speed(clip: Clip, factor: float) -> Clip:
    """Play ``factor`` times faster: frames resampled at the same fps, audio resampled too
    (pitch moves with speed, as with a naive speed-up)."""
    if factor <= 0:
        raise ValueError("speed factor must be positive")
    n_out = max(1, round(len(clip.frames) / factor))
    idx = np.minimum(np.round(np.arange(n_out) * factor).astype(int), len(clip.frames) - 1)
    frames = tuple(clip.frames[i] for i in idx)
    n_in = clip.audio.shape[1]
    n_a = round(n_in / factor)
    if n_in:
        src_t = np.arange(n_a) * factor
        audio = np.stack([np.interp(src_t, np.arange(n_in), ch) for ch in clip.audio])
    else:
        audio = clip.audio
    return replace(clip, frames=frames, audio=audio.astype(np.float32))


def rotate(clip: Clip, degrees: float) -> Clip:
    """Turn the picture ``degrees`` counter-clockwise about its centre, same frame size, with
    black corners: a phone filming a screen, or an edit nudged to dodge matching."""
    return _map_frames(
        clip,
        lambda f: np.asarray(
            Image.fromarray(f).rotate(degrees, resample=Image.Resampling.BILINEAR, fillcolor=0)
        ),
    )


def write_avi(
    clip: Clip,
    out_path: Path,
    broken: Iterable[str] = (),
    *,
    seed: int = 7,
    every: int = 1,
) -> Path:
    """``clip`` as an AVI (MPEG-4 Part 2 video, MP3 audio) whose ``broken`` tracks
    (``"audio"``, ``"video"``) carry seeded noise instead of their coded packets (every
    ``every``-th packet of them; all by default), timing kept.

    Old camcorder and screen-recorder files are like this: one track decodes, the other does
    not (FFmpeg answers "invalid data" for its packets).
    """
    out_path = Path(out_path)
    w, h = clip.size
    w, h = w - w % 2, h - h % 2
    broken = set(broken)
    noise = np.random.default_rng(seed)
    tmp = out_path.with_name(out_path.name + ".part")
    with av.open(str(tmp), "w", format="avi") as container:
        vs = container.add_stream("mpeg4", rate=Fraction(clip.fps).limit_denominator(1001))
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        aus = container.add_stream("mp3", rate=clip.sample_rate)
        aus.layout = "stereo"

        counts = {"audio": 0, "video": 0}

        def mux(stream: av.stream.Stream, packets: list[av.Packet]) -> None:
            for packet in packets:
                counts[stream.type] += 1
                if stream.type in broken and counts[stream.type] % every == 0:
                    junk = av.Packet(noise.integers(0, 256, packet.size, np.uint8).tobytes())
                    junk.pts, junk.dts, junk.duration = packet.pts, packet.dts, packet.duration
                    junk.time_base = packet.time_base
                    junk.stream = stream
                    packet = junk
                container.mux(packet)

        for frame in clip.frames:
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[:h, :w]), format="rgb24")
            mux(vs, vs.encode(vf))
        mux(vs, vs.encode(None))
        audio = np.clip(clip.audio, -1, 1).astype(np.float32)
        step = aus.codec_context.frame_size or 1152
        for i in range(0, audio.shape[1], step):
            af = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(audio[:, i : i + step]), format="fltp", layout="stereo"
            )
            af.sample_rate, af.pts = clip.sample_rate, i
            mux(aus, aus.encode(af))
        mux(aus, aus.encode(None))
    tmp.replace(out_path)
    return out_path


def shrink(clip: Clip, width: int = 320, fps: float = 15.0) -> Clip:
    """Scale down to ``width`` (keeping aspect) and drop frames to ``fps``; pair with a high
    CRF in :func:`write_clip` for the small, blocky re-encodes that spread on social apps."""
    w, h = clip.size
    height = round(h * width / w)
    height -= height % 2
    n_out = max(1, round(clip.duration * fps))
    idx = np.minimum(np.round(np.arange(n_out) * clip.fps / fps).astype(int), len(clip.frames) - 1)
    frames = tuple(_resize(clip.frames[i], (width, height)) for i in idx)
    return replace(clip, frames=frames, fps=fps)


def compose(*transforms: Transform) -> Transform:
    """One transform applying ``transforms`` left to right."""

    def run(clip: Clip) -> Clip:
        for t in transforms:
            clip = t(clip)
        return clip

    return run


# More transformations: picture-in-picture, frame rates, stickers, heavy re-encodes -------------


def _cover(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Scale and centre-crop ``frame`` to fill ``size`` (width, height) without bars."""
    h, w = frame.shape[:2]
    out_w, out_h = size
    scale = max(out_w / w, out_h / h)
    cw, ch = out_w / scale, out_h / scale
    x0, y0 = (w - cw) / 2, (h - ch) / 2
    img = Image.fromarray(np.ascontiguousarray(frame))
    return np.asarray(img.resize(size, Image.Resampling.BILINEAR, box=(x0, y0, x0 + cw, y0 + ch)))


_PIP_POSITIONS = {
    "top-left": (0.0, 0.0),
    "top-right": (1.0, 0.0),
    "bottom-left": (0.0, 1.0),
    "bottom-right": (1.0, 1.0),
    "centre": (0.5, 0.5),
    "center": (0.5, 0.5),
}


def picture_in_picture(
    clip: Clip,
    background: Clip | PhotoLike,
    *,
    scale: float = 0.45,
    position: str | tuple[float, float] = "top-right",
    size: tuple[int, int] | None = None,
    margin: float = 0.04,
    border: int = 0,
) -> Clip:
    """Show ``clip`` as a small window over ``background``: the reaction/commentary layout.

    ``background`` is another clip (looped or cut to length, like a streamer's camera) or a
    photo (a still backdrop). The canvas is ``size`` (width, height; default the clip's own
    size) and the background fills it; the window is ``scale`` of the canvas width, keeps the
    clip's aspect, and sits at ``position``: a corner name (``"top-left"``...), ``"centre"``,
    or fractions ``(fx, fy)`` of the free space, with ``margin`` (share of the canvas width)
    kept from the canvas edges. ``border`` draws a white frame of that many pixels around
    the window, as many editing apps do. The soundtrack is the clip's.
    """
    if not 0.05 <= scale <= 1.0:
        raise ValueError("picture-in-picture scale must be in [0.05, 1]")
    out_w, out_h = size or clip.size
    w, h = clip.size
    win_w = round(out_w * scale)
    win_h = min(out_h, round(h * win_w / w))
    if isinstance(position, str) and position not in _PIP_POSITIONS:
        raise ValueError(f"unknown picture-in-picture position {position!r}")
    fx, fy = _PIP_POSITIONS[position] if isinstance(position, str) else position
    m = round(margin * out_w)
    x0 = m + round(fx * max(0, out_w - win_w - 2 * m))
    y0 = m + round(fy * max(0, out_h - win_h - 2 * m))
    x0, y0 = min(x0, out_w - win_w), min(y0, out_h - win_h)

    if isinstance(background, Clip):
        bg_frames = [_cover(f, (out_w, out_h)) for f in background.frames]
    else:
        bg_frames = [_cover(_photo(background), (out_w, out_h))]

    def one(k: int) -> np.ndarray:
        canvas = bg_frames[k % len(bg_frames)].copy()
        if border:
            b = border
            canvas[max(0, y0 - b) : y0 + win_h + b, max(0, x0 - b) : x0 + win_w + b] = 255
        canvas[y0 : y0 + win_h, x0 : x0 + win_w] = _resize(clip.frames[k], (win_w, win_h))
        return canvas

    with ThreadPoolExecutor(max_workers=2) as pool:
        frames = tuple(pool.map(one, range(len(clip.frames))))
    return replace(clip, frames=frames)


def change_fps(clip: Clip, fps: float, *, blend: bool = False) -> Clip:
    """Convert to ``fps`` frames per second at the same speed and length.

    By default frames are dropped or repeated (what FFmpeg's ``fps`` filter and most apps
    do); ``blend=True`` mixes the two nearest source frames by their distance in time
    instead, the ghosting of cheap frame-rate converters. The soundtrack is untouched.
    """
    if fps <= 0:
        raise ValueError("fps must be positive")
    n_out = max(1, round(clip.duration * fps))
    pos: list[float] = (np.arange(n_out) * clip.fps / fps).tolist()
    last = len(clip.frames) - 1
    if blend:

        def one(p: float) -> np.ndarray:
            i = min(math.floor(p), last)
            j = min(i + 1, last)
            u = p - i if j > i else 0.0
            if u < 1e-3:
                return clip.frames[i]
            mix = clip.frames[i].astype(np.float32) * (1 - u) + clip.frames[j] * u
            return np.clip(np.round(mix), 0, 255).astype(np.uint8)

        frames = tuple(one(p) for p in pos)
    else:
        frames = tuple(clip.frames[min(round(p), last)] for p in pos)
    n_a = round(n_out / fps * clip.sample_rate)
    audio = clip.audio[:, :n_a]
    if audio.shape[1] < n_a:
        audio = np.pad(audio, ((0, 0), (0, n_a - audio.shape[1])))
    return replace(clip, frames=frames, fps=float(fps), audio=audio)


_STICKER_COLOURS = ("#ffcc00", "#ff3b5c", "#25f4ee", "#ff8c00", "#9b5cff", "#3ddc84")


def _emoji(draw: ImageDraw.ImageDraw, kind: int, cx: int, cy: int, r: int, colour: str) -> None:
    """One emoji-like sticker drawn from shapes: a face, a heart, a star or a flame."""
    if kind == 0:  # laughing face
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill="#ffcc00", outline="#b37700")
        e = max(1, r // 5)
        for ex in (cx - r // 3, cx + r // 3):
            draw.ellipse((ex - e, cy - r // 3 - e, ex + e, cy - r // 3 + e), fill="#3b2300")
        draw.chord((cx - r // 2, cy - r // 6, cx + r // 2, cy + r // 2), 0, 180, fill="#7a1f00")
    elif kind == 1:
        _sticker(draw, cx, cy, r, colour)
    elif kind == 2:  # star
        pts = []
        for k in range(10):
            rad = r if k % 2 == 0 else r * 0.45
            a = -math.pi / 2 + k * math.pi / 5
            pts.append((cx + rad * math.cos(a), cy + rad * math.sin(a)))
        draw.polygon(pts, fill=colour, outline="white")
    else:  # flame
        draw.ellipse((cx - r * 0.7, cy - r * 0.2, cx + r * 0.7, cy + r), fill="#ff5a00")
        draw.polygon(
            [(cx - r * 0.7, cy + r * 0.4), (cx, cy - r), (cx + r * 0.7, cy + r * 0.4)],
            fill="#ff5a00",
        )
        draw.ellipse((cx - r * 0.35, cy + r * 0.2, cx + r * 0.35, cy + r * 0.9), fill="#ffd400")


def overlay_stickers(
    clip: Clip, count: int = 4, *, size: float = 0.1, seed: int = 0, drift: float = 0.03
) -> Clip:
    """Put ``count`` colourful emoji-like stickers (faces, hearts, stars, flames) on top.

    Colour emoji fonts are not portable, so the stickers are drawn from shapes. Each is
    ``size`` of the frame width across, placed by ``seed``, and drifts ``drift`` of the
    frame width per second on its own heading, like the animated stickers of editing apps.
    """
    w, h = clip.size
    rng = np.random.default_rng(seed)
    r = max(4, round(size * w / 2))
    starts = rng.uniform([r, r], [max(r + 1, w - r), max(r + 1, h - r)], (count, 2))
    headings = rng.uniform(0, 2 * math.pi, count)
    velocity = np.stack([np.cos(headings), np.sin(headings)], axis=1) * drift * w
    kinds = rng.integers(0, 4, count)
    colours = [_STICKER_COLOURS[int(k)] for k in rng.integers(0, len(_STICKER_COLOURS), count)]

    def one(k: int) -> np.ndarray:
        img = Image.fromarray(clip.frames[k])
        draw = ImageDraw.Draw(img)
        pos = starts + velocity * (k / clip.fps)
        # Bounce inside the frame: fold positions back at the edges.
        for axis, extent in ((0, w), (1, h)):
            span = max(1.0, extent - 2.0 * r)
            p = np.mod(pos[:, axis] - r, 2 * span)
            pos[:, axis] = r + np.where(p > span, 2 * span - p, p)
        for (cx, cy), kind, colour in zip(pos, kinds, colours, strict=True):
            _emoji(draw, int(kind), round(cx), round(cy), r, colour)
        return np.asarray(img)

    with ThreadPoolExecutor(max_workers=2) as pool:
        frames = tuple(pool.map(one, range(len(clip.frames))))
    return replace(clip, frames=frames)


def recompress(
    clip: Clip, crf: int = 42, *, bitrate: int | None = None, preset: str = "veryfast"
) -> Clip:
    """Encode the frames with H.264 and decode them back: compression damage as a transform.

    ``crf`` 40 and up (or a low ``bitrate`` in bits per second, which wins when given) gives
    the blocky, smeared look of a clip re-uploaded many times; combine with :func:`shrink`
    for 240 px wide copies. Being ``Clip -> Clip``, it can sit anywhere in a chain (damage
    first, then letterbox, as when a re-upload is itself re-edited). Audio is untouched.
    """
    import io

    w, h = clip.size
    w, h = w - w % 2, h - h % 2
    buf = io.BytesIO()
    rate = Fraction(clip.fps).limit_denominator(1001)
    with av.open(buf, "w", format="mp4") as container:
        vs = container.add_stream("libx264", rate=rate)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        if bitrate is not None:
            vs.bit_rate = int(bitrate)
            vs.options = {"preset": preset}
        else:
            vs.options = {"crf": str(crf), "preset": preset}
        for frame in clip.frames:
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[:h, :w]), format="rgb24")
            container.mux(vs.encode(vf))
        container.mux(vs.encode(None))
    buf.seek(0)
    frames: list[np.ndarray] = []
    with av.open(buf, "r", format="mp4") as container:
        for vf in container.decode(video=0):
            frames.append(vf.to_ndarray(format="rgb24"))
    frames = frames[: len(clip.frames)]
    while len(frames) < len(clip.frames):  # an encoder never drops frames, but be safe
        frames.append(frames[-1])
    return replace(clip, frames=tuple(frames))


def heavy_reencode(clip: Clip, width: int = 240, crf: int = 44, fps: float = 15.0) -> Clip:
    """A copy of a copy: scaled to ``width``, dropped to ``fps`` and compressed at ``crf``."""
    return recompress(shrink(clip, width=width, fps=fps), crf=crf)
