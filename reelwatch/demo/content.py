"""The demo's world: three fictional titles with reference clips, and ~20 social posts.

Most posts are copies of a title's footage with the edits infringers really make (see
:mod:`reelwatch.demo.media`); five are unrelated clips posted under the same trending
hashtags, and two carry the platform's AI-generated label. Each post records the title it
copies (``expected_title``), which is what the demo and the tests check the matcher against.

Generation is deterministic and cached: the first call writes the files and a
``manifest.json``; later calls with an intact manifest of the same version return at once.
"""

from __future__ import annotations

import fcntl
import json
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from reelwatch.demo import media
from reelwatch.demo.media import Transform
from reelwatch.models import slugify

CONTENT_VERSION = 1
"""Bump when anything below changes what is generated; cached content is then remade."""

BASE_TIME = 1_718_000_000
"""Posts are dated from here (June 2024), one every 90 minutes."""


@dataclass(frozen=True)
class DemoTitle:
    name: str
    owner: str
    aliases: list[str]
    hashtags: list[str]
    description: str
    talents: list[str]
    references: list[Path]

    @property
    def id(self) -> str:
        return slugify(self.name)


@dataclass(frozen=True)
class DemoPost:
    """One post on the replica platform, with what the matcher should find in it."""

    id: str
    user: str
    nickname: str
    caption: str
    hashtags: list[str]
    path: Path
    transform: str
    expected_title: str | None
    is_aigc: bool
    aigc_description: str
    create_time: int
    followers: int
    plays: int
    likes: int
    shares: int
    comments: int


@dataclass
class DemoContent:
    root: Path
    titles: list[DemoTitle] = field(default_factory=list)
    posts: list[DemoPost] = field(default_factory=list)

    def title(self, name_or_id: str) -> DemoTitle:
        for t in self.titles:
            if name_or_id in (t.name, t.id):
                return t
        raise KeyError(name_or_id)

    @property
    def copies(self) -> list[DemoPost]:
        return [p for p in self.posts if p.expected_title is not None]

    @property
    def unrelated(self) -> list[DemoPost]:
        return [p for p in self.posts if p.expected_title is None]


# The world -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _TitleSpec:
    name: str
    owner: str
    aliases: tuple[str, ...]
    hashtags: tuple[str, ...]
    description: str
    talents: tuple[str, ...]
    clips: tuple[tuple[tuple[str, ...], float, int], ...]
    """(photos, seconds per photo, seed) per reference clip."""


TITLES: tuple[_TitleSpec, ...] = (
    _TitleSpec(
        "Starfall Station",
        "Northlight Studios",
        ("Starfall", "Starfall Stn"),
        ("starfallstation", "starfall"),
        "A crew races to relaunch a derelict orbital station before the solar storm hits.",
        ("Mara Quell",),
        (
            (("astronaut", "rocket", "hubble_deep_field"), 6.0, 11),
            (("moon", "retina"), 8.0, 12),
        ),
    ),
    _TitleSpec(
        "The Roastery",
        "Northlight Studios",
        ("Roastery", "The Roastery Series"),
        ("theroastery", "roasterytv"),
        "Three siblings inherit a failing coffee roastery and one very old clock.",
        ("Idris Vale",),
        ((("coffee", "clock", "brick"), 6.0, 21),),
    ),
    _TitleSpec(
        "Whiskers of Bridgemoor",
        "Northlight Studios",
        ("Whiskers", "Bridgemoor"),
        ("whiskersofbridgemoor", "bridgemoor"),
        "An animated tale of a tabby who guards the last bridge across the moor.",
        ("Juno Hart",),
        ((("chelsea", "grass", "gravel"), 6.0, 31),),
    ),
)


@dataclass(frozen=True)
class _CopySpec:
    title: int
    clip: int
    start: float
    duration: float
    transform: str
    caption: str
    crf: int = 23


@dataclass(frozen=True)
class _UnrelatedSpec:
    photos: tuple[str, ...]
    seed: int
    hashtags: tuple[str, ...]
    transform: str
    caption: str


