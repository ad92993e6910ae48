"""Temporal alignment shared by the frame signals (copy, embedding): frame pairs -> segments.

For each reference asset, the (query time, reference time) pairs of frame hits are voted
into lines ``ref = slope * query + offset`` (a Hough transform over slopes, which covers
slow-motion and sped-up copies), the best line is refined by least squares on its inliers
and cut into segments at gaps. A random frame collision cannot make a segment: that takes
``min_frames`` query frames on one line.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from matcher.signals.base import Fingerprint, RowsIndex, SignalHit
from reelwatch.settings import MatcherSettings


@dataclass(frozen=True)
class Line:
    slope: float
    offset: float


def hough_line(
    q: np.ndarray,
    r: np.ndarray,
    qidx: np.ndarray,
    *,
    tol: float,
    slopes: np.ndarray,
) -> tuple[Line, int]:
    """The line ``r = slope * q + offset`` supported by the most distinct query frames.

    For each candidate slope, every pair votes for the offset window (width ``2 * tol``)
    that contains it; windows overlap by half so a line is never split between two. Ties go
    to the slope nearest 1 (``slopes`` should be ordered that way).
    """
    nq = int(qidx.max()) + 1
    best = Line(1.0, 0.0)
    best_votes = 0
    for s in slopes:
        b = r - s * q
        k = np.floor(b / tol).astype(np.int64)
        windows = np.concatenate([k - 1, k])
        frames = np.concatenate([qidx, qidx])
        keys = np.unique((windows - windows.min()) * nq + frames)
        wins, votes = np.unique(keys // nq, return_counts=True)
        i = int(np.argmax(votes))
        if votes[i] > best_votes:
            best_votes = int(votes[i])
            w = wins[i] + windows.min()
            best = Line(float(s), float((w + 1) * tol))
    return best, best_votes


@dataclass(frozen=True)
class AlignedRun:
    """Query frames of one segment: indexes into the pair arrays given to :func:`align`."""

    pairs: np.ndarray
    line: Line


def align(
    q: np.ndarray,
    r: np.ndarray,
    qidx: np.ndarray,
    dist: np.ndarray,
    *,
    tol: float,
    max_gap: float,
    min_frames: int,
    slope_range: tuple[float, float] = (0.5, 2.0),
    n_slopes: int = 49,
    max_segments: int = 4,
) -> list[AlignedRun]:
    """Segments of frame pairs (query time ``q``, reference time ``r``) that lie on lines.

    ``qidx`` numbers the query frames (several pairs may share one); ``dist`` is each pair's
    distance. Each found segment keeps, per query frame, the closest pair on the line. Lines
    are found one at a time (Hough vote, then a least-squares refit on the inliers); their
    query frames are removed and the search repeats, so a compilation of several excerpts
    yields several segments.
    """
    slopes = np.geomspace(slope_range[0], slope_range[1], n_slopes)
    slopes = slopes[np.argsort(np.abs(np.log(slopes)), kind="stable")]
    active = np.ones(len(q), bool)
    runs: list[AlignedRun] = []
    for _ in range(max_segments):
        sel = np.flatnonzero(active)
        if sel.size == 0 or np.unique(qidx[sel]).size < min_frames:
            break
        line, votes = hough_line(q[sel], r[sel], qidx[sel], tol=tol, slopes=slopes)
        if votes < min_frames:
            break
        inl = sel[np.abs(r[sel] - (line.slope * q[sel] + line.offset)) <= tol]
        for _refit in range(2):
            # Fit the closest pair of each query frame: slow camera moves make many
            # neighbouring reference frames match, and all pairs would bias the slope.
            closest = best_per_frame(inl, qidx, dist)
            if closest.size < 3 or np.ptp(q[closest]) <= 1.0:
                break
            s, b = np.polyfit(q[closest], r[closest], 1)
            if not slope_range[0] <= s <= slope_range[1]:
                break
            refit = Line(float(s), float(b))
            inl2 = sel[np.abs(r[sel] - (refit.slope * q[sel] + refit.offset)) <= tol]
            if np.unique(qidx[inl2]).size < np.unique(qidx[inl]).size:
                break
            line, inl = refit, inl2
        active[np.isin(qidx, qidx[inl])] = False
        best = best_per_frame(inl, qidx, dist)
        best = best[np.argsort(q[best], kind="stable")]
        gaps = np.flatnonzero(np.diff(q[best]) > max_gap)
        for part in np.split(best, gaps + 1):
            if part.size >= min_frames:
                runs.append(AlignedRun(part, line))
    return runs


def best_per_frame(pairs: np.ndarray, qidx: np.ndarray, dist: np.ndarray) -> np.ndarray:
    order = pairs[np.lexsort((dist[pairs], qidx[pairs]))]
    _, first = np.unique(qidx[order], return_index=True)
    return order[first]


def union_length(intervals: Sequence[tuple[float, float]]) -> float:
    """Seconds covered by the union of ``(start, end)`` intervals."""
    total = 0.0
    end = -math.inf
    for a, b in sorted(intervals):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def unit_speed(line: Line, q: np.ndarray, r: np.ndarray, tol: float) -> Line:
    """``line`` or, when the copy plays at (nearly) normal speed, the slope-1 line.

    Distant matches (overlays, picture-in-picture) pick their closest reference frame with
    some noise, and on slow camera moves the noise drifts along the clip, tilting a free
    least-squares fit by 10% (0.8 s over 8 s). Normal speed is by far the most common, so a
    fitted slope within 12% of 1 gives way to slope 1 (offset: median of ``r - q``) when
    that line keeps as many pairs within ``tol`` and fits them about as well.
    """
    if abs(line.slope - 1.0) > 0.12 or len(q) < 3:
        return line
    offset = float(np.median(r - q))
    fit = np.abs(r - (line.slope * q + line.offset))
    unit = np.abs(r - (q + offset))
    if (unit <= tol).sum() >= (fit <= tol).sum() and np.median(unit) <= np.median(fit) + 0.25 * tol:
        return Line(1.0, offset)
    return line


@dataclass(frozen=True)
class FramePairs:
    """Frame-level hits of one query against an index, one entry per (query frame, reference
    frame) pair: the reference asset and time, the query time and sampled frame index, and a
    distance (lower is closer)."""

    assets: np.ndarray
    ref_t: np.ndarray
    q_t: np.ndarray
    q_frame: np.ndarray
    dist: np.ndarray


Describe = Callable[[np.ndarray, bool], str]
"""``(distances of a segment's pairs, is a still) -> SignalHit.note``."""


def segment_hits(
    pairs: FramePairs,
    ref_length: Callable[[int], float],
    *,
    step: float,
    query_duration: float,
    tol: float,
    min_frames: int,
    min_segment_s: float,
    snap_unit_speed: bool = False,
    describe: Describe | None = None,
) -> list[SignalHit]:
    """Segments of the query that follow a reference in time, per reference asset.

    References with a timeline (``ref_length(asset) > 0``) go through :func:`align`;
    stills have none, so runs of query frames that show them are their segments. ``step`` is
    the query's sampling interval; segments shorter than ``min_segment_s`` (or the whole
    query, when it is shorter) are dropped.
    """
    hits: list[SignalHit] = []
    usable = ~np.isnan(pairs.ref_t)
    for a in np.unique(pairs.assets):
        sel = np.flatnonzero((pairs.assets == a) & usable)
        if not sel.size:
            continue
        ref_len = ref_length(int(a))
        if ref_len <= 0.0:
            hits.extend(_still_hits(int(a), sel, pairs, step, min_frames, describe))
            continue
        runs = align(
            pairs.q_t[sel],
            pairs.ref_t[sel],
            pairs.q_frame[sel],
            pairs.dist[sel],
            tol=tol,
            max_gap=max(3.0, 4 * step),
            min_frames=min_frames,
        )
        for run in runs:
            p = sel[run.pairs]
            line = run.line
            if snap_unit_speed:
                line = unit_speed(line, pairs.q_t[p], pairs.ref_t[p], tol)
            hits.append(_line_hit(int(a), p, pairs, line, ref_len, step, query_duration, describe))
    shortest = min(min_segment_s, query_duration)
    return [h for h in hits if h.query_end - h.query_start >= shortest]


def index_segments(
    index: RowsIndex,
    fingerprint: Fingerprint,
    found: tuple[np.ndarray, np.ndarray, np.ndarray],
    settings: MatcherSettings,
    query_duration: float,
    *,
    snap_unit_speed: bool = False,
    describe: Describe | None = None,
) -> list[SignalHit]:
    """:func:`segment_hits` of a per-frame index search: ``found`` is (query fingerprint row,
    FAISS id, distance) per pair; the fingerprint has ``times`` and ``frames`` per row."""
    rows, ids, dist = found
    if not len(rows):
        return []
    assets, ref_t = index.decode_ids(ids)
    pairs = FramePairs(
        assets=assets,
        ref_t=ref_t,
        q_t=fingerprint["times"][rows].astype(np.float64),
        q_frame=fingerprint["frames"][rows].astype(np.int64),
        dist=dist.astype(np.float64),
    )
    return segment_hits(
        pairs,
        index.ref_length,
        step=1.0 / settings.sample_fps,
        query_duration=query_duration,
        tol=settings.align_tolerance_s,
        min_frames=min(settings.min_segment_frames, len(np.unique(fingerprint["frames"]))),
        min_segment_s=settings.min_segment_s,
        snap_unit_speed=snap_unit_speed,
        describe=describe,
    )


def _line_hit(
    asset: int,
    p: np.ndarray,
    pairs: FramePairs,
    line: Line,
    ref_len: float,
    step: float,
    query_duration: float,
    describe: Describe | None,
) -> SignalHit:
    q_t, dist = pairs.q_t, pairs.dist
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
        # The evidence pair is the closest frame pair itself, never a time read off the fitted
        # line: on a sped-up copy the line is a few frames off at its ends, which lands the
        # reference thumbnail in the next scene after a cut.
        query_time=float(q_t[best]),
        ref_time=min(max(float(pairs.ref_t[best]), 0.0), ref_len),
        query_frame=int(pairs.q_frame[best]),
        slope=line.slope,
        note=describe(dist[p], False) if describe else "",
        strip=_strip(q_t[p], dist[p], q0, q1, step),
    )


