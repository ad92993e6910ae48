"""yt-dlp support for TikTok-shaped post pages that are not on tiktok.com (the replica).

yt-dlp's TikTok extractor only accepts tiktok.com URLs, and its generic extractor does not
read the rehydration blob, so the download worker and the ``ytdlp`` source register
:class:`ReplicaIE` (post pages) and :class:`ReplicaUserIE` (account pages, listed as
playlists) through :func:`crawler.ytdlp_extractors`, ahead of yt-dlp's own extractors.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from yt_dlp.extractor.common import InfoExtractor
from yt_dlp.utils import ExtractorError, float_or_none, int_or_none, traverse_obj, url_or_none

from crawler.recheck import ACCOUNT_PRIVATE, ITEM_NOT_FOUND, ITEM_PRIVATE
from crawler.tiktok_format import as_dict, rehydration_scope


class ReplicaIE(InfoExtractor):
    """``http(s)://<any host but tiktok.com>/@<user>/video/<id>`` pages with TikTok's blob."""

    IE_NAME = "replica"
    _RETURN_TYPE = "video"
    IE_DESC = "reelwatch replica platform (TikTok-structured post pages)"
    _VALID_URL = (
        r"https?://(?![^/?#@]*\btiktokv?\.com(?:[:/?#]|$))[^/?#@]+"
        r"/@(?P<user>[\w.%-]+)/video/(?P<id>[\w-]+)/?(?:[?#]|$)"
    )

    def _real_extract(self, url: str) -> dict[str, Any]:
        user, video_id = self._match_valid_url(url).group("user", "id")
        webpage = self._download_webpage(url, video_id)
        scope = rehydration_scope(webpage)
        if scope is None:
            raise ExtractorError(f"post {video_id}: the page has no rehydration data")
        detail = as_dict(scope.get("webapp.video-detail"))
        status = int_or_none(detail.get("statusCode"))
        item = traverse_obj(detail, ("itemInfo", "itemStruct"))
        if status != 0 or not isinstance(item, dict):
            raise ExtractorError(_unavailable(detail), video_id=video_id, expected=True)
        video = item.get("video") or {}
        formats: list[dict[str, Any]] = []
        for key in ("playAddr", "downloadAddr"):
            media_url = url_or_none(video.get(key))
            if media_url and all(f["url"] != media_url for f in formats):
                formats.append(
                    {
                        "url": media_url,
                        "format_id": key,
                        "ext": video.get("format") or "mp4",
                        "width": int_or_none(video.get("width")),
                        "height": int_or_none(video.get("height")),
                        # Media URLs are served only with the post page as Referer and the
                        # session cookie the page set (yt-dlp's cookie jar has it).
                        "http_headers": {"Referer": url},
                    }
                )
        if not formats:
            raise ExtractorError(f"post {video_id} has no media address", expected=True)
        author = item.get("author") or {}
        stats = item.get("stats") or {}
        caption = item.get("desc") or ""
        return {
            "id": str(item.get("id") or video_id),
            "title": caption or f"post {video_id}",
            "description": caption,
            "uploader": author.get("uniqueId") or user,
            "uploader_id": str(author.get("id") or "") or None,
            "channel": author.get("nickname"),
            "timestamp": int_or_none(item.get("createTime")),
            "duration": float_or_none(video.get("duration")),
            "width": int_or_none(video.get("width")),
            "height": int_or_none(video.get("height")),
            "view_count": int_or_none(stats.get("playCount")),
            "like_count": int_or_none(stats.get("diggCount")),
            "repost_count": int_or_none(stats.get("shareCount")),
            "comment_count": int_or_none(stats.get("commentCount")),
            "formats": formats,
        }


def _unavailable(detail: dict[str, Any]) -> str:
    """What the extractor says of a post page without the post, as platforms word it: a
    private post is "This video is private", a removed or deleted one "Video currently
    unavailable"; the status code and message follow."""
    code = detail.get("statusCode")
    said = f"statusCode {code!r}" + (f": {detail['statusMsg']}" if detail.get("statusMsg") else "")
    if int_or_none(code) in (ITEM_PRIVATE, ACCOUNT_PRIVATE):
        return f"This video is private ({said})"
    if int_or_none(code) == ITEM_NOT_FOUND:
        return f"Video currently unavailable ({said})"
    return f"Video not available ({said})"


