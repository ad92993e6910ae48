"""Ingesting what real files hold: tracks that do not decode, rotated photos, galleries with
an unusable photo.

The broken files are real containers written here: an AVI (MPEG-4 video, MP3 audio) whose
audio or video packets are overwritten with noise after encoding, as a damaged download or a
bad remux leaves them. Each fixture checks with PyAV that the damaged track really fails and
the other really decodes, so the tests below cannot pass on a file that is not broken.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import av
import numpy as np
import pytest
from PIL import Image

from matcher.catalog import AssetsRefused, Catalog, to_file_box, to_frame_box
from matcher.decode import decode, grab_frames, probe
from matcher.engine import Matcher
from matcher.fingerprint import fingerprint_file
from reelwatch.demo import media
from reelwatch.demo.media import load_photo, make_reference_clip, read_clip
from reelwatch.errors import InputError
from reelwatch.models import AssetKind, Media
from reelwatch.settings import Settings

Track = Literal["audio", "video"]

REPO = Path(__file__).resolve().parents[2]
FACES = Path(os.environ.get("REELWATCH_TEST_FACES") or REPO / ".venv" / "test-data" / "faces")
"""Real face photos made by ``make test-data``; tests that need them skip without them."""


def write_avi(out: Path, broken: Iterable[Track] = (), *, seed: int = 7) -> Path:
    """An AVI of three photos (9 s, 320x180, MPEG-4 + MP3 of a seeded melody) whose
    ``broken`` tracks carry noise instead of their coded packets (timing kept)."""
    source = make_reference_clip(
        ["astronaut", "rocket", "coffee"],
        out.with_suffix(".src.mp4"),
        seconds_per_photo=3,
        size=(320, 180),
        seed=seed,
    )
    clip = read_clip(source)
    source.unlink()
    return media.write_avi(clip, out, broken, seed=seed)


def decodes(path: Path, track: Track) -> bool:
    """Whether PyAV decodes any frame of the file's ``track`` (errors on packets allowed)."""
    frames = 0
    with av.open(str(path)) as container:
        for packet in container.demux(getattr(container.streams, track)[0]):
            try:
                frames += len(packet.decode())
            except av.FFmpegError:
                continue
    return frames > 0


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ingest")


@pytest.fixture(scope="module")
def bad_audio(media_dir: Path) -> Path:
    path = write_avi(media_dir / "bad-audio.avi", ["audio"])
    assert decodes(path, "video") and not decodes(path, "audio")
    return path


@pytest.fixture(scope="module")
def bad_video(media_dir: Path) -> Path:
    path = write_avi(media_dir / "bad-video.avi", ["video"], seed=8)
    assert decodes(path, "audio") and not decodes(path, "video")
    return path


# Decoding each track on its own -------------------------------------------------------------


def test_a_broken_audio_track_is_skipped_and_the_video_decodes(bad_audio: Path) -> None:
    d = decode(bad_audio, 2.0, 600, with_audio=True)
    assert d.frames.shape[1:] == (180, 320, 3) and len(d.frames) >= 18  # 9 s at 2 fps
    assert d.frames.std() > 20  # real pictures, not grey filler
    assert d.audio is None and d.sample_rate is None
    assert list(d.skipped) == ["audio"]
    assert d.skipped["audio"].startswith("undecodable audio track (")
    assert decode(bad_audio, 2.0, 600).skipped == {}  # audio not asked for, not judged


def test_a_broken_video_track_is_skipped_and_the_audio_decodes(bad_video: Path) -> None:
    d = decode(bad_video, 2.0, 600, with_audio=True)
    assert len(d.frames) == 0
    assert d.audio is not None and len(d.audio) == pytest.approx(9 * 16000, rel=0.05)
    assert np.abs(d.audio).max() > 0.05
    assert list(d.skipped) == ["video"]
    with pytest.raises(InputError, match=r"^bad-video\.avi: corrupt video: undecodable video"):
        decode(bad_video, 2.0, 600)  # without audio nothing is left


def test_a_file_where_no_track_decodes_is_one_clear_error(media_dir: Path) -> None:
    path = write_avi(media_dir / "bad-both.avi", ["audio", "video"], seed=9)
    with pytest.raises(InputError) as err:
        decode(path, 2.0, 600, with_audio=True)
    msg = str(err.value)
    assert msg.startswith("bad-both.avi: corrupt video: undecodable video track")
    assert "undecodable audio track" in msg and "\n" not in msg


