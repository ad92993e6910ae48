"""The replica platform's content on disk.

A site folder holds ``site.json`` and ``videos/<id>.mp4``. ``site.json`` is
``{"items": [...]}`` where each item uses TikTok's field names (id, desc, createTime,
author{id, uniqueId, nickname}, authorStats{followerCount, ...}, stats{playCount, diggCount,
shareCount, commentCount}, challenges[{id, title}], textExtra[{hashtagName}],
video{id, duration, width, height, ratio, format}, IsAigc, AIGCDescription). The server fills
in ``video.playAddr`` / ``video.downloadAddr`` with its own address at request time, so a site
folder can be served on any port.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SITE_FILE = "site.json"


@dataclass
class ReplicaVideo:
    """One post to publish on the replica."""

    id: str
    user: str
    caption: str
    hashtags: list[str]
    path: Path
    create_time: int
    duration: int
    width: int
    height: int
    nickname: str = ""
    followers: int = 0
    plays: int = 0
    likes: int = 0
    shares: int = 0
    comments: int = 0
    is_aigc: bool = False
    aigc_description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def challenge_id(tag: str) -> str:
    """Stable numeric id for a hashtag, as TikTok gives every challenge one."""
    return str(int(hashlib.sha1(tag.lower().encode()).hexdigest()[:12], 16))


def to_item(v: ReplicaVideo) -> dict[str, Any]:
    tags = [t.lstrip("#") for t in v.hashtags]
    desc = v.caption
    for t in tags:
        if f"#{t}".lower() not in desc.lower():
            desc = f"{desc} #{t}".strip()
    return {
        "id": v.id,
        "desc": desc,
        "createTime": v.create_time,
        "author": {
            "id": challenge_id("user:" + v.user),
            "uniqueId": v.user,
            "nickname": v.nickname or v.user,
        },
        "authorStats": {"followerCount": v.followers, "heartCount": v.likes * 3, "videoCount": 12},
        "stats": {
            "playCount": v.plays,
            "diggCount": v.likes,
            "shareCount": v.shares,
            "commentCount": v.comments,
        },
        "challenges": [{"id": challenge_id(t), "title": t} for t in tags],
        "textExtra": [{"hashtagName": t, "type": 1} for t in tags],
        "video": {
            "id": v.id,
            "duration": v.duration,
            "width": v.width,
            "height": v.height,
            "ratio": f"{min(v.width, v.height)}p",
            "format": "mp4",
        },
        "IsAigc": v.is_aigc,
        "AIGCDescription": v.aigc_description,
        **v.extra,
    }


def build_site(site_dir: Path, videos: list[ReplicaVideo]) -> Path:
    """Write ``site.json`` and copy each video's file into ``videos/``; returns the folder."""
    site_dir = Path(site_dir)
    (site_dir / "videos").mkdir(parents=True, exist_ok=True)
    items = []
    for v in videos:
        dest = site_dir / "videos" / f"{v.id}.mp4"
        if Path(v.path).resolve() != dest.resolve():
            shutil.copyfile(v.path, dest)
        items.append(to_item(v))
    (site_dir / SITE_FILE).write_text(json.dumps({"items": items}, indent=1))
    return site_dir


def load_items(site_dir: Path) -> list[dict[str, Any]]:
    return list(json.loads((Path(site_dir) / SITE_FILE).read_text())["items"])
