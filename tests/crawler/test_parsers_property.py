"""Property tests of the platform parsers: whatever a platform (or an attacker posing as one)
sends, a parser gives a sane Post, a clean skip (None, or ``MalformedItem``, an InputError),
never another exception.

Items are (a) random JSON-like values and (b) real-looking items from the replica's own
generators, mutated: keys dropped, values swapped for wrong types, huge or negative numbers,
NaN and infinities, hostile strings (control characters, NUL, RTL overrides, CR/LF, ``../``
ids, ``javascript:`` and ``file:`` URLs, very long text). Every Post that comes out is
checked: its id is usable as a key (no control or format characters, bounded), its URLs are
http(s), its counts non-negative and within 64 bits, its duration finite and positive, and it
survives a JSON round trip; ``safe_file_name`` makes any id one harmless path component.
"""

from __future__ import annotations

import copy
import math
import unicodedata
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crawler.replica import social
from crawler.replica.site import ReplicaVideo, to_item
from crawler.sources import instagram, tiktok, x
from crawler.sources.base import Query
from crawler.sources.captured import Evidence, screenshot_path
from crawler.sources.youtube import youtube_entry_to_post
from crawler.sources.ytdlp import Listed, ytdlp_entry_to_post
from crawler.tiktok_format import MalformedItem, rehydration_scope, safe_file_name
from reelwatch.errors import InputError
from reelwatch.models import Post

BASE = "http://127.0.0.1:8000"
MAX_COUNT = 2**63 - 1
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

HOSTILE_STRINGS = [
    "",
    " ",
    "../../etc/passwd",
    "..",
    ".",
    "a/b",
    "a\\b",
    "x\x00y",
    "\u202eevil\u202c",
    "\u200f\u061c",
    "line\r\nX-Injected: 1",
    "\x1b[31mred\x1b[0m",
    "javascript:alert(1)",
    "file:///etc/passwd",
    "ftp://example.com/v.mp4",
    "http://",
    "https://example.com/ok.mp4",
    "//evil.example/v.mp4",
    "-5",
    "1e400",
    "NaN",
    "١٢٣",
    "0x10",
    "9" * 40,
    "Wed Oct 10 20:19:24 +0000 2018",
    "</script><script>alert(1)</script>",
    "#tag #" + "x" * 300,
    "a" * 20_000,
]
HOSTILE_NUMBERS: list[Any] = [
    0,
    -1,
    -(2**63),
    2**63,
    2**64,
    10**30,
    -(10**30),
    1e308,
    -1e308,
    math.nan,
    math.inf,
    -math.inf,
    -0.0,
    0.5,
    True,
    False,
    253402300800,
    -62135596801,
]

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(HOSTILE_STRINGS),
    st.sampled_from(HOSTILE_NUMBERS),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(max_size=12), inner, max_size=5),
    ),
    max_leaves=20,
)


def _video(vid: str = "7300000000000000123") -> ReplicaVideo:
    return ReplicaVideo(
        id=vid,
        user="some.user",
        nickname="Some User",
        caption="a clip #starfall",
        hashtags=["starfall"],
        path=Path("v.mp4"),
        create_time=1_760_000_000,
        duration=12,
        width=720,
        height=1280,
        followers=10,
        plays=100,
        likes=5,
        shares=1,
        comments=2,
    )


class _Handler:
    """What the replica's item builders read from their HTTP handler."""

    base_url = BASE

    def _public_item(self, item: dict[str, Any]) -> dict[str, Any]:
        video = {**item.get("video", {}), "playAddr": f"{BASE}/video/{item['id']}.mp4"}
        return {**item, "video": video}


def _tiktok_item() -> dict[str, Any]:
    return _Handler()._public_item(to_item(_video()))


def _ig_media() -> dict[str, Any]:
    return social.ig_media(_Handler(), to_item(_video()))


def _tweet() -> dict[str, Any]:
    return social.x_tweet(_Handler(), to_item(_video()))


def _yt_entry() -> dict[str, Any]:
    return {
        "_type": "url",
        "ie_key": "Youtube",
        "id": "dQw4w9WgXcQ",
        "url": "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
        "title": "a clip #starfall",
        "description": "more words",
        "duration": 212,
        "channel_id": "UC123",
        "uploader_id": "@someone",
        "uploader": "Someone",
        "channel_follower_count": 10,
        "view_count": 100,
        "timestamp": 1_760_000_000,
    }


def _ytdlp_entry() -> dict[str, Any]:
    return {
        "_type": "url",
        "url": f"{BASE}/@some.user/video/7300000000000000123",
        "title": "a clip",
        "duration": 7.5,
        "uploader": "some.user",
        "view_count": 3,
        "upload_date": "20260101",
    }


def _paths(value: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [at]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*at, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*at, i))
    return out


