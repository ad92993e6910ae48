"""Media limits and hostile media: refused in one line from the headers, before decoding.

Every file here is generated: PNGs written row by row (a 32 KB file can claim 144
megapixels), videos made by FFmpeg from its lavfi sources.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from matcher.decode import decode, probe
from reelwatch.errors import InputError
from reelwatch.settings import Settings, load_settings

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")


def write_png(path: Path, width: int, height: int) -> Path:
    """A 1-bit grey PNG of ``width`` x ``height``, all black, compressed row by row: a few
    kilobytes on disk, whatever it claims, and never held in memory here."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    squeeze = zlib.compressobj(9)
    row = b"\0" * (1 + (width + 7) // 8)
    parts = [squeeze.compress(row) for _ in range(height)]
    data = b"".join(parts) + squeeze.flush()
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )
    return path


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def long_quiet_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The issue's case: two hours of 32x32 black with silent 8 kHz audio, 650 KB."""
    out = tmp_path_factory.mktemp("limits") / "two-hours.mp4"
    ffmpeg(
        "-f", "lavfi", "-i", "color=c=black:s=32x32:r=1",
        "-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono",
        "-t", "7200", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-b:a", "8k",
        str(out),
    )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def uhd_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4K at 60 fps for 20 minutes, made cheaply: one second of a flat colour encoded once,
    then looped 1200 times by stream copy."""
    folder = tmp_path_factory.mktemp("uhd")
    second = folder / "second.mp4"
    ffmpeg(
        "-f", "lavfi", "-i", "color=c=navy:s=3840x2160:r=60:d=1",
        "-c:v", "libx264", "-preset", "ultrafast", "-crf", "51", str(second),
    )  # fmt: skip
    out = folder / "uhd-20min.mp4"
    ffmpeg("-stream_loop", "1199", "-i", str(second), "-c", "copy", str(out))
    return out


@pytest.fixture
def limited(home: Path) -> Settings:
    return load_settings(home=home)


def one_line(exc: pytest.ExceptionInfo[InputError]) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_a_144_megapixel_png_is_refused_from_its_header(tmp_path: Path, limited: Settings) -> None:
    png = write_png(tmp_path / "huge.png", 12000, 12000)
    assert png.stat().st_size < 64_000
    for call in (
        lambda: probe(png, limits=limited.media_limits("query")),
        lambda: decode(png, 2.0, 10, limits=limited.media_limits("reference")),
    ):
        with pytest.raises(InputError) as caught:
            call()
        assert one_line(caught) == (
            "huge.png: picture of 12000x12000 (144.0 megapixels), over the 50 megapixel limit"
            " (limits.max_megapixels)"
        )


def test_an_image_bomb_is_one_line_even_without_limits(tmp_path: Path) -> None:
    """Over twice Pillow's own cap it raises DecompressionBombError from open()."""
    bomb = write_png(tmp_path / "bomb.png", 20000, 20000)
    with pytest.raises(InputError) as caught:
        decode(bomb, 2.0, 10)
    assert one_line(caught).startswith("bomb.png: image too large to decode")


def test_a_truncated_png_is_one_line(tmp_path: Path) -> None:
    full = tmp_path / "full.png"
    noise = np.random.default_rng(1).integers(0, 255, (400, 400, 3), np.uint8)
    Image.fromarray(noise).save(full)
    cut = tmp_path / "cut.png"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(InputError) as caught:
        decode(cut, 2.0, 10)
    assert one_line(caught).startswith("cut.png: truncated or corrupt image")


@pytest.mark.parametrize(
    ("name", "content", "says"),
    [
        ("empty.mp4", b"", "empty.mp4: empty file"),
        ("notes.mp4", b"just some words, not frames\n" * 40, "notes.mp4: not a video"),
        ("noise.mp4", bytes(np.random.default_rng(2).integers(0, 255, 50_000, np.uint8)), ""),
        ("header-only.mp4", b"\x00\x00\x00\x18ftypisom" + b"\x00" * 200, "header-only.mp4: "),
    ],
)
def test_corrupt_zero_byte_and_mislabelled_files(
    tmp_path: Path, limited: Settings, name: str, content: bytes, says: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError) as caught:
        decode(path, 2.0, 10, with_audio=True, limits=limited.media_limits("query"))
    line = one_line(caught)
    assert line.startswith(says or name)


def test_a_png_named_mp4_is_read_for_what_it_is(tmp_path: Path, limited: Settings) -> None:
    path = tmp_path / "photo.mp4"
    Image.new("RGB", (64, 48), (200, 30, 30)).save(path, format="PNG")
    decoded = decode(path, 2.0, 10, limits=limited.media_limits("query"))
    assert decoded.is_image and decoded.frames.shape == (1, 48, 64, 3)


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, home: Path
) -> None:
    monkeypatch.setenv("REELWATCH_LIMITS__MAX_FILESIZE_MB", "1")
    path = tmp_path / "big.mp4"
    with path.open("wb") as f:  # sparse: 3 MB that were never written
        f.truncate(3_000_000)
    limits = load_settings(home=home).media_limits("query")
    with pytest.raises(InputError) as caught:
        probe(path, limits=limits)
    assert one_line(caught) == "big.mp4: 3.0 MB, over the 1 MB limit (limits.max_filesize_mb)"


