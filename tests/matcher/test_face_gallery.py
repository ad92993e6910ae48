"""The face signal on faces as real clips show them: small, tilted, behind sunglasses, in
group photos, and a talent's gallery choosing the talent's face in each photo.

Photos are face_recognition's test images (``make test-data``; see test_face_signal.py) and
scikit-image's astronaut; frames are built here from them, as a wide shot would show them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from matcher.decode import Decoded, decode
from matcher.signals.base import TALENT, Box, SignalHit, talent_array
from matcher.signals.face import DlibFaceSignal, FaceIndex, iou, pool_tracks
from reelwatch.demo import media
from reelwatch.errors import InputError
from reelwatch.settings import FaceSettings, MatcherSettings
from tests.matcher.test_face_signal import FACES, PHOTOS, photo

_reason = DlibFaceSignal(MatcherSettings()).unavailable()
pytestmark = pytest.mark.skipif(_reason is not None, reason=f"face signal off: {_reason}")

FRAME = (512, 288)
"""A decoded frame (``decode_max_side`` 512) of a 16:9 clip."""


@pytest.fixture(scope="module")
def signal() -> DlibFaceSignal:
    missing = [p for p in PHOTOS if not (FACES / p).is_file()]
    if missing:
        pytest.skip(f"no face test photos in {FACES}: run `make test-data`")
    return DlibFaceSignal(MatcherSettings())


def still(frame: np.ndarray) -> Decoded:
    media_info = decode(FACES / "obama.jpg", 1, 1).media
    return Decoded(media=media_info, frames=frame[None], times=np.zeros(1), is_image=True)


def face_width(signal: DlibFaceSignal, img: np.ndarray) -> int:
    [(box, _)] = signal.detect(img)
    return box[2] - box[0]


def in_scene(
    signal: DlibFaceSignal, img: np.ndarray, face_px: int, angle: float = 0.0
) -> np.ndarray:
    """``img`` scaled so its face is ``face_px`` wide, tilted by ``angle`` degrees, pasted in
    the middle of a blurred 512 x 288 scene."""
    s = face_px / face_width(signal, img)
    pic = Image.fromarray(img).resize(
        (round(img.shape[1] * s), round(img.shape[0] * s)), Image.LANCZOS
    )
    pic = pic.rotate(angle, Image.BICUBIC, expand=True, fillcolor=(120, 110, 100))
    pic.thumbnail((FRAME[0] - 12, FRAME[1] - 12))
    bg = Image.fromarray(media.load_photo("coffee")).resize(FRAME).filter(ImageFilter.BLUR)
    bg.paste(pic, ((FRAME[0] - pic.width) // 2, (FRAME[1] - pic.height) // 2))
    return np.asarray(bg)


def hog_faces(img: np.ndarray) -> int:
    """Faces dlib's HOG detector finds with one upsampling (the previous detector)."""
    import dlib

    return len(dlib.get_frontal_face_detector()(img, 1))


def with_sunglasses(signal: DlibFaceSignal, img: np.ndarray) -> np.ndarray:
    """Dark lenses drawn over both eyes (dlib's eye-corner landmarks on the clean photo)."""
    import dlib

    models, _ = signal._models()
    [(box, _)] = signal.detect(img)
    shape = models.shapes(img, dlib.rectangle(*box))
    pts = [(shape.part(i).x, shape.part(i).y) for i in range(4)]  # 0-1 one eye, 2-3 other
    out = Image.fromarray(img)
    draw = ImageDraw.Draw(out)
    for (ax, ay), (bx, by) in (pts[0:2], pts[2:4]):
        cx, cy, r = (ax + bx) / 2, (ay + by) / 2, abs(ax - bx) * 0.85
        draw.ellipse((cx - r, cy - r * 0.75, cx + r, cy + r * 0.75), fill=(12, 12, 14))
    draw.line(
        (pts[1], pts[3]), fill=(12, 12, 14), width=max(2, round(abs(pts[0][0] - pts[1][0]) / 6))
    )
    return np.asarray(out)