def _mutate(data: st.DataObject, item: Any, rounds: int = 4) -> Any:
    """``item`` with up to ``rounds`` random mutations: a value replaced (by a hostile or a
    random JSON value), a key dropped, or a list emptied."""
    item = copy.deepcopy(item)
    for _ in range(data.draw(st.integers(1, rounds))):
        path = data.draw(st.sampled_from(_paths(item)))
        op = data.draw(st.sampled_from(["replace", "drop", "empty"]))
        if not path:
            if op == "replace":
                item = data.draw(json_values)
            continue
        parent = item
        for step in path[:-1]:
            parent = parent[step]
        last = path[-1]
        if op == "drop" and isinstance(parent, dict):
            del parent[last]
        elif op == "empty" and isinstance(parent[last], list | dict):
            parent[last] = type(parent[last])()
        else:
            parent[last] = data.draw(json_values)
    return item


def _evidence() -> Evidence:
    return Evidence(source_url=f"{BASE}/api", status=200, headers={}, user_agent="ua")


def _listed(kind: str = "hashtag", value: str = "starfall") -> Listed:
    return Listed(
        url=f"{BASE}/feed",
        user_agent="ua",
        query=Query(kind, value),  # type: ignore[arg-type]
        watch=None,
        captured_at=datetime.now(UTC),
    )


def _is_http(url: str | None) -> bool:
    if url is None:
        return True
    parts = urlsplit(url)
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and not any(c.isspace() or unicodedata.category(c) in ("Cc", "Cf") for c in url)
    )


def _count_ok(n: int | None) -> bool:
    return n is None or (isinstance(n, int) and 0 <= n <= MAX_COUNT)


def assert_sane(post: Post) -> None:
    pid = post.post_id
    assert pid and pid == pid.strip() and len(pid) <= 2048, repr(pid[:80])
    assert not any(unicodedata.category(c) in ("Cc", "Cf") for c in pid), repr(pid[:80])
    assert _is_http(post.url), post.url[:200]
    assert _is_http(post.media_url), (post.media_url or "")[:200]
    for n in (*post.stats.model_dump().values(), post.author.followers):
        assert _count_ok(n), n
    assert post.duration is None or (math.isfinite(post.duration) and post.duration > 0)
    assert post.posted_at is None or post.posted_at.tzinfo is not None
    assert isinstance(post.caption, str) and isinstance(post.author.handle, str)
    assert post.author.nickname is None or isinstance(post.author.nickname, str)
    assert all(isinstance(t, str) and t for t in post.hashtags)
    again = Post.model_validate_json(post.model_dump_json())
    assert again.post_id == pid and again.url == post.url


def _one(parse: Any, item: Any) -> None:
    """Run one parser on one item: a sane Post, None, or a clean refusal."""
    try:
        post = parse(item)
    except InputError:
        return
    if post is not None:
        assert_sane(post)


def _tiktok(item: Any) -> Post | None:
    return tiktok.item_to_post(item, platform="tiktok", base_url=BASE)


def _instagram(item: Any) -> Post | None:
    return instagram.media_to_post(item, platform="instagram", base_url=BASE, evidence=_evidence())


def _x(item: Any) -> Post | None:
    return x.tweet_to_post(item, platform="x", base_url=BASE, evidence=_evidence())


def _youtube(item: Any) -> Post | None:
    return youtube_entry_to_post(item, _listed())


def _ytdlp(item: Any) -> Post | None:
    return ytdlp_entry_to_post(item, _listed(), platform="ytdlp")


PARSERS = {
    "tiktok": (_tiktok, _tiktok_item),
    "instagram": (_instagram, _ig_media),
    "x": (_x, _tweet),
    "youtube": (_youtube, _yt_entry),
    "ytdlp": (_ytdlp, _ytdlp_entry),
}


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_the_unmutated_item_gives_a_sane_post(name: str) -> None:
    parse, seed = PARSERS[name]
    post = parse(seed())
    assert post is not None
    assert_sane(post)


@pytest.mark.parametrize("name", sorted(PARSERS))
@SETTINGS
@given(data=st.data())
def test_mutated_items_give_a_sane_post_or_a_clean_skip(name: str, data: st.DataObject) -> None:
    parse, seed = PARSERS[name]
    _one(parse, _mutate(data, seed()))


@pytest.mark.parametrize("name", sorted(PARSERS))
@SETTINGS
@given(item=st.dictionaries(st.text(max_size=20), json_values, max_size=8))
def test_random_objects_give_a_sane_post_or_a_clean_skip(name: str, item: dict) -> None:
    _one(PARSERS[name][0], item)


@pytest.mark.parametrize("name", sorted(PARSERS))
@pytest.mark.parametrize("bad", ["../../etc/passwd", "a/b", "x\x00y", "\u202e1", " ", "a" * 5000])
def test_a_hostile_id_is_refused_or_kept_as_text(name: str, bad: str) -> None:
    parse, seed = PARSERS[name]
    item = seed()
    for key in ("id", "pk", "rest_id"):
        if key in item:
            item[key] = bad
    if "legacy" in item:
        item["legacy"]["id_str"] = bad
    try:
        post = parse(item)
    except InputError:
        return
    if post is not None:
        assert_sane(post)
        assert "\x00" not in post.post_id


