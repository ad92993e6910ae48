"""Fusion and per-title policy: which signals count, minimum matched time, hold for review."""

from __future__ import annotations

import pytest

from matcher.engine import apply_policy, fuse
from reelwatch.models import Confidence, Segment, TitlePolicy
from reelwatch.settings import Settings


def _seg(signal: str, start: float, end: float) -> Segment:
    return Segment(
        signal=signal, query_start=start, query_end=end, ref_asset="a", ref_start=0, ref_end=0
    )


def test_fusion_is_noisy_or() -> None:
    assert fuse({"copy": 0.5, "audio": 0.5}) == 0.75
    assert fuse({}) == 0.0
    assert fuse({"copy": 1.2}) == 1.0


def test_default_policy_counts_everything(settings: Settings) -> None:
    score, tier, notes = apply_policy(
        TitlePolicy(), {"copy": 0.6, "audio": 0.5}, [_seg("copy", 0, 4)], 10.0, settings
    )
    assert score == pytest.approx(0.8)
    assert tier == Confidence.HIGH
    assert notes == []


def test_policy_signals_leave_others_out_with_a_note(settings: Settings) -> None:
    policy = TitlePolicy(signals=["copy"])
    score, tier, notes = apply_policy(
        policy, {"copy": 0.6, "text": 0.5}, [_seg("copy", 0, 4)], 10.0, settings
    )
    assert score == 0.6 and tier == Confidence.MEDIUM
    assert notes == ["not counted by the title's policy: text"]


def test_minimum_matched_time_or_share(settings: Settings) -> None:
    policy = TitlePolicy(min_matched_s=10.0, min_query_share=0.5)
    segs = [_seg("copy", 0, 3), _seg("copy", 2, 6), _seg("text", 0, 0)]
    _, tier, notes = apply_policy(policy, {"copy": 0.95}, segs, 20.0, settings)
    assert tier == Confidence.LOW
    assert "6.0 s (30% of the post) matched" in notes[0]
    assert "at least 10 s or 50% of the post" in notes[0]
    # The same 6 s are 60% of a 10 s post: the share rule is met.
    _, tier, notes = apply_policy(policy, {"copy": 0.95}, segs, 10.0, settings)
    assert tier == Confidence.HIGH and notes == []


def test_text_alone_never_meets_a_length_policy(settings: Settings) -> None:
    policy = TitlePolicy(min_matched_s=1.0)
    _, tier, _ = apply_policy(policy, {"text": 0.9}, [_seg("text", 0, 0)], 10.0, settings)
    assert tier == Confidence.LOW


def test_hold_for_review_caps_at_medium(settings: Settings) -> None:
    _, tier, notes = apply_policy(
        TitlePolicy(hold_for_review=True), {"copy": 0.99}, [_seg("copy", 0, 9)], 10.0, settings
    )
    assert tier == Confidence.MEDIUM
    assert "held for review" in notes[0]
    assert TitlePolicy(hold_for_review=True, signals=["copy"]).describe() == (
        "signals copy; hold for review"
    )