def group_photo(talent: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Two people side by side in a 512 x 325 still: the talent on the left, smaller."""
    frame = Image.new("RGB", (512, 325), (90, 110, 130))
    for img, x in ((talent, 10), (other, 230)):
        pic = Image.fromarray(img)
        pic.thumbnail((260, 315))
        frame.paste(pic, (x, 325 - pic.height))
    return np.asarray(frame)


# Detection -------------------------------------------------------------------------------------


SCENES = [(20, 0.0), (20, 45.0), (30, 25.0), (30, -30.0), (40, 45.0)]
"""(face px in the decoded frame, tilt in degrees) of the hard cases."""


def test_small_and_tilted_faces_are_found_where_hog_misses_them(signal: DlibFaceSignal) -> None:
    people = [photo(p) for p in PHOTOS] + [media.load_photo("astronaut")]
    found = {k: 0 for k in SCENES}
    hog = {k: 0 for k in SCENES}
    for img in people:
        for px, angle in SCENES:
            frame = in_scene(signal, img, px, angle)
            faces = signal.faces(frame)
            found[(px, angle)] += len(faces) == 1
            hog[(px, angle)] += hog_faces(frame) == 1
    print(
        "\nfaces found of", len(people), "(YuNet / HOG):", {k: (found[k], hog[k]) for k in SCENES}
    )
    assert sum(found.values()) >= len(SCENES) * len(people) - 1, found
    assert all(found[k] >= hog[k] for k in SCENES)
    assert sum(hog.values()) <= sum(found.values()) - 5
    assert hog[(20, 0.0)] + hog[(20, 45.0)] <= 2  # HOG's window cannot see 20 px faces


def test_a_face_behind_sunglasses_is_found(signal: DlibFaceSignal) -> None:
    shaded = with_sunglasses(signal, photo("obama2.jpg"))
    frame = in_scene(signal, shaded, 50)
    [face] = signal.faces(frame)
    assert 40 <= face.side <= 70
    clean = signal.faces(photo("obama.jpg"))[0].descriptor
    assert np.linalg.norm(face.descriptor - clean) < 0.6


# Gallery subjects ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gallery(signal: DlibFaceSignal) -> dict[str, dict[str, np.ndarray]]:
    """Reference fingerprints: two Obama photos, and a group photo where Obama (behind
    sunglasses, the smaller face) stands beside Biden."""
    shaded = with_sunglasses(signal, photo("obama3.jpg", top=0.7))
    group = group_photo(shaded, photo("biden.jpg", top=0.45))
    fp = {
        "obama": signal.fingerprint(still(photo("obama.jpg")), "reference"),
        "obama2": signal.fingerprint(still(photo("obama2.jpg")), "reference"),
        "group": signal.fingerprint(still(group), "reference"),
        "coffee": signal.fingerprint(still(media.load_photo("coffee")), "reference"),
    }
    boxes = fp["group"]["boxes"]
    assert len(boxes) == 2
    sides = boxes[:, 2] - boxes[:, 0]
    talent = int(np.argmin(boxes[:, 0]))
    assert sides[talent] < sides[1 - talent]  # the talent's face is the smaller one
    return fp


def _left(fp: dict[str, np.ndarray]) -> Box:
    b = fp["boxes"][int(np.argmin(fp["boxes"][:, 0]))]
    return (int(b[0]), int(b[1]), int(b[2]), int(b[3]))


def _right(fp: dict[str, np.ndarray]) -> Box:
    b = fp["boxes"][int(np.argmax(fp["boxes"][:, 0]))]
    return (int(b[0]), int(b[1]), int(b[2]), int(b[3]))


def test_a_gallery_chooses_the_talent_in_a_group_photo(
    signal: DlibFaceSignal, gallery: dict[str, dict[str, np.ndarray]]
) -> None:
    fps = [gallery["obama"], gallery["obama2"], gallery["group"]]
    boxes = signal.subject_boxes(fps, [None, None, None])
    assert boxes[0] == _left(gallery["obama"]) and boxes[1] == _left(gallery["obama2"])
    assert boxes[2] == _left(gallery["group"])  # Obama, the smaller face
    # Alone, the group photo's subject is its largest face.
    assert signal.subject_boxes([gallery["group"]], [None]) == [_right(gallery["group"])]
    # The catalog stores the box and narrows the reference to that face.
    narrowed = signal.restrict(gallery["group"], boxes[2])  # type: ignore[arg-type]
    assert len(narrowed["descriptors"]) == 1 and narrowed["subject"].tolist() == [0]
    assert narrowed["frame_size"].tolist() == gallery["group"]["frame_size"].tolist()
    obama = gallery["obama"]["descriptors"][0]
    assert np.linalg.norm(narrowed["descriptors"][0] - obama) < 0.55
    index = signal.new_index()
    assert index.add(7, narrowed) == 1 and index.boxes[7].tolist() == [list(boxes[2])]  # type: ignore[arg-type]


def test_a_hint_overrides_the_choice(
    signal: DlibFaceSignal, gallery: dict[str, dict[str, np.ndarray]]
) -> None:
    fps = [gallery["obama"], gallery["group"]]
    biden = _right(gallery["group"])
    near_biden = (biden[0] + 5, biden[1] - 10, biden[2] + 20, biden[3] + 10)
    assert signal.subject_boxes(fps, [None, near_biden]) == [_left(gallery["obama"]), biden]
    [reason] = signal.subject_boxes([gallery["group"]], [(0, 0, 8, 8)])
    assert isinstance(reason, str) and "no detected face overlaps" in reason
    with pytest.raises(InputError, match="no detected face overlaps"):
        signal.restrict(gallery["group"], (0, 0, 8, 8))
    assert signal.restrict(gallery["group"], None) is gallery["group"]


def test_a_photo_without_a_face_is_refused_with_a_reason(
    signal: DlibFaceSignal, gallery: dict[str, dict[str, np.ndarray]]
) -> None:
    boxes = signal.subject_boxes([gallery["obama"], gallery["coffee"]], [None, None])
    assert boxes[0] == _left(gallery["obama"])
    assert boxes[1] == "no face found (faces down to 16 px are detected)"


# Tracks and per-talent cuts --------------------------------------------------------------------


def test_a_track_is_pooled_so_one_bad_frame_does_not_split_it(signal: DlibFaceSignal) -> None:
    """Six frames of one face drifting right, the fourth badly blurred: one track, one hit
    over the whole span, and the pooled distance is better than the bad frame's."""
    img = photo("obama2.jpg", top=0.6)
    frames = []
    for k in range(6):
        frame = in_scene(signal, img, 48)
        frame = np.roll(frame, 4 * k, axis=1)
        if k == 3:
            frame = np.asarray(Image.fromarray(frame).filter(ImageFilter.GaussianBlur(2.5)))
        frames.append(frame)
    media_info = decode(FACES / "obama.jpg", 1, 1).media
    decoded = Decoded(media=media_info, frames=np.stack(frames), times=np.arange(6.0))
    fp = signal.fingerprint(decoded, "query")
    assert len(fp["descriptors"]) == 6 and set(fp["tracks"].tolist()) == {0}
    assert fp["quality"][3] <= fp["quality"].max()
    index = signal.new_index()
    index.add(1, signal.fingerprint(still(photo("obama.jpg")), "reference"))
    ref = index.descriptors[1][0]
    per_frame = np.linalg.norm(fp["descriptors"] - ref, axis=1)
    pooled, members = pool_tracks(fp)
    assert [m.tolist() for m in members] == [list(range(6))]
    assert np.linalg.norm(pooled[0] - ref) < per_frame.max()
    [hit] = signal.search(index, fp, 6.0)
    assert hit.query_start == 0.0 and hit.query_end == 6.0 and hit.frames == 6
    assert hit.distance == pytest.approx(float(np.linalg.norm(pooled[0] - ref)), abs=1e-4)
    assert (
        hit.query_box is not None and iou(hit.query_box, tuple(fp["boxes"][hit.query_frame])) == 1.0
    )


def test_each_talent_cut_sits_below_the_catalogs_closest_impostor(
    signal: DlibFaceSignal, gallery: dict[str, dict[str, np.ndarray]]
) -> None:
    """A permissive ceiling (0.95) lets Biden's photo pass for Obama in a catalog of Obama
    alone; with Biden in the catalog too, Obama's cut drops below Biden's distance, while
    Obama's two photos (one identity) are not impostors to each other."""
    loose = DlibFaceSignal(MatcherSettings(face=FaceSettings(max_distance=0.95)))
    biden = loose.fingerprint(still(photo("biden.jpg")), "reference")
    query = loose.fingerprint(still(photo("biden.jpg")), "query")
    index = FaceIndex()
    index.add(1, gallery["obama"])
    index.add(2, gallery["obama2"])
    f = loose.settings.face
    assert index.cuts(f.max_distance, f.same_person, f.impostor_margin) == {1: 0.95, 2: 0.95}
    assert {h.asset_num for h in loose.search(index, query, 0.0)} == {1, 2}
    index.add(3, biden)
    cuts = index.cuts(f.max_distance, f.same_person, f.impostor_margin)
    to_biden = np.linalg.norm(gallery["obama"]["descriptors"][0] - biden["descriptors"][0])
    assert cuts[1] == pytest.approx(min(0.95, to_biden - f.impostor_margin), abs=0.05)
    assert cuts[1] < 0.95
    assert {h.asset_num for h in loose.search(index, query, 0.0)} == {3}
    index.remove([3])
    assert index.cuts(f.max_distance, f.same_person, f.impostor_margin) == {1: 0.95, 2: 0.95}


def _unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.standard_normal(128)
    return (v / np.linalg.norm(v) * 0.6).astype(np.float32)


def _reference(desc: np.ndarray, talent: str | None = None) -> dict[str, np.ndarray]:
    fp = {
        "descriptors": desc[None],
        "boxes": np.array([[0, 0, 40, 40]], np.int32),
        "times": np.zeros(1, np.float32),
    }
    if talent is not None:
        fp[TALENT] = talent_array(talent)
    return fp


def test_a_talents_own_photos_are_never_impostors_and_two_talents_never_one_person(
    tmp_path: Path,
) -> None:
    """Photos of one talent years apart can sit further apart than ``same_person``; the
    catalog says whose they are, so they stay one identity. Two named talents closer than
    ``same_person`` (lookalikes) stay two, so each one's cut falls below the other."""
    rng = np.random.default_rng(1)
    young, base = _unit(rng), _unit(rng)
    old = (young + 0.75 * (base - young)).astype(np.float32)  # far from ``young``
    twin = (young + 0.08 * (base - young)).astype(np.float32)  # a lookalike of ``young``
    f = FaceSettings()
    assert np.linalg.norm(young - old) > f.same_person
    assert np.linalg.norm(young - twin) < f.same_person
    index = FaceIndex()
    index.add(1, _reference(young, "talent-a"))
    index.add(2, _reference(old, "talent-a"))
    assert index.cuts(f.max_distance, f.same_person, f.impostor_margin) == {
        1: f.max_distance,
        2: f.max_distance,
    }
    index.add(3, _reference(twin, "talent-b"))
    cuts = index.cuts(f.max_distance, f.same_person, f.impostor_margin)
    assert cuts[1] < f.max_distance and cuts[3] < f.max_distance
    index.save(tmp_path)
    assert FaceIndex.load(tmp_path).talents == {1: "talent-a", 2: "talent-a", 3: "talent-b"}


def test_a_face_several_gallery_photos_match_counts_once_by_the_closest(
    signal: DlibFaceSignal,
) -> None:
    def hit(asset: int, distance: float) -> SignalHit:
        return SignalHit(asset, 0.0, 3.0, 0.0, 0.0, distance, 3, 1.0, 1.0, 0.0, 1)

    alone = signal.score([hit(1, 0.40)], 6.0)
    assert alone > 0.75
    assert signal.score([hit(1, 0.40), hit(2, 0.52)], 6.0) == alone