# -- whole answers --------------------------------------------------------------------------


def _ig_answer(medias: list[Any]) -> dict[str, Any]:
    rows = [{"media": m} for m in medias]
    return {"data": {"recent": {"sections": [{"layout_content": {"medias": rows}}]}}}


def _x_answer(results: list[Any]) -> dict[str, Any]:
    entries = [
        {"entryId": f"tweet-{i}", "content": {"itemContent": {"tweet_results": {"result": r}}}}
        for i, r in enumerate(results)
    ]
    timeline = {"instructions": [{"type": "TimelineAddEntries", "entries": entries}]}
    return {"data": {"search_by_raw_query": {"search_timeline": {"timeline": timeline}}}}


ANSWERS = {
    "tiktok": (
        lambda page: tiktok.page_posts(
            page,
            platform="tiktok",
            base_url=BASE,
            job_query="#starfall",
            hashtag="starfall",
            watch=None,
            source_url=f"{BASE}/api",
            user_agent="ua",
            status=200,
            headers={},
            method="http",
        ),
        lambda: {"itemList": [_tiktok_item(), _tiktok_item()], "hasMore": True, "cursor": "2"},
    ),
    "instagram": (
        lambda data: instagram.parse_answer(
            data, platform="instagram", base_url=BASE, evidence=_evidence()
        ),
        lambda: _ig_answer([_ig_media(), _ig_media()]),
    ),
    "x": (
        lambda data: x.parse_answer(data, platform="x", base_url=BASE, evidence=_evidence()),
        lambda: _x_answer([_tweet(), _tweet()]),
    ),
}


def _answer_posts(out: Any) -> list[Post]:
    if out is None:
        return []
    return list(out) if isinstance(out, list) else list(out.posts)


@pytest.mark.parametrize("name", sorted(ANSWERS))
@SETTINGS
@given(data=st.data())
def test_a_mutated_answer_never_raises_and_keeps_only_sane_posts(
    name: str, data: st.DataObject
) -> None:
    parse, seed = ANSWERS[name]
    for post in _answer_posts(parse(_mutate(data, seed(), rounds=6))):
        assert_sane(post)


@pytest.mark.parametrize("name", sorted(ANSWERS))
@SETTINGS
@given(data=json_values)
def test_a_random_answer_never_raises(name: str, data: Any) -> None:
    for post in _answer_posts(ANSWERS[name][0](data)):
        assert_sane(post)


@SETTINGS
@given(page=st.one_of(st.text(max_size=200), st.sampled_from(HOSTILE_STRINGS), json_values))
def test_a_tag_page_that_is_not_the_expected_html_gives_no_scope(page: Any) -> None:
    text = (
        page
        if isinstance(page, str)
        else f'<script id="__UNIVERSAL_DATA_FOR_REHYDRATION__">{page}</script>'
    )
    scope = rehydration_scope(text)
    assert scope is None or isinstance(scope, dict)


# -- ids in file names ----------------------------------------------------------------------


@SETTINGS
@given(pid=st.one_of(st.text(max_size=300), st.sampled_from(HOSTILE_STRINGS)))
def test_safe_file_name_is_one_harmless_path_component(pid: str) -> None:
    name = safe_file_name(pid)
    assert name and name not in (".", "..") and not name.startswith(".")
    assert "/" not in name and "\\" not in name and "\x00" not in name
    assert len(name.encode()) <= 120
    assert all(c.isascii() and (c.isalnum() or c in "._-") for c in name)
    assert Path(name).name == name


def test_safe_file_names_of_different_ids_differ() -> None:
    ids = ["a/b", "a_b", "a\\b", "../../etc/passwd", "..", ".", "a" * 500, "a" * 501, "x\x00y"]
    names = [safe_file_name(i) for i in ids]
    assert len(set(names)) == len(ids)
    assert safe_file_name("7300000000000000123") == "7300000000000000123"


def test_malformed_item_is_an_input_error() -> None:
    assert issubclass(MalformedItem, InputError)


@pytest.mark.parametrize(
    "pid", ["../../etc/passwd", "a/b", "x\x00y", "..", "/abs/path", "a\\..\\b", "\u202egnp.exe"]
)
def test_a_hostile_post_id_never_becomes_a_path_outside_the_captures_folder(
    tmp_path: Path, pid: str
) -> None:
    captures = tmp_path / "captures" / "tiktok"
    path = screenshot_path(captures, pid)
    assert path.parent == captures
    assert path.resolve().parent == captures.resolve()
    assert path.suffix == ".png" and "\x00" not in str(path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"png")  # a real file system accepts the name
    assert list(tmp_path.rglob("*.png")) == [path]


def test_a_plain_post_id_keeps_its_screenshot_name(tmp_path: Path) -> None:
    assert screenshot_path(tmp_path, "7300000000000000123").name == "7300000000000000123.png"
