"""Replica faces for listing the replica's posts without TikTok's shapes.

The ``ytdlp`` and ``youtube`` sources need something to list that is not a TikTok tag page,
so the replica serves the same posts as:

- ``/feed/<tag>.xml``: an RSS 2.0 feed of a hashtag's posts, newest first, each ``<item>``
  linking to the post page ``/@<user>/video/<id>`` (yt-dlp's generic extractor lists RSS 2.0
  feeds; it has no Atom parser);
- ``/@<user>``: an account page in TikTok's layout (``webapp.user-detail``) whose first page of
  posts is embedded under ``"webapp.user-item-list"`` (a replica convenience: TikTok itself
  loads them from the API), further pages from ``/api/post/item_list/?secUid=&cursor=&count=``
  (:class:`crawler.replica.ytdlp.ReplicaUserIE` lists it as a playlist); a ``signed`` replica
  embeds nothing and answers unsigned item-list calls with an empty 200, as TikTok does;
- ``/youtube/v3/search``, ``/youtube/v3/videos`` and ``/youtube/v3/channels``: the YouTube Data
  API v3 ``search.list``, ``videos.list`` and ``channels.list`` (``forHandle``) answers as
  documented (https://developers.google.com/youtube/v3/docs/search/list and siblings),
  checking ``key``; ``/watch?v=<id>`` and ``/shorts/<id>`` redirect to the post page, so a
  post listed through the API is downloadable from the replica.

API keys: :data:`API_KEY` works; :data:`SPENT_API_KEY` answers 403 ``quotaExceeded`` as a key
whose daily quota is used up does; any other key gets the 400 ``API key not valid`` answer
Google sends for a wrong key (issue threads show ``reason: keyInvalid`` or, since 2020,
``badRequest`` with ``API_KEY_INVALID`` in ``details``; this serves the latter), and a missing
key the 403 ``The request is missing a valid API key.``. The :class:`~crawler.replica.Faults`
of the server apply to the API routes as to the TikTok ones (429, 500, garbage), and each
call is counted in ``faults.refused`` under ``youtube.search``, ``youtube.videos`` and
``youtube.channels`` so tests can tell how much quota a crawl would have spent.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from email.utils import format_datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

from crawler.tiktok_format import as_dict, item_hashtags, rehydration_page
from reelwatch.models import normalize_hashtag

API_KEY = "replica-youtube-api-key"
SPENT_API_KEY = "replica-youtube-api-key-spent"

USER_NOT_FOUND = 10202
"""TikTok's ``statusCode`` for an account that does not exist."""

MAX_RESULTS = 50
"""The Data API's largest ``maxResults`` (search.list and videos.list)."""

_DURATIONS = {"short": (0, 240), "medium": (240, 1200), "long": (1200, 1 << 62)}
"""``videoDuration`` buckets in seconds: under 4 minutes, 4 to 20, over 20."""


# -- shared helpers ---------------------------------------------------------------------------
def _items(handler: Any) -> list[dict[str, Any]]:
    """Every item of the site, newest first."""
    return list(handler.replica.catalog().by_id.values())


def _author(item: dict[str, Any]) -> dict[str, Any]:
    return as_dict(item.get("author"))


def _handle(item: dict[str, Any]) -> str:
    return str(_author(item).get("uniqueId") or "")


def _post_url(base_url: str, item: dict[str, Any]) -> str:
    return f"{base_url}/@{quote(_handle(item))}/video/{quote(str(item['id']))}"


def _created(item: dict[str, Any]) -> datetime:
    return datetime.fromtimestamp(int(item.get("createTime") or 0), UTC)


def _duration(item: dict[str, Any]) -> int:
    return int(as_dict(item.get("video")).get("duration") or 0)


def _title(item: dict[str, Any]) -> str:
    """The caption's first line, at most 100 characters (YouTube's title limit)."""
    desc = str(item.get("desc") or "")
    return (desc.splitlines()[0] if desc.strip() else f"post {item['id']}")[:100]


def _api_fault(handler: Any, *, head: bool) -> bool:
    """Answer with the server's next fault, if any; True when it did."""
    fault = handler.replica.faults.next_api_fault()
    if fault == "rate_limit":
        body = _error_body(429, "Too many requests.", "rateLimitExceeded", "usageLimits")
        handler._send(
            HTTPStatus.TOO_MANY_REQUESTS,
            body,
            "application/json; charset=UTF-8",
            head=head,
            headers={"Retry-After": handler.replica.faults.retry_after},
        )
        return True
    if fault == "server_error":
        body = _error_body(500, "Internal error encountered.", "backendError", "global")
        handler._send(500, body, "application/json; charset=UTF-8", head=head)
        return True
    if fault == "garbage":
        page = b"<html><body><h1>Please verify you are human</h1></body></html>"
        handler._send_html(page, head=head)
        return True
    return False