COPIES: tuple[_CopySpec, ...] = (
    _CopySpec(0, 0, 2.0, 8.0, "excerpt", "best scene of the trailer"),
    _CopySpec(0, 0, 6.0, 8.0, "crop", "zoomed in so you can see the details", 28),
    _CopySpec(0, 1, 1.0, 9.0, "mirror", "cold open, no spoilers"),
    _CopySpec(0, 0, 0.0, 12.0, "letterbox+text", "S2 LEAK?? full ep in bio"),
    _CopySpec(0, 1, 4.0, 10.0, "speed", "sped up because time"),
    _CopySpec(0, 0, 9.0, 8.0, "reencode", "found this on an old drive", 38),
    _CopySpec(1, 0, 3.0, 10.0, "letterbox+text", "the roastery returns!! part 1"),
    _CopySpec(1, 0, 5.0, 8.0, "mirror+crop+reencode", "coffee aesthetic", 36),
    _CopySpec(1, 0, 10.0, 8.0, "text", "who else is watching this"),
    _CopySpec(1, 0, 2.0, 10.0, "speed+mirror", "roastery in 8 seconds"),
    _CopySpec(1, 0, 8.0, 8.0, "letterbox+reencode", "repost from my other account", 35),
    _CopySpec(2, 0, 0.0, 9.0, "crop+text", "bridgemoor fancam"),
    _CopySpec(2, 0, 6.0, 10.0, "letterbox+mirror", "whiskers edit"),
    _CopySpec(2, 0, 4.0, 8.0, "reencode", "the cat one", 38),
    _CopySpec(2, 0, 2.0, 6.0, "slowmo", "slowed + reverb version"),
)

UNRELATED: tuple[_UnrelatedSpec, ...] = (
    _UnrelatedSpec(("camera",), 101, ("starfall", "fyp"), "plain", "my new lens test"),
    _UnrelatedSpec(("coins", "page"), 102, ("theroastery", "fyp"), "text", "coin collection"),
    _UnrelatedSpec(("stereo_motorcycle",), 103, ("starfallstation",), "letterbox+text", "bike day"),
    _UnrelatedSpec(
        ("immunohistochemistry",), 104, ("bridgemoor", "art"), "plain", "ai art experiment"
    ),
    _UnrelatedSpec(("colorwheel", "logo"), 105, ("whiskersofbridgemoor",), "mirror", "colours"),
)

_AIGC = {3: "Creator labeled as AI-generated", 18: "Creator labeled as AI-generated"}
"""Post numbers (copies first, then unrelated) that carry the platform's AI label."""

_USERS = (
    ("orbit.clips", "Orbit Clips"),
    ("cinephile_dan", "Dan 🎬"),
    ("spacefan_22", "space fan"),
    ("leakhunter", "Leak Hunter"),
    ("fastcuts", "Fast Cuts"),
    ("vhs.archive", "VHS Archive"),
    ("brewtok", "BrewTok"),
    ("latte.lana", "Lana"),
    ("seriesbinge", "Series Binge"),
    ("quickroast", "Quick Roast"),
    ("reposter9000", "Reposter"),
    ("moorfan", "Moor Fan"),
    ("catedits", "Cat Edits"),
    ("oldclips", "Old Clips"),
    ("slowedtok", "slowed"),
    ("lenslab", "Lens Lab"),
    ("numismatic.nina", "Nina"),
    ("two.wheels", "Two Wheels"),
    ("promptpainter", "Prompt Painter"),
    ("hueshift", "Hue Shift"),
)


def _transforms(name: str, caption: str) -> list[Transform]:
    """The transform chain for a post's ``transform`` label (``+`` joins steps)."""
    steps: dict[str, Transform] = {
        "excerpt": lambda c: c,
        "plain": lambda c: c,
        "crop": partial(media.crop, fraction=0.8),
        "mirror": media.mirror,
        "letterbox": media.letterbox_vertical,
        "text": partial(media.overlay_text, text=caption[:28]),
        "speed": partial(media.change_speed, factor=1.25),
        "slowmo": partial(media.change_speed, factor=0.8),
        "reencode": partial(media.shrink, width=320, fps=15.0),
    }
    return [steps[s] for s in name.split("+")]