def test_the_fingerprint_cache_remembers_a_skipped_track(
    bad_audio: Path, settings: Settings
) -> None:
    fresh = fingerprint_file(bad_audio, settings, role="reference")
    assert fresh.decoded is not None and "audio" in fresh.skipped
    cached = fingerprint_file(bad_audio, settings, role="reference")
    assert cached.decoded is None  # read back from the cache, not decoded again
    assert cached.skipped == fresh.skipped


# EXIF orientation ----------------------------------------------------------------------------


def test_stills_are_read_upright_by_their_exif_orientation(tmp_path: Path) -> None:
    """A phone photo stored landscape with orientation 6 ("turn 90 degrees clockwise")."""
    stored = np.zeros((300, 400, 3), np.uint8)
    stored[:50, :50] = (255, 0, 0)  # stored top-left; shown top-right once turned
    path = tmp_path / "phone.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(path, exif=exif, quality=95)

    m = probe(path)
    assert (m.width, m.height) == (300, 400)
    d = decode(path, 2.0, 600)
    assert d.frames.shape == (1, 400, 300, 3)
    [shown] = grab_frames(path, [0.0])
    for frame in (d.frames[0], shown):
        assert frame[:40, -40:, 0].mean() > 200  # the red corner is at the top right
        assert frame[:40, :40, 0].mean() < 50


# Adds that keep every usable file -----------------------------------------------------------


def test_a_multi_file_add_keeps_the_usable_files_and_names_the_refused(
    settings: Settings, tmp_path: Path
) -> None:
    stills = []
    for name in ("rocket", "astronaut"):
        stills.append(tmp_path / f"{name}.jpg")
        Image.fromarray(load_photo(name)).save(stills[-1])
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(stills[0].read_bytes()[:200])  # a download cut short
    cat = Catalog(settings)
    cat.add_title("Starfall Station")
    added = cat.add_assets("starfall-station", [stills[0], broken, stills[1]])
    assert [a.name for a in added] == ["rocket.jpg", "astronaut.jpg"]
    [refusal] = added.refused
    assert refusal.path == broken and refusal.reason.startswith("broken.jpg: ")
    stored = {p.name.split(".")[0] for p in (settings.catalog_dir / "files").rglob("*.jpg")}
    assert stored == {a.sha256 for a in added}
    assert {a.sha256 for a in cat.assets()} == stored


def test_an_asset_with_a_skipped_track_says_so_and_matches_on_the_other(
    bad_audio: Path, bad_video: Path, settings: Settings, tmp_path: Path
) -> None:
    cat = Catalog(settings)
    cat.add_title("Starfall Station")
    cat.add_title("The Roastery")
    [a] = cat.add_assets("starfall-station", [bad_audio])
    [v] = cat.add_assets("the-roastery", [bad_video])
    assert a.kind == v.kind == AssetKind.VIDEO
    assert [n.split(":")[0] for n in a.notes] == ["audio skipped"]
    assert "undecodable audio track" in a.notes[0]
    assert [n.split(":")[0] for n in v.notes] == ["video skipped"]
    assert [x.notes for x in Catalog(settings).assets()] == [a.notes, v.notes]  # stored

    copy = tmp_path / "repost.avi"
    shutil.copyfile(bad_audio, copy)
    [m] = Matcher(settings, cat).match_file(copy).matches
    assert m.title_id == "starfall-station" and "copy" in m.signals
    shutil.copyfile(bad_video, copy)
    [m] = Matcher(settings, cat).match_file(copy).matches
    assert m.title_id == "the-roastery" and "audio" in m.signals and "copy" not in m.signals


# Face boxes ------------------------------------------------------------------------------------


def test_face_boxes_convert_between_file_and_frame_pixels() -> None:
    photo = Media(sha256="0" * 64, path="p.jpg", bytes=1, width=2000, height=1500)
    box = (400, 300, 700, 650)
    frame_box = to_frame_box(box, photo, 512)
    assert frame_box == (102, 77, 179, 166)  # frames are 512 x 384
    back = to_file_box(frame_box, photo, 512)
    assert all(abs(p - q) <= 4 for p, q in zip(back, box, strict=True))
    assert to_frame_box(back, photo, 512) == frame_box  # stable once stored


