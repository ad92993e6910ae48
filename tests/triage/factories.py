"""Small builders for the domain objects triage tests land, alert and compare."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from reelwatch.models import (
    AIFlag,
    Author,
    Confidence,
    Match,
    Post,
    PostStats,
    Segment,
    post_key,
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def make_post(post_id: str = "7001", platform: str = "tiktok", **fields: Any) -> Post:
    values: dict[str, Any] = {
        "url": f"https://www.tiktok.com/@fan/video/{post_id}",
        "author": Author(id="u1", handle="fan", followers=1200),
        "caption": "best scene #thecrown",
        "hashtags": ["thecrown"],
        "stats": PostStats(views=100, likes=5),
        "watch": "crown",
        "hashtag": "thecrown",
    }
    values.update(fields)
    return Post(platform=platform, post_id=post_id, **values)


def make_match(
    post_id: str = "7001",
    title_id: str = "the-crown",
    *,
    score: float = 0.9,
    confidence: Confidence = Confidence.HIGH,
    platform: str = "tiktok",
    **fields: Any,
) -> Match:
    values: dict[str, Any] = {
        "post_key": post_key(platform, post_id),
        "platform": platform,
        "post_id": post_id,
        "post_url": f"https://www.tiktok.com/@fan/video/{post_id}",
        "account": "fan",
        "caption": "best scene #thecrown",
        "hashtags": ["thecrown"],
        "title_id": title_id,
        "title": title_id.replace("-", " ").title(),
        "score": score,
        "confidence": confidence,
        "signals": {"copy": score, "audio": 0.5},
        "segments": [
            Segment(
                signal="copy",
                query_start=3.0,
                query_end=12.5,
                ref_asset="crown-s1e1",
                ref_start=61.0,
                ref_end=70.5,
                score=score,
            )
        ],
        "ai": AIFlag(is_ai=True, reasons=["platform label: AI-generated"]),
        "media_sha256": "ab" * 32,
        "watch": "crown",
    }
    values.update(fields)
    return Match(**values)
