"""Decode media once: probe the container, sample frames (and later audio) for every signal.

Every signal works from one :class:`Decoded`, so a video is demuxed and decoded a single time
however many signals run. Stills (JPEG, PNG, WebP...) are media too: one frame at t=0, which
is what catalog assets of kind ``image`` are.

Limits come before decoding: given :class:`~reelwatch.settings.MediaLimits`, a file larger
than its size limit is refused from its size alone, and one whose picture (a still's, from
its header; a video's frame size, from its stream info) or duration (from its container) is
over the limit is refused before one frame or sample is decoded, each with one line naming
the file, its value and the setting. Image bombs (a few kilobytes that claim a gigapixel) and
truncated images are ``InputError`` too, never Pillow's exceptions.

Bad input is the user's problem, never a crash: a missing file, a file that is not media, and
a truncated or corrupt video raise :class:`~reelwatch.errors.InputError` with one line naming
the file. Decoding is bounded (``max_frames``, the file's own length), so corrupt input cannot
make it loop forever.

Streams are judged one by one: real files often carry one good track beside a broken one (an
AVI whose audio codec data is damaged, a clip whose video is garbage under a clean
soundtrack). A broken track is skipped and said so in :attr:`Decoded.skipped`, and the media
is fingerprinted from the other; only a file where nothing decodes is an error. Stills are
turned upright by their EXIF orientation, as every viewer shows them.

Fixed-rate sampling misses short shots: at 2 fps a 0.4 s shot may have no sample at all, and
fast-cut edits are made of such shots. With ``keyframes=True`` decoding also keeps the first
frame after each scene cut (see :func:`decode`).
"""

from __future__ import annotations

import logging
import math
import stat
import warnings
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from reelwatch.digest import sha256_file
from reelwatch.errors import InputError
from reelwatch.models import Media
from reelwatch.settings import MediaLimits

log = logging.getLogger(__name__)

IMAGE_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF", "MPO"})
"""Pillow formats read as single-frame media (animated GIFs go through FFmpeg instead)."""

_NOT_VIDEO_FORMATS = frozenset({"tty", "txt", "ansi", "bin", "idf", "xbin", "adf"})
"""FFmpeg demuxers that will "decode" plain text as ANSI art; a text file is not a video."""

_NOT_VIDEO_CODECS = frozenset({"ansi", "bintext", "xbin", "idf", "text"})


@dataclass
class Decoded:
    """Sampled content of one media file.

    ``frames`` is ``(n, h, w, 3)`` RGB ``uint8`` at the sampled ``times`` (seconds, rising);
    frames are scaled so their longer side is at most the decode ``max_side``. ``audio`` is
    mono ``float32`` at ``sample_rate`` when audio was asked for and present, else ``None``.
    ``cuts`` marks the frames that are the first after a scene cut when decoding looked for
    cuts (``keyframes=True``), else it is ``None``. ``skipped`` names each track that was
    left out because it does not decode (``"video"``, ``"audio"``) with why, in words.
    """

    media: Media
    frames: np.ndarray
    times: np.ndarray
    is_image: bool = False
    audio: np.ndarray | None = None
    sample_rate: int | None = None
    cuts: np.ndarray | None = None
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        """Seconds of content (0 for a still)."""
        return float(self.media.duration or 0.0)


def check_file(path: Path) -> int:
    """The size of ``path`` in bytes; ``InputError`` unless it is a non-empty regular file."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as exc:  # a name too long, a folder that cannot be read...
        raise InputError(f"{path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{path}: not a regular file")
    size = st.st_size
    if size == 0:
        raise InputError(f"{path.name}: empty file")
    return size


def check_size(path: Path, size: int, limits: MediaLimits | None) -> None:
    """``InputError`` when the file's ``size`` (bytes) is over ``limits``."""
    if limits is not None and size > limits.max_bytes:
        raise InputError(
            f"{path.name}: {size / 1e6:.1f} MB, over the {limits.max_bytes / 1e6:g} MB limit"
            f" ({limits.size_setting})"
        )


