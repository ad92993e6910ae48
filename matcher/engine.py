"""Match media against the catalog: fingerprint, search every signal, fuse per title.

The engine is the only place that knows titles: signals return time-aligned hits on
reference assets, the engine groups them by title, asks each signal for a calibrated score,
fuses the scores, picks the tier from ``settings.matcher`` thresholds and cuts evidence
thumbnails. It stores nothing about matches (that is triage's job) and does no network I/O.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from matcher.catalog import Catalog
from matcher.decode import Decoded, grab_frames
from matcher.fingerprint import Fingerprints, fingerprint_file
from matcher.signals.base import Signal, SignalHit
from reelwatch.errors import InputError, ReelwatchError
from reelwatch.models import Asset, Confidence, Media, Segment, TitleMatch
from reelwatch.settings import Settings

log = logging.getLogger(__name__)

EMPTY_CATALOG = "the catalog is empty: add titles with `reelwatch catalog add`"
THUMB_SIDE = 320


@dataclass
class MatchReport:
    """Every title with any evidence for one input, best first."""

    input: str
    media: Media
    matches: list[TitleMatch] = field(default_factory=list)

    @property
    def best(self) -> TitleMatch | None:
        return self.matches[0] if self.matches else None

    def to_json(self) -> dict[str, Any]:
        """The ``reelwatch match --json`` object (a JSON-ready dict) of the architecture::

        {"input", "media": {"sha256", "duration", "width", "height"},
         "matches": [{"title", "title_id", "score", "confidence", "signals": {name: score},
                      "segments": [{"signal", "query_start", "query_end", "ref_asset",
                                    "ref_start", "ref_end", ...}]}]}
        """
        return {
            "input": self.input,
            "media": {
                "sha256": self.media.sha256,
                "duration": self.media.duration,
                "width": self.media.width,
                "height": self.media.height,
                "fps": self.media.fps,
                "bytes": self.media.bytes,
            },
            "matches": [
                {
                    "title": m.title,
                    "title_id": m.title_id,
                    "score": m.score,
                    "confidence": m.confidence.value,
                    "signals": dict(m.signals),
                    "segments": [
                        {
                            "signal": s.signal,
                            "query_start": s.query_start,
                            "query_end": s.query_end,
                            "ref_asset": s.ref_asset,
                            "ref_start": s.ref_start,
                            "ref_end": s.ref_end,
                            "score": s.score,
                            "distance": s.distance,
                            "evidence": list(s.evidence),
                        }
                        for s in m.segments
                    ],
                }
                for m in self.matches
            ],
        }


def fuse(scores: dict[str, float]) -> float:
    """One title score from per-signal scores: noisy-OR, so independent signals that each
    saw something add up, and one strong signal is enough on its own."""
    return round(1.0 - math.prod(1.0 - min(1.0, max(0.0, s)) for s in scores.values()), 4)


def tier(score: float, settings: Settings) -> Confidence:
    m = settings.matcher
    if score >= m.high_threshold:
        return Confidence.HIGH
    if score >= m.medium_threshold:
        return Confidence.MEDIUM
    return Confidence.LOW


class Matcher:
    """Scores media files against a :class:`~matcher.catalog.Catalog`.

    Build one per process and reuse it: the catalog's indexes and asset table are loaded
    once, and reloaded only when another process changes the catalog.
    """

    def __init__(self, settings: Settings, catalog: Catalog | None = None) -> None:
        self.settings = settings
        self.catalog = catalog or Catalog(settings)

    def match_file(self, path: Path | str, sha256: str | None = None) -> MatchReport:
        """Match one file; ``InputError`` for an empty catalog or unreadable media.

        Pass ``sha256`` when it is known: with cached fingerprints the file is then not read
        at all, unless an evidence thumbnail is still missing.
        """
        assets = self.catalog.asset_map()
        if not assets:
            raise InputError(EMPTY_CATALOG)
        path = Path(path)
        fps = fingerprint_file(path, self.settings, sha256, role="query")
        step = 1.0 / fps.sample_fps
        duration = max(step, min(fps.duration, self.settings.matcher.max_frames * step))

        by_title: dict[str, dict[Signal, list[SignalHit]]] = defaultdict(lambda: defaultdict(list))
        for signal in self.catalog.signals:
            fp = fps.signals.get(signal.name)
            if fp is None:
                continue
            for hit in signal.search(self.catalog.index(signal), fp, duration):
                asset = assets.get(hit.asset_num)
                if asset is not None:
                    by_title[asset.title_id][signal].append(hit)

        evidence = self._evidence(
            [
                (hit, assets[hit.asset_num])
                for per in by_title.values()
                for hits in per.values()
                for hit in hits
            ],
            fps,
            path,
        )
        matches: list[TitleMatch] = []
        for title_id, per_signal in by_title.items():
            title = self.catalog.get_title(title_id)
            if title is None:  # removed by another process since the indexes were read
                continue
            scores = {sig.name: sig.score(hits, duration) for sig, hits in per_signal.items()}
            segments = [
                Segment(
                    signal=sig.name,
                    query_start=hit.query_start,
                    query_end=hit.query_end,
                    ref_asset=assets[hit.asset_num].id,
                    ref_start=hit.ref_start,
                    ref_end=hit.ref_end,
                    score=sig.score([hit], duration),
                    distance=round(hit.distance, 2),
                    evidence=evidence[hit],
                )
                for sig, hits in per_signal.items()
                for hit in hits
            ]
            segments.sort(key=lambda s: (s.query_start, -s.score))
            score = fuse(scores)
            matches.append(
                TitleMatch(
                    title_id=title_id,
                    title=title.name,
                    score=score,
                    confidence=tier(score, self.settings),
                    signals=scores,
                    segments=segments,
                )
            )
        matches.sort(key=lambda t: (-t.score, t.title_id))
        return MatchReport(input=str(path), media=fps.media, matches=matches)

    # Evidence --------------------------------------------------------------------------------

    def _evidence(
        self, hits: list[tuple[SignalHit, Asset]], fps: Fingerprints, path: Path
    ) -> dict[SignalHit, list[str]]:
        """Small JPEGs of each hit's closest query frame and its reference frame,
        content-addressed (``evidence/<sha[:2]>/<sha>/<role>-<ms>.jpg``) so re-matching
        reuses them.

        Missing ones are cut with one open of each source file: query frames come from the
        decode that just made the fingerprints when there was one. Evidence is a courtesy:
        failing to cut it is logged, never fatal, and the failed paths are left out.
        """
        shots: dict[SignalHit, list[Path]] = {}
        todo: dict[Path, dict[Path, tuple[float, int | None]]] = defaultdict(dict)
        for hit, asset in hits:
            q = self._thumb_path(fps.media.sha256, "q", hit.query_time)
            r = self._thumb_path(asset.sha256, "r", hit.ref_time)
            shots[hit] = [q, r]
            if not q.exists():
                todo[path][q] = (hit.query_time, hit.query_frame)
            if not r.exists():
                todo[Path(asset.path)][r] = (hit.ref_time, None)

        failed: set[Path] = set()
        for src, wanted in todo.items():
            try:
                frames = self._frames(src, wanted, fps.decoded if src == path else None)
                for dst, frame in zip(wanted, frames, strict=True):
                    _write_thumb(frame, dst)
            except (ReelwatchError, OSError, ValueError) as exc:
                log.warning("no evidence frames from %s: %s", src, exc)
                failed.update(wanted)

        home = self.settings.home
        return {
            hit: [
                str(p.relative_to(home)) if p.is_relative_to(home) else str(p)
                for p in paths
                if p not in failed
            ]
            for hit, paths in shots.items()
        }

    def _thumb_path(self, sha: str, role: str, t: float) -> Path:
        return self.settings.evidence_dir / sha[:2] / sha / f"{role}-{round(t * 1000):08d}.jpg"

    def _frames(
        self, src: Path, wanted: dict[Path, tuple[float, int | None]], decoded: Decoded | None
    ) -> list[np.ndarray]:
        """The frames of ``src`` at the wanted (time, sampled frame index) pairs: from the
        decoded query when it has them all, else from one pass over the file."""
        if decoded is not None:
            n = len(decoded.frames)
            kept = [k for _, k in wanted.values() if k is not None and 0 <= k < n]
            if len(kept) == len(wanted):
                return [decoded.frames[k] for k in kept]
        times = [t for t, _ in wanted.values()]
        return grab_frames(src, times, max_side=self.settings.matcher.decode_max_side)


def _write_thumb(frame: np.ndarray, dst: Path) -> None:
    img = Image.fromarray(frame)
    img.thumbnail((THUMB_SIDE, THUMB_SIDE))
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp")
    img.save(tmp, format="JPEG", quality=80)
    tmp.replace(dst)
