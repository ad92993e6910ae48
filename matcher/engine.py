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
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from matcher.catalog import Catalog
from matcher.decode import Decoded, grab_frames
from matcher.evidence import (
    SOUND_WINDOW_S,
    evidence_record,
    publish,
    read_audio,
    save_picture,
    sound_picture,
    strip_picture,
    temp_beside,
)
from matcher.fingerprint import Fingerprints, fingerprint_file, fingerprint_files, signal_status
from matcher.signals.align import union_length
from matcher.signals.base import Box, Signal, SignalHit, TextInput
from matcher.signals.provenance import ai_flags, trust_anchors_pem
from reelwatch.errors import InputError, ReelwatchError
from reelwatch.models import (
    AIFlag,
    Asset,
    AssetRef,
    Confidence,
    EvidenceFile,
    Media,
    Segment,
    Title,
    TitleMatch,
    TitlePolicy,
    WorkRef,
    normalize_hashtag,
    slugify,
)
from reelwatch.settings import Settings
from reelwatch.timing import stage

log = logging.getLogger(__name__)

EMPTY_CATALOG = "the catalog is empty: add titles with `reelwatch catalog add`"
THUMB_SIDE = 320
FACE_MARGIN = 0.3
"""Face crops keep this share of the face's size around it (hair, chin, context)."""


@dataclass(frozen=True)
class QueryContext:
    """What the platform says around a video: the words text signals read and the labels the
    provenance check weighs. Captions differ between reposts of one video, so they are never
    part of the media's cached fingerprints."""

    caption: str = ""
    hashtags: tuple[str, ...] = ()
    ai_label: str | None = None
    is_ai_labelled: bool = False

    @property
    def text(self) -> TextInput | None:
        tags = tuple(t for t in (normalize_hashtag(h) for h in self.hashtags) if t)
        if not self.caption.strip() and not tags:
            return None
        return TextInput(text=self.caption, hashtags=tags)