# -- RSS ----------------------------------------------------------------------------------------
def rss_feed(handler: Any, *, head: bool, query: dict[str, list[str]], tag: str) -> None:
    name = normalize_hashtag(tag)
    items = handler.replica.catalog().by_tag.get(name)
    if not items:
        handler._send_text(HTTPStatus.NOT_FOUND, "no such feed\n", head=head)
        return
    base = handler.base_url
    ET.register_namespace("atom", "http://www.w3.org/2005/Atom")
    ET.register_namespace("dc", "http://purl.org/dc/elements/1.1/")
    rss = ET.Element("rss", {"version": "2.0"})
    channel = ET.SubElement(rss, "channel")
    ET.SubElement(channel, "title").text = f"#{name} on replica"
    ET.SubElement(channel, "link").text = f"{base}/tag/{quote(name)}"
    ET.SubElement(channel, "description").text = f"Posts tagged #{name}, newest first"
    ET.SubElement(
        channel,
        "{http://www.w3.org/2005/Atom}link",
        {"href": f"{base}/feed/{quote(name)}.xml", "rel": "self", "type": "application/rss+xml"},
    )
    for item in items:
        entry = ET.SubElement(channel, "item")
        link = _post_url(base, item)
        ET.SubElement(entry, "title").text = _title(item)
        ET.SubElement(entry, "link").text = link
        ET.SubElement(entry, "guid", {"isPermaLink": "true"}).text = link
        ET.SubElement(entry, "pubDate").text = format_datetime(_created(item), usegmt=True)
        ET.SubElement(entry, "description").text = str(item.get("desc") or "")
        ET.SubElement(entry, "{http://purl.org/dc/elements/1.1/}creator").text = _handle(item)
        for tag_name in item_hashtags(item):
            ET.SubElement(entry, "category").text = tag_name
    body = ET.tostring(rss, encoding="utf-8", xml_declaration=True)
    handler._send(HTTPStatus.OK, body, "application/rss+xml; charset=utf-8", head=head)


# -- account pages ------------------------------------------------------------------------------
def sec_uid(handle: str) -> str:
    """A stable stand-in for TikTok's opaque ``secUid`` of an account."""
    return "MS4wLjABAAAA" + hashlib.sha1(f"secuid:{handle.lower()}".encode()).hexdigest()


def _account_items(handler: Any, handle: str) -> list[dict[str, Any]]:
    wanted = handle.lower()
    return [i for i in _items(handler) if _handle(i).lower() == wanted]


def account_page(handler: Any, *, head: bool, query: dict[str, list[str]], user: str) -> None:
    if handler.replica.captcha:
        handler._send_captcha(head=head)
        return
    if handler.replica.signed:
        handler._start_session()
    handle = user.lstrip("@")
    items = _account_items(handler, handle)
    scope: dict[str, Any] = {"webapp.app-context": {"language": "en", "region": "US"}}
    if not items:
        scope["webapp.user-detail"] = {"statusCode": USER_NOT_FOUND, "statusMsg": "user not exist"}
        handler._send_html(rehydration_page(f"@{handle} | replica", scope), head=head)
        return
    author = _author(items[0])
    scope["webapp.user-detail"] = {
        "statusCode": 0,
        "statusMsg": "",
        "userInfo": {
            "user": {
                "id": str(author.get("id") or ""),
                "uniqueId": _handle(items[0]),
                "nickname": author.get("nickname") or _handle(items[0]),
                "secUid": sec_uid(_handle(items[0])),
            },
            "stats": {
                "followerCount": as_dict(items[0].get("authorStats")).get("followerCount", 0),
                "videoCount": len(items),
            },
        },
    }
    if not handler.replica.signed:
        scope["webapp.user-item-list"] = handler._page(items, 0, handler.replica.page_size)
    title = f"{author.get('nickname') or handle} (@{_handle(items[0])}) | replica"
    handler._send_html(rehydration_page(title, scope), head=head)