def _build(out_dir: Path) -> DemoContent:
    rng = np.random.default_rng(2024)
    content = DemoContent(out_dir)
    ref_dir = out_dir / "references"
    for spec in TITLES:
        refs = []
        for k, (photos, seconds, seed) in enumerate(spec.clips):
            path = ref_dir / f"{slugify(spec.name)}-{k + 1}.mp4"
            media.make_reference_clip(photos, path, seconds_per_photo=seconds, seed=seed)
            refs.append(path)
        content.titles.append(
            DemoTitle(
                spec.name,
                spec.owner,
                list(spec.aliases),
                list(spec.hashtags),
                spec.description,
                list(spec.talents),
                refs,
            )
        )

    post_dir = out_dir / "posts"
    tmp_dir = out_dir / "tmp"
    n = 0

    def add_post(path: Path, transform: str, caption: str, tags: Sequence[str], title: str | None):
        nonlocal n
        user, nick = _USERS[n % len(_USERS)]
        followers = int(rng.integers(200, 2_000_000))
        plays = int(rng.integers(1_000, 5_000_000))
        likes = int(plays * rng.uniform(0.02, 0.15))
        aigc = _AIGC.get(n, "")
        content.posts.append(
            DemoPost(
                id=path.stem,
                user=user,
                nickname=nick,
                caption=caption + " " + " ".join(f"#{t}" for t in tags),
                hashtags=list(tags),
                path=path,
                transform=transform,
                expected_title=title,
                is_aigc=bool(aigc),
                aigc_description=aigc,
                create_time=BASE_TIME + n * 5400,
                followers=followers,
                plays=plays,
                likes=likes,
                shares=int(likes * rng.uniform(0.01, 0.2)),
                comments=int(likes * rng.uniform(0.01, 0.1)),
            )
        )
        n += 1

    for c in COPIES:
        title = content.titles[c.title]
        path = post_dir / f"{_post_id(n)}.mp4"
        media.transform_file(
            title.references[c.clip],
            path,
            _transforms(c.transform, c.caption),
            start=c.start,
            duration=c.duration,
            crf=c.crf,
        )
        tags = [*title.hashtags[: 1 + n % 2], "fyp"]
        add_post(path, c.transform, c.caption, tags, title.name)

    for u in UNRELATED:
        src = tmp_dir / f"unrelated-{u.seed}.mp4"
        media.make_reference_clip(
            u.photos, src, seconds_per_photo=8.0 / len(u.photos), seed=u.seed, crf=26
        )
        path = post_dir / f"{_post_id(n)}.mp4"
        media.transform_file(src, path, _transforms(u.transform, u.caption))
        add_post(path, u.transform, u.caption, list(u.hashtags), None)
    shutil.rmtree(tmp_dir, ignore_errors=True)
    return content


def _post_id(n: int) -> str:
    """TikTok-like numeric ids (19 digits), stable per post number."""
    return str(7_381_000_000_000_000_000 + n * 1_234_567_891_011)


# Manifest and cache --------------------------------------------------------------------------


def _to_manifest(content: DemoContent) -> dict[str, Any]:
    def rel(p: Path) -> str:
        return str(p.relative_to(content.root))

    titles = []
    for t in content.titles:
        d = asdict(t)
        d["references"] = [rel(p) for p in t.references]
        titles.append(d)
    posts = []
    for p in content.posts:
        d = asdict(p)
        d["path"] = rel(p.path)
        posts.append(d)
    return {"version": CONTENT_VERSION, "titles": titles, "posts": posts}


def _from_manifest(root: Path, data: dict[str, Any]) -> DemoContent:
    titles = [
        DemoTitle(**{**t, "references": [root / r for r in t["references"]]})
        for t in data["titles"]
    ]
    posts = [DemoPost(**{**p, "path": root / p["path"]}) for p in data["posts"]]
    return DemoContent(root, titles, posts)


def _load_cached(out_dir: Path) -> DemoContent | None:
    manifest = out_dir / "manifest.json"
    try:
        data = json.loads(manifest.read_text())
        if data.get("version") != CONTENT_VERSION:
            return None
        content = _from_manifest(out_dir, data)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    files = [p.path for p in content.posts] + [r for t in content.titles for r in t.references]
    if all(f.is_file() and f.stat().st_size > 0 for f in files):
        return content
    return None


def generate_demo_content(out_dir: Path) -> DemoContent:
    """Generate (or reuse) the demo titles and posts under ``out_dir``.

    Safe to call from several processes at once: generation happens under a file lock and
    the manifest is written last, so a half-made folder is never mistaken for a cache.
    """
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    cached = _load_cached(out_dir)
    if cached is not None:
        return cached
    with (out_dir / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            cached = _load_cached(out_dir)
            if cached is not None:
                return cached
            content = _build(out_dir)
            tmp = out_dir / "manifest.json.tmp"
            tmp.write_text(json.dumps(_to_manifest(content), indent=2, ensure_ascii=False))
            tmp.replace(out_dir / "manifest.json")
            return content
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