class ReplicaUserIE(InfoExtractor):
    """``http(s)://<any host but tiktok.com>/@<user>`` account pages: a playlist of the
    account's posts, newest first, listed page by page as yt-dlp asks for entries (so
    ``playlistend`` stops the paging, and flat extraction never opens a post page)."""

    IE_NAME = "replica:user"
    _RETURN_TYPE = "playlist"
    IE_DESC = "reelwatch replica platform (account pages)"
    _VALID_URL = (
        r"https?://(?![^/?#@]*\btiktokv?\.com(?:[:/?#]|$))[^/?#@]+"
        r"/@(?P<id>[\w.%-]+)/?(?:[?#]|$)"
    )
    _PAGE_COUNT = 30

    def _real_extract(self, url: str) -> dict[str, Any]:
        handle = self._match_id(url)
        webpage = self._download_webpage(url, handle)
        scope = rehydration_scope(webpage)
        if scope is None:
            raise ExtractorError(f"account {handle}: the page has no rehydration data")
        detail = as_dict(scope.get("webapp.user-detail"))
        user = as_dict(traverse_obj(detail, ("userInfo", "user")))
        if int_or_none(detail.get("statusCode")) != 0 or not user.get("secUid"):
            raise ExtractorError(
                f"account @{handle} does not exist (statusCode {detail.get('statusCode')!r})",
                expected=True,
            )
        site = url.split("/@", 1)[0]
        first = scope.get("webapp.user-item-list")
        unique_id = str(user.get("uniqueId") or handle)
        return self.playlist_result(
            self._entries(site, str(user["secUid"]), unique_id, as_dict(first) or None),
            playlist_id=unique_id,
            playlist_title=str(user.get("nickname") or unique_id),
            uploader=unique_id,
            uploader_id=str(user.get("id") or "") or None,
            channel=user.get("nickname"),
        )

    def _entries(
        self, site: str, sec_uid: str, handle: str, page: dict[str, Any] | None
    ) -> Iterator[dict[str, Any]]:
        cursor = "0"
        while True:
            if page is None:
                body = self._download_webpage(
                    f"{site}/api/post/item_list/",
                    handle,
                    note=f"Downloading posts from cursor {cursor}",
                    query={"secUid": sec_uid, "cursor": cursor, "count": self._PAGE_COUNT},
                )
                if not body.strip():
                    raise ExtractorError(
                        f"account @{handle}: the post list answered with an empty body "
                        "(the site wants requests signed by its own page script)",
                        expected=True,
                    )
                page = self._parse_json(body, handle)
                if not isinstance(page, dict) or int_or_none(page.get("statusCode")) != 0:
                    raise ExtractorError(f"account @{handle}: the post list answered {page!r:.200}")
            for item in page.get("itemList") or []:
                if isinstance(item, dict) and item.get("id"):
                    yield self._entry(site, handle, item)
            next_cursor = str(page.get("cursor") or "")
            if not page.get("hasMore") or not next_cursor or next_cursor == cursor:
                return
            cursor, page = next_cursor, None

    def _entry(self, site: str, handle: str, item: dict[str, Any]) -> dict[str, Any]:
        post_id = str(item["id"])
        author = item.get("author") or {}
        stats = item.get("stats") or {}
        caption = item.get("desc") or ""
        return self.url_result(
            f"{site}/@{author.get('uniqueId') or handle}/video/{post_id}",
            ReplicaIE,
            post_id,
            caption or f"post {post_id}",
            description=caption,
            timestamp=int_or_none(item.get("createTime")),
            duration=float_or_none((item.get("video") or {}).get("duration")),
            uploader=author.get("uniqueId") or handle,
            uploader_id=str(author.get("id") or "") or None,
            channel=author.get("nickname"),
            view_count=int_or_none(stats.get("playCount")),
            like_count=int_or_none(stats.get("diggCount")),
            repost_count=int_or_none(stats.get("shareCount")),
            comment_count=int_or_none(stats.get("commentCount")),
        )
