"""Face matching: a talent's face found in a post, by dlib face descriptors.

Copies of footage are the copy signal's job; this signal answers a different question: does a
catalog talent appear in the post at all, in any footage? Catalog assets of kind ``face`` are
reference photos (or short videos) of one talent.

* Detection is dlib's HOG frontal face detector (no model file). Its sliding window is 80 px,
  so faces under about 72 px are only found on an upsampled image; frames are decoded small
  (``decode_max_side``, 512 px by default), where a face in a wide shot is 40-70 px, so
  frames are upsampled (one pyramid level for ``min_face_px`` 40) before detection.
* Each face gets dlib's 5-point landmarks and the 128-d ResNet descriptor from the
  face-recognition-models package (models loaded once per process). Descriptors of one person
  sit within 0.6 of each other (dlib's own cut, 99.38% on LFW); in practice the same person
  in different photos is at 0.3-0.45 and different people at 0.7-0.9.
* References keep the largest face of a photo (a face asset shows one talent; in a group
  photo the biggest face is taken to be theirs). For a reference video, the largest face of
  each sampled frame is kept when it belongs to the video's dominant identity, so a co-star
  passing through does not get indexed under the talent.
* Queries keep every face of at least ``min_face_px`` in frames sampled at
  ``face.sample_fps`` (a subset of the decoded frames; detection is the costly part).
* The index is an exact FAISS L2 index over descriptors; a query face matches a reference
  asset when it is within ``face.max_distance``. Matching query frames make segments (runs of
  consecutive sampled frames, one missed detection bridged); faces have no timeline to align
  with the reference, so ``ref_start``/``ref_end`` are the time of the closest reference face
  (0 for photos).
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
    write_npz,
)
from reelwatch.errors import InputError
from reelwatch.models import AssetKind

DIM = 128
"""Length of dlib's face descriptor."""
SHAPE_MODEL = "shape_predictor_5_face_landmarks.dat"
DESCRIPTOR_MODEL = "dlib_face_recognition_resnet_model_v1.dat"
HOG_MIN_FACE_PX = 72
"""Smallest face box the HOG detector returns without upsampling (its window is 80 px with a
margin; measured: 73 px boxes at level 0, 37 px after one doubling)."""
MAX_DETECT_SIDE = 2048
"""Upsampling stops before the image the detector scans would exceed this side (cost)."""

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


def default_model_dir() -> Path | None:
    """The ``models`` folder of the installed face-recognition-models package, if any.

    Found without importing the package: its ``__init__`` imports ``pkg_resources``, which is
    slow and deprecated, and only the data files are wanted.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        folder = Path(location) / "models"
        if folder.is_dir():
            return folder
    return None


@dataclass(frozen=True)
class _Models:
    detector: Any
    shapes: Any
    encoder: Any


@lru_cache(maxsize=4)
def _load_models(model_dir: str) -> _Models:
    """dlib's detector, landmark and descriptor models, once per process and folder."""
    import dlib

    folder = Path(model_dir)
    return _Models(
        detector=dlib.get_frontal_face_detector(),
        shapes=dlib.shape_predictor(str(folder / SHAPE_MODEL)),
        encoder=dlib.face_recognition_model_v1(str(folder / DESCRIPTOR_MODEL)),
    )


@lru_cache(maxsize=1)
def _dlib_missing() -> str | None:
    try:
        import dlib  # noqa: F401
    except ImportError as exc:
        return f"dlib is not importable ({exc}); install dlib-bin"
    return None


def upsample_levels(frame_shape: tuple[int, ...], min_face_px: int) -> int:
    """Pyramid levels to upsample a frame so faces of ``min_face_px`` become detectable.

    Each level doubles the image, so 40 px faces need one level and 20 px faces two; levels
    are dropped when the upsampled image would exceed :data:`MAX_DETECT_SIDE`, since detection
    cost grows with the area scanned. Measured on 512 x 288 frames (2 cores): 16-21 ms a
    frame at level 0, which misses 40-70 px faces, and 54-89 ms at level 1, which finds them.
    """
    levels = max(0, math.ceil(math.log2(HOG_MIN_FACE_PX / max(1, min_face_px))))
    side = max(frame_shape[:2])
    while levels > 0 and side * 2**levels > MAX_DETECT_SIDE:
        levels -= 1
    return min(levels, 2)


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

    @property
    def side(self) -> int:
        return min(self.box[2] - self.box[0], self.box[3] - self.box[1])


def _empty_fingerprint() -> Fingerprint:
    return {
        "descriptors": np.zeros((0, DIM), np.float32),
        "boxes": np.zeros((0, 4), np.int32),
        "frames": np.zeros(0, np.int32),
        "times": np.zeros(0, np.float32),
        "scanned_frames": np.zeros(0, np.int32),
        "scanned_times": np.zeros(0, np.float32),
    }


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


