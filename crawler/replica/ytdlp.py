"""yt-dlp support for TikTok-shaped post pages that are not on tiktok.com (the replica).

yt-dlp's TikTok extractor only accepts tiktok.com URLs, and its generic extractor does not
read the rehydration blob, so the download worker registers :class:`ReplicaIE` (through
:func:`crawler.ytdlp_extractors`) ahead of yt-dlp's own extractors.
"""

from __future__ import annotations

from typing import Any

from yt_dlp.extractor.common import InfoExtractor
from yt_dlp.utils import ExtractorError, float_or_none, int_or_none, traverse_obj, url_or_none

from crawler.tiktok_format import as_dict, rehydration_scope


class ReplicaIE(InfoExtractor):
    """``http(s)://<any host but tiktok.com>/@<user>/video/<id>`` pages with TikTok's blob."""

    IE_NAME = "replica"
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
            raise ExtractorError(
                f"post {video_id} is not available (statusCode {detail.get('statusCode')!r})",
                expected=True,
            )
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
