"""Copy detection: PDQ hashes of sampled frames, a FAISS binary index, temporal alignment.

Re-uploads are rarely byte or pixel copies: they are excerpts, re-encoded small, mirrored,
zoomed in, sped up, boxed into a 9:16 canvas over a blurred copy of themselves, with captions
and stickers on top. PDQ (a 256-bit perceptual hash) survives re-encoding, scaling and light
overlays; the rest is handled by hashing the right *regions* on each side:

* references store the full frame plus centre crops (``MatcherSettings.reference_crops``), so
  a zoomed-in re-upload lands near one of them;
* queries hash the full frame and its mirror (PDQ's dihedral transform gives the mirror for
  free), the sharp content box found inside a letterboxed frame (the blurred fill has little
  high-frequency energy; black bars have none), and for portrait frames the central 16:9 and
  4:3 bands where the original usually sits.

Single frame hits are weak evidence, so hits are aligned in time: for each reference asset the
(query time, reference time) pairs are voted into lines ``ref = slope * query + offset``
(a Hough transform over slopes in [0.5, 2], which covers slow-motion and sped-up copies),
the best line is refined by least squares on its inliers and cut into segments at gaps. A
random frame collision cannot make a segment: that takes ``min_segment_frames`` query frames
on one line.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import faiss
import numpy as np
import pdqhash

from matcher.decode import Decoded
from matcher.signals.align import Line, align, best_per_frame, union_length
from matcher.signals.base import Fingerprint, Role, Signal, SignalHit, SignalIndex
from reelwatch.models import AssetKind

HASH_BITS = 256
HASH_BYTES = HASH_BITS // 8
_MIRROR = 5
"""Index of the left-right mirror among ``pdqhash.compute_dihedral``'s eight hashes."""
_ASSET_SHIFT = 24
"""FAISS ids are ``asset_num << 24 | row``: an asset holds up to 16M hashes, and ids decode
to assets without a lookup table."""

Box = tuple[int, int, int, int]
"""x0, y0, x1, y1 in pixels."""

# Variant codes stored with each hash (for debugging and tests).
FULL, MIRROR, CONTENT_BOX, BAND_16_9, BAND_4_3, CROP = 0, 1, 2, 3, 4, 8


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


def query_regions(frame: np.ndarray) -> list[tuple[int, Box]]:
    """Regions of a query frame worth hashing, as (variant code, box), near-duplicates dropped."""
    h, w = frame.shape[:2]
    regions: list[tuple[int, Box]] = [(FULL, (0, 0, w, h))]
    box = content_box(frame)
    if box is not None:
        regions.append((CONTENT_BOX, box))
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


def _centre_crop(frame: np.ndarray, fraction: float) -> np.ndarray:
    h, w = frame.shape[:2]
    ch, cw = round(h * fraction), round(w * fraction)
    y, x = (h - ch) // 2, (w - cw) // 2
    return frame[y : y + ch, x : x + cw]