class FaceIndex(RowsIndex):
    """Reference descriptors in ``faiss.IndexIDMap2(IndexFlatL2(128))``, plus each face's box
    and time per asset.

    Exact search: a studio's catalog holds thousands of reference faces, which a flat scan
    handles in microseconds, and no approximation can lose a true match. Saved as one
    ``.npz`` (the serialised FAISS index beside the boxes and times), replaced atomically, so
    a reader never sees an index and side data from different saves.
    """

    FILE = "face.npz"

    def __init__(self) -> None:
        self.index: faiss.Index = faiss.IndexIDMap2(faiss.IndexFlatL2(DIM))
        self.boxes: dict[int, np.ndarray] = {}
        self.times: dict[int, np.ndarray] = {}

    @classmethod
    def load(cls, directory: Path) -> FaceIndex:
        idx = cls()
        path = directory / cls.FILE
        if path.exists():
            with np.load(path) as data:
                idx.index = faiss.deserialize_index(data["index"])
                for key in data.files:
                    if key.startswith("b"):
                        idx.boxes[int(key[1:])] = data[key]
                    elif key.startswith("t"):
                        idx.times[int(key[1:])] = data[key]
        return idx

    def add(self, asset_num: int, fingerprint: Fingerprint) -> int:
        if asset_num in self.times:
            self.remove([asset_num])
        desc = np.ascontiguousarray(fingerprint["descriptors"], dtype=np.float32).reshape(-1, DIM)
        if len(desc):
            ids = entry_ids(asset_num, len(desc))
            self.index.add_with_ids(desc, ids)
        self.boxes[asset_num] = fingerprint["boxes"].astype(np.int32).reshape(-1, 4)
        self.times[asset_num] = fingerprint["times"].astype(np.float32)
        return len(desc)

    def _forget(self, asset_num: int) -> None:
        self.boxes.pop(asset_num, None)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {"index": faiss.serialize_index(self.index)}
        for num, times in self.times.items():
            arrays[f"t{num}"] = times
            arrays[f"b{num}"] = self.boxes[num]
        write_npz(directory / self.FILE, arrays)

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

    version = 1
    asset_kinds = frozenset({AssetKind.FACE})
    index_type = FaceIndex
    visual = True

    # Setup -------------------------------------------------------------------------------------

    def model_dir(self) -> Path | None:
        """``face.model_dir`` if set, else face-recognition-models' folder (if installed)."""
        return self.settings.face.model_dir or default_model_dir()

    def unavailable(self) -> str | None:
        missing = _dlib_missing()
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
        return None

    def _models(self) -> _Models:
        reason = self.unavailable()
        if reason:
            raise InputError(f"face signal unavailable: {reason}")
        folder = self.model_dir()
        assert folder is not None
        return _load_models(str(folder.resolve()))

    def config_key(self) -> str:
        f = self.settings.face
        return f"{self.name}-v{self.version}-fps{f.sample_fps:g}-px{f.min_face_px}"

    # Fingerprints ------------------------------------------------------------------------------

    def faces(self, frame: np.ndarray, index: int = 0, time: float = 0.0) -> list[Face]:
        """Every face of at least ``min_face_px`` in one RGB frame, with its descriptor."""
        models = self._models()  # a clear InputError first when dlib or its models are missing
        import dlib

        img = np.ascontiguousarray(frame, dtype=np.uint8)
        if img.ndim != 3 or img.shape[2] != 3 or min(img.shape[:2]) < 8:
            return []
        min_px = self.settings.face.min_face_px
        h, w = img.shape[:2]
        rects = models.detector(img, upsample_levels(img.shape, min_px))
        kept = []
        for r in rects:
            box = (max(0, r.left()), max(0, r.top()), min(w, r.right() + 1), min(h, r.bottom() + 1))
            if min(r.width(), r.height()) >= min_px and box[2] > box[0] and box[3] > box[1]:
                kept.append((r, box))
        if not kept:
            return []
        shapes = dlib.full_object_detections()
        for r, _ in kept:
            shapes.append(models.shapes(img, r))
        desc = models.encoder.compute_face_descriptor(img, shapes)
        return [
            Face(np.asarray(d, np.float32), box, index, time)
            for d, (_, box) in zip(desc, kept, strict=True)
        ]

    def fingerprint(self, decoded: Decoded, role: Role) -> Fingerprint:
        """Faces of sampled frames: all of them for a query, the talent's for a reference."""
        fp = _empty_fingerprint()
        if not len(decoded.frames):
            return fp
        scanned = sample_indices(decoded.times, self.settings.face.sample_fps)
        found: list[Face] = []
        for i in scanned.tolist():
            faces = self.faces(decoded.frames[i], i, float(decoded.times[i]))
            if role == "reference" and faces:
                faces = [max(faces, key=lambda f: f.side)]
            found.extend(faces)
        if role == "reference":
            found = dominant_identity(found, self.settings.face.max_distance)
        fp["scanned_frames"] = scanned.astype(np.int32)
        fp["scanned_times"] = decoded.times[scanned].astype(np.float32)
        if found:
            fp["descriptors"] = np.stack([f.descriptor for f in found]).astype(np.float32)
            fp["boxes"] = np.array([f.box for f in found], np.int32)
            fp["frames"] = np.array([f.frame for f in found], np.int32)
            fp["times"] = np.array([f.time for f in found], np.float32)
        return fp

    # Search ------------------------------------------------------------------------------------

    def search(
        self, index: SignalIndex, fingerprint: Fingerprint, query_duration: float
    ) -> list[SignalHit]:
        """Per reference asset, runs of sampled query frames showing a face within
        ``max_distance`` of one of its faces; each run is one hit."""
        assert isinstance(index, FaceIndex)
        rows, ids, dist = index.range_search(
            fingerprint["descriptors"], self.settings.face.max_distance
        )
        if not len(rows):
            return []
        assets, ref_rows = index.asset_rows(ids)
        q_frame = fingerprint["frames"].astype(np.int64)[rows]
        scanned = fingerprint["scanned_frames"].astype(np.int64)
        scanned_t = fingerprint["scanned_times"].astype(np.float64)
        step = (
            float(np.median(np.diff(scanned_t)))
            if len(scanned_t) > 1
            else 1.0 / self.settings.face.sample_fps
        )
        # Position of each pair's frame among the scanned frames: runs are counted in those.
        pos = np.searchsorted(scanned, q_frame)
        hits: list[SignalHit] = []
        for a in np.unique(assets).tolist():
            if a not in index.times:
                continue
            sel = np.flatnonzero(assets == a)
            # The closest pair of each query frame, in time order.
            order = sel[np.lexsort((dist[sel], pos[sel]))]
            _, first = np.unique(pos[order], return_index=True)
            best = order[first]
            # Runs of consecutive sampled frames; one missed detection (a turned head, motion
            # blur) does not cut a run.
            for part in np.split(best, np.flatnonzero(np.diff(pos[best]) > 2) + 1):
                p0, p1 = int(pos[part[0]]), int(pos[part[-1]])
                q0, last = float(scanned_t[p0]), float(scanned_t[p1])
                q1 = max(q0, min(last + step, max(query_duration, last)))
                b = part[int(np.argmin(dist[part]))]
                q_row, r_row = int(rows[b]), int(ref_rows[b])
                ref_t = float(index.times[a][r_row])
                d = float(dist[b])
                hits.append(
                    SignalHit(
                        asset_num=int(a),
                        query_start=round(q0, 3),
                        query_end=round(q1, 3),
                        ref_start=round(ref_t, 3),
                        ref_end=round(ref_t, 3),
                        distance=d,
                        frames=int(part.size),
                        density=part.size / (p1 - p0 + 1),
                        query_time=float(fingerprint["times"][q_row]),
                        ref_time=ref_t,
                        query_frame=int(fingerprint["frames"][q_row]),
                        slope=0.0,
                        query_box=_box(fingerprint["boxes"][q_row]),
                        ref_box=_box(index.boxes[a][r_row]),
                        note=f"face distance {d:.2f}",
                    )
                )
        return hits

    # Scoring -----------------------------------------------------------------------------------

    def score(self, hits: Sequence[SignalHit], query_duration: float) -> float:
        """How sure it is that the talent is on screen, in [0, 1]: closeness x time.

        * closeness: each hit's (best) descriptor distance through :data:`CLOSENESS_KNOTS`,
          weighted by its frames. Up to 0.40 is as sure as dlib gets (the same person in
          different photos measured 0.33-0.45 here, other people 0.82-0.87); it halves by
          0.5 and is nearly nothing at dlib's 0.6 cut, where lookalikes live;
        * time: ``1 - exp(-seconds / 1.2)`` over the seconds the face is on screen (union of
          the hits' spans times their share of sampled frames that matched), so one sampled
          frame (1 s) is worth 0.57, 2 s 0.81 and 4 s 0.96.

        A clear face (<= 0.40) for 2 s scores 0.81, above the engine's high threshold; a
        lookalike at 0.55 never passes 0.3.
        """
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


def _box(row: np.ndarray) -> Box:
    x0, y0, x1, y1 = (int(v) for v in row)
    return x0, y0, x1, y1
