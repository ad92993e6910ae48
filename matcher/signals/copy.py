"""Copy detection: PDQ hashes of sampled frames, a FAISS binary index, temporal alignment.

Re-uploads are rarely byte or pixel copies: they are excerpts, re-encoded small, mirrored,
zoomed in, sped up, boxed into a 9:16 canvas over a blurred copy of themselves, shown as a
window inside a reaction video, with captions and stickers on top. PDQ (a 256-bit perceptual
hash) survives re-encoding, scaling, frame-rate changes and light overlays; the rest is
handled by hashing the right *regions* on each side:

* references store the full frame plus centre crops (``MatcherSettings.reference_crops``), so
  a zoomed-in re-upload lands near one of them;
* queries hash the full frame and its mirror (PDQ's dihedral transform gives the mirror for
  free), the sharp content box found inside a letterboxed frame (the blurred fill has little
  high-frequency energy; black bars have none), for portrait frames the central 16:9 and
  4:3 bands where the original usually sits, and picture-in-picture windows: rectangles
  whose borders persist across 8 s of frames (:func:`pip_windows`, two per chunk at most);
* where a query frame (or its content box) carries stickers, emoji or white captions, it is
  hashed once more with them painted over (:func:`without_overlays`): on dark, feature-poor
  footage a few bright stickers move PDQ by 90+ bits, the cleaned frame comes back to ~50-60.

Frames come from :func:`matcher.decode.decode`; with ``keyframes=True`` the first frame of
every shot is there too, so shots shorter than the sampling step still get hashed.

Single frame hits are weak evidence, so hits are aligned in time
(:func:`matcher.signals.align.align`): the (query time, reference time) pairs of each
reference asset are voted into lines ``ref = slope * query + offset`` over slopes in
[0.5, 2] (slow-motion and sped-up copies), and a fitted slope within 12% of 1 gives way to
normal speed when that fits as well (:func:`unit_speed`). A random frame collision cannot
make a segment: that takes ``min_segment_frames`` query frames on one line.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pdqhash
from PIL import Image

from matcher import accel
from matcher.decode import Decoded
from matcher.signals.align import index_segments, segment_score
from matcher.signals.base import (
    Fingerprint,
    Role,
    RowsIndex,
    Signal,
    SignalHit,
    SignalIndex,
    entry_ids,
    ivf_centroids,
    ivf_contents,
    ivf_lists,
    ivf_sample,
    write_npz,
)
from reelwatch.models import AssetKind

HASH_BITS = 256
HASH_BYTES = HASH_BITS // 8
_MIRROR = 5
"""Index of the left-right mirror among ``pdqhash.compute_dihedral``'s eight hashes."""

Box = tuple[int, int, int, int]
"""x0, y0, x1, y1 in pixels."""

# Variant codes stored with each hash (for debugging and tests); ``| 16`` marks the mirror of
# a region (the full frame's mirror is ``MIRROR``).
FULL, MIRROR, CONTENT_BOX, BAND_16_9, BAND_4_3, PIP, CLEAN, CLEAN_BOX, CROP = (
    0,
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
)

PIP_CHUNK = 16
"""Query frames searched together for picture-in-picture windows (8 s at 2 fps): a window
must hold still that long to be found, and layouts may change between chunks."""
MAX_PIP_WINDOWS = 2
"""Windows hashed per chunk at most, so a busy background costs at most 2 more regions."""


def pdq(image: np.ndarray) -> tuple[np.ndarray, int]:
    """PDQ hash of an RGB image as 32 packed bytes, and PDQ's quality (0-100)."""
    bits, quality = pdqhash.compute(np.ascontiguousarray(image))
    return np.packbits(bits.astype(np.uint8)), int(quality)


def pdq_with_mirror(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """PDQ of an image and of its left-right mirror, for the price of one hash."""
    hashes, quality = pdqhash.compute_dihedral(np.ascontiguousarray(image))
    return (
        np.packbits(hashes[0].astype(np.uint8)),
        np.packbits(hashes[_MIRROR].astype(np.uint8)),
        int(quality),
    )


def _longest_run(mask: np.ndarray, max_gap: int) -> tuple[int, int] | None:
    """[start, end) of the longest run of True, bridging gaps of up to ``max_gap``."""
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return None
    breaks = np.flatnonzero(np.diff(idx) > max_gap + 1)
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks, [idx.size - 1]])
    lengths = idx[ends] - idx[starts]
    k = int(np.argmax(lengths))
    return int(idx[starts[k]]), int(idx[ends[k]]) + 1


