"""Evidence a reviewer can use: each segment's query and reference frames show the same
scene, also on a sped-up copy whose time line is stretched."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from matcher.catalog import Catalog
from matcher.engine import Matcher
from reelwatch.demo import media
from reelwatch.settings import Settings, load_settings

SCENES = ("astronaut", "coffee", "chelsea", "rocket", "clock", "brick", "moon", "camera")
SCENE_S = 1.5
"""Seconds per scene: a hard cut between photos every 1.5 s."""


def _grey(path: Path) -> np.ndarray:
    img = Image.open(path).convert("L").resize((32, 32), Image.Resampling.BILINEAR)
    a = np.asarray(img, np.float64)
    return (a - a.mean()) / (a.std() + 1e-6)


def _similarity(a: np.ndarray, b: np.ndarray) -> float:
    return float((a * b).mean())


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Matcher, Path]:
    root = tmp_path_factory.mktemp("evidence")
    ref = media.make_reference_clip(SCENES, root / "ref.mp4", seconds_per_photo=SCENE_S, seed=5)
    settings = load_settings(home=root / "home")
    settings.matcher.signals = ["copy"]
    settings.ensure_home()
    catalog = Catalog(settings)
    title = catalog.add_title("Scenes")
    catalog.add_assets(title.id, [ref])
    return settings, Matcher(settings, catalog), ref


# (start, speed): from 3.3 s at 1.25x the fitted line's end falls 20 ms before a cut.
@pytest.mark.parametrize(("start", "speed"), [(3.3, 1.25), (1.0, 1.25), (0.4, 0.8)])
def test_a_sped_up_copys_evidence_frames_show_the_same_scene(
    scenes: tuple[Settings, Matcher, Path], tmp_path: Path, start: float, speed: float
) -> None:
    settings, matcher, ref = scenes
    clip = media.change_speed(media.read_clip(ref, start, 10.0), speed)
    query = media.write_clip(clip, tmp_path / "copy.mp4")
    report = matcher.match_file(query)
    assert report.best is not None and report.best.title == "Scenes"
    segments = [s for s in report.best.segments if s.signal == "copy"]
    assert segments
    for seg in segments:
        q, r = (_grey(settings.home / p) for p in seg.evidence[:2])
        pair = _similarity(q, r)
        assert pair > 0.6, f"evidence frames differ (correlation {pair:.2f}): {seg.evidence}"
        ref_ms = int(Path(seg.evidence[1]).stem.split("-")[1])
        q_ms = int(Path(seg.evidence[0]).stem.split("-")[1])
        # The query plays the reference from ``start`` at ``speed``: its frame at t shows
        # about start + speed * t of the reference (frame rounding aside).
        assert abs(ref_ms / 1000 - (start + speed * q_ms / 1000)) < 0.3
        assert seg.ref_start <= ref_ms / 1000 <= seg.ref_end + 0.5


def test_each_copy_segment_has_a_similarity_strip_of_its_sampled_moments(
    scenes: tuple[Settings, Matcher, Path], tmp_path: Path
) -> None:
    settings, matcher, ref = scenes
    clip = media.read_clip(ref, 2.0, 8.0)
    query = media.write_clip(clip, tmp_path / "plain.mp4")
    report = matcher.match_file(query)
    assert report.best is not None
    seg = next(s for s in report.best.segments if s.signal == "copy")
    strip = next(settings.home / p for p in seg.evidence if Path(p).name.startswith("st-"))
    img = np.asarray(Image.open(strip).convert("RGB")).astype(int)
    # One bar per sampled moment (2 per second); a plain excerpt matches closely all along:
    # green bars of nearly full height across the whole strip.
    green = (img[..., 1] > 130) & (img[..., 0] < 100)
    columns = green.any(axis=0)
    assert columns.mean() > 0.8
    assert green[: img.shape[0] // 3].any(axis=0).mean() > 0.7


def test_a_sound_picture_shows_both_soundtracks_at_the_offset(tmp_path: Path) -> None:
    from matcher.evidence import SOUND_SIZE, read_audio, sound_picture
    from reelwatch.demo import audio

    song = audio.song(12.0, 11)
    clip = media.Clip((np.zeros((64, 64, 3), np.uint8),) * 12 * 4, 4.0, song)
    path = media.write_clip(clip, tmp_path / "song.mp4")
    rate = 16000
    a = read_audio(path, 5.0, 4.0, rate)
    b = read_audio(path, 5.0, 4.0, rate)
    c = read_audio(path, 1.0, 4.0, rate)
    assert len(a) == 4 * rate and np.allclose(a, b)
    assert not np.allclose(a[: len(c)], c)
    img = np.asarray(sound_picture(a, b, rate).convert("L")).astype(int)
    w, h = SOUND_SIZE
    assert img.shape == (2 * h + 4, w)
    # The same sound on both sides: the two spectrograms (labels aside) agree.
    top, bottom = img[16:h], img[h + 4 + 16 :]
    assert np.abs(top - bottom).mean() < 3
    other = np.asarray(sound_picture(a, c, rate).convert("L")).astype(int)[h + 4 + 16 :]
    assert np.abs(top - other).mean() > 10
