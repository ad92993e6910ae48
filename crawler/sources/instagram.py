"""Instagram: hashtag pages in a logged-in Chromium, parsed from the web app's own answers.

``/explore/tags/<tag>/`` redirects a logged-out reader to ``/accounts/login/``; for a
logged-in one its script asks ``/api/v1/tags/web_info/?tag_name=<tag>`` for the first posts
(``data.top.sections``, and ``data.recent.sections`` where Instagram still serves it) and
``/api/v1/tags/<tag>/sections/`` (``max_id``, ``page``, ``tab``) for more as the reader
scrolls: ``sections[].layout_content.medias[].media`` (also ``fill_items`` and the clips
column ``one_by_two_item.clips.items``) with ``more_available`` and ``next_max_id``. Older
web clients asked GraphQL (``/graphql/query``: ``data.hashtag.edge_hashtag_to_media
.edges[].node``); those answers are read too.

A media item is the private API's (``pk``, ``code``, ``media_type`` 1 photo / 2 video /
8 carousel, ``product_type`` ``clips`` for reels, ``taken_at``, ``caption.text``,
``user.username``, ``play_count``, ``like_count``, ``comment_count``, ``video_versions``,
``video_duration``). Only videos become posts: reels, feed videos, and carousels holding a
video (the first one); photos are skipped.

The hashtag listing is Instagram's ranked "top" grid, not a timeline, so a page of old posts
does not end it (see :attr:`CapturedListing.chronological`).
"""

from __future__ import annotations

import logging
import re
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

from crawler.sources.base import SourceSettings
from crawler.sources.captured import AnswerPage, CapturedListing, Evidence
from crawler.sources.logged_in import LoggedInSource
from crawler.tiktok_format import (
    MalformedItem,
    as_count,
    as_dict,
    as_duration,
    as_http_url,
    as_int,
    as_list,
    as_text,
    as_timestamp,
    post_id_of,
)
from reelwatch.models import Author, Post, PostStats, normalize_hashtag

logger = logging.getLogger(__name__)

PHOTO, VIDEO, CAROUSEL = 1, 2, 8
SHORTCODE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
"""Instagram's shortcodes are the media pk written in this base-64 alphabet."""

_ANSWER_PATH = re.compile(r"/api/v1/tags/(?:web_info|[^/]+/sections)/?|/graphql/query/?")
_HASHTAG = re.compile(r"#(\w+)", re.UNICODE)


def shortcode(pk: int | str) -> str:
    """The ``code`` of a media pk (``/p/<code>/``)."""
    n = int(pk)
    out = ""
    while True:
        n, r = divmod(n, 64)
        out = SHORTCODE_ALPHABET[r] + out
        if n == 0:
            return out


def pk_of_shortcode(code: str) -> int:
    """The media pk of a ``code``; ValueError for a character outside the alphabet."""
    n = 0
    for ch in code:
        n = n * 64 + SHORTCODE_ALPHABET.index(ch)
    return n


def _count(media: dict[str, Any], *keys: str) -> int | None:
    """The first count present: plain fields (``like_count``) or GraphQL edges
    (``edge_liked_by`` → ``{"count": n}``)."""
    for key in keys:
        value = media.get(key)
        if isinstance(value, dict):
            value = value.get("count")
        number = as_count(value)
        if number is not None:
            return number
    return None


def _is_video(media: dict[str, Any]) -> bool:
    if as_int(media.get("media_type")) == VIDEO:
        return True
    if media.get("is_video") is True or media.get("__typename") == "GraphVideo":
        return True
    return bool(media.get("video_versions") or media.get("video_url"))


def video_of(media: dict[str, Any]) -> dict[str, Any] | None:
    """The media that carries the video: the item itself, or a carousel's first video
    child; None for photos and photo-only carousels."""
    if _is_video(media):
        return media
    children = as_list(media.get("carousel_media"))
    children += [as_dict(e).get("node") for e in as_list(media.get("edge_sidecar_to_children"))]
    return next((as_dict(c) for c in children if c and _is_video(as_dict(c))), None)


def _caption(media: dict[str, Any]) -> str:
    caption = media.get("caption")
    if isinstance(caption, dict):
        return as_text(caption.get("text"))
    if isinstance(caption, str):
        return caption
    edges = as_list(as_dict(media.get("edge_media_to_caption")).get("edges"))
    return as_text(as_dict(as_dict(edges[0]).get("node")).get("text")) if edges else ""


def media_to_post(
    media: dict[str, Any], *, platform: str, base_url: str, evidence: Evidence
) -> Post | None:
    """Map one Instagram media item (private API or GraphQL node) to a Post; None when it
    holds no video. :class:`~crawler.tiktok_format.MalformedItem` without a usable pk or id;
    fields of the wrong type or out of range are left unknown."""
    if not isinstance(media, dict):
        raise MalformedItem("media item is not an object")
    pk = post_id_of(media.get("pk") or as_text(media.get("id")).split("_")[0], "media item")
    video = video_of(media)
    if video is None:
        return None
    code = as_text(media.get("code") or media.get("shortcode"))
    if not code and pk.isascii() and pk.isdigit():
        code = shortcode(pk)
    kind = "reel" if media.get("product_type") == "clips" else "p"
    user = as_dict(media.get("user")) or as_dict(media.get("owner"))
    caption = _caption(media)
    versions = [as_dict(v) for v in as_list(video.get("video_versions"))]
    media_url = next((u for u in (as_http_url(v.get("url")) for v in versions) if u), None)
    tags = (normalize_hashtag(t) for t in _HASHTAG.findall(caption))
    return Post(
        platform=platform,
        post_id=pk,
        url=f"{base_url.rstrip('/')}/{kind}/{quote(code, safe='')}/",
        author=Author(
            id=as_text(user.get("pk") or user.get("id")),
            handle=as_text(user.get("username")),
            nickname=as_text(user.get("full_name")) or None,
            followers=as_count(user.get("follower_count")),
        ),
        caption=caption,
        hashtags=list(dict.fromkeys(tags)),
        posted_at=as_timestamp(media.get("taken_at") or media.get("taken_at_timestamp")),
        stats=PostStats(
            views=_count(media, "play_count", "ig_play_count", "view_count", "video_view_count"),
            likes=_count(media, "like_count", "edge_liked_by", "edge_media_preview_like"),
            shares=_count(media, "reshare_count", "share_count"),
            comments=_count(media, "comment_count", "edge_media_to_comment"),
        ),
        media_url=media_url or as_http_url(video.get("video_url")),
        duration=as_duration(video.get("video_duration")),
        watch=evidence.watch,
        hashtag=evidence.hashtag,
        first_seen=evidence.captured_at,
        last_seen=evidence.captured_at,
        provenance=evidence.provenance(media),
    )