def content_box(frame: np.ndarray) -> Box | None:
    """The sharp picture inside a frame padded with a blurred fill or bars, if there is one.

    Blur and flat bars carry almost no pixel-to-pixel differences; real content does. Rows
    are judged by their horizontal differences and columns (within those rows) by vertical
    ones, so the hard edges where content meets fill do not count as content. Returns
    ``None`` when the content fills (nearly) the whole frame or nothing stands out.
    """
    g = frame.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    h, w = g.shape
    row_energy = np.abs(np.diff(g, axis=1)).mean(axis=1)
    thr = max(0.8, 0.15 * float(np.percentile(row_energy, 95)))
    rows = _longest_run(row_energy > thr, max_gap=max(2, h // 25))
    if rows is None or rows[1] - rows[0] < 0.2 * h:
        return None
    y0, y1 = rows
    col_energy = np.abs(np.diff(g[y0:y1], axis=0)).mean(axis=0)
    thr = max(0.8, 0.15 * float(np.percentile(col_energy, 95)))
    cols = _longest_run(col_energy > thr, max_gap=max(2, w // 25))
    if cols is None or cols[1] - cols[0] < 0.2 * w:
        return None
    x0, x1 = cols
    if (x1 - x0) > 0.92 * w:
        x0, x1 = 0, w
    if (y1 - y0) > 0.92 * h and (x0, x1) == (0, w):
        return None
    return x0, y0, x1, y1


def query_regions(frame: np.ndarray, windows: Sequence[Box] = ()) -> list[tuple[int, Box]]:
    """Regions of a query frame worth hashing, as (variant code, box), near-duplicates dropped.

    ``windows`` are picture-in-picture candidates found across frames (:func:`pip_windows`).
    """
    h, w = frame.shape[:2]
    regions: list[tuple[int, Box]] = [(FULL, (0, 0, w, h))]
    box = content_box(frame)
    if box is not None:
        regions.append((CONTENT_BOX, box))
    regions.extend((PIP, b) for b in windows)
    if h > w:
        for code, ratio in ((BAND_16_9, 9 / 16), (BAND_4_3, 3 / 4)):
            bh = round(w * ratio)
            y0 = (h - bh) // 2
            regions.append((code, (0, y0, w, y0 + bh)))
    kept: list[tuple[int, Box]] = []
    for code, b in regions:
        if all(_iou(b, k) < 0.9 for _, k in kept):
            kept.append((code, b))
    return kept


def _iou(a: Box, b: Box) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def centre_crop(frame: np.ndarray, fraction: float) -> np.ndarray:
    h, w = frame.shape[:2]
    ch, cw = round(h * fraction), round(w * fraction)
    y, x = (h - ch) // 2, (w - cw) // 2
    return frame[y : y + ch, x : x + cw]


# Picture-in-picture ----------------------------------------------------------------------------

_PIP_EDGE = 10.0
"""Grey-level step across a window border in a thumbnail (0-255)."""
_PIP_CANDIDATES = 10
"""Straight lines tried per direction; rectangles are all pairs of pairs of them."""


def _grey(frames: np.ndarray, step: int) -> np.ndarray:
    small = frames[:, ::step, ::step].astype(np.float32)
    return small @ np.array([0.299, 0.587, 0.114], np.float32)


def _box3(a: np.ndarray) -> np.ndarray:
    """3x3 box filter (edge-padded) of a 2-D array."""
    h, w = a.shape
    p = np.pad(a, 1, mode="edge")
    out = np.zeros(a.shape, np.float64)
    for dy in range(3):
        for dx in range(3):
            out += p[dy : dy + h, dx : dx + w]
    return out / 9.0


def _activity_steps(act: np.ndarray, axis: int) -> np.ndarray:
    """Where motion on one side of a line is several times the motion on the other.

    Entry ``i`` along ``axis`` compares ``act`` at ``i - 1`` and ``i + 2``: the border between
    thumbnail lines ``i`` and ``i + 1`` with a pixel of slack for blur and compression.
    """
    n = act.shape[axis]
    pad = [(0, 0), (0, 0)]
    pad[axis] = (1, 2)
    a = np.pad(act, pad, mode="edge")
    lo_side = np.take(a, np.arange(0, n - 1), axis=axis)
    hi_side = np.take(a, np.arange(3, n + 2), axis=axis)
    hi, lo = np.maximum(lo_side, hi_side), np.minimum(lo_side, hi_side)
    out: np.ndarray = (hi > 2.5) & (hi > 3.0 * lo + 0.5)
    return out


def _line_candidates(persist: np.ndarray, min_len: int, k: int) -> list[int]:
    """Rows of ``persist`` (one per candidate line) that hold a long straight run of border.

    A line scores the length of its longest run (gaps up to 3 bridged) minus the shorter of
    the runs 4 lines to either side: a window border has texture (or motion) on one side at
    most, while textured backgrounds have long runs on every line and score nothing.
    """
    n = persist.shape[0]
    best = np.zeros(n, np.int64)
    for i in range(n):
        idx = np.flatnonzero(persist[i])
        if idx.size < min_len:
            continue
        breaks = np.flatnonzero(np.diff(idx) > 3)
        starts = np.concatenate([[0], breaks + 1])
        ends = np.concatenate([breaks, [idx.size - 1]])
        best[i] = int((idx[ends] - idx[starts]).max()) + 1
    pad = np.pad(best, 4)
    score = np.where(best >= min_len, best - np.minimum(pad[:-8], pad[8:]), 0)
    out: list[int] = []
    for i in np.argsort(-score, kind="stable"):
        if score[i] < min_len or len(out) >= k:
            break
        if all(abs(int(i) - j) > 2 for j in out):
            out.append(int(i))
    return out


def pip_windows(frames: np.ndarray, max_windows: int = MAX_PIP_WINDOWS) -> list[Box]:
    """Picture-in-picture windows: rectangles whose sides persist across ``frames``.

    A video shown as a window inside another (reaction and commentary layouts) keeps its
    borders at one place while the content on both sides changes. On grey thumbnails (about
    256 px), a pixel is border where the step across it persists (present in 75% of the
    frames) or where motion on one side is several times that on the other (a still
    backdrop). The lines with the longest straight runs of border are paired into
    rectangles of 25-95% of the frame width (sides on the frame edge count as given, two at
    most); a rectangle needs half of each real side covered. The best ``max_windows`` that do
    not overlap are returned, in frame pixels. Cost: a few array passes per thumbnail plus at
    most ``(12 choose 2)^2`` rectangle checks per call, each O(1) with cumulative sums.
    """
    n, h, w = frames.shape[:3]
    if n == 0 or min(h, w) < 32:
        return []
    step = max(1, round(max(h, w) / 256))
    g = _grey(frames, step)
    th, tw = g.shape[1:]
    ex = np.abs(np.diff(g, axis=2))  # (n, th, tw - 1): step between columns x and x + 1
    ey = np.abs(np.diff(g, axis=1))  # (n, th - 1, tw)
    px: np.ndarray = np.percentile(ex, 25, axis=0) > _PIP_EDGE
    py: np.ndarray = np.percentile(ey, 25, axis=0) > _PIP_EDGE
    if n >= 3:
        act = _box3(np.abs(np.diff(g, axis=0)).mean(axis=0))
        px |= _activity_steps(act, axis=1)
        py |= _activity_steps(act, axis=0)
    px |= np.roll(px, 1, axis=1)  # a border may wobble by a pixel
    py |= np.roll(py, 1, axis=0)
    cols = _line_candidates(px.T, int(0.12 * th), _PIP_CANDIDATES)
    rows = _line_candidates(py, int(0.12 * tw), _PIP_CANDIDATES)
    if not cols and not rows:
        return []
    cx = np.concatenate([np.zeros((1, tw - 1), np.int64), np.cumsum(px, axis=0)])
    cy = np.concatenate([np.zeros((th - 1, 1), np.int64), np.cumsum(py, axis=1)], axis=1)
    # (position in thumbnail pixels, index of the border line or -1 for the frame edge)
    xc = [(x + 1, x) for x in sorted(cols)] + [(0, -1), (tw, -1)]
    yc = [(y + 1, y) for y in sorted(rows)] + [(0, -1), (th, -1)]
    found: list[tuple[float, Box]] = []
    for x0, lx0 in xc:
        for x1, lx1 in xc:
            bw = x1 - x0
            if not 0.25 * tw <= bw <= 0.95 * tw:
                continue
            for y0, ly0 in yc:
                for y1, ly1 in yc:
                    bh = y1 - y0
                    if bh < 0.12 * th or not 0.4 <= bw / bh <= 3.0:
                        continue
                    support = [(cx[y1, lx] - cx[y0, lx]) / bh for lx in (lx0, lx1) if lx >= 0]
                    support += [(cy[ly, x1] - cy[ly, x0]) / bw for ly in (ly0, ly1) if ly >= 0]
                    if len(support) < 2 or min(support) < 0.5:
                        continue
                    found.append((float(np.mean(support)) * len(support) / 4, (x0, y0, x1, y1)))
    found.sort(key=lambda f: -f[0])
    kept: list[Box] = []
    for _, b in found:
        if all(_iou(b, k) < 0.5 for k in kept):
            kept.append(b)
        if len(kept) >= max_windows:
            break
    return [(x0 * step, y0 * step, min(w, x1 * step), min(h, y1 * step)) for x0, y0, x1, y1 in kept]


def chunk_windows(frames: np.ndarray, chunk: int = PIP_CHUNK) -> list[list[Box]]:
    """:func:`pip_windows` per frame, searched over chunks of ``chunk`` consecutive frames."""
    n = len(frames)
    out: list[list[Box]] = []
    for idx in np.array_split(np.arange(n), max(1, math.ceil(n / chunk))):
        if idx.size:
            boxes = pip_windows(frames[idx[0] : idx[-1] + 1])
            out.extend([boxes] * idx.size)
    return out


# Overlays --------------------------------------------------------------------------------------

_MAX_OVERLAY_SHARE = 0.25
"""Above this share of "graphic" pixels the frame itself is colourful (an orange spacesuit),
not overlaid: it is left alone."""


def _dilate(mask: np.ndarray, r: int) -> np.ndarray:
    """Binary dilation by a ``(2r+1)``-pixel square (separable shifts; edges not grown into)."""
    out = mask.copy()
    for axis in (0, 1):
        src = out.copy()
        n = src.shape[axis]
        for d in range(1, r + 1):
            lo = [slice(None), slice(None)]
            hi = [slice(None), slice(None)]
            lo[axis], hi[axis] = slice(0, n - d), slice(d, n)
            out[tuple(lo)] |= src[tuple(hi)]
            out[tuple(hi)] |= src[tuple(lo)]
    return out


def without_overlays(image: np.ndarray) -> np.ndarray | None:
    """``image`` (at most ~256 px wide) with stickers, emoji and white captions painted over.

    Overlays are drawn in saturated bright colours or white, which natural footage rarely
    shows in small doses. Such pixels (cleaned of specks, grown by a few pixels to cover
    outlines) are filled with the local average colour of the rest (normalised convolution on
    an 8x coarser grid), which puts back the low frequencies PDQ hashes. ``None`` when there
    is nothing to clean or too much (see ``_MAX_OVERLAY_SHARE``). Cost: about 2-3 ms.
    """
    step = max(1, round(max(image.shape[:2]) / 256))
    small = np.ascontiguousarray(image[::step, ::step])
    red, green, blue = (small[..., c].astype(np.int16) for c in range(3))
    mx = np.maximum(np.maximum(red, green), blue)
    mn = np.minimum(np.minimum(red, green), blue)
    graphic = (((mx - mn) * 2 > mx) & (mx > 150)) | (mn > 230)
    mask = _dilate(_dilate(~_dilate(~graphic, 1), 1), 2)  # opening drops specks, then grow
    share = float(mask.mean())
    if share < 0.003 or share > _MAX_OVERLAY_SHARE:
        return None
    h, w = mask.shape
    cell = 8
    gh, gw = -(-h // cell), -(-w // cell)
    pad = ((0, gh * cell - h), (0, gw * cell - w))
    valid = np.pad(~mask, pad).astype(np.float32)
    pix = np.pad(small.astype(np.float32), (*pad, (0, 0)))
    num = (pix * valid[..., None]).reshape(gh, cell, gw, cell, 3).sum(axis=(1, 3))
    den = valid.reshape(gh, cell, gw, cell).sum(axis=(1, 3))
    for _ in range(max(gh, gw)):  # spread colour into cells that are all overlay
        if (den > 0).all():
            break
        num = np.stack([_box3(num[..., c]) for c in range(3)], axis=-1)
        den = _box3(den)
    fill = np.clip(num / np.maximum(den, 1e-6)[..., None], 0, 255).astype(np.uint8)
    up = np.asarray(Image.fromarray(fill).resize((gw * cell, gh * cell), Image.Resampling.BILINEAR))
    out = small.copy()
    out[mask] = up[:h, :w][mask]
    return out


class PdqIndex(RowsIndex):
    """PDQ hashes of reference frames in ``faiss.IndexBinaryIDMap2(IndexBinaryFlat(256))``.

    Exact (flat) search by default: at catalog sizes of a studio (thousands of assets,
    millions of hashes) a flat binary scan stays fast, and approximate indexes can miss the
    far-but-true matches that edited copies produce. Reference times are kept per asset
    beside the index.

    With ``MatcherSettings.index = "approximate"`` a catalog of 4096 hashes or more is a
    binary inverted file (``faiss.IndexBinaryIVF``, ids stored in its lists, so removing
    works without an IDMap): k-means of the hashes' bits (:func:`ivf_centroids`,
    binarised) gives one centroid per :attr:`PER_LIST` hashes, and a range search looks in
    the :attr:`PROBES` lists nearest each query hash. See :class:`RowsIndex` for when it is
    trained, and docs/matching.md ("Index types") for its measured recall and speed. The
    saved file is FAISS's own, which records which of the two it is.
    """

    FILE = "copy.faissb"
    TIMES = "copy-times.npz"
    APPROXIMATE = True
    PROBES = 16
    """Inverted lists searched per query hash (``nprobe``) when approximate."""
    PER_LIST = 64
    """Hashes per inverted list: about one shot of reference frames (16 frames and their 3
    crops). A match 80 bits away is nearer its own shot's centroid than most others only
    while a list holds few shots: at a million hashes, 250 a list (``4 * sqrt(n)`` lists)
    kept 0.85 of the pairs within 80 bits at 16 probes, 128 a list 0.94, 64 a list 0.98
    (benchmarks/index_search.py). Binary centroids are cheap to compare, so the 15,600
    lists of a million hashes cost a query 1.6 % of an exhaustive scan."""

    def __init__(self) -> None:
        self.index: faiss.IndexBinary = faiss.IndexBinaryIDMap2(faiss.IndexBinaryFlat(HASH_BITS))
        self.times: dict[int, np.ndarray] = {}

    @classmethod
    def load(cls, directory: Path) -> PdqIndex:
        idx = cls()
        path = directory / cls.FILE
        if path.exists():
            idx.index = faiss.read_index_binary(str(path))
            if idx.lists():
                idx.index.nprobe = cls.PROBES  # type: ignore[attr-defined]
            with np.load(directory / cls.TIMES) as data:
                idx.times = {int(k[1:]): data[k] for k in data.files}
        return idx

    def list_count(self, entries: int) -> int:
        return ivf_lists(entries, self.PER_LIST)

    def _remake(self, nlist: int) -> None:
        old: Any = self.index
        if self.lists():
            hashes, ids = ivf_contents(old)
        else:
            flat: Any = faiss.downcast_IndexBinary(old.index)
            hashes = faiss.vector_to_array(flat.xb).reshape(-1, HASH_BYTES)
            ids = faiss.vector_to_array(old.id_map).astype(np.int64)
        new: Any
        if nlist:
            new = faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(HASH_BITS), HASH_BITS, nlist)
            bits = np.unpackbits(hashes[ivf_sample(len(hashes), nlist)], axis=1)
            centroids = ivf_centroids(bits.astype(np.float32), nlist, spherical=False)
            new.quantizer.add(np.packbits(centroids > 0.5, axis=1))
            new.is_trained = True
            new.nprobe = self.PROBES
        else:
            new = faiss.IndexBinaryIDMap2(faiss.IndexBinaryFlat(HASH_BITS))
        new.add_with_ids(np.ascontiguousarray(hashes), ids)
        self.index = new

    def add(self, asset_num: int, fingerprint: Fingerprint) -> int:
        if asset_num in self.times:
            self.remove([asset_num])
        hashes = fingerprint["hashes"]
        ids = entry_ids(asset_num, len(hashes))
        if len(hashes):
            self.index.add_with_ids(np.ascontiguousarray(hashes, dtype=np.uint8), ids)
        self.times[asset_num] = fingerprint["times"].astype(np.float32)
        return len(hashes)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / (self.FILE + ".tmp")
        faiss.write_index_binary(self.index, str(tmp))
        write_npz(directory / self.TIMES, {f"a{k}": v for k, v in self.times.items()})
        tmp.replace(directory / self.FILE)

    def range_search(
        self, hashes: np.ndarray, max_distance: int, device: str = "cpu"
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All indexed hashes within ``max_distance`` (inclusive) of each query hash,
        searched on ``device`` (a ``matcher.device``; see :func:`matcher.accel.search_index`).

        Returns (query row, faiss id, distance) arrays, one entry per pair.
        """
        if not len(hashes) or not len(self):
            empty = np.zeros(0, np.int64)
            return empty, empty, empty
        # FAISS's binary range search keeps distances strictly below the radius.
        lims, dist, ids = accel.search_index(self.index, device).range_search(
            np.ascontiguousarray(hashes, dtype=np.uint8), max_distance + 1
        )
        counts = np.diff(np.asarray(lims, dtype=np.int64)).astype(np.int64)
        rows = np.repeat(np.arange(len(hashes)), counts)
        return rows, ids.astype(np.int64), dist.astype(np.int64)


class PdqCopySignal(Signal):
    """Re-uploads and edits of reference footage (see the module docs for how)."""

    version = 2
    asset_kinds = frozenset({AssetKind.VIDEO, AssetKind.IMAGE})
    index_type = PdqIndex
    visual = True

    def config_key(self) -> str:
        s = self.settings
        crops = ",".join(f"{c:g}" for c in s.reference_crops)
        return f"{self.name}-v{self.version}-q{s.min_quality}-c{crops}"

    # Fingerprints ------------------------------------------------------------------------------

    def fingerprint(self, decoded: Decoded, role: Role) -> Fingerprint:
        hashes: list[np.ndarray] = []
        times: list[float] = []
        frames: list[int] = []
        variants: list[int] = []
        qualities: list[int] = []
        min_q = self.settings.min_quality

        def keep(h: np.ndarray, quality: int, i: int, variant: int) -> None:
            if quality >= min_q:
                hashes.append(h)
                times.append(float(decoded.times[i]))
                frames.append(i)
                variants.append(variant)
                qualities.append(quality)

        windows = chunk_windows(decoded.frames) if role == "query" else []
        for i, frame in enumerate(decoded.frames):
            if role == "reference":
                h, quality = pdq(frame)
                keep(h, quality, i, FULL)
                for k, fraction in enumerate(self.settings.reference_crops):
                    h, quality = pdq(centre_crop(frame, fraction))
                    keep(h, quality, i, CROP + k)
            else:
                for code, (x0, y0, x1, y1) in query_regions(frame, windows[i]):
                    region = frame[y0:y1, x0:x1]
                    h, hm, quality = pdq_with_mirror(region)
                    keep(h, quality, i, code)
                    keep(hm, quality, i, code | 16 if code else MIRROR)
                    clean = without_overlays(region) if code in (FULL, CONTENT_BOX) else None
                    if clean is not None:
                        cleaned = CLEAN if code == FULL else CLEAN_BOX
                        h, hm, quality = pdq_with_mirror(clean)
                        keep(h, quality, i, cleaned)
                        keep(hm, quality, i, cleaned | 16)
        return {
            "hashes": np.array(hashes, np.uint8).reshape(-1, HASH_BYTES),
            "times": np.array(times, np.float32),
            "frames": np.array(frames, np.int32),
            "variants": np.array(variants, np.uint8),
            "quality": np.array(qualities, np.uint8),
        }

    # Search ------------------------------------------------------------------------------------

    def search(
        self, index: SignalIndex, fingerprint: Fingerprint, query_duration: float
    ) -> list[SignalHit]:
        assert isinstance(index, PdqIndex)
        s = self.settings
        found = index.range_search(fingerprint["hashes"], s.copy_max_distance, s.device)
        return index_segments(index, fingerprint, found, s, query_duration, snap_unit_speed=True)

    # Scoring -----------------------------------------------------------------------------------

    def score(self, hits: Sequence[SignalHit], query_duration: float) -> float:
        """Evidence in [0, 1] (:func:`~matcher.signals.align.segment_score`: length, coverage,
        density) with this closeness:

        * mean PDQ distance of aligned frames through :meth:`closeness`. Up to 30 bits is
          what PDQ calls near-identical (1); above, it falls off quadratically to 0 at the
          frame threshold, because a dozen frames on one time line at 55-60 bits (heavy
          overlays) are still far from chance (unrelated frames sit at 90+ bits from their
          nearest reference);
        """
        return segment_score(hits, query_duration, 1.0 / self.settings.sample_fps, self.closeness)

    def closeness(self, distance: float) -> float:
        """PDQ bits apart -> alike: up to 30 bits is what PDQ calls near-identical (1);
        above, it falls off quadratically to 0 at the frame threshold."""
        max_d = float(self.settings.copy_max_distance)
        excess = min(1.0, max(0.0, (distance - 30.0) / max(1.0, max_d - 30.0)))
        return 1.0 - excess * excess