def account_item_list(handler: Any, *, head: bool, query: dict[str, list[str]]) -> None:
    if _api_fault(handler, head=head):
        return
    if handler.replica.signed and not handler._signature_ok():
        handler.replica.faults.count("unsigned")
        handler._send(HTTPStatus.OK, b"", "application/json; charset=utf-8", head=head)
        return
    wanted = query.get("secUid", [""])[0]
    handles = {sec_uid(_handle(i)): _handle(i) for i in _items(handler)}
    if wanted not in handles:
        empty = {"itemList": [], "hasMore": False, "cursor": "0"}
        handler._send_json({"statusCode": USER_NOT_FOUND, **empty}, head=head)
        return
    items = _account_items(handler, handles[wanted])
    count = min(_int_param(query, "count", handler.replica.page_size) or 1, MAX_RESULTS)
    page = handler._page(items, _int_param(query, "cursor", 0), count)
    handler._send_json({**page, "statusCode": 0}, head=head)


def _int_param(query: dict[str, list[str]], key: str, default: int) -> int:
    try:
        return max(0, int(query[key][0]))
    except (KeyError, ValueError):
        return default


# -- YouTube Data API v3 --------------------------------------------------------------------------
def _error_body(code: int, message: str, reason: str, domain: str, **extra: Any) -> bytes:
    """Google's JSON error answer."""
    error = {
        "code": code,
        "message": message,
        "errors": [{"message": message, "domain": domain, "reason": reason}],
        **extra,
    }
    return json.dumps({"error": error}).encode()


def _send_error(
    handler: Any, code: int, message: str, reason: str, domain: str, *, head: bool, **extra: Any
) -> None:
    body = _error_body(code, message, reason, domain, **extra)
    handler._send(code, body, "application/json; charset=UTF-8", head=head)


def _key_ok(handler: Any, query: dict[str, list[str]], *, head: bool) -> bool:
    """Whether the request carries a usable key; answers the API's error when not."""
    key = query.get("key", [""])[0]
    if not key:
        message = (
            "Method doesn't allow unregistered callers (callers without established identity). "
            "Please use API Key or other form of API consumer identity to call this API."
        )
        _send_error(
            handler, 403, message, "forbidden", "global", head=head, status="PERMISSION_DENIED"
        )
        return False
    if key == SPENT_API_KEY:
        message = (
            "The request cannot be completed because you have exceeded your "
            '<a href="/youtube/v3/getting-started#quota">quota</a>.'
        )
        _send_error(handler, 403, message, "quotaExceeded", "youtube.quota", head=head)
        return False
    if key != API_KEY:
        message = "API key not valid. Please pass a valid API key."
        details = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "youtube.googleapis.com"},
            }
        ]
        _send_error(
            handler,
            400,
            message,
            "badRequest",
            "global",
            head=head,
            status="INVALID_ARGUMENT",
            details=details,
        )
        return False
    return True


def channel_id(handle: str) -> str:
    """A YouTube-shaped channel id (``UC`` and 22 characters) for a replica account."""
    digest = hashlib.sha1(f"channel:{handle.lower()}".encode()).digest()
    return "UC" + base64.urlsafe_b64encode(digest).decode()[:22]


def _etag(obj: Any) -> str:
    return base64.urlsafe_b64encode(
        hashlib.sha1(json.dumps(obj, sort_keys=True).encode()).digest()
    ).decode()[:27]


def _page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"replica:{offset}".encode()).decode().rstrip("=")


