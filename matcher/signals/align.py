"""Temporal alignment shared by the frame signals (copy, embedding): frame pairs -> segments.

For each reference asset, the (query time, reference time) pairs of frame hits are voted
into lines ``ref = slope * query + offset`` (a Hough transform over slopes, which covers
slow-motion and sped-up copies), the best line is refined by least squares on its inliers
and cut into segments at gaps. A random frame collision cannot make a segment: that takes
``min_frames`` query frames on one line.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


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