@dataclass
class MatchReport:
    """Every title with any evidence for one input, best first, and the AI flags."""

    input: str
    media: Media
    matches: list[TitleMatch] = field(default_factory=list)
    ai: AIFlag = field(default_factory=AIFlag)
    signals_off: dict[str, str] = field(default_factory=dict)
    """Signals the settings ask for that could not run, and why."""

    @property
    def best(self) -> TitleMatch | None:
        return self.matches[0] if self.matches else None

    def to_json(self) -> dict[str, Any]:
        """The ``reelwatch match --json`` object (a JSON-ready dict) of the architecture::

        {"input", "media": {"sha256", "duration", "width", "height", ..., "captured_at",
                            "source_url"},
         "ai": {"is_ai", "reasons"}, "signals_off": {name: why},
         "matches": [{"title", "title_id", "score", "confidence", "signals": {name: score},
                      "notes": [...], "segments": [{"signal", "query_start", "query_end",
                      "ref_asset", "ref_start", "ref_end", "offset", "score", "distance",
                      "talent", "note", "evidence", "evidence_files": [{"path", "sha256",
                      "bytes"}]}]}]}
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
                "captured_at": (
                    self.media.captured_at.isoformat() if self.media.captured_at else None
                ),
                "source_url": self.media.source_url,
            },
            "ai": self.ai.model_dump(),
            "signals_off": dict(self.signals_off),
            "matches": [
                {
                    "title": m.title,
                    "title_id": m.title_id,
                    "score": m.score,
                    "confidence": m.confidence.value,
                    "signals": dict(m.signals),
                    "notes": list(m.notes),
                    "segments": [
                        {
                            "signal": s.signal,
                            "query_start": s.query_start,
                            "query_end": s.query_end,
                            "ref_asset": s.ref_asset,
                            "ref_start": s.ref_start,
                            "ref_end": s.ref_end,
                            "offset": s.offset,
                            "score": s.score,
                            "distance": s.distance,
                            "talent": s.talent,
                            "note": s.note,
                            "evidence": list(s.evidence),
                            "evidence_files": [e.model_dump() for e in s.evidence_files],
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


def apply_policy(
    policy: TitlePolicy,
    scores: dict[str, float],
    segments: list[Segment],
    query_duration: float,
    settings: Settings,
) -> tuple[float, Confidence, list[str]]:
    """Score, tier and the reasons for them, from per-signal scores under a title's policy.

    Signals the policy does not count are reported, not fused. Matched time is the union of
    the counted signals' segments on the post (text has no time, so a caption alone never
    meets a minimum length). A match that misses the policy is kept at the low tier;
    ``hold_for_review`` caps the tier at medium, so it is triaged but never alerts by itself.
    """
    notes: list[str] = []
    counted = {k: v for k, v in scores.items() if not policy.signals or k in policy.signals}
    left_out = sorted(set(scores) - set(counted))
    if left_out:
        notes.append(f"not counted by the title's policy: {', '.join(left_out)}")
    score = fuse(counted)
    confidence = tier(score, settings)
    if policy.min_matched_s or policy.min_query_share:
        matched = union_length(
            [(s.query_start, s.query_end) for s in segments if s.signal in counted and s.timed]
        )
        share = matched / query_duration if query_duration > 0 else 0.0
        met = (policy.min_matched_s > 0 and matched >= policy.min_matched_s) or (
            policy.min_query_share > 0 and share >= policy.min_query_share
        )
        if not met:
            notes.append(
                f"policy not met: {matched:.1f} s ({share:.0%} of the post) matched, "
                f"the title needs {policy.describe()}"
            )
            confidence = Confidence.LOW
    if policy.hold_for_review and confidence == Confidence.HIGH:
        notes.append("held for review by the title's policy (tier capped at medium)")
        confidence = Confidence.MEDIUM
    return score, confidence, notes


class Matcher:
    """Scores media files against a :class:`~matcher.catalog.Catalog`.

    Build one per process and reuse it: the catalog's indexes and asset table are loaded
    once, and reloaded only when another process changes the catalog.
    """

    def __init__(self, settings: Settings, catalog: Catalog | None = None) -> None:
        self.settings = settings
        self.catalog = catalog or Catalog(settings)
        self._signals_off: dict[str, str] | None = None

    @property
    def signals_off(self) -> dict[str, str]:
        """Signals the settings ask for that cannot run here, and why (read once)."""
        if self._signals_off is None:
            status = signal_status(self.settings)
            self._signals_off = {k: v for k, v in status.items() if v}
        return self._signals_off

    def query_signals(self) -> list[Signal]:
        """The media signals worth computing for a post: those with something indexed (no
        face detection, or soundtrack decoding, for a catalog without faces or sound)."""
        return [
            s
            for s in self.catalog.signals
            if (s.references == "assets" or s.reads_media) and len(self.catalog.index(s))
        ]

    def fingerprint(self, path: Path | str, sha256: str | None = None) -> Fingerprints:
        """The post's fingerprints for :meth:`query_signals` (cached by content)."""
        return fingerprint_file(
            path, self.settings, sha256, role="query", signals=self.query_signals()
        )

    def fingerprint_many(
        self, items: Sequence[tuple[Path | str, str | None]]
    ) -> list[Fingerprints | InputError]:
        """:meth:`fingerprint` of several posts' ``(path, sha256)`` at once: models see
        their frames in shared batches; a file that cannot be read gives its error in its
        place (:func:`~matcher.fingerprint.fingerprint_files`)."""
        return fingerprint_files(items, self.settings, role="query", signals=self.query_signals())

    def match_file(
        self,
        path: Path | str,
        sha256: str | None = None,
        context: QueryContext | None = None,
    ) -> MatchReport:
        """Match one file; ``InputError`` for an empty catalog or unreadable media.

        ``context`` carries the post's caption and hashtags (for text signals) and platform
        labels (for the AI flags). Pass ``sha256`` when it is known: with cached fingerprints
        the file is then not read at all, unless an evidence thumbnail is still missing.
        """
        context = context or QueryContext()
        assets = self.catalog.asset_map()
        titles = self.catalog.title_map()
        if not assets and not titles:
            raise InputError(EMPTY_CATALOG)
        path = Path(path)
        fps = self.fingerprint(path, sha256)
        step = 1.0 / fps.sample_fps
        duration = max(step, min(fps.duration, self.settings.matcher.max_frames * step))

        by_title: dict[str, dict[Signal, list[SignalHit]]] = defaultdict(lambda: defaultdict(list))
        asset_of: dict[SignalHit, Asset] = {}
        visual: list[tuple[SignalHit, Asset | None]] = []
        sounds: list[tuple[SignalHit, Asset]] = []
        strips: list[tuple[SignalHit, Signal, Asset | None]] = []
        query_text = context.text
        for signal in self.catalog.signals:
            on_titles = signal.references == "titles"
            if on_titles and not signal.reads_media:
                fp = signal.fingerprint_text(query_text) if query_text else None
            else:
                fp = fps.signals.get(signal.name)
            if fp is None:
                continue
            with stage(f"search.{signal.name}"):
                hits = signal.search(self.catalog.index(signal), fp, duration)
            for hit in hits:
                if on_titles:
                    title = titles.get(hit.asset_num)
                    if title is not None:
                        by_title[title.id][signal].append(hit)
                        if signal.visual and hit.query_frame >= 0:  # words on screen
                            visual.append((hit, None))
                    continue
                asset = assets.get(hit.asset_num)
                if asset is not None:
                    by_title[asset.title_id][signal].append(hit)
                    asset_of[hit] = asset
                    if signal.visual and hit.query_frame >= 0:
                        visual.append((hit, asset))
                    if signal.needs_audio and hit.slope > 0:
                        sounds.append((hit, asset))
                    if hit.strip:
                        strips.append((hit, signal, asset))

        with stage("evidence"):
            evidence = self._evidence(visual, fps, path)
            for hit, pictures in self._sound_evidence(sounds, fps, path).items():
                evidence.setdefault(hit, []).extend(pictures)
            for hit, picture in self._strips(strips, fps).items():
                evidence.setdefault(hit, []).append(picture)
            records = self._records(evidence)
        matches: list[TitleMatch] = []
        for title_id, per_signal in by_title.items():
            title = self.catalog.get_title(title_id)
            if title is None:  # removed by another process since the indexes were read
                continue
            matches.append(
                self._title_match(title, per_signal, asset_of, evidence, records, duration)
            )
        matches.sort(key=lambda t: (-t.score, t.title_id))
        return MatchReport(
            input=str(path),
            media=fps.media,
            matches=matches,
            ai=self._ai_flags(path, context),
            signals_off=dict(self.signals_off),
        )

    def _title_match(
        self,
        title: Title,
        per_signal: dict[Signal, list[SignalHit]],
        asset_of: dict[SignalHit, Asset],
        evidence: dict[SignalHit, list[str]],
        records: dict[str, EvidenceFile],
        duration: float,
    ) -> TitleMatch:
        scores = {sig.name: sig.score(hits, duration) for sig, hits in per_signal.items()}
        talents = {slugify(name): name for name in title.talents}
        segments = []
        for sig, hits in per_signal.items():
            for hit in hits:
                asset = asset_of.get(hit)
                segments.append(
                    Segment(
                        signal=sig.name,
                        query_start=hit.query_start,
                        query_end=hit.query_end,
                        ref_asset=asset.id if asset is not None else f"title:{title.id}",
                        ref_start=hit.ref_start,
                        ref_end=hit.ref_end,
                        score=sig.score([hit], duration),
                        distance=round(hit.distance, 3),
                        evidence=evidence.get(hit, []),
                        evidence_files=[records[p] for p in evidence.get(hit, []) if p in records],
                        talent=talents.get(asset.talent_id, asset.talent_id)
                        if asset is not None and asset.talent_id
                        else None,
                        note=hit.note,
                    )
                )
        segments.sort(key=lambda s: (s.query_start, -s.score))
        score, confidence, notes = apply_policy(
            title.policy, scores, segments, duration, self.settings
        )
        used = {a.id: a for hits in per_signal.values() for h in hits if (a := asset_of.get(h))}
        work = WorkRef(
            owner=title.owner,
            description=title.description,
            aliases=list(title.aliases),
            assets=[
                AssetRef(
                    id=a.id,
                    kind=a.kind,
                    name=a.name or Path(a.path).name,
                    sha256=a.sha256,
                    duration=a.duration,
                    talent=talents.get(a.talent_id, a.talent_id) if a.talent_id else None,
                    added_at=a.added_at,
                )
                for a in sorted(used.values(), key=lambda a: a.id)
            ],
        )
        return TitleMatch(
            title_id=title.id,
            title=title.name,
            score=score,
            confidence=confidence,
            signals=scores,
            segments=segments,
            notes=notes,
            work=work,
        )

    def _ai_flags(self, path: Path, context: QueryContext) -> AIFlag:
        return ai_flags(
            media_path=path,
            ai_label=context.ai_label,
            is_ai_labelled=context.is_ai_labelled,
            hashtags=context.hashtags,
            caption=context.caption,
            trust_anchors=trust_anchors_pem(self.settings.matcher.c2pa_trust_anchors),
        )

    # Evidence --------------------------------------------------------------------------------

    def _records(self, evidence: dict[SignalHit, list[str]]) -> dict[str, EvidenceFile]:
        """The sha256 and size of each evidence file, read once each, as the match records them
        (an unreadable one is logged and left unrecorded; ``reelwatch verify`` reports it)."""
        records: dict[str, EvidenceFile] = {}
        for rel in {p for paths in evidence.values() for p in paths}:
            try:
                records[rel] = evidence_record(self.settings.home, rel)
            except OSError as exc:
                log.warning("cannot hash evidence %s: %s", rel, exc)
        return records

    def _evidence(
        self, hits: list[tuple[SignalHit, Asset | None]], fps: Fingerprints, path: Path
    ) -> dict[SignalHit, list[str]]:
        """Small JPEGs of each hit's closest query frame and its reference frame (for faces:
        crops of the two faces; for words on screen, whose hits are on titles: the post's
        frame alone), content-addressed
        (``evidence/<sha[:2]>/<sha>/<role>-<ms>[-box].jpg``) so re-matching reuses them.

        Missing ones are cut with one open of each source file: query frames come from the
        decode that just made the fingerprints when there was one. Evidence is a courtesy:
        failing to cut it is logged, never fatal, and the failed paths are left out.
        """
        shots: dict[SignalHit, list[Path]] = {}
        todo: dict[Path, dict[Path, tuple[float, int | None, Box | None]]] = defaultdict(dict)
        for hit, asset in hits:
            q = self._thumb_path(fps.media.sha256, "q", hit.query_time, hit.query_box)
            shots[hit] = [q]
            if not q.exists():
                todo[path][q] = (hit.query_time, hit.query_frame, hit.query_box)
            if asset is None:  # a title hit (words on screen): the post's frame alone
                continue
            r = self._thumb_path(asset.sha256, "r", hit.ref_time, hit.ref_box)
            shots[hit].append(r)
            if not r.exists():
                todo[Path(asset.path)][r] = (hit.ref_time, None, hit.ref_box)

        failed: set[Path] = set()
        written: dict[Path, Path] = {}
        for src, wanted in todo.items():
            try:
                frames = self._frames(src, wanted, fps.decoded if src == path else None)
                for (dst, (_, _, box)), frame in zip(wanted.items(), frames, strict=True):
                    written[dst] = _write_thumb(_crop(frame, box) if box else frame, dst)
            except (ReelwatchError, OSError, ValueError) as exc:
                log.warning("no evidence frames from %s: %s", src, exc)
                failed.update(p for p in wanted if p not in written)

        return {
            hit: [self._relative(written.get(p, p)) for p in paths if p not in failed]
            for hit, paths in shots.items()
        }

    def _sound_evidence(
        self, hits: list[tuple[SignalHit, Asset]], fps: Fingerprints, path: Path
    ) -> dict[SignalHit, list[str]]:
        """For each audio hit, a picture of both soundtracks at its offset (see
        :mod:`matcher.evidence`): the post's from the decode that made the fingerprints when
        there was one, the reference's read around its time, stretched by the hit's speed."""
        rate = self.settings.matcher.audio_rate
        out: dict[SignalHit, list[str]] = {}
        decoded = fps.decoded
        for hit, asset in hits:
            q0 = max(0.0, hit.query_time - SOUND_WINDOW_S / 2)
            r0 = max(0.0, hit.ref_time - hit.slope * (hit.query_time - q0))
            dst = self._thumb_path(
                fps.media.sha256, f"s-{asset.sha256[:12]}-{round(r0 * 1000):08d}", q0
            )
            if not dst.exists():
                try:
                    if decoded is not None and decoded.audio is not None:
                        a0 = round(q0 * rate)
                        query = decoded.audio[a0 : a0 + round(SOUND_WINDOW_S * rate)]
                    else:
                        query = read_audio(path, q0, SOUND_WINDOW_S, rate)
                    ref = read_audio(Path(asset.path), r0, SOUND_WINDOW_S * hit.slope, rate)
                    # slope: reference seconds per post second, i.e. the post's speed
                    speed = f"post at {hit.slope:.2f}x" if abs(hit.slope - 1) > 0.02 else ""
                    dst = save_picture(sound_picture(query, ref, rate, label=speed), dst)
                except (ReelwatchError, OSError, ValueError) as exc:
                    log.warning("no sound picture for %s: %s", asset.path, exc)
                    continue
            out[hit] = [self._relative(dst)]
        return out

    def _strips(
        self, hits: list[tuple[SignalHit, Signal, Asset | None]], fps: Fingerprints
    ) -> dict[SignalHit, str]:
        """For each hit that tracked its pairs, a strip of how alike each sampled moment of
        the segment is (:meth:`~matcher.signals.base.Signal.closeness`)."""
        out: dict[SignalHit, str] = {}
        for hit, signal, asset in hits:
            ref = asset.sha256[:12] if asset is not None else str(hit.asset_num)
            role = f"st-{signal.name}-{ref}-{round(hit.query_end * 1000):08d}"
            dst = self._thumb_path(fps.media.sha256, role, hit.query_start).with_suffix(".png")
            if not dst.exists():
                values = [math.nan if math.isnan(d) else signal.closeness(d) for d in hit.strip]
                try:
                    dst = save_picture(strip_picture(values), dst)
                except (OSError, ValueError) as exc:
                    log.warning("no similarity strip: %s", exc)
                    continue
            out[hit] = self._relative(dst)
        return out

    def _relative(self, p: Path) -> str:
        home = self.settings.home
        return str(p.relative_to(home)) if p.is_relative_to(home) else str(p)

    def _thumb_path(self, sha: str, role: str, t: float, box: Box | None = None) -> Path:
        name = f"{role}-{round(t * 1000):08d}"
        if box is not None:
            name += "-" + "_".join(str(int(v)) for v in box)
        return self.settings.evidence_dir / sha[:2] / sha / f"{name}.jpg"

    def _frames(
        self,
        src: Path,
        wanted: dict[Path, tuple[float, int | None, Box | None]],
        decoded: Decoded | None,
    ) -> list[np.ndarray]:
        """The frames of ``src`` at the wanted (time, sampled frame index) pairs: from the
        decoded query when it has them all, else from one pass over the file."""
        if decoded is not None:
            n = len(decoded.frames)
            kept = [k for _, k, _ in wanted.values() if k is not None and 0 <= k < n]
            if len(kept) == len(wanted):
                return [decoded.frames[k] for k in kept]
        times = [t for t, _, _ in wanted.values()]
        m = self.settings.matcher
        return grab_frames(src, times, max_side=m.decode_max_side, still_max_side=m.still_max_side)


def _crop(frame: np.ndarray, box: Box) -> np.ndarray:
    """``box`` of ``frame`` with a margin, clipped to the frame."""
    h, w = frame.shape[:2]
    x0, y0, x1, y1 = box
    mx, my = (x1 - x0) * FACE_MARGIN, (y1 - y0) * FACE_MARGIN
    xa, ya = max(0, int(x0 - mx)), max(0, int(y0 - my))
    xb, yb = min(w, int(x1 + mx)), min(h, int(y1 + my))
    if xb <= xa or yb <= ya:
        return frame
    return frame[ya:yb, xa:xb]


def _write_thumb(frame: np.ndarray, dst: Path) -> Path:
    """Write a thumbnail of ``frame`` and publish it at ``dst`` without replacing anything
    there (:func:`~matcher.evidence.publish`); returns where it is."""
    img = Image.fromarray(frame)
    img.thumbnail((THUMB_SIDE, THUMB_SIDE))
    dst.parent.mkdir(parents=True, exist_ok=True)
    # A unique name: two workers (on one machine or sharing the folder) may write it at once.
    tmp = temp_beside(dst)
    try:
        img.save(tmp, format="JPEG", quality=80)
        return publish(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