@needs_ffmpeg
def test_a_4k_60fps_20_minute_file_is_refused_in_one_line(
    uhd_clip: Path, limited: Settings
) -> None:
    media = probe(uhd_clip)
    assert (media.width, media.height) == (3840, 2160)
    assert media.fps == pytest.approx(60) and media.duration == pytest.approx(1200, abs=2)
    with pytest.raises(InputError) as caught:
        decode(uhd_clip, 2.0, 600, limits=limited.media_limits("query"))
    assert one_line(caught) == (
        "uhd-20min.mp4: 1200 s long, over the 900 s limit (download.max_duration_s)"
    )


@needs_ffmpeg
def test_two_hours_of_quiet_is_refused_as_a_query(long_quiet_clip: Path, limited: Settings) -> None:
    with pytest.raises(InputError) as caught:
        decode(long_quiet_clip, 2.0, 600, with_audio=True, limits=limited.media_limits("query"))
    assert "7200 s long, over the 900 s limit (download.max_duration_s)" in one_line(caught)


def _peak_mb(code: str, *args: str) -> tuple[dict[str, object], int]:
    """Run ``code`` in a fresh interpreter; what it prints as JSON, and its peak memory.

    The peak is the process's own high-water mark (``VmHWM``), which starts afresh with the
    new program; ``getrusage``'s ``ru_maxrss`` would carry over the forking parent's (the test
    process's, gigabytes in a full run)."""
    probe_code = (
        "import json, sys\n" + code + "\n"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]\n"
        "print(json.dumps(dict(out, peak_mb=int(hwm.split()[1]) // 1024)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe_code, *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result, int(result["peak_mb"])


def test_the_144_megapixel_png_costs_no_memory(tmp_path: Path) -> None:
    """Unchecked, decoding it took 845 MB; refused from the header it takes what the
    imports take (about 100 MB here)."""
    png = write_png(tmp_path / "huge.png", 12000, 12000)
    out, peak = _peak_mb(
        "from matcher.decode import decode\n"
        "from reelwatch.errors import InputError\n"
        "from reelwatch.settings import load_settings\n"
        "try:\n"
        "    decode(sys.argv[1], 2.0, 10, limits=load_settings().media_limits('query'))\n"
        "    out = {'error': None}\n"
        "except InputError as exc:\n"
        "    out = {'error': str(exc)}\n",
        str(png),
    )
    assert "over the 50 megapixel limit" in str(out["error"])
    assert peak < 400, f"refusing the picture peaked at {peak} MB"


@needs_ffmpeg
def test_a_long_catalog_soundtrack_is_held_once(long_quiet_clip: Path) -> None:
    """Two hours of audio at 16 kHz are 461 MB of float32: decoding held them twice (a list
    of chunks, then the joined array: 983 MB peak); one buffer sized from the declared
    length keeps the peak near the soundtrack itself."""
    out, peak = _peak_mb(
        "from matcher.decode import decode\n"
        "from reelwatch.settings import load_settings\n"
        "s = load_settings()\n"
        "d = decode(sys.argv[1], 4.0, 600, with_audio=True, keyframes=True,"
        " limits=s.media_limits('reference'))\n"
        "out = {'samples': int(d.audio.size), 'frames': int(len(d.frames))}\n",
        str(long_quiet_clip),
    )
    assert out["samples"] == pytest.approx(7200 * 16000, rel=0.001)
    assert out["frames"] == 600
    soundtrack_mb = 7200 * 16000 * 4 / 2**20
    assert peak < soundtrack_mb + 250, f"decoding peaked at {peak} MB"


@needs_ffmpeg
def test_a_soundtrack_longer_than_declared_stops_at_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, home: Path
) -> None:
    """A Matroska file whose Duration says 5 s over 120 s of audio passes the duration check
    from the headers; decoding stops at the limit instead of holding what follows."""
    path = tmp_path / "liar.mkv"
    ffmpeg(
        "-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono", "-t", "120", "-c:a", "pcm_s16le", str(path)
    )
    data = bytearray(path.read_bytes())
    at = data.find(b"\x44\x89\x88")  # the segment's Duration: an 8-byte float, in ms
    assert at > 0 and struct.unpack(">d", data[at + 3 : at + 11]) == (120000.0,)
    data[at + 3 : at + 11] = struct.pack(">d", 5000.0)
    path.write_bytes(bytes(data))
    assert probe(path).duration == pytest.approx(5.0)
    monkeypatch.setenv("REELWATCH_LIMITS__MAX_DURATION_S", "30")
    limits = load_settings(home=home).media_limits("query")
    with pytest.raises(InputError) as caught:
        decode(path, 2.0, 10, with_audio=True, limits=limits)
    assert one_line(caught) == (
        "liar.mkv: soundtrack longer than the 30 s limit (limits.max_duration_s) although the"
        " file declares 5 s"
    )
