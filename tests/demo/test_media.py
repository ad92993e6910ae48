from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from reelwatch.demo import media


@pytest.fixture(scope="module")
def ref(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("media") / "ref.mp4"
    return media.make_reference_clip(["coffee", "camera"], out, seconds_per_photo=2.0, seed=7)


def test_reference_clip_is_h264_aac_of_the_asked_size_and_length(ref: Path) -> None:
    with av.open(str(ref)) as c:
        vs, aus = c.streams.video[0], c.streams.audio[0]
        assert vs.codec_context.name == "h264"
        assert aus.codec_context.name == "aac"
        assert (vs.codec_context.width, vs.codec_context.height) == (640, 360)
        assert float(vs.average_rate) == 24
        assert c.duration is not None
        assert abs(c.duration / av.time_base - 4.0) < 0.2


def test_reference_clip_moves_and_is_deterministic(ref: Path, tmp_path: Path) -> None:
    again = media.make_reference_clip(
        ["coffee", "camera"], tmp_path / "again.mp4", seconds_per_photo=2.0, seed=7
    )
    a, b = media.read_clip(ref), media.read_clip(again)
    assert len(a.frames) == len(b.frames) == 96
    assert all(np.array_equal(x, y) for x, y in zip(a.frames, b.frames, strict=True))
    # Ken Burns: consecutive frames of one photo differ, but only a little.
    diff = np.abs(a.frames[10].astype(int) - a.frames[0].astype(int)).mean()
    assert 0.5 < diff < 60


def test_melodies_differ_per_seed() -> None:
    a, b = media.melody(2.0, 1), media.melody(2.0, 2)
    assert a.shape == (2, 2 * media.SAMPLE_RATE)
    assert np.abs(a).max() > 0.05
    assert not np.allclose(a, b)


def test_transforms_do_what_infringers_do(ref: Path) -> None:
    clip = media.read_clip(ref)
    assert media.excerpt(clip, 1.0, 2.0).duration == pytest.approx(2.0)
    m = media.mirror(clip)
    assert np.array_equal(m.frames[0], clip.frames[0][:, ::-1])
    lb = media.letterbox_vertical(clip)
    assert lb.size == (360, 640)
    top = lb.frames[0][:100].astype(float)
    assert np.abs(np.diff(top, axis=1)).mean() < 2.0  # blurred fill, not content
    fast = media.change_speed(clip, 1.25)
    assert fast.duration == pytest.approx(clip.duration / 1.25, abs=0.05)
    assert fast.audio.shape[1] == pytest.approx(clip.audio.shape[1] / 1.25, abs=2)
    small = media.shrink(clip, width=320, fps=15)
    assert small.size == (320, 180)
    assert small.fps == 15
    cropped = media.crop(clip, 0.8)
    assert cropped.size == clip.size
    text = media.overlay_text(clip, "LEAKED")
    assert not np.array_equal(text.frames[0], clip.frames[0])


def test_transform_file_encodes_a_combination_once(ref: Path, tmp_path: Path) -> None:
    out = media.transform_file(
        ref,
        tmp_path / "post.mp4",
        [media.mirror, media.letterbox_vertical],
        start=1.0,
        duration=2.0,
        crf=30,
    )
    clip = media.read_clip(out)
    assert clip.size == (360, 640)
    assert clip.duration == pytest.approx(2.0, abs=0.1)
    assert clip.audio.shape[0] == 2


def test_unknown_photo_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no photo named"):
        media.load_photo("not_a_photo")
