"""The evaluation metrics, on hand-made predictions whose answers are known."""

from __future__ import annotations

from pathlib import Path

import pytest

from matcher.evaluation import (
    EvalQuery,
    QueryResult,
    format_result,
    micro_average_precision,
    score_results,
)
from reelwatch.models import Confidence, Segment, TitleMatch


def test_micro_ap_is_one_for_a_perfect_ranking() -> None:
    assert micro_average_precision([(0.9, True), (0.8, True), (0.1, False)], 2) == 1.0


def test_micro_ap_pools_queries_and_charges_missed_positives() -> None:
    # Ranked: T (1/1), F, T (2/3); a third positive never predicted.
    preds = [(0.9, True), (0.7, False), (0.5, True)]
    assert micro_average_precision(preds, 3) == pytest.approx((1.0 + 2 / 3) / 3)


def test_micro_ap_ranks_ties_pessimistically() -> None:
    # A constant score must not look perfect: the wrong pair is ranked first.
    assert micro_average_precision([(0.5, True), (0.5, False)], 1) == pytest.approx(0.5)
    assert micro_average_precision([], 0) == 0.0


def _tm(title: str, score: float, tier: Confidence, signals: dict[str, float], seg=None):  # type: ignore[no-untyped-def]
    return TitleMatch(
        title_id=title.lower(),
        title=title,
        score=score,
        confidence=tier,
        signals=signals,
        segments=seg or [],
    )


def test_score_results_counts_recall_false_highs_and_timing() -> None:
    seg = Segment(
        signal="copy",
        query_start=0.0,
        query_end=8.4,
        ref_asset="a",
        ref_start=10.5,
        ref_end=18.0,
    )
    copy_q = EvalQuery(
        "q1", Path("q1.mp4"), "crop", "Alpha", query_end=8.0, ref_start=10.0, ref_end=18.0
    )
    audio_q = EvalQuery("q2", Path("q2.mp4"), "soundtrack", "Beta", query_end=10.0)
    distractor = EvalQuery("d1", Path("d1.mp4"), "distractor", None)
    results = [
        QueryResult(copy_q, [_tm("Alpha", 0.95, Confidence.HIGH, {"copy": 0.95}, [seg])]),
        QueryResult(audio_q, [_tm("Beta", 0.5, Confidence.MEDIUM, {"audio": 0.5})]),
        QueryResult(distractor, [_tm("Alpha", 0.8, Confidence.HIGH, {"copy": 0.8})]),
    ]
    r = score_results(results, ["copy", "audio"])
    assert (r.copies, r.distractors) == (2, 1)
    assert r.recall_high == 0.5
    assert r.false_high == ["d1 -> Alpha"]
    assert r.recall_by_transform == {"crop": (1, 1), "soundtrack": (0, 1)}
    assert r.timing_errors == [0.5]
    # fused ranking: Alpha(T) 0.95, Alpha(F) 0.8, Beta(T) 0.5 -> (1 + 2/3) / 2
    assert r.micro_ap["fused"] == pytest.approx((1 + 2 / 3) / 2, abs=1e-4)
    assert r.micro_ap["copy"] == pytest.approx(0.5)
    assert r.micro_ap["audio"] == pytest.approx(0.5)
    text = "\n".join(format_result(r))
    assert "false high-confidence matches: 1" in text and "d1 -> Alpha" in text


def test_a_lead_family_counts_at_medium_and_stays_out_of_recall_at_high() -> None:
    melody_q = EvalQuery("m1", Path("m1.mp4"), "re-created theme", "Alpha", expect="medium")
    copy_q = EvalQuery("q1", Path("q1.mp4"), "crop", "Alpha", query_end=8.0)
    missed_q = EvalQuery("m2", Path("m2.mp4"), "re-created theme", "Beta", expect="medium")
    results = [
        QueryResult(melody_q, [_tm("Alpha", 0.6, Confidence.MEDIUM, {"melody": 0.6})]),
        QueryResult(copy_q, [_tm("Alpha", 0.9, Confidence.HIGH, {"descriptor": 0.9})]),
        QueryResult(missed_q, [_tm("Beta", 0.3, Confidence.LOW, {"melody": 0.3})]),
    ]
    r = score_results(results, ["descriptor", "melody"])
    assert r.recall_by_transform == {"crop": (1, 1), "re-created theme": (1, 2)}
    assert r.recall_high == 1.0  # the one copy expected at high was found there
    text = "\n".join(format_result(r))
    assert "copy-descriptor" in text and "re-created theme 1/2" in text


def test_timing_judges_where_a_segment_says_the_post_shows_the_reference() -> None:
    from matcher.evaluation import _timing_error

    q = EvalQuery(
        "q", Path("q.mp4"), "speed 1.25x", "Alpha", query_end=8.0, ref_start=5.0, ref_end=15.0
    )

    def seg(q0: float, q1: float, r0: float, r1: float) -> Segment:
        return Segment(
            signal="audio", query_start=q0, query_end=q1, ref_asset="a", ref_start=r0, ref_end=r1
        )

    # Music heard for the first 6 s only: shorter, and right where it is.
    assert _timing_error(q, [seg(0.0, 6.0, 5.0, 12.5)]) == 0.0
    # Aligned 1.5 s late in the reference.
    assert _timing_error(q, [seg(0.0, 6.0, 6.5, 14.0)]) == 1.5
    # Reaching 2 s past the copied stretch of the post.
    assert _timing_error(q, [seg(0.0, 10.0, 5.0, 17.5)]) == 2.0


def test_each_signal_reports_its_own_segment_times() -> None:
    q = EvalQuery("q", Path("q.mp4"), "crop", "Alpha", query_end=8.0, ref_start=10.0, ref_end=18.0)

    def seg(signal: str, shift: float) -> Segment:
        return Segment(
            signal=signal,
            query_start=0.0,
            query_end=8.0,
            ref_asset="a",
            ref_start=10.0 + shift,
            ref_end=18.0 + shift,
        )

    match = _tm("Alpha", 0.99, Confidence.HIGH, {"copy": 0.9, "descriptor": 0.9, "text": 0.4})
    match.segments = [seg("copy", 0.2), seg("descriptor", 1.5)]
    r = score_results([QueryResult(q, [match])], ["copy", "descriptor", "text"])
    assert r.timing_by_signal == {"copy": [0.2], "descriptor": [1.5]}
    text = "\n".join(format_result(r))
    assert "copy-pdq         1.0000   segment times: 1 checked, 100% within 1 s" in text
    assert "copy-descriptor  1.0000   segment times: 1 checked, 0% within 1 s" in text
    assert r.to_json()["timing"]["by_signal"]["descriptor"]["max_error_s"] == 1.5