def test_a_face_box_is_stored_and_a_box_outside_the_photo_is_refused(
    settings: Settings, tmp_path: Path
) -> None:
    photo = tmp_path / "portrait.jpg"
    Image.fromarray(load_photo("astronaut")).save(photo)
    other = tmp_path / "other.jpg"
    Image.fromarray(load_photo("astronaut")[::-1]).save(other)
    w = Image.open(photo).width
    cat = Catalog(settings)
    cat.add_title("Starfall Station")
    with pytest.raises(InputError, match="not among the files"):
        cat.add_assets("starfall-station", [photo], kind="face", face_boxes={other: (0, 0, 9, 9)})
    with pytest.raises(AssetsRefused, match=r"portrait\.jpg: face box .* not inside"):
        cat.add_assets(
            "starfall-station", [photo], kind="face", face_boxes={photo: (0, 0, w + 1, 10)}
        )
    with pytest.raises(AssetsRefused, match="applies to face assets"):
        cat.add_assets("starfall-station", [photo], kind="image", face_boxes={photo: (0, 0, 9, 9)})
    assert cat.assets() == []


def test_a_face_gallery_keeps_the_photos_with_a_face_and_rebuilds_the_same(
    settings: Settings, tmp_path: Path
) -> None:
    face = next((s for s in Catalog(settings).signals if s.name == "face"), None)
    if face is None or not (FACES / "obama2.jpg").is_file():
        pytest.skip("needs the face signal and `make test-data` photos")
    coffee = tmp_path / "coffee.jpg"
    Image.fromarray(load_photo("coffee")).save(coffee)
    cat = Catalog(settings)
    cat.add_title("Starfall Station")
    gallery = [FACES / "obama.jpg", coffee, FACES / "obama2.jpg"]
    added = cat.add_assets("starfall-station", gallery, talent="Barack Obama", kind="face")
    assert [a.name for a in added] == ["obama.jpg", "obama2.jpg"]
    assert all(a.kind == AssetKind.FACE and a.talent_id == "barack-obama" for a in added)
    [refusal] = added.refused
    assert refusal.path == coffee and "no face found" in refusal.reason
    assert cat.get_title("starfall-station").talents == ["Barack Obama"]  # type: ignore[union-attr]
    entries = len(cat.index("face"))
    assert entries > 0
    assert Catalog(settings).build()["face"] == entries


def test_an_empty_title_is_discarded_and_a_title_with_assets_kept(
    settings: Settings, tmp_path: Path
) -> None:
    cat = Catalog(settings)
    cat.add_title("Starfall Station")
    cat.add_title("The Roastery")
    poster = tmp_path / "poster.jpg"
    Image.fromarray(load_photo("rocket")).save(poster)
    cat.add_assets("the-roastery", [poster])
    assert cat.discard_empty_title("starfall-station")
    assert not cat.discard_empty_title("the-roastery")
    assert [t.id for t in cat.titles()] == ["the-roastery"]
    assert len(Catalog(settings).index("text")) == 1  # the removed title's card is gone too


def test_a_partly_broken_audio_track_keeps_its_timeline(tmp_path: Path) -> None:
    """A fifth of the MP3 packets are noise: they fail, and the decoder drops the frames
    after them that leaned on their bit reservoir without a word. What decodes must stay
    at its time (silence in the holes), or every later match lands early."""
    rate, seconds = 22050, 8.0
    t = np.arange(round(seconds * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * 440 * t)
    burst = (t >= 6.0) & (t < 6.05)
    tone[burst] += 0.6 * np.sin(2 * np.pi * 2000 * t[burst])
    audio = np.stack([tone, tone]).astype(np.float32)
    frames = tuple(np.full((64, 96, 3), i % 255, np.uint8) for i in range(round(seconds * 24)))
    avi = media.write_avi(
        media.Clip(frames, 24.0, audio), tmp_path / "holes.avi", ["audio"], every=5
    )
    d = decode(avi, 2, 600, with_audio=True)
    assert d.skipped == {} and d.audio is not None
    assert abs(len(d.audio) / 16000 - seconds) < 0.15
    assert np.mean(np.abs(d.audio) < 1e-6) > 0.15  # the holes are there, as silence
    # The burst is where it was (MP3's encoder delay is about 50 ms).
    assert abs(np.argmax(np.abs(np.diff(d.audio))) / 16000 - 6.05) < 0.1
