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
from matcher.decode import grab_frame
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

    Build one per process and reuse it: the catalog's indexes are loaded once (and reloaded
    when another process changes the catalog).
    """

    def __init__(self, settings: Settings, catalog: Catalog | None = None) -> None:
        self.settings = settings
        self.catalog = catalog or Catalog(settings)
        self.signals: list[Signal] = list(self.catalog.signals)

    def match_file(self, path: Path | str, sha256: str | None = None) -> MatchReport:
        """Match one file; ``InputError`` for an empty catalog or unreadable media."""
        if self.catalog.is_empty():
            raise InputError(EMPTY_CATALOG)
        path = Path(path)
        fps = fingerprint_file(path, self.settings, sha256, role="query")
        m = self.settings.matcher
        step = 1.0 / fps.sample_fps
        duration = max(fps.duration, step)
        duration = min(duration, m.max_frames * step) if fps.duration else duration

        assets = self.catalog.asset_map()
        titles = {t.id: t for t in self.catalog.titles()}
        by_title: dict[str, dict[str, list[SignalHit]]] = defaultdict(lambda: defaultdict(list))
        for signal in self.signals:
            fp = fps.signals.get(signal.name)
            if fp is None:
                continue
            index = self.catalog.index(signal)
            for hit in signal.search(index, fp, duration):
                asset = assets.get(hit.asset_num)
                if asset is None or asset.title_id not in titles:
                    continue
                by_title[asset.title_id][signal.name].append(hit)

        by_name = {s.name: s for s in self.signals}
        matches: list[TitleMatch] = []
        for title_id, per_signal in by_title.items():
            scores = {
                name: by_name[name].score(hits, duration) for name, hits in per_signal.items()
            }
            score = fuse(scores)
            segments = [
                self._segment(by_name[name], hit, assets[hit.asset_num], fps, path, duration)
                for name, hits in per_signal.items()
                for hit in hits
            ]
            segments.sort(key=lambda s: (s.query_start, -s.score))
            title = titles[title_id]
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

    def _segment(
        self,
        signal: Signal,
        hit: SignalHit,
        asset: Asset,
        fps: Fingerprints,
        path: Path,
        duration: float,
    ) -> Segment:
        return Segment(
            signal=signal.name,
            query_start=hit.query_start,
            query_end=hit.query_end,
            ref_asset=asset.id,
            ref_start=hit.ref_start,
            ref_end=hit.ref_end,
            score=signal.score([hit], duration),
            distance=round(hit.distance, 2),
            evidence=self._evidence(hit, asset, fps, path),
        )

    # Evidence --------------------------------------------------------------------------------

    def _evidence(self, hit: SignalHit, asset: Asset, fps: Fingerprints, path: Path) -> list[str]:
        """Small JPEGs of the closest query frame and its reference frame, content-addressed
        (``evidence/<sha[:2]>/<sha>/<role>-<ms>.jpg``) so re-matching reuses them. Evidence
        is a courtesy: failing to cut it is logged, never fatal."""
        home = self.settings.home
        out: list[str] = []
        jobs = [
            (fps.media.sha256, "q", hit.query_time, path, fps, hit.query_frame),
            (asset.sha256, "r", hit.ref_time, Path(asset.path), None, -1),
        ]
        for sha, role, t, src, source_fps, frame_index in jobs:
            dst = self.settings.evidence_dir / sha[:2] / sha / f"{role}-{round(t * 1000):08d}.jpg"
            try:
                if not dst.exists():
                    frame = self._frame(src, t, source_fps, frame_index)
                    _write_thumb(frame, dst)
                out.append(str(dst.relative_to(home)) if dst.is_relative_to(home) else str(dst))
            except (ReelwatchError, OSError, ValueError) as exc:
                log.warning("no evidence frame from %s at %.2fs: %s", src, t, exc)
        return out

    def _frame(self, src: Path, t: float, fps: Fingerprints | None, frame_index: int) -> np.ndarray:
        if (
            fps is not None
            and fps.decoded is not None
            and 0 <= frame_index < len(fps.decoded.frames)
        ):
            return fps.decoded.frames[frame_index]
        return grab_frame(src, t, max_side=self.settings.matcher.decode_max_side)


def _write_thumb(frame: np.ndarray, dst: Path) -> None:
    img = Image.fromarray(frame)
    img.thumbnail((THUMB_SIDE, THUMB_SIDE))
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp")
    img.save(tmp, format="JPEG", quality=80)
    tmp.replace(dst)
