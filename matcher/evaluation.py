"""Evaluate the matcher on a labelled set: µAP per signal and fused, recall, false alarms, timing.

The metric is the one the Video Similarity Challenge 2022 (descriptor track) ranks by:
micro-average precision over every (query, reference title) prediction of every query, pooled
and sorted by score, against all true pairs. A query whose title is missed counts against
recall; a confident wrong pair anywhere counts against precision, which is what per-query
averages hide.

The set itself (queries cut and transformed from reference media, plus distractors) is made
by :mod:`reelwatch.demo.evalset`; this module runs the matcher on it and scores the result.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matcher.catalog import Catalog
from matcher.engine import Matcher, MatchReport, QueryContext
from reelwatch.models import Confidence, Segment, TitleMatch
from reelwatch.settings import Settings

FUSED = "fused"
DISPLAY_NAMES = {"copy": "copy-pdq", "descriptor": "copy-descriptor"}
"""How the report names signals whose registry names say less (two signals find copies)."""
TIMED_SIGNALS = ("copy", "descriptor", "audio", "embedding", "face", "melody")
"""Signals whose segments carry times that can be checked against the truth."""


@dataclass(frozen=True)
class EvalReference:
    """A reference file of one title, as the catalog gets it."""

    title: str
    path: Path
    kind: str = "auto"
    talent: str | None = None


@dataclass(frozen=True)
class EvalQuery:
    """A post to match and what it truly is.

    ``title`` is ``None`` for distractors. For copies, ``query_start``..``query_end`` is the
    copied stretch of the post and ``ref_start``..``ref_end`` the stretch of the reference it
    shows (in reference seconds).
    """

    id: str
    path: Path
    transform: str
    title: str | None
    caption: str = ""
    hashtags: tuple[str, ...] = ()
    query_start: float = 0.0
    query_end: float = 0.0
    ref_start: float = 0.0
    ref_end: float = 0.0
    expect: str = "high"
    """The tier the right title should reach: lower for families whose only evidence is a
    lead (``medium`` for a re-created melody, ``low`` for a title's name on screen), which
    never reach high alone."""


@dataclass
class EvalSet:
    titles: dict[str, dict[str, Any]]
    """Title name -> catalog fields (owner, aliases, hashtags, description)."""
    references: list[EvalReference]
    queries: list[EvalQuery]


@dataclass
class QueryResult:
    query: EvalQuery
    matches: list[TitleMatch]
    seconds: float = 0.0
    error: str | None = None


@dataclass
class EvalResult:
    queries: int
    copies: int
    distractors: int
    micro_ap: dict[str, float]
    """µAP per signal and ``fused``."""
    recall_high: float
    """Share of copies expected at high (all but the lead families) matched to the right
    title at the high tier."""
    false_high: list[str]
    """``query -> title`` pairs at high that are wrong (distractors or the wrong title)."""
    recall_by_transform: dict[str, tuple[int, int]]
    """Transformation -> (found at its expected tier, copies): high, or a lead's tier."""
    timing_errors: list[float]
    """Per copy found at high: its longest timed segment's time error (see
    :func:`_timing_error`), in seconds."""
    timing_by_signal: dict[str, list[float]] = field(default_factory=dict)
    """The same, per signal, from each signal's own longest segment."""
    errors: list[str] = field(default_factory=list)
    seconds_per_query: float = 0.0

    @property
    def timing_within_1s(self) -> float:
        if not self.timing_errors:
            return 0.0
        return sum(e <= 1.0 for e in self.timing_errors) / len(self.timing_errors)

    def to_json(self) -> dict[str, Any]:
        return {
            "queries": self.queries,
            "copies": self.copies,
            "distractors": self.distractors,
            "micro_ap": self.micro_ap,
            "recall_high": self.recall_high,
            "false_high": self.false_high,
            "recall_by_transform": {
                k: {"found_high": a, "copies": b} for k, (a, b) in self.recall_by_transform.items()
            },
            "timing": {
                "checked": len(self.timing_errors),
                "within_1s": self.timing_within_1s,
                "max_error_s": max(self.timing_errors, default=0.0),
                "by_signal": {
                    name: {
                        "checked": len(errs),
                        "within_1s": sum(e <= 1.0 for e in errs) / len(errs),
                        "max_error_s": max(errs),
                    }
                    for name, errs in self.timing_by_signal.items()
                    if errs
                },
            },
            "errors": self.errors,
            "seconds_per_query": self.seconds_per_query,
        }


def micro_average_precision(predictions: Iterable[tuple[float, bool]], positives: int) -> float:
    """VSC 2022's µAP: predictions (score, is a true pair) pooled over all queries.

    Sorted by score, best first; AP = Σ precision@k · Δrecall@k over the ranked list, with
    recall relative to all ``positives`` (true pairs never predicted pull it down). Ties are
    ranked pessimistically (wrong pairs first), so a constant score cannot look good.
    """
    if positives <= 0:
        return 0.0
    ranked = sorted(predictions, key=lambda p: (-p[0], p[1]))
    hits = 0
    total = 0.0
    for k, (_, correct) in enumerate(ranked, start=1):
        if correct:
            hits += 1
            total += hits / k
    return total / positives


def _timing_error(
    q: EvalQuery, segments: Sequence[Segment], signals: Sequence[str] = TIMED_SIGNALS
) -> float | None:
    """How wrong the longest timed segment's times are, in seconds: how far it reaches
    outside the copied stretch of the post, and how far the reference times it gives for its
    two ends are from the reference times those moments of the post truly show.

    A segment shorter than the copy (music drowned by a voice for its last seconds) is not
    wrong where it says the post shows the reference: coverage is what the score measures.
    """
    timed = [s for s in segments if s.signal in signals and s.timed]
    if not timed:
        return None
    s = max(timed, key=lambda s: s.query_end - s.query_start)
    errors = [max(0.0, q.query_start - s.query_start), max(0.0, s.query_end - q.query_end)]
    span = q.query_end - q.query_start
    if s.ref_end > s.ref_start and span > 0:  # stills and photos have no reference timeline
        speed = (q.ref_end - q.ref_start) / span

        def truth(t: float) -> float:
            return q.ref_start + speed * (t - q.query_start)

        errors += [abs(s.ref_start - truth(s.query_start)), abs(s.ref_end - truth(s.query_end))]
    return round(max(errors), 3)


_RANK = {Confidence.LOW: 0, Confidence.MEDIUM: 1, Confidence.HIGH: 2}


def score_results(results: Sequence[QueryResult], signals: Sequence[str]) -> EvalResult:
    """Metrics of matcher results against the truth (see the module docs)."""
    copies = [r for r in results if r.query.title is not None]
    positives = len(copies)
    by_signal: dict[str, list[tuple[float, bool]]] = defaultdict(list)
    false_high: list[str] = []
    by_transform: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    timing: list[float] = []
    by_signal_timing: dict[str, list[float]] = defaultdict(list)
    found_high = 0
    expect_high = sum(r.query.expect == Confidence.HIGH.value for r in copies)
    for r in results:
        q = r.query
        if q.title is not None:
            by_transform[q.transform][1] += 1
        for m in r.matches:
            correct = m.title == q.title
            by_signal[FUSED].append((m.score, correct))
            for name in signals:
                if m.signals.get(name, 0.0) > 0.0:
                    by_signal[name].append((m.signals[name], correct))
            if correct and _RANK[m.confidence] >= _RANK[Confidence(q.expect)]:
                by_transform[q.transform][0] += 1
            if m.confidence == Confidence.HIGH:
                if correct:
                    found_high += q.expect == Confidence.HIGH.value
                    err = _timing_error(q, m.segments)
                    if err is not None:
                        timing.append(err)
                    for name in set(signals) & set(TIMED_SIGNALS):
                        err = _timing_error(q, m.segments, (name,))
                        if err is not None:
                            by_signal_timing[name].append(err)
                else:
                    false_high.append(f"{q.id} -> {m.title}")
    seconds = [r.seconds for r in results if r.error is None]
    return EvalResult(
        queries=len(results),
        copies=positives,
        distractors=len(results) - positives,
        micro_ap={
            name: round(micro_average_precision(by_signal.get(name, []), positives), 4)
            for name in (*signals, FUSED)
        },
        recall_high=round(found_high / expect_high, 4) if expect_high else 0.0,
        false_high=false_high,
        recall_by_transform={k: (a, b) for k, (a, b) in sorted(by_transform.items())},
        timing_errors=timing,
        timing_by_signal=dict(sorted(by_signal_timing.items())),
        errors=[f"{r.query.id}: {r.error}" for r in results if r.error],
        seconds_per_query=round(sum(seconds) / len(seconds), 3) if seconds else 0.0,
    )


def build_catalog(settings: Settings, evalset: EvalSet) -> Catalog:
    """A fresh catalog of the set's titles and references under ``settings.home``."""
    catalog = Catalog(settings)
    for name, fields in evalset.titles.items():
        catalog.add_title(name, **fields)
    galleries: dict[tuple[str, str], list[EvalReference]] = defaultdict(list)
    for ref in evalset.references:
        if ref.talent:  # a talent's photos are one gallery, added together as a user would
            galleries[ref.title, ref.talent].append(ref)
            continue
        title = catalog.add_title(ref.title)
        catalog.add_assets(title.id, [ref.path], kind=ref.kind, talent=ref.talent)
    for (title_name, talent), refs in galleries.items():
        title = catalog.add_title(title_name)
        catalog.add_assets(title.id, [r.path for r in refs], kind="face", talent=talent)
    return catalog


def run_eval(
    settings: Settings,
    evalset: EvalSet,
    progress: Callable[[EvalQuery], None] | None = None,
) -> tuple[EvalResult, list[QueryResult]]:
    """Index the references, match every query, score the results."""
    import time

    from matcher.fingerprint import enabled_signals
    from reelwatch.errors import ReelwatchError

    settings.ensure_home()
    catalog = build_catalog(settings, evalset)
    matcher = Matcher(settings, catalog)
    results: list[QueryResult] = []
    for q in evalset.queries:
        context = QueryContext(caption=q.caption, hashtags=q.hashtags)
        t0 = time.perf_counter()
        try:
            report: MatchReport | None = matcher.match_file(q.path, context=context)
            error = None
        except ReelwatchError as exc:
            report, error = None, str(exc)
        seconds = time.perf_counter() - t0
        results.append(QueryResult(q, report.matches if report else [], seconds, error))
        if progress is not None:
            progress(q)
    names = [s.name for s in enabled_signals(settings)]
    return score_results(results, names), results


def format_result(result: EvalResult) -> list[str]:
    """The report as plain lines (the CLI prints them; docs quote them)."""
    lines = [
        f"queries: {result.queries} ({result.copies} copies, {result.distractors} distractors)",
        "micro-average precision (VSC 2022):",
    ]
    for name, value in result.micro_ap.items():
        line = f"  {DISPLAY_NAMES.get(name, name):16} {value:.4f}"
        errors = result.timing_by_signal.get(name)
        if errors:
            within = sum(e <= 1.0 for e in errors) / len(errors)
            line += f"   segment times: {len(errors)} checked, {within:.0%} within 1 s"
        lines.append(line)
    lines.append(f"recall at the high tier: {result.recall_high:.4f}")
    lines.append(f"false high-confidence matches: {len(result.false_high)}")
    lines.extend(f"  {pair}" for pair in result.false_high)
    lines.append("recall per family (at high; leads at their own tier):")
    width = max((len(n) for n in result.recall_by_transform), default=0)
    for name, (found, total) in result.recall_by_transform.items():
        lines.append(f"  {name:{width}} {found}/{total}")
    worst = max(result.timing_errors, default=math.nan)
    lines.append(
        f"segment times: {len(result.timing_errors)} checked, "
        f"{result.timing_within_1s:.0%} within 1 s, worst {worst:.2f} s"
    )
    lines.append(f"seconds per query: {result.seconds_per_query:.2f}")
    lines.extend(f"error: {e}" for e in result.errors)
    return lines
