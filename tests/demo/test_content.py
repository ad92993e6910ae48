from __future__ import annotations

import json
from pathlib import Path

import av

from reelwatch.demo.content import DemoContent, generate_demo_content


def test_world_has_titles_copies_unrelated_and_ai_labels(demo: DemoContent) -> None:
    assert {t.name for t in demo.titles} >= {
        "Starfall Station",
        "The Roastery",
        "Whiskers of Bridgemoor",
    }
    assert 18 <= len(demo.posts) <= 24
    assert len(demo.unrelated) >= 5
    assert sum(p.is_aigc for p in demo.posts) >= 2
    assert len({p.id for p in demo.posts}) == len(demo.posts)
    names = {t.name for t in demo.titles}
    for p in demo.posts:
        assert p.id.isdigit() and len(p.id) == 19
        assert p.path.is_file()
        assert p.expected_title is None or p.expected_title in names
        assert all(f"#{h}" in p.caption for h in p.hashtags)
    for t in demo.titles:
        assert 1 <= len(t.references) <= 2
        assert t.owner and t.aliases and t.hashtags and t.description


def test_copies_are_posted_under_their_titles_hashtags(demo: DemoContent) -> None:
    for p in demo.copies:
        title = demo.title(p.expected_title or "")
        assert set(p.hashtags) & set(title.hashtags)
    all_tags = {h for t in demo.titles for h in t.hashtags}
    assert all(set(p.hashtags) & all_tags for p in demo.unrelated)
    transforms = {step for p in demo.copies for step in p.transform.split("+")}
    assert transforms >= {"crop", "mirror", "letterbox", "text", "speed", "reencode"}


def test_posts_are_small_short_videos(demo: DemoContent) -> None:
    for p in demo.posts:
        with av.open(str(p.path)) as c:
            seconds = (c.duration or 0) / av.time_base
            vs = c.streams.video[0]
            assert 5.0 <= seconds <= 13.0, p
            assert max(vs.codec_context.width, vs.codec_context.height) <= 640
            assert c.streams.audio


def test_second_call_reuses_the_files(demo: DemoContent, demo_dir: Path) -> None:
    before = {p.path: p.path.stat().st_mtime_ns for p in demo.posts}
    again = generate_demo_content(demo_dir)
    assert again.posts == demo.posts
    assert again.titles == demo.titles
    assert {p.path: p.path.stat().st_mtime_ns for p in again.posts} == before


def test_a_manifest_of_another_version_is_not_a_cache(tmp_path: Path, demo_dir: Path) -> None:
    """Every file the manifest names is there (absolute paths into the real demo folder), so
    only the version can make the copy in ``tmp_path`` not count as a cache."""
    from reelwatch.demo.content import CONTENT_VERSION, _load_cached

    data = json.loads((demo_dir / "manifest.json").read_text())
    for t in data["titles"]:
        t["references"] = [str(demo_dir / r) for r in t["references"]]
    for p in data["posts"]:
        p["path"] = str(demo_dir / p["path"])
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps(data))
    assert _load_cached(tmp_path) is not None
    data["version"] = CONTENT_VERSION + 1
    manifest.write_text(json.dumps(data))
    assert _load_cached(tmp_path) is None