def section_medias(section: dict[str, Any]) -> list[dict[str, Any]]:
    """The media items of one grid section: a row (``medias``), and the clips column with
    its neighbours (``one_by_two_item.clips.items``, ``fill_items``)."""
    layout = as_dict(section.get("layout_content"))
    rows = as_list(layout.get("medias")) + as_list(layout.get("fill_items"))
    clips = as_dict(as_dict(layout.get("one_by_two_item")).get("clips"))
    rows = as_list(clips.get("items")) + rows
    return [as_dict(as_dict(r).get("media")) for r in rows if as_dict(r).get("media")]


def answer_medias(data: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None, bool | None]:
    """Media items of one answer, its next cursor, and whether more exist (None: it did not
    say). Reads ``web_info``, ``sections`` and GraphQL hashtag answers."""
    medias: list[dict[str, Any]] = []
    cursor: str | None = None
    more: bool | None = None
    body = as_dict(data.get("data"))
    blocks = [as_dict(body.get("top")), as_dict(body.get("recent"))]
    if "sections" in data:
        blocks.append(data)
    for block in blocks:
        if not block:
            continue
        for section in as_list(block.get("sections")):
            medias.extend(section_medias(as_dict(section)))
        if "more_available" in block:
            more = bool(block.get("more_available")) or bool(more)
        if block.get("next_max_id"):
            cursor = str(block["next_max_id"])
    for key, value in body.items():
        if "hashtag" not in key and "tag" not in key:
            continue
        hashtag = as_dict(value)
        for edges_key in ("edge_hashtag_to_media", "edge_hashtag_to_top_posts"):
            connection = as_dict(hashtag.get(edges_key))
            for edge in as_list(connection.get("edges")):
                node = as_dict(as_dict(edge).get("node"))
                medias.append(as_dict(node.get("media")) or node)
            page_info = as_dict(connection.get("page_info"))
            if "has_next_page" in page_info:
                more = bool(page_info.get("has_next_page")) or bool(more)
                cursor = str(page_info.get("end_cursor") or "") or cursor
        if isinstance(hashtag.get("edges"), list):
            for edge in as_list(hashtag.get("edges")):
                node = as_dict(as_dict(edge).get("node"))
                medias.append(as_dict(node.get("media")) or node)
    return medias, cursor, more


def is_listing_answer(data: Any) -> bool:
    if not isinstance(data, dict):
        return False
    body = as_dict(data.get("data"))
    return (
        "sections" in data
        or "top" in body
        or "recent" in body
        or any("hashtag" in k or "tag" in k for k in body)
        or data.get("status") == "fail"
    )


def parse_answer(
    data: Any, *, platform: str, base_url: str, evidence: Evidence
) -> AnswerPage | None:
    """The video posts of one captured answer (photos skipped, malformed items logged)."""
    if not is_listing_answer(data):
        return None
    if data.get("require_login") or data.get("message") in (
        "login_required",
        "checkpoint_required",
    ):
        return AnswerPage(login_required=True)
    medias, cursor, more = answer_medias(data)
    page = AnswerPage(cursor=cursor, more=more)
    for media in medias:
        try:
            post = media_to_post(media, platform=platform, base_url=base_url, evidence=evidence)
        except (ValueError, TypeError) as exc:
            logger.warning("skipping a malformed media item at %s: %s", evidence.source_url, exc)
            page.skipped += 1
            continue
        if post is None:
            page.skipped += 1
        else:
            page.posts.append(post)
    return page


class InstagramTagListing(CapturedListing):
    chronological = False

    def start_url(self) -> str:
        return f"{self.base_url}/explore/tags/{quote(str(self.job.query.hashtag))}/"

    def is_answer(self, url: str) -> bool:
        return _ANSWER_PATH.fullmatch(urlsplit(url).path) is not None

    def parse(self, data: Any, evidence: Evidence) -> AnswerPage | None:
        return parse_answer(
            data, platform=self.source.name, base_url=self.base_url, evidence=evidence
        )


class InstagramSettings(SourceSettings):
    base_url: str | None = "https://www.instagram.com"


class InstagramSource(LoggedInSource):
    """Instagram hashtag pages, read in Chromium with a saved login (``reelwatch browser
    login instagram``)."""

    name = "instagram"
    query_kinds = frozenset({"hashtag"})
    settings_model = InstagramSettings
    canary: ClassVar[str | None] = "#reels"
    login_path = "/accounts/login/"
    login_paths = ("/accounts/login", "/challenge")
    session_cookie = "sessionid"
    listing = InstagramTagListing