def check_media(path: Path, media: Media, limits: MediaLimits | None) -> None:
    """``InputError`` when what the headers say of ``media`` (its picture size, its
    duration) is over ``limits``; nothing has been decoded yet."""
    if limits is None:
        return
    if media.width and media.height and media.width * media.height > limits.max_pixels:
        raise InputError(
            f"{path.name}: picture of {media.width}x{media.height}"
            f" ({media.width * media.height / 1e6:.1f} megapixels), over the"
            f" {limits.max_pixels / 1e6:g} megapixel limit ({limits.pixels_setting})"
        )
    if media.duration and media.duration > limits.max_duration_s:
        raise InputError(
            f"{path.name}: {media.duration:.0f} s long, over the {limits.max_duration_s:g} s"
            f" limit ({limits.duration_setting})"
        )


def _open_still(path: Path) -> Image.Image | None:
    """The image if ``path`` is a single-frame still Pillow can read, else ``None``.

    The image is as stored (pixels not loaded yet): use :func:`_still_size` and
    :func:`_still_pixels`, which apply its EXIF orientation. A picture so large that Pillow
    takes it for a decompression bomb is an ``InputError`` (limits may be lower still: see
    :func:`check_media`)."""
    try:
        with warnings.catch_warnings():  # the limits say it, in their words (check_media)
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
    except Image.DecompressionBombError as exc:
        raise InputError(f"{path.name}: image too large to decode ({exc})") from None
    except (UnidentifiedImageError, OSError, ValueError):
        return None
    if img.format not in IMAGE_FORMATS or getattr(img, "n_frames", 1) > 1:
        img.close()
        return None
    return img


_EXIF_ORIENTATION = 0x0112
_TRANSPOSED = frozenset({5, 6, 7, 8})
"""EXIF orientations that turn the picture a quarter (width and height swap)."""


def _still_size(still: Image.Image) -> tuple[int, int]:
    """Width and height of the still as shown (after its EXIF orientation), read from the
    header alone."""
    try:
        orientation = still.getexif().get(_EXIF_ORIENTATION)
    except (OSError, ValueError, SyntaxError):  # a damaged EXIF block: show it as stored
        orientation = None
    if orientation in _TRANSPOSED:
        return still.height, still.width
    return still.width, still.height


def _av_reason(exc: Exception) -> str:
    msg = str(getattr(exc, "strerror", None) or exc).strip().rstrip(".")
    return msg.lower() or type(exc).__name__


def _looks_like_mp4(path: Path) -> bool:
    """An ISO-BMFF header (``ftyp`` box) whose container FFmpeg cannot open is a broken video
    (usually a download cut short before the ``moov`` index), not some other kind of file."""
    with path.open("rb") as f:
        return f.read(12)[4:8] == b"ftyp"


def _open_container(path: Path) -> av.container.InputContainer:
    try:
        container = av.open(str(path), mode="r", metadata_errors="ignore")
    except av.FFmpegError as exc:
        if _looks_like_mp4(path):
            raise InputError(
                f"{path.name}: truncated or corrupt video ({_av_reason(exc)})"
            ) from None
        raise InputError(f"{path.name}: not a video ({_av_reason(exc)})") from None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{path.name}: not a video ({_av_reason(exc)})") from None
    fmt = (container.format.name or "").split(",")
    vs = container.streams.video
    codec = vs[0].codec_context.name if vs else ""
    if set(fmt) & _NOT_VIDEO_FORMATS or codec in _NOT_VIDEO_CODECS:
        container.close()
        raise InputError(f"{path.name}: not a video (looks like text)")
    if not vs and not container.streams.audio:
        container.close()
        raise InputError(f"{path.name}: not a video (no video or audio stream)")
    return container


def _still_media(path: Path, sha: str, size: int, still: Image.Image) -> Media:
    width, height = _still_size(still)
    return Media(
        sha256=sha,
        path=str(path),
        bytes=size,
        duration=0.0,
        width=width,
        height=height,
        fps=None,
        video_codec=(still.format or "image").lower(),
    )