def _still_hits(
    asset: int,
    sel: np.ndarray,
    pairs: FramePairs,
    step: float,
    min_frames: int,
    describe: Describe | None,
) -> list[SignalHit]:
    q_t, dist = pairs.q_t, pairs.dist
    best = best_per_frame(sel, pairs.q_frame, dist)
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
                query_frame=int(pairs.q_frame[b]),
                slope=0.0,
                note=describe(dist[part], True) if describe else "",
                strip=_strip(q_t[part], dist[part], q0, q1, step),
            )
        )
    return hits


def _strip(
    times: np.ndarray, dist: np.ndarray, q0: float, q1: float, step: float
) -> tuple[float, ...]:
    """The closest distance in each ``step`` slot of ``[q0, q1)`` (NaN for empty slots)."""
    n = max(1, round((q1 - q0) / step))
    out = np.full(n, np.nan)
    slots = np.clip(np.round((times - q0) / step).astype(np.int64), 0, n - 1)
    for k, d in zip(slots, dist, strict=True):
        if not out[k] <= d:  # NaN or farther
            out[k] = d
    return tuple(round(float(v), 4) for v in out)


def segment_score(
    hits: Sequence[SignalHit],
    query_duration: float,
    step: float,
    closeness: Callable[[float], float],
) -> float:
    """Evidence in [0, 1] of aligned frame segments: how long, how much of the query, how
    close (``closeness`` of the frame-weighted mean distance, in [0, 1]) and how dense.

    * matched seconds (union of segments on the query): ``1 - exp(-seconds / 3)``, so a
      3 s copy is worth 0.63 and 8 s is worth 0.93;
    * coverage: matched share of the query, full credit from 60% (re-uploads add intros,
      outros and reaction shots);
    * density: share of sampled frames on the time line, full credit from 60%.

    The product of a length term and a quality term means that neither a long but distant
    alignment nor a single perfect frame scores high on its own.
    """
    if not hits:
        return 0.0
    matched = union_length([(h.query_start, h.query_end) for h in hits])
    coverage = min(1.0, matched / max(query_duration, step))
    frames = sum(h.frames for h in hits)
    mean_d = sum(h.distance * h.frames for h in hits) / frames
    density = sum(h.density * h.frames for h in hits) / frames
    close = min(1.0, max(0.0, closeness(mean_d)))
    length = 1.0 - math.exp(-matched / 3.0)
    amount = 0.5 * length + 0.5 * min(1.0, coverage / 0.6)
    quality = math.sqrt(close) * min(1.0, density / 0.6)
    return round(max(0.0, min(1.0, amount * quality)), 4)