class PdqIndex(SignalIndex):
    """PDQ hashes of reference frames in ``faiss.IndexBinaryIDMap2(IndexBinaryFlat(256))``.

    Exact (flat) search: at catalog sizes of a studio (thousands of assets, millions of
    hashes) a flat binary scan stays fast, and approximate indexes miss the far-but-true
    matches that edited copies produce. Reference times are kept per asset beside the index.
    """

    FILE = "copy.faissb"
    TIMES = "copy-times.npz"

    def __init__(self) -> None:
        self.index: faiss.IndexBinary = faiss.IndexBinaryIDMap2(faiss.IndexBinaryFlat(HASH_BITS))
        self.times: dict[int, np.ndarray] = {}

    @classmethod
    def load(cls, directory: Path) -> PdqIndex:
        idx = cls()
        path = directory / cls.FILE
        if path.exists():
            idx.index = faiss.read_index_binary(str(path))
            with np.load(directory / cls.TIMES) as data:
                idx.times = {int(k[1:]): data[k] for k in data.files}
        return idx

    def add(self, asset_num: int, fingerprint: Fingerprint) -> int:
        if asset_num in self.times:
            self.remove([asset_num])
        hashes = fingerprint["hashes"]
        ids = (np.int64(asset_num) << _ASSET_SHIFT) + np.arange(len(hashes), dtype=np.int64)
        if len(hashes):
            self.index.add_with_ids(np.ascontiguousarray(hashes, dtype=np.uint8), ids)
        self.times[asset_num] = fingerprint["times"].astype(np.float32)
        return len(hashes)

    def remove(self, asset_nums: Iterable[int]) -> int:
        removed = 0
        for num in asset_nums:
            times = self.times.pop(num, None)
            if times is None or not len(times):
                continue
            ids = (np.int64(num) << _ASSET_SHIFT) + np.arange(len(times), dtype=np.int64)
            removed += int(self.index.remove_ids(faiss.IDSelectorBatch(ids)))
        return removed

    def asset_nums(self) -> set[int]:
        return set(self.times)

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / (self.FILE + ".tmp")
        faiss.write_index_binary(self.index, str(tmp))
        tmp_times = directory / (self.TIMES + ".tmp")
        with tmp_times.open("wb") as f:
            np.savez(f, **{f"a{k}": v for k, v in self.times.items()})  # type: ignore[arg-type]
        tmp_times.replace(directory / self.TIMES)
        tmp.replace(directory / self.FILE)

    def range_search(
        self, hashes: np.ndarray, max_distance: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All indexed hashes within ``max_distance`` (inclusive) of each query hash.

        Returns (query row, faiss id, distance) arrays, one entry per pair.
        """
        if not len(hashes) or not len(self):
            empty = np.zeros(0, np.int64)
            return empty, empty, empty
        # FAISS's binary range search keeps distances strictly below the radius.
        lims, dist, ids = self.index.range_search(
            np.ascontiguousarray(hashes, dtype=np.uint8), max_distance + 1
        )
        counts = np.diff(np.asarray(lims, dtype=np.int64)).astype(np.int64)
        rows = np.repeat(np.arange(len(hashes)), counts)
        return rows, ids.astype(np.int64), dist.astype(np.int64)

    def decode_ids(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(asset number, reference time) of FAISS ids."""
        assets = ids >> _ASSET_SHIFT
        rows = ids & ((1 << _ASSET_SHIFT) - 1)
        times = np.zeros(len(ids), np.float64)
        for a in np.unique(assets):
            sel = assets == a
            t = self.times.get(int(a))
            times[sel] = t[rows[sel]] if t is not None else np.nan
        return assets, times


class PdqCopySignal(Signal):
    """Re-uploads and edits of reference footage (see the module docs for how)."""

    version = 1
    asset_kinds = frozenset({AssetKind.VIDEO, AssetKind.IMAGE})
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

        for i, frame in enumerate(decoded.frames):
            if role == "reference":
                h, quality = pdq(frame)
                keep(h, quality, i, FULL)
                for k, fraction in enumerate(self.settings.reference_crops):
                    h, quality = pdq(_centre_crop(frame, fraction))
                    keep(h, quality, i, CROP + k)
            else:
                for code, (x0, y0, x1, y1) in query_regions(frame):
                    h, hm, quality = pdq_with_mirror(frame[y0:y1, x0:x1])
                    keep(h, quality, i, code)
                    keep(hm, quality, i, code | 16 if code else MIRROR)
        return {
            "hashes": np.array(hashes, np.uint8).reshape(-1, HASH_BYTES),
            "times": np.array(times, np.float32),
            "frames": np.array(frames, np.int32),
            "variants": np.array(variants, np.uint8),
            "quality": np.array(qualities, np.uint8),
        }

    # Index -------------------------------------------------------------------------------------

    def new_index(self) -> PdqIndex:
        return PdqIndex()

    def load_index(self, directory: Path) -> PdqIndex:
        return PdqIndex.load(directory)

    # Search ------------------------------------------------------------------------------------

    def search(
        self, index: SignalIndex, fingerprint: Fingerprint, query_duration: float
    ) -> list[SignalHit]:
        assert isinstance(index, PdqIndex)
        s = self.settings
        rows, ids, dist = index.range_search(fingerprint["hashes"], s.copy_max_distance)
        if not len(rows):
            return []
        assets, ref_t = index.decode_ids(ids)
        q_t = fingerprint["times"][rows].astype(np.float64)
        q_frame = fingerprint["frames"][rows].astype(np.int64)
        step = 1.0 / s.sample_fps
        n_frames = len(np.unique(fingerprint["frames"]))
        min_frames = min(s.min_segment_frames, n_frames)
        hits: list[SignalHit] = []
        for a in np.unique(assets):
            sel = np.flatnonzero((assets == a) & ~np.isnan(ref_t))
            if not sel.size:
                continue
            ref_len = float(np.max(index.times[int(a)])) if len(index.times[int(a)]) else 0.0
            if ref_len <= 0.0:
                hits.extend(self._still_hits(int(a), sel, q_t, q_frame, dist, min_frames))
                continue
            runs = align(
                q_t[sel],
                ref_t[sel],
                q_frame[sel],
                dist[sel].astype(np.float64),
                tol=s.align_tolerance_s,
                max_gap=max(3.0, 4 * step),
                min_frames=min_frames,
            )
            for run in runs:
                p = sel[run.pairs]
                hits.append(
                    self._hit(int(a), p, q_t, q_frame, dist, run.line, ref_len, query_duration)
                )
        return [
            h for h in hits if h.query_end - h.query_start >= min(s.min_segment_s, query_duration)
        ]

    def _hit(
        self,
        asset: int,
        p: np.ndarray,
        q_t: np.ndarray,
        q_frame: np.ndarray,
        dist: np.ndarray,
        line: Line,
        ref_len: float,
        query_duration: float,
    ) -> SignalHit:
        step = 1.0 / self.settings.sample_fps
        q0 = float(q_t[p].min())
        q1 = min(float(q_t[p].max()) + step, max(query_duration, step))
        r0, r1 = (min(max(line.slope * t + line.offset, 0.0), ref_len) for t in (q0, q1))
        best = p[int(np.argmin(dist[p]))]
        expected = max(1.0, (q1 - q0) / step)
        return SignalHit(
            asset_num=asset,
            query_start=round(q0, 3),
            query_end=round(q1, 3),
            ref_start=round(r0, 3),
            ref_end=round(r1, 3),
            distance=float(dist[p].mean()),
            frames=int(p.size),
            density=min(1.0, p.size / expected),
            query_time=float(q_t[best]),
            ref_time=min(max(line.slope * float(q_t[best]) + line.offset, 0.0), ref_len),
            query_frame=int(q_frame[best]),
            slope=line.slope,
        )

    def _still_hits(
        self,
        asset: int,
        sel: np.ndarray,
        q_t: np.ndarray,
        q_frame: np.ndarray,
        dist: np.ndarray,
        min_frames: int,
    ) -> list[SignalHit]:
        """A still reference has no timeline: runs of query frames that show it are segments."""
        step = 1.0 / self.settings.sample_fps
        best = best_per_frame(sel, q_frame, dist.astype(np.float64))
        best = best[np.argsort(q_t[best], kind="stable")]
        hits = []
        for part in np.split(best, np.flatnonzero(np.diff(q_t[best]) > 2 * step + 1e-6) + 1):
            if part.size < min_frames:
                continue
            q0, q1 = float(q_t[part].min()), float(q_t[part].max()) + step
            b = part[int(np.argmin(dist[part]))]
            hits.append(
                SignalHit(
                    asset_num=asset,
                    query_start=round(q0, 3),
                    query_end=round(q1, 3),
                    ref_start=0.0,
                    ref_end=0.0,
                    distance=float(dist[part].mean()),
                    frames=int(part.size),
                    density=1.0,
                    query_time=float(q_t[b]),
                    ref_time=0.0,
                    query_frame=int(q_frame[b]),
                    slope=0.0,
                )
            )
        return hits

    # Scoring -----------------------------------------------------------------------------------

    def score(self, hits: Sequence[SignalHit], query_duration: float) -> float:
        """Evidence in [0, 1] from how long, how much of the query, and how closely it matched.

        * matched seconds (union of segments on the query): ``1 - exp(-seconds / 3)``, so a
          3 s copy is worth 0.63 and 8 s is worth 0.93;
        * coverage: matched share of the query, full credit from 60% (re-uploads add intros,
          outros and reaction shots);
        * closeness: mean PDQ distance of aligned frames. Up to 30 bits is what PDQ calls
          near-identical (1); above, it falls off quadratically to 0 at the frame threshold,
          because a dozen frames on one time line at 55-60 bits (heavy overlays) are still
          far from chance (unrelated frames sit at 90+ bits from their nearest reference);
        * density: share of sampled frames on the line.

        The product of a length term and a quality term means that neither a long but
        distant alignment nor a single perfect frame scores high on its own.
        """
        if not hits:
            return 0.0
        step = 1.0 / self.settings.sample_fps
        matched = union_length([(h.query_start, h.query_end) for h in hits])
        duration = max(query_duration, step)
        coverage = min(1.0, matched / duration)
        frames = sum(h.frames for h in hits)
        mean_d = sum(h.distance * h.frames for h in hits) / frames
        density = sum(h.density * h.frames for h in hits) / frames
        max_d = float(self.settings.copy_max_distance)
        excess = min(1.0, max(0.0, (mean_d - 30.0) / max(1.0, max_d - 30.0)))
        closeness = 1.0 - excess * excess
        length = 1.0 - math.exp(-matched / 3.0)
        amount = 0.5 * length + 0.5 * min(1.0, coverage / 0.6)
        quality = math.sqrt(closeness) * min(1.0, density / 0.6)
        return round(max(0.0, min(1.0, amount * quality)), 4)