def _container_media(
    path: Path, sha: str, size: int, container: av.container.InputContainer
) -> Media:
    vs = container.streams.video[0] if container.streams.video else None
    aus = container.streams.audio[0] if container.streams.audio else None
    duration: float | None = None
    if container.duration:
        duration = container.duration / av.time_base
    elif vs is not None and vs.duration and vs.time_base:
        duration = float(vs.duration * vs.time_base)
    fps = float(vs.average_rate) if vs is not None and vs.average_rate else None
    return Media(
        sha256=sha,
        path=str(path),
        bytes=size,
        duration=duration,
        width=vs.codec_context.width if vs is not None else None,
        height=vs.codec_context.height if vs is not None else None,
        fps=fps,
        video_codec=vs.codec_context.name if vs is not None else None,
        audio_codec=aus.codec_context.name if aus is not None else None,
    )


def probe(
    path: Path | str, sha256: str | None = None, *, limits: MediaLimits | None = None
) -> Media:
    """What the file is: sha256, size, duration, frame size, fps and codecs.

    ``sha256`` may be passed when the caller already knows it (downloads are
    content-addressed) to skip re-hashing. Raises ``InputError`` for anything that is not
    readable media, and for media over ``limits`` (see :func:`check_media`).
    """
    path = Path(path)
    size = check_file(path)
    check_size(path, size, limits)
    sha = sha256 or sha256_file(path)
    still = _open_still(path)
    if still is not None:
        with still:
            media = _still_media(path, sha, size, still)
    else:
        with _open_container(path) as container:
            media = _container_media(path, sha, size, container)
    check_media(path, media, limits)
    return media


def _fit(width: int, height: int, max_side: int) -> tuple[int, int]:
    scale = min(1.0, max_side / max(width, height))
    return max(2, round(width * scale)) // 2 * 2, max(2, round(height * scale)) // 2 * 2


def frame_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """The size (even width, even height) decoded frames of ``width`` x ``height`` media have
    for ``max_side``: boxes found on decoded frames scale back to the file's pixels by it."""
    return _fit(width, height, max_side)


def is_still(media: Media) -> bool:
    """Whether ``media`` was probed as a still (one frame read by Pillow): stills are decoded
    to ``still_max_side`` rather than ``max_side``."""
    return media.fps is None and (media.video_codec or "").upper() in IMAGE_FORMATS


def _still_pixels(still: Image.Image, max_side: int, path: Path | None = None) -> np.ndarray:
    name = path.name if path is not None else "image"
    try:
        still.load()
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise InputError(f"{name}: truncated or corrupt image ({_av_reason(exc)})") from None
    except Image.DecompressionBombError as exc:
        raise InputError(f"{name}: image too large to decode ({exc})") from None
    try:
        upright = ImageOps.exif_transpose(still)
    except (OSError, ValueError, SyntaxError):  # a damaged EXIF block: use it as stored
        upright = still
    rgb = upright.convert("RGB")
    return np.asarray(rgb.resize(_fit(rgb.width, rgb.height, max_side), Image.Resampling.BILINEAR))


_LUMA_FORMATS = frozenset(
    {
        "yuv420p",
        "yuvj420p",
        "yuv422p",
        "yuvj422p",
        "yuv444p",
        "yuvj444p",
        "yuv440p",
        "yuvj440p",
        "yuv410p",
        "yuv411p",
        "yuva420p",
        "nv12",
        "nv21",
        "gray",
    }
)
"""8-bit pixel formats whose first plane is luma: cut detection reads it without conversion."""