def _offset_of(token: str) -> int | None:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    m = re.fullmatch(r"replica:(\d+)", text)
    return int(m.group(1)) if m else None


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_rfc3339(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


def _thumbnails(base: str, item: dict[str, Any]) -> dict[str, Any]:
    vid = quote(str(item["id"]))
    sizes = {"default": (120, 90), "medium": (320, 180), "high": (480, 360)}
    return {
        name: {"url": f"{base}/vi/{vid}/{name}.jpg", "width": w, "height": h}
        for name, (w, h) in sizes.items()
    }


def _snippet(base: str, item: dict[str, Any], *, full: bool) -> dict[str, Any]:
    """search.list's snippet (``full=False``: description cut as search results cut it,
    text HTML-escaped) or videos.list's (full description, tags)."""
    desc = str(item.get("desc") or "")
    author = _author(item)
    snippet: dict[str, Any] = {
        "publishedAt": _rfc3339(_created(item)),
        "channelId": channel_id(_handle(item)),
        "title": _title(item),
        "description": desc if full else desc[:160],
        "thumbnails": _thumbnails(base, item),
        "channelTitle": author.get("nickname") or _handle(item),
        "liveBroadcastContent": "none",
    }
    if full:
        snippet["tags"] = item_hashtags(item)
        snippet["categoryId"] = "1"
    else:
        snippet["publishTime"] = snippet["publishedAt"]
        for key in ("title", "description", "channelTitle"):
            snippet[key] = _entities(snippet[key])
    return snippet


def _entities(text: str) -> str:
    """search.list sends titles, descriptions and channel names HTML-escaped (``Rubik&#39;s``);
    videos.list sends them plain."""
    return html.escape(text).replace("&#x27;", "&#39;")


def _matches(item: dict[str, Any], q: str) -> bool:
    """``#tag`` matches the item's hashtags; other words must all occur in its caption."""
    words = q.lower().split()
    tags = set(item_hashtags(item))
    text = str(item.get("desc") or "").lower()
    for word in words:
        if word.startswith("#"):
            if normalize_hashtag(word) not in tags:
                return False
        elif word not in text:
            return False
    return True


def youtube_search(handler: Any, *, head: bool, query: dict[str, list[str]]) -> None:
    if _api_fault(handler, head=head):
        return
    if not _key_ok(handler, query, head=head):
        return
    handler.replica.faults.count("youtube.search")
    param = {k: v[0] for k, v in query.items() if v}
    if not {"id", "snippet"} & set(param.get("part", "").split(",")):
        message = "Required parameter: part"
        _send_error(handler, 400, message, "required", "global", head=head)
        return
    items = _items(handler)
    if param.get("q"):
        items = [i for i in items if _matches(i, param["q"])]
    if param.get("channelId"):
        items = [i for i in items if channel_id(_handle(i)) == param["channelId"]]
    for bound, keep in (("publishedAfter", True), ("publishedBefore", False)):
        if bound in param:
            when = _parse_rfc3339(param[bound])
            if when is None:
                message = f"Invalid value for {bound}: {param[bound]}"
                reason, domain = "invalidParameter", "youtube.parameter"
                _send_error(handler, 400, message, reason, domain, head=head)
                return
            items = [i for i in items if (_created(i) > when) is keep]
    duration = param.get("videoDuration", "any")
    if duration in _DURATIONS:
        low, high = _DURATIONS[duration]
        items = [i for i in items if low <= _duration(i) < high]
    if param.get("order") == "viewCount":
        items.sort(key=lambda i: -int(as_dict(i.get("stats")).get("playCount") or 0))
    offset = 0
    if param.get("pageToken"):
        parsed = _offset_of(param["pageToken"])
        if parsed is None:
            message = "The request specifies an invalid page token."
            _send_error(handler, 400, message, "invalidPageToken", "youtube.parameter", head=head)
            return
        offset = parsed
    # The API refuses maxResults over 50; the replica only serves at most 50.
    count = min(_int_param(query, "maxResults", 5), MAX_RESULTS)
    chunk = items[offset : offset + count]
    base = handler.base_url
    results = []
    for item in chunk:
        result: dict[str, Any] = {
            "kind": "youtube#searchResult",
            "id": {"kind": "youtube#video", "videoId": str(item["id"])},
        }
        if "snippet" in param["part"].split(","):
            result["snippet"] = _snippet(base, item, full=False)
        results.append({"kind": result["kind"], "etag": _etag(result), **result})
    answer: dict[str, Any] = {"kind": "youtube#searchListResponse", "etag": ""}
    if offset + count < len(items) and chunk:
        answer["nextPageToken"] = _page_token(offset + count)
    if offset > 0:
        answer["prevPageToken"] = _page_token(max(0, offset - count))
    answer["regionCode"] = param.get("regionCode", "US")
    answer["pageInfo"] = {"totalResults": len(items), "resultsPerPage": count}
    answer["items"] = results
    answer["etag"] = _etag(answer)
    handler._send_json(answer, head=head)


def youtube_videos(handler: Any, *, head: bool, query: dict[str, list[str]]) -> None:
    if _api_fault(handler, head=head):
        return
    if not _key_ok(handler, query, head=head):
        return
    handler.replica.faults.count("youtube.videos")
    parts = set(query.get("part", [""])[0].split(","))
    ids = [i for i in query.get("id", [""])[0].split(",") if i]
    if len(ids) > MAX_RESULTS:
        message = "The request specifies too many video ids."
        _send_error(handler, 400, message, "tooManyIds", "youtube.parameter", head=head)
        return
    by_id = handler.replica.catalog().by_id
    base = handler.base_url
    items = []
    for vid in ids:
        item = by_id.get(vid)
        if item is None:
            continue  # the API leaves out ids it does not know
        stats = as_dict(item.get("stats"))
        video = as_dict(item.get("video"))
        resource: dict[str, Any] = {"kind": "youtube#video", "id": str(item["id"])}
        if "snippet" in parts:
            resource["snippet"] = _snippet(base, item, full=True)
        if "contentDetails" in parts:
            resource["contentDetails"] = {
                "duration": f"PT{_duration(item)}S",
                "dimension": "2d",
                "definition": "hd" if int(video.get("height") or 0) >= 720 else "sd",
                "caption": "false",
                "licensedContent": False,
                "contentRating": {},
                "projection": "rectangular",
            }
        if "statistics" in parts:
            # The API sends counts as strings.
            resource["statistics"] = {
                "viewCount": str(stats.get("playCount") or 0),
                "likeCount": str(stats.get("diggCount") or 0),
                "favoriteCount": "0",
                "commentCount": str(stats.get("commentCount") or 0),
            }
        items.append({"kind": resource["kind"], "etag": _etag(resource), **resource})
    answer = {
        "kind": "youtube#videoListResponse",
        "etag": _etag(items),
        "items": items,
        "pageInfo": {"totalResults": len(items), "resultsPerPage": len(items)},
    }
    handler._send_json(answer, head=head)


def youtube_channels(handler: Any, *, head: bool, query: dict[str, list[str]]) -> None:
    """``channels.list`` by ``forHandle`` (``@name`` or ``name``) or ``id``."""
    if _api_fault(handler, head=head):
        return
    if not _key_ok(handler, query, head=head):
        return
    handler.replica.faults.count("youtube.channels")
    wanted_handle = query.get("forHandle", [""])[0].lstrip("@").lower()
    wanted_id = query.get("id", [""])[0]
    found: dict[str, dict[str, Any]] = {}
    for item in _items(handler):
        handle = _handle(item)
        if handle.lower() == wanted_handle or (wanted_id and channel_id(handle) == wanted_id):
            found.setdefault(handle, item)
    items = []
    for handle, item in found.items():
        author = _author(item)
        resource = {
            "kind": "youtube#channel",
            "id": channel_id(handle),
            "snippet": {
                "title": author.get("nickname") or handle,
                "description": "",
                "customUrl": f"@{handle.lower()}",
                "publishedAt": _rfc3339(_created(item)),
                "thumbnails": {},
            },
        }
        items.append({"kind": resource["kind"], "etag": _etag(resource), **resource})
    answer: dict[str, Any] = {
        "kind": "youtube#channelListResponse",
        "etag": _etag(items),
        "pageInfo": {"totalResults": len(items), "resultsPerPage": 5},
    }
    if items:  # the API leaves ``items`` out when nothing matched
        answer["items"] = items
    handler._send_json(answer, head=head)


def _redirect_to_post(handler: Any, video_id: str, *, head: bool) -> None:
    item = handler.replica.catalog().by_id.get(video_id)
    if item is None:
        handler._send_text(HTTPStatus.NOT_FOUND, "video not found\n", head=head)
        return
    location = _post_url(handler.base_url, item)
    handler._send(HTTPStatus.FOUND, b"", "text/plain", head=head, headers={"Location": location})


def watch_page(handler: Any, *, head: bool, query: dict[str, list[str]]) -> None:
    _redirect_to_post(handler, query.get("v", [""])[0], head=head)


def shorts_page(handler: Any, *, head: bool, query: dict[str, list[str]], id: str) -> None:
    _redirect_to_post(handler, id, head=head)


ROUTES = [
    (re.compile(r"/feed/(?P<tag>[^/]+)\.xml"), rss_feed),
    (re.compile(r"/@(?P<user>[^/]+)/?"), account_page),
    (re.compile(r"/api/post/item_list/?"), account_item_list),
    (re.compile(r"/youtube/v3/search"), youtube_search),
    (re.compile(r"/youtube/v3/videos"), youtube_videos),
    (re.compile(r"/youtube/v3/channels"), youtube_channels),
    (re.compile(r"/watch"), watch_page),
    (re.compile(r"/shorts/(?P<id>[^/]+)/?"), shorts_page),
]

__all__ = ["API_KEY", "ROUTES", "SPENT_API_KEY", "channel_id", "sec_uid"]
