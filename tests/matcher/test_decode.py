from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from matcher.decode import decode, grab_frames, probe
from reelwatch.demo.content import DemoContent
from reelwatch.errors import InputError


@pytest.fixture(scope="module")
def clip(demo: DemoContent) -> Path:
    return demo.titles[0].references[0]


def test_probe_describes_the_file(clip: Path) -> None:
    m = probe(clip)
    assert len(m.sha256) == 64
    assert m.bytes == clip.stat().st_size
    assert (m.width, m.height, m.fps) == (640, 360, 24.0)
    assert m.duration == pytest.approx(18.0, abs=0.2)
    assert (m.video_codec, m.audio_codec) == ("h264", "aac")


def test_decode_samples_frames_evenly_in_one_pass(clip: Path) -> None:
    d = decode(clip, sample_fps=2.0, max_frames=600, max_side=320, with_audio=True)
    assert d.frames.shape == (36, 180, 320, 3)
    assert np.allclose(np.diff(d.times), 0.5, atol=0.05)
    assert d.audio is not None and d.sample_rate == 16000
    assert len(d.audio) == pytest.approx(18.0 * 16000, rel=0.02)
    capped = decode(clip, sample_fps=2.0, max_frames=5)
    assert len(capped.frames) == 5


def test_a_still_is_single_frame_media(tmp_path: Path) -> None:
    path = tmp_path / "poster.jpg"
    Image.fromarray(np.full((300, 400, 3), 128, np.uint8)).save(path)
    m = probe(path)
    assert (m.width, m.height, m.duration) == (400, 300, 0.0)
    d = decode(path, 2.0, 600)
    assert d.is_image and d.frames.shape == (1, 300, 400, 3)
    assert [f.shape for f in grab_frames(path, [5.0, 0.0])] == [(300, 400, 3)] * 2


def test_grab_frames_seeks_to_each_time_in_one_open(clip: Path) -> None:
    d = decode(clip, sample_fps=1.0, max_frames=600)
    times = [7.0, 0.0, 15.0, 7.0]  # any order, repeats allowed
    frames = grab_frames(clip, times)
    assert len(frames) == len(times)
    for t, frame in zip(times, frames, strict=True):
        k = int(np.argmin(np.abs(d.times - t)))
        assert np.abs(frame.astype(int) - d.frames[k].astype(int)).mean() < 3, t


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.mp4: no such file"):
        decode(tmp_path / "nope.mp4", 2.0, 600)


@pytest.mark.parametrize("name", ["notes.txt", "notes.mp4", "empty.mp4"])
def test_text_and_empty_files_are_not_videos(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text("" if name.startswith("empty") else "this is not a video\n" * 20)
    with pytest.raises(InputError) as err:
        probe(path)
    msg = str(err.value)
    assert msg.startswith(name) and "\n" not in msg
    assert "not a video" in msg or "empty" in msg


def test_truncated_mp4_is_reported(tmp_path: Path, clip: Path) -> None:
    data = clip.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"cut\.mp4: truncated or corrupt video"):
        decode(cut, 2.0, 600)


def test_truncated_faststart_mp4_is_reported(tmp_path: Path, clip: Path) -> None:
    """With the index first (web uploads), the container opens; the missing frames show."""
    import av

    fast = tmp_path / "fast.mp4"
    with (
        av.open(str(clip)) as src,
        av.open(str(fast), "w", options={"movflags": "faststart"}) as dst,
    ):
        ins = src.streams.video[0]
        out = dst.add_stream_from_template(ins)
        for packet in src.demux(ins):
            if packet.dts is None:
                continue
            packet.stream = out
            dst.mux(packet)
    data = fast.read_bytes()
    cut = tmp_path / "fastcut.mp4"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(InputError, match=r"fastcut\.mp4: truncated"):
        decode(cut, 2.0, 600)


@pytest.fixture(scope="module")
def cuts_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four photos, 31 frames each at 24 fps: hard cuts at 1.29 s, 2.58 s and 3.88 s, all of
    them between the 2 fps samples."""
    from reelwatch.demo.media import make_reference_clip

    out = tmp_path_factory.mktemp("cuts") / "cuts.mp4"
    photos = ["coffee", "camera", "astronaut", "rocket"]
    return make_reference_clip(photos, out, seconds_per_photo=1.3, size=(320, 180), seed=5)


CUTS = [31 / 24, 62 / 24, 93 / 24]


def test_scene_cut_frames_are_kept_between_samples(cuts_clip: Path) -> None:
    plain = decode(cuts_clip, 2.0, 600)
    assert plain.cuts is None
    assert all(np.min(np.abs(plain.times - c)) > 0.05 for c in CUTS)

    d = decode(cuts_clip, 2.0, 600, keyframes=True)
    assert d.cuts is not None and d.cuts.shape == d.times.shape
    assert np.all(np.diff(d.times) > 0)
    assert set(plain.times.round(3)) <= set(d.times.round(3))  # fixed-rate samples all kept
    assert np.allclose(d.times[d.cuts], CUTS, atol=1e-3)
    assert len(d.times) == len(plain.times) + len(CUTS)
    for c in CUTS:
        k = int(np.argmin(np.abs(d.times - c)))
        cut, before, after = (d.frames[i].astype(float) for i in (k, k - 1, k + 1))
        # The kept frame opens the new shot: like the next sample, unlike the previous one.
        assert np.abs(cut - after).mean() < np.abs(cut - before).mean(), c


def test_keyframes_are_bounded(cuts_clip: Path) -> None:
    one = decode(cuts_clip, 2.0, 600, keyframes=True, max_keyframes=1)
    assert one.cuts is not None and int(one.cuts.sum()) == 1
    capped = decode(cuts_clip, 2.0, 4, keyframes=True)  # max_frames holds, not "truncated"
    assert len(capped.frames) == 4
    assert np.all(np.diff(capped.times) > 0)