AUDIO_GAP_S = 0.02
"""A decoded audio frame that starts this much later than the samples so far is placed at
its time, silence filling the gap."""
CUT_MIN_DIFF = 12.0
"""Mean absolute grey difference (0-255, on a 64 px thumbnail) below which no cut is seen."""
CUT_RATIO = 4.0
"""A cut differs from its predecessor this many times more than frames usually do here."""
CUT_HISTORY_S = 2.0
"""Seconds of recent frame differences the usual level is taken from (their median)."""
CUT_MIN_GAP_S = 0.2
"""Keyframes closer than this to the previous keyframe are skipped (strobes, flashes)."""


def _luma_thumb(frame: av.VideoFrame) -> np.ndarray:
    """A ~64 px grey thumbnail of a decoded frame, for cut detection on every frame.

    Reads the luma plane in place (strided, then 4x4 block means) when the pixel format has
    one, so it costs microseconds; other formats go through a small swscale conversion.
    """
    y: np.ndarray
    if frame.format.name in _LUMA_FORMATS:
        plane = frame.planes[0]
        raw = np.frombuffer(memoryview(plane), np.uint8)[: plane.height * plane.line_size]
        y = raw.reshape(plane.height, plane.line_size)[: frame.height, : frame.width]
    else:
        w = 256
        h = max(4, round(frame.height * w / max(1, frame.width)))
        y = frame.reformat(width=w, height=h, format="gray").to_ndarray()
    s = max(1, max(y.shape) // 256)
    y = y[::s, ::s].astype(np.float32)
    h, w = (y.shape[0] // 4) * 4, (y.shape[1] // 4) * 4
    if h == 0 or w == 0:
        return y
    rows = y[0:h:4] + y[1:h:4] + y[2:h:4] + y[3:h:4]  # 4x4 block sums by shifted slices:
    return (rows[:, 0:w:4] + rows[:, 1:w:4] + rows[:, 2:w:4] + rows[:, 3:w:4]) / 16.0


class _CutDetector:
    """Scene cuts from consecutive thumbnails, against an adaptive threshold.

    A frame starts a new shot when its mean absolute difference from the previous frame's
    thumbnail is at least ``CUT_MIN_DIFF`` and ``CUT_RATIO`` times the median difference of
    the last ``CUT_HISTORY_S`` seconds: busy footage (handheld, fast pans) raises the bar,
    calm footage lowers it. Gradual transitions (fades) are not cuts; they are sampled anyway.
    """

    def __init__(self, fps: float) -> None:
        self.prev: np.ndarray | None = None
        self.history: deque[float] = deque(maxlen=max(8, round(CUT_HISTORY_S * fps)))

    def __call__(self, frame: av.VideoFrame) -> bool:
        thumb = _luma_thumb(frame)
        prev, self.prev = self.prev, thumb
        if prev is None or prev.shape != thumb.shape:
            return False
        diff = float(np.abs(thumb - prev).mean())
        usual = float(np.median(self.history)) if self.history else 0.0
        self.history.append(diff)
        return diff >= CUT_MIN_DIFF and diff >= CUT_RATIO * usual


def decode(
    path: Path | str,
    sample_fps: float,
    max_frames: int,
    *,
    max_side: int = 512,
    with_audio: bool = False,
    audio_rate: int = 16000,
    sha256: str | None = None,
    keyframes: bool = False,
    max_keyframes: int | None = None,
    still_max_side: int | None = None,
    limits: MediaLimits | None = None,
) -> Decoded:
    """Decode ``path`` once, keeping ``sample_fps`` frames per second (at most ``max_frames``).

    Sampling follows presentation times, so variable frame rates and odd fps sample evenly;
    only kept frames are converted to RGB. A video whose decodable part falls well short of
    the length its container declares is reported as truncated (``InputError``): a partial
    fingerprint would under-report matches silently.

    ``keyframes=True`` also keeps the first frame after every scene cut that falls between
    samples. Every decoded frame is checked: a ~64 px grey thumbnail (read from the luma
    plane, no colour conversion) is compared with the previous one, and a difference well
    above the recent usual level is a cut (see ``_CutDetector``). Keyframes are bounded:
    ``max_keyframes`` (default a quarter of ``max_frames``), none within ``CUT_MIN_GAP_S`` of
    the previous keyframe, and they count towards ``max_frames``, so the fixed-rate samples
    keep most of the budget. ``times`` stay rising; ``Decoded.cuts`` marks the cut frames.

    A still is one frame scaled to ``still_max_side`` (default ``max_side``): one frame is
    cheap, and faces in a group photo need the pixels.

    ``limits`` are checked before anything is decoded (see :func:`check_media`); the
    soundtrack is never decoded past the duration limit, whatever the container declares.
    """
    path = Path(path)
    size_bytes = check_file(path)
    check_size(path, size_bytes, limits)
    sha = sha256 or sha256_file(path)
    still = _open_still(path)
    if still is not None:
        with still:
            media = _still_media(path, sha, size_bytes, still)
            check_media(path, media, limits)
            pixels = _still_pixels(still, still_max_side or max_side, path)
        return Decoded(media, pixels[None], np.zeros(1), is_image=True)

    frames: list[np.ndarray] = []
    times: list[float] = []
    cuts: list[bool] = []
    soundtrack = _Soundtrack()
    step = 1.0 / sample_fps
    next_t = 0.0
    last_t = 0.0
    capped = False
    n_keyframes = 0
    last_key_t = -math.inf
    keyframe_cap = max_frames // 4 if max_keyframes is None else max_keyframes
    tracks = {"video": _Track(), "audio": _Track()}
    max_audio = math.inf if limits is None else (limits.max_duration_s + 1) * audio_rate
    """Samples of soundtrack kept at most: a container may declare no length, or lie."""
    with _open_container(path) as container:
        media = _container_media(path, sha, size_bytes, container)
        check_media(path, media, limits)
        vs = container.streams.video[0] if container.streams.video else None
        aus = container.streams.audio[0] if with_audio and container.streams.audio else None
        if aus is not None and media.duration:  # room for the declared length, at once
            soundtrack.reserve(int(min(media.duration * audio_rate + audio_rate, max_audio)))
        streams = [s for s in (vs, aus) if s is not None]
        if vs is not None:
            vs.thread_type = "AUTO"
        fps = media.fps or 25.0
        size = _fit(media.width or 2, media.height or 2, max_side)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=audio_rate)
        is_cut = _CutDetector(fps) if keyframes else None
        n_video = 0
        try:
            for packet in container.demux(*streams):
                track = tracks[packet.stream.type]
                if track.broken:
                    if all(tracks[s.type].broken for s in streams):
                        break
                    continue
                if capped and packet.stream is vs:
                    continue  # enough frames: the soundtrack goes on alone, undecoded video
                if limits is not None and soundtrack.size > max_audio:
                    raise InputError(
                        f"{path.name}: soundtrack longer than the {limits.max_duration_s:g} s"
                        f" limit ({limits.duration_setting}) although the file declares"
                        f" {media.duration or 0:.0f} s"
                    )
                try:
                    got = packet.decode()
                except av.FFmpegError as exc:
                    track.failed(packet, exc)
                    continue
                track.decoded(packet, len(got))
                for frame in got:
                    if isinstance(frame, av.VideoFrame):
                        t = frame.time if frame.time is not None else n_video / fps
                        n_video += 1
                        last_t = max(last_t, t)
                        if capped:
                            continue
                        cut = is_cut is not None and is_cut(frame)
                        sample = t >= next_t - 0.5 / fps
                        extra = (
                            cut
                            and not sample
                            and n_keyframes < keyframe_cap
                            and t - last_key_t >= CUT_MIN_GAP_S
                        )
                        if (sample or extra) and (not times or t > times[-1]):
                            small = frame.reformat(width=size[0], height=size[1], format="rgb24")
                            frames.append(small.to_ndarray())
                            times.append(t)
                            cuts.append(cut)
                            if sample:
                                next_t = max(next_t + step, t + 0.5 * step)
                            else:
                                n_keyframes += 1
                                last_key_t = t
                            capped = len(frames) >= max_frames
                    elif isinstance(frame, av.AudioFrame):
                        # Placed by its time: packets that failed, and frames a decoder drops
                        # after them without a word (MP3's bit reservoir), leave silence,
                        # never a shift of everything after them.
                        if frame.time is not None:
                            at = round(frame.time * audio_rate)
                            if at - soundtrack.size > AUDIO_GAP_S * audio_rate:
                                soundtrack.silence(at - soundtrack.size)
                        for rf in resampler.resample(frame):
                            soundtrack.append(rf.to_ndarray().reshape(-1))
                if capped and (aus is None or tracks["audio"].broken):
                    break
        except av.FFmpegError as exc:
            # The container itself stops being readable: every track ends here.
            if not frames and not soundtrack.size:
                raise InputError(f"{path.name}: corrupt video ({_av_reason(exc)})") from None
            raise InputError(
                f"{path.name}: truncated or corrupt video (decoding failed after {last_t:.1f} s:"
                f" {_av_reason(exc)})"
            ) from None

    skipped = {
        kind: f"undecodable {kind} track ({why})"
        for kind, stream in (("video", vs), ("audio", aus))
        if stream is not None and (why := tracks[kind].why_unusable()) is not None
    }
    if "video" in skipped:
        frames, times, cuts = [], [], []
    if "audio" in skipped:
        soundtrack = _Soundtrack()
    if vs is not None and "video" in skipped and (aus is None or "audio" in skipped):
        raise InputError(f"{path.name}: corrupt video: {'; '.join(skipped.values())}")
    if aus is not None and "audio" in skipped and vs is None:
        raise InputError(f"{path.name}: corrupt audio: {skipped['audio']}")
    for kind, why in skipped.items():
        log.warning("%s: %s skipped: %s", path.name, kind, why)
    declared = media.duration or 0.0
    if vs is not None and "video" not in skipped and not capped and declared > 0:
        decoded_to = last_t + 1.0 / fps
        if decoded_to < declared - max(1.0, 0.1 * declared):
            raise InputError(
                f"{path.name}: truncated video (decodes to {decoded_to:.1f} s of {declared:.1f} s)"
            )
    audio = soundtrack.samples() if soundtrack.size else None
    arr = np.stack(frames) if frames else np.zeros((0, size[1], size[0], 3), np.uint8)
    return Decoded(
        media,
        arr,
        np.asarray(times, dtype=np.float64),
        audio=audio,
        sample_rate=audio_rate if audio is not None else None,
        cuts=np.asarray(cuts, dtype=bool) if keyframes else None,
        skipped=skipped,
    )


class _Soundtrack:
    """Mono float32 samples appended as they decode, in one buffer that grows by half again
    when full: a long soundtrack costs its own size plus a share, not twice (a list of
    chunks joined at the end held two copies: 0.9 GB for two hours at 16 kHz)."""

    def __init__(self) -> None:
        self._buf = np.zeros(0, np.float32)
        self.size = 0
        """Samples placed so far."""

    def reserve(self, n: int) -> None:
        """Make room for ``n`` samples in all (the length the container declares)."""
        self._room(n - self.size)

    def _room(self, n: int) -> None:
        if self.size + n > len(self._buf):
            grown = np.empty(max(self.size + n, len(self._buf) * 3 // 2, 1 << 16), np.float32)
            grown[: self.size] = self._buf[: self.size]
            self._buf = grown

    def append(self, chunk: np.ndarray) -> None:
        self._room(len(chunk))
        self._buf[self.size : self.size + len(chunk)] = chunk
        self.size += len(chunk)

    def silence(self, n: int) -> None:
        self._room(n)
        self._buf[self.size : self.size + n] = 0.0
        self.size += n

    def samples(self) -> np.ndarray:
        """The samples, trimmed to their length (a view of the buffer when it is full)."""
        out = self._buf[: self.size]
        if len(self._buf) - self.size > self.size // 8:  # much spare room: copy it away
            out = out.copy()
        self._buf = np.zeros(0, np.float32)
        return out


BROKEN_SHARE = 0.5
"""A track whose packets fail to decode more often than this is broken and skipped whole;
rarer failures (a damaged packet here and there) are decoded around."""
BROKEN_MIN_PACKETS = 8
"""Failures in the first packets of a track judge it before its share can be known."""


@dataclass
class _Track:
    """How decoding one track goes, packet by packet."""

    packets: int = 0
    bad: int = 0
    frames: int = 0
    error: str = ""

    @property
    def broken(self) -> bool:
        """So many packets failed, with none decoded, that reading on would be wasted."""
        return self.frames == 0 and self.bad >= BROKEN_MIN_PACKETS

    def failed(self, packet: av.Packet, exc: Exception) -> None:
        self.packets += 1
        self.bad += 1
        self.error = self.error or _av_reason(exc)

    def decoded(self, packet: av.Packet, frames: int) -> None:
        if packet.size:  # the empty packet at the end only flushes the decoder
            self.packets += 1
        self.frames += frames

    def why_unusable(self) -> str | None:
        """Why the track is skipped, or ``None`` when it is used."""
        if self.frames == 0:
            return self.error or "no decodable frames"
        if self.bad > BROKEN_SHARE * max(1, self.packets):
            return f"{self.bad} of {self.packets} packets do not decode: {self.error}"
        return None


def resample_audio(audio: np.ndarray, rate: int, new_rate: int) -> np.ndarray:
    """Mono float32 ``audio`` from ``rate`` to ``new_rate`` with FFmpeg's resampler."""
    a = np.ascontiguousarray(np.asarray(audio, np.float32).reshape(-1))
    if rate == new_rate or a.size == 0:
        return a
    resampler = av.AudioResampler(format="flt", layout="mono", rate=new_rate)
    frame = av.AudioFrame.from_ndarray(a[None], format="flt", layout="mono")
    frame.sample_rate = rate
    frame.pts = 0
    chunks = [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)


def grab_frames(
    path: Path | str,
    times: Sequence[float],
    *,
    max_side: int = 512,
    still_max_side: int | None = None,
) -> list[np.ndarray]:
    """The RGB frames shown at each of ``times`` (seconds; a still's only frame, at
    ``still_max_side`` as :func:`decode` makes it), for evidence thumbnails.

    The file is opened once for all of them; each frame seeks to the keyframe before its
    time and decodes forward, so it costs a fraction of a full decode. Raises ``InputError``
    like :func:`decode`.
    """
    path = Path(path)
    check_file(path)
    still = _open_still(path)
    if still is not None:
        with still:
            pixels = _still_pixels(still, still_max_side or max_side, path)
        return [pixels for _ in times]
    with _open_container(path) as container:
        if not container.streams.video:
            raise InputError(f"{path.name}: no video stream")
        vs = container.streams.video[0]
        size = _fit(vs.codec_context.width, vs.codec_context.height, max_side)
        shown = {
            t: _frame_at(path, container, vs, t)
            .reformat(width=size[0], height=size[1], format="rgb24")
            .to_ndarray()
            for t in sorted(set(times))
        }
        return [shown[t] for t in times]


def _frame_at(
    path: Path, container: av.container.InputContainer, vs: av.VideoStream, t: float
) -> av.VideoFrame:
    best: av.VideoFrame | None = None
    try:
        if t > 0 and vs.time_base:  # rising times: only the first can be 0
            container.seek(int(t / vs.time_base), stream=vs, backward=True)
        for frame in container.decode(vs):
            if best is None or frame.time is None or frame.time <= t + 1e-3:
                best = frame
            if frame.time is not None and frame.time >= t - 1e-3:
                break
    except av.FFmpegError as exc:
        if best is None:
            raise InputError(f"{path.name}: corrupt video ({_av_reason(exc)})") from None
    if best is None:
        raise InputError(f"{path.name}: no frame at {t:.2f} s")
    return best
