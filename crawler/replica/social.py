"""The replica as Instagram and X: login-walled listing pages whose scripts fetch the posts.

The same posts the TikTok face serves, in the two platforms' web shapes:

Instagram
    ``/accounts/login/`` a login form (``username``, ``password``; submitted with GET, the
    replica has no POST) that sets the ``sessionid`` cookie;
    ``/explore/tags/<tag>/`` redirects to ``/accounts/login/?next=...`` without a valid
    ``sessionid``, else serves a grid page whose script asks
    ``/api/v1/tags/web_info/?tag_name=<tag>`` (``data.top.sections``) on load and
    ``/api/v1/tags/<tag>/sections/?max_id=&page=&tab=top`` (``sections``, ``more_available``,
    ``next_max_id``) as the reader scrolls, sending ``X-IG-App-ID`` as the web app does;
    the first section of a page is the clips column (``one_by_two_item.clips.items`` and
    ``fill_items``), the rest are rows of three (``medias``); the first answer also lists a
    photo, as real tag grids mix photos with reels; ``/reel/<code>/`` and ``/p/<code>/`` are
    public post pages with a ``<video>``.

X
    ``/i/flow/login`` a login form that sets ``auth_token`` (HttpOnly) and ``ct0`` (the CSRF
    token the page script echoes in ``x-csrf-token``); ``/search?q=&f=live`` redirects to
    ``/i/flow/login?redirect_after_login=...`` without a valid ``auth_token``, else serves a
    timeline page whose script asks ``/i/api/graphql/<id>/SearchTimeline?variables=...`` with
    the bottom cursor as the reader scrolls; answers carry ``TimelineAddEntries`` (first
    page: cursors among the entries; later pages: ``TimelineReplaceEntry``), every second
    tweet wrapped as ``TweetWithVisibilityResults``, users in the 2025 shape
    (``core.screen_name``); queries understand ``#tag``, ``from:user``, ``filter:videos`` and
    plain words, and without ``filter:videos`` the first page also lists a photo tweet and a
    text tweet; ``/<user>/status/<id>`` is a public post page with a ``<video>``.

API calls without the login cookie answer as the platforms do (Instagram 401
``require_login``; X 401 code 32, 403 code 353 for a missing CSRF header). Sessions are MACs
under the server's secret, so a storage state from another replica run is a logged-out one.
:func:`storage_state` makes a logged-in Playwright storage state for tests.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import re
import secrets
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import urlencode, urlsplit

from crawler.replica.site import challenge_id
from crawler.sources.instagram import pk_of_shortcode, shortcode
from crawler.tiktok_format import script_json
from reelwatch.models import normalize_hashtag

IG_COOKIE = "sessionid"
X_COOKIE = "auth_token"
X_CSRF_COOKIE = "ct0"
IG_APP_ID = "936619743392459"
X_SEARCH_QUERY_ID = "nK1dw4oV3k4w5TdtcAdSww"
X_BEARER = "AAAAAAAAAAAAAAAAAAAAAreplicaWebClient"


# -- sessions ---------------------------------------------------------------------------------
def session_token(secret: bytes, platform: str) -> str:
    nonce = secrets.token_hex(12)
    mac = hmac.new(secret, f"login:{platform}:{nonce}".encode(), hashlib.sha256).hexdigest()
    return nonce + mac[:16]


def session_ok(secret: bytes, platform: str, token: str | None) -> bool:
    if not token or len(token) != 40:
        return False
    nonce, mac = token[:24], token[24:]
    want = hmac.new(secret, f"login:{platform}:{nonce}".encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(mac, want[:16])


def _login_cookies(secret: bytes, platform: str) -> dict[str, tuple[str, bool]]:
    """Cookie name → (value, HttpOnly) that a successful login sets."""
    if platform == "instagram":
        return {
            IG_COOKIE: (session_token(secret, platform), True),
            "csrftoken": (secrets.token_hex(16), False),
            "ds_user_id": ("1" + secrets.token_hex(4), False),
        }
    return {
        X_COOKIE: (session_token(secret, platform), True),
        X_CSRF_COOKIE: (secrets.token_hex(16), False),
        "twid": ("u%3D1" + secrets.token_hex(4), False),
    }


def storage_state(base_url: str, secret: bytes, platform: str) -> dict[str, Any]:
    """A Playwright storage state logged in to ``platform`` ("instagram" or "x") on the
    replica at ``base_url`` (whose server holds ``secret``)."""
    host = urlsplit(base_url).hostname or "127.0.0.1"
    cookies = [
        {
            "name": name,
            "value": value,
            "domain": host,
            "path": "/",
            "expires": -1,
            "httpOnly": http_only,
            "secure": False,
            "sameSite": "Lax",
        }
        for name, (value, http_only) in _login_cookies(secret, platform).items()
    ]
    return {"cookies": cookies, "origins": []}


def _logged_in(handler: Any, platform: str) -> bool:
    cookie = IG_COOKIE if platform == "instagram" else X_COOKIE
    return session_ok(handler.replica.secret, platform, handler._cookie(cookie))


def _local(path: str, default: str) -> str:
    """``path`` when it is a path on this site (no open redirects), else ``default``."""
    return path if path.startswith("/") and not path.startswith("//") else default


def _redirect(handler: Any, location: str, *, head: bool) -> None:
    handler._send(
        HTTPStatus.FOUND, b"", "text/html; charset=utf-8", head=head, headers={"Location": location}
    )


def _json(handler: Any, status: int, obj: Any, *, head: bool) -> None:
    body = json.dumps(obj, ensure_ascii=False).encode()
    handler._send(status, body, "application/json; charset=utf-8", head=head)


def _page(title: str, body: str) -> bytes:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head>\n<body>{body}</body></html>\n"
    ).encode()


def _arg(query: dict[str, list[str]], key: str) -> str:
    return (query.get(key) or [""])[0]


def _login(
    handler: Any, platform: str, next_key: str, default: str, *, head: bool, query: Any
) -> None:
    """A login form; submitted with a user name and password, it sets the session cookies
    and sends the reader on (to ``next_key``'s path, or a "logged in" page)."""
    user, password = _arg(query, "username").strip(), _arg(query, "password")
    after = _arg(query, next_key)
    if user and password:
        handler._set_cookies = [
            f"{name}={value}; Path=/; SameSite=Lax" + ("; HttpOnly" if http_only else "")
            for name, (value, http_only) in _login_cookies(handler.replica.secret, platform).items()
        ]
        handler.replica.faults.count(f"{platform}_login")
        if after:
            _redirect(handler, _local(after, default), head=head)
        else:
            body = f"<h1>Logged in as {html.escape(user)}</h1><p>You can close this window.</p>"
            handler._send_html(_page(f"{platform} replica", body), head=head)
        return
    path = urlsplit(handler.path).path
    form = (
        f'<form id="loginForm" method="get" action="{html.escape(path)}">'
        f'<input type="hidden" name="{next_key}" value="{html.escape(after)}">'
        '<label>Username <input name="username" autocomplete="username"></label>'
        '<label>Password <input name="password" type="password" '
        'autocomplete="current-password"></label>'
        '<button type="submit">Log in</button></form>'
    )
    handler._send_html(_page(f"Log in · {platform} replica", form), head=head)


def _items_html(kind: str) -> str:
    return (
        f"<style>#{kind} a{{display:block;height:240px;margin:8px;border:1px solid #ccc}}"
        f'</style><div id="{kind}"></div>'
    )


def _post_page(handler: Any, item: dict[str, Any], *, head: bool) -> None:
    """A public post page: caption and the video (yt-dlp's generic extractor finds it)."""
    media = handler._public_item(item)["video"]["playAddr"]
    author = (item.get("author") or {}).get("uniqueId") or ""
    body = (
        f"<article><h1>@{html.escape(author)}</h1><p>{html.escape(item.get('desc') or '')}</p>"
        f'<video controls src="{html.escape(media)}"></video></article>'
    )
    head_meta = f'<meta property="og:video" content="{html.escape(media)}">'
    page = _page(f"{item.get('desc') or item['id']} | replica", body)
    handler._send_html(page.replace(b"</head>", head_meta.encode() + b"</head>", 1), head=head)


def _numbers(item: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    return item.get("author") or {}, item.get("stats") or {}, item.get("video") or {}


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"replica:{offset}".encode()).decode().rstrip("=")


def _offset(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        return max(0, int(text.removeprefix("replica:")))
    except (ValueError, UnicodeDecodeError):
        return 0


# -- Instagram --------------------------------------------------------------------------------
def _pk(code: str) -> str | None:
    try:
        return str(pk_of_shortcode(code))
    except ValueError:
        return None


def ig_media(handler: Any, item: dict[str, Any]) -> dict[str, Any]:
    """A replica item as Instagram's web API serves a reel."""
    author, stats, video = _numbers(item)
    pk = str(item["id"])
    width, height = int(video.get("width") or 720), int(video.get("height") or 1280)
    media = handler._public_item(item)["video"]["playAddr"]
    created = int(item.get("createTime") or 0)
    return {
        "pk": pk,
        "id": f"{pk}_{author.get('id') or 0}",
        "code": shortcode(pk) if pk.isdigit() else pk,
        "media_type": 2,
        "product_type": "clips",
        "taken_at": created,
        "caption": {"pk": f"1{pk}", "text": item.get("desc") or "", "created_at": created},
        "user": {
            "pk": str(author.get("id") or ""),
            "username": author.get("uniqueId") or "",
            "full_name": author.get("nickname") or "",
            "is_private": False,
            "is_verified": False,
        },
        "play_count": stats.get("playCount"),
        "ig_play_count": stats.get("playCount"),
        "like_count": stats.get("diggCount"),
        "comment_count": stats.get("commentCount"),
        "video_duration": float(video.get("duration") or 0),
        "original_width": width,
        "original_height": height,
        "video_versions": [{"type": 101, "width": width, "height": height, "url": media}],
        "image_versions2": {
            "candidates": [{"width": width, "height": height, "url": f"{media}#thumbnail"}]
        },
    }


def ig_photo(handler: Any, tag: str) -> dict[str, Any]:
    """A photo post under ``tag``: Instagram's tag grids mix them with reels."""
    pk = challenge_id(f"photo:{tag}")
    return {
        "pk": pk,
        "id": f"{pk}_1",
        "code": shortcode(pk),
        "media_type": 1,
        "product_type": "feed",
        "taken_at": 1_700_000_000,
        "caption": {"text": f"a photo of #{tag}"},
        "user": {"pk": "1", "username": "photographer", "full_name": "Photographer"},
        "like_count": 3,
        "comment_count": 0,
        "image_versions2": {
            "candidates": [{"width": 1080, "height": 1080, "url": f"{handler.base_url}/p.jpg"}]
        },
    }


def _ig_sections(medias: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Grid sections: a clips column (one reel and its fill items), then rows of three."""
    if not medias:
        return []
    first, rest = medias[:3], medias[3:]
    sections: list[dict[str, Any]] = [
        {
            "layout_type": "one_by_two_right",
            "feed_type": "clips",
            "layout_content": {
                "one_by_two_item": {"clips": {"id": "clips", "items": [{"media": first[0]}]}},
                "fill_items": [{"media": m} for m in first[1:]],
            },
        }
    ]
    for i in range(0, len(rest), 3):
        sections.append(
            {
                "layout_type": "media_grid",
                "feed_type": "media",
                "layout_content": {"medias": [{"media": m} for m in rest[i : i + 3]]},
            }
        )
    return sections


def _ig_page(handler: Any, tag: str, offset: int) -> dict[str, Any]:
    items = handler.replica.catalog().by_tag.get(tag, [])
    size = max(1, handler.replica.page_size)
    chunk = items[offset : offset + size]
    end = offset + len(chunk)
    handler.replica.served_pages.append(len(chunk))
    medias = [ig_media(handler, i) for i in chunk]
    if offset == 0 and items:
        medias.insert(1, ig_photo(handler, tag))
    more = end < len(items)
    return {
        "sections": _ig_sections(medias),
        "more_available": more,
        "next_max_id": _cursor(end) if more else None,
        "next_page": end // size,
        "next_media_ids": [],
    }


def _ig_api_refusal(handler: Any, *, head: bool) -> bool:
    if not _logged_in(handler, "instagram"):
        handler.replica.faults.count("instagram_logged_out_api")
        refusal = {
            "message": "Please wait a few minutes before you try again.",
            "require_login": True,
            "status": "fail",
        }
        _json(handler, HTTPStatus.UNAUTHORIZED, refusal, head=head)
        return True
    if handler.headers.get("X-IG-App-ID") != IG_APP_ID:
        _json(
            handler,
            HTTPStatus.BAD_REQUEST,
            {"message": "useragent mismatch", "status": "fail"},
            head=head,
        )
        return True
    return False


def ig_login(handler: Any, *, head: bool, query: dict[str, list[str]]) -> None:
    _login(handler, "instagram", "next", "/", head=head, query=query)


def ig_tag_page(handler: Any, *, head: bool, query: dict[str, list[str]], tag: str) -> None:
    if handler.replica.captcha:
        handler._send_captcha(head=head)
        return
    if not _logged_in(handler, "instagram"):
        handler.replica.faults.count("instagram_login_wall")
        _redirect(handler, "/accounts/login/?" + urlencode({"next": handler.path}), head=head)
        return
    tag = normalize_hashtag(tag)
    script = IG_SCRIPT % {"tag": script_json(tag), "app": script_json(IG_APP_ID)}
    body = f"<header><h1>#{html.escape(tag)}</h1></header>{_items_html('grid')}{script}"
    handler._send_html(_page(f"#{tag} • Instagram replica", body), head=head)


def ig_web_info(handler: Any, *, head: bool, query: dict[str, list[str]]) -> None:
    if _ig_api_refusal(handler, head=head):
        return
    tag = normalize_hashtag(_arg(query, "tag_name"))
    count = len(handler.replica.catalog().by_tag.get(tag, []))
    data = {
        "id": challenge_id(tag),
        "name": tag,
        "media_count": count,
        "formatted_media_count": str(count),
        "top": _ig_page(handler, tag, 0),
        "recent": {"sections": [], "more_available": False},
    }
    _json(handler, HTTPStatus.OK, {"data": data, "status": "ok"}, head=head)


def ig_sections(handler: Any, *, head: bool, query: dict[str, list[str]], tag: str) -> None:
    if _ig_api_refusal(handler, head=head):
        return
    page = _ig_page(handler, normalize_hashtag(tag), _offset(_arg(query, "max_id")))
    _json(handler, HTTPStatus.OK, {**page, "status": "ok"}, head=head)


def ig_post_page(handler: Any, *, head: bool, query: dict[str, list[str]], code: str) -> None:
    pk = _pk(code)
    item = handler.replica.catalog().by_id.get(pk) if pk else None
    if item is None:
        handler._send_text(HTTPStatus.NOT_FOUND, "post not found\n", head=head)
        return
    _post_page(handler, item, head=head)


IG_SCRIPT = """
<script>
(function () {
  var tag = %(tag)s, appId = %(app)s;
  var maxId = null, page = 0, first = true, more = true, loading = false;
  function render(sections) {
    var grid = document.getElementById("grid");
    sections.forEach(function (s) {
      var c = s.layout_content || {}, clips = ((c.one_by_two_item || {}).clips || {}).items || [];
      clips.concat(c.medias || [], c.fill_items || []).forEach(function (row) {
        var m = row.media, a = document.createElement("a");
        a.href = (m.product_type === "clips" ? "/reel/" : "/p/") + m.code + "/";
        a.textContent = (m.caption || {}).text || m.code;
        grid.appendChild(a);
      });
    });
  }
  function load() {
    if (loading || !more) return;
    loading = true;
    var url = first
      ? "/api/v1/tags/web_info/?tag_name=" + encodeURIComponent(tag)
      : "/api/v1/tags/" + encodeURIComponent(tag) + "/sections/?" + new URLSearchParams(
          {max_id: maxId, page: String(page), tab: "top", surface: "grid"}).toString();
    fetch(url, {credentials: "same-origin",
                headers: {"X-IG-App-ID": appId, "X-Requested-With": "XMLHttpRequest"}})
      .then(function (r) { return r.json(); })
      .then(function (d) {
        var box = first ? ((d.data || {}).top || {}) : d;
        first = false;
        render(box.sections || []);
        more = !!box.more_available;
        maxId = box.next_max_id;
        page = box.next_page;
      })
      .catch(function () { more = false; })
      .finally(function () { loading = false; setTimeout(nearBottom, 50); });
  }
  function nearBottom() {
    var end = document.getElementById("grid").getBoundingClientRect().bottom;
    if (end < window.innerHeight + 300) load();
  }
  window.addEventListener("scroll", nearBottom);
  load();
})();
</script>
"""


# -- X ----------------------------------------------------------------------------------------
def _x_date(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%a %b %d %H:%M:%S +0000 %Y")


def _hashtag_entities(text: str, tags: list[str]) -> list[dict[str, Any]]:
    out, lowered = [], text.lower()
    for tag in tags:
        at = lowered.find(f"#{tag.lower()}")
        if at >= 0:
            out.append(
                {"indices": [at, at + len(tag) + 1], "text": text[at + 1 : at + 1 + len(tag)]}
            )
    return out


def _x_user(user_id: str, handle: str, name: str, followers: int) -> dict[str, Any]:
    return {
        "__typename": "User",
        "id": base64.b64encode(f"User:{user_id}".encode()).decode(),
        "rest_id": user_id,
        "core": {"created_at": _x_date(1_400_000_000), "name": name, "screen_name": handle},
        "legacy": {"description": "", "followers_count": followers, "friends_count": 10},
        "is_blue_verified": False,
    }


def x_tweet(handler: Any, item: dict[str, Any]) -> dict[str, Any]:
    """A replica item as X's GraphQL serves a tweet with a video."""
    author, stats, video = _numbers(item)
    tid = str(item["id"])
    media = handler._public_item(item)["video"]["playAddr"]
    low = media + ("&" if "?" in media else "?") + "bitrate=256000"
    width, height = int(video.get("width") or 720), int(video.get("height") or 1280)
    text = item.get("desc") or ""
    tags = [t.get("hashtagName") for t in item.get("textExtra") or [] if t.get("hashtagName")]
    user_id = str(author.get("id") or "")
    return {
        "__typename": "Tweet",
        "rest_id": tid,
        "core": {
            "user_results": {
                "result": _x_user(
                    user_id,
                    author.get("uniqueId") or "",
                    author.get("nickname") or "",
                    int((item.get("authorStats") or {}).get("followerCount") or 0),
                )
            }
        },
        "views": {"count": str(stats.get("playCount") or 0), "state": "EnabledWithCount"},
        "legacy": {
            "id_str": tid,
            "full_text": text,
            "created_at": _x_date(int(item.get("createTime") or 0)),
            "conversation_id_str": tid,
            "user_id_str": user_id,
            "lang": "en",
            "favorite_count": stats.get("diggCount") or 0,
            "retweet_count": stats.get("shareCount") or 0,
            "reply_count": stats.get("commentCount") or 0,
            "quote_count": 0,
            "bookmark_count": 0,
            "entities": {
                "hashtags": _hashtag_entities(text, tags),
                "urls": [],
                "user_mentions": [],
            },
            "extended_entities": {
                "media": [
                    {
                        "id_str": tid,
                        "media_key": f"7_{tid}",
                        "type": "video",
                        "media_url_https": f"{handler.base_url}/thumb/{tid}.jpg",
                        "video_info": {
                            "aspect_ratio": [width, height],
                            "duration_millis": int(float(video.get("duration") or 0) * 1000),
                            "variants": [
                                {
                                    "content_type": "application/x-mpegURL",
                                    "url": f"{handler.base_url}/ext_tw_video/{tid}/pl/x.m3u8",
                                },
                                {"bitrate": 256000, "content_type": "video/mp4", "url": low},
                                {"bitrate": 832000, "content_type": "video/mp4", "url": media},
                            ],
                        },
                    }
                ]
            },
        },
    }


def x_plain_tweets(handler: Any, seed: str) -> list[dict[str, Any]]:
    """A photo tweet and a text tweet: what a search lists without ``filter:videos``."""
    base = int(challenge_id(f"tweets:{seed}"))
    user = _x_user("2", "talker", "Talker", 5)
    photo, text = str(base * 10 + 1), str(base * 10 + 2)

    def tweet(tid: str, media: list[dict[str, Any]]) -> dict[str, Any]:
        legacy: dict[str, Any] = {
            "id_str": tid,
            "full_text": f"no video here {seed}",
            "created_at": _x_date(1_700_000_000),
            "favorite_count": 1,
            "retweet_count": 0,
            "reply_count": 0,
            "entities": {"hashtags": []},
        }
        if media:
            legacy["extended_entities"] = {"media": media}
        return {
            "__typename": "Tweet",
            "rest_id": tid,
            "core": {"user_results": {"result": user}},
            "legacy": legacy,
        }

    picture = {"type": "photo", "id_str": photo, "media_url_https": f"{handler.base_url}/p.jpg"}
    return [tweet(photo, [picture]), tweet(text, [])]


def _x_matches(item: dict[str, Any], tags: list[str], users: list[str], words: list[str]) -> bool:
    from crawler.tiktok_format import item_hashtags

    if any(t not in item_hashtags(item) for t in tags):
        return False
    handle = str((item.get("author") or {}).get("uniqueId") or "").lower()
    if users and handle not in users:
        return False
    desc = str(item.get("desc") or "").lower()
    return all(w in desc for w in words)


def x_search_items(handler: Any, raw_query: str) -> tuple[list[dict[str, Any]], bool]:
    """Catalog items matching an X search, newest first, and whether ``filter:videos`` was
    asked."""
    tags, users, words, videos_only = [], [], [], False
    for token in raw_query.lower().split():
        if token.startswith("#"):
            tags.append(normalize_hashtag(token))
        elif token.startswith("from:"):
            users.append(token[5:].lstrip("@"))
        elif token in ("filter:videos", "filter:native_video"):
            videos_only = True
        elif not token.startswith(("filter:", "lang:", "-")):
            words.append(token)
    items = handler.replica.catalog().by_id.values()
    return [i for i in items if _x_matches(i, tags, users, words)], videos_only


def _x_entry(result: dict[str, Any]) -> dict[str, Any]:
    tid = result.get("rest_id") or (result.get("tweet") or {}).get("rest_id")
    return {
        "entryId": f"tweet-{tid}",
        "sortIndex": str(tid),
        "content": {
            "entryType": "TimelineTimelineItem",
            "__typename": "TimelineTimelineItem",
            "itemContent": {
                "itemType": "TimelineTweet",
                "__typename": "TimelineTweet",
                "tweet_results": {"result": result},
                "tweetDisplayType": "Tweet",
            },
        },
    }


def _x_cursor(kind: str, value: str) -> dict[str, Any]:
    return {
        "entryId": f"cursor-{kind.lower()}-{value}",
        "sortIndex": value,
        "content": {
            "entryType": "TimelineTimelineCursor",
            "__typename": "TimelineTimelineCursor",
            "value": value,
            "cursorType": kind,
        },
    }


def x_timeline(handler: Any, raw_query: str, cursor: str, count: int) -> dict[str, Any]:
    items, videos_only = x_search_items(handler, raw_query)
    offset = _offset(cursor) if cursor else 0
    size = max(1, min(count, handler.replica.page_size))
    chunk = items[offset : offset + size]
    handler.replica.served_pages.append(len(chunk))
    results = [x_tweet(handler, i) for i in chunk]
    if offset == 0 and not videos_only and items:
        results[1:1] = x_plain_tweets(handler, raw_query)
    for n in range(1, len(results), 2):
        results[n] = {
            "__typename": "TweetWithVisibilityResults",
            "tweet": results[n],
            "limitedActionResults": {"limited_actions": [{"action": "Reply"}]},
        }
    entries = [_x_entry(r) for r in results]
    top, bottom = _x_cursor("Top", _cursor(0)), _x_cursor("Bottom", _cursor(offset + len(chunk)))
    if offset == 0:
        instructions: list[dict[str, Any]] = [
            {"type": "TimelineClearCache"},
            {"type": "TimelineAddEntries", "entries": [*entries, top, bottom]},
        ]
    else:
        instructions = [
            {"type": "TimelineAddEntries", "entries": entries},
            {"type": "TimelineReplaceEntry", "entry_id_to_replace": top["entryId"], "entry": top},
            {
                "type": "TimelineReplaceEntry",
                "entry_id_to_replace": bottom["entryId"],
                "entry": bottom,
            },
        ]
    timeline = {"timeline": {"id": "U2VhcmNoOnJlcGxpY2E=", "instructions": instructions}}
    return {"data": {"search_by_raw_query": {"search_timeline": timeline}}}


def x_login(handler: Any, *, head: bool, query: dict[str, list[str]]) -> None:
    _login(handler, "x", "redirect_after_login", "/home", head=head, query=query)


def x_home(handler: Any, *, head: bool, query: dict[str, list[str]]) -> None:
    if not _logged_in(handler, "x"):
        _redirect(handler, "/i/flow/login", head=head)
        return
    handler._send_html(_page("Home / X replica", "<h1>Home</h1>"), head=head)


def x_search_page(handler: Any, *, head: bool, query: dict[str, list[str]]) -> None:
    if handler.replica.captcha:
        handler._send_captcha(head=head)
        return
    if not _logged_in(handler, "x"):
        handler.replica.faults.count("x_login_wall")
        target = "/i/flow/login?" + urlencode({"redirect_after_login": handler.path})
        _redirect(handler, target, head=head)
        return
    raw = _arg(query, "q")
    script = X_SCRIPT % {
        "query": script_json(raw),
        "qid": script_json(X_SEARCH_QUERY_ID),
        "bearer": script_json(X_BEARER),
        "csrf": script_json(X_CSRF_COOKIE),
    }
    body = f"<header><h1>{html.escape(raw)}</h1></header>{_items_html('timeline')}{script}"
    handler._send_html(_page(f"{raw} - Search / X replica", body), head=head)


def x_search_timeline(handler: Any, *, head: bool, query: dict[str, list[str]], qid: str) -> None:
    if not _logged_in(handler, "x"):
        handler.replica.faults.count("x_logged_out_api")
        refusal = {"errors": [{"code": 32, "message": "Could not authenticate you."}]}
        _json(handler, HTTPStatus.UNAUTHORIZED, refusal, head=head)
        return
    if not str(handler.headers.get("authorization") or "").startswith("Bearer "):
        refusal = {"errors": [{"code": 215, "message": "Bad Authentication data."}]}
        _json(handler, HTTPStatus.UNAUTHORIZED, refusal, head=head)
        return
    csrf = handler._cookie(X_CSRF_COOKIE)
    if not csrf or handler.headers.get("x-csrf-token") != csrf:
        message = "This request requires a matching csrf cookie and header."
        _json(
            handler,
            HTTPStatus.FORBIDDEN,
            {"errors": [{"code": 353, "message": message}]},
            head=head,
        )
        return
    try:
        variables = json.loads(_arg(query, "variables") or "{}")
    except ValueError:
        variables = {}
    if not isinstance(variables, dict) or not variables.get("rawQuery"):
        message = "Variable 'rawQuery' of required type 'String!' was not provided."
        _json(handler, HTTPStatus.BAD_REQUEST, {"errors": [{"message": message}]}, head=head)
        return
    count = int(variables.get("count") or 20)
    page = x_timeline(
        handler, str(variables["rawQuery"]), str(variables.get("cursor") or ""), count
    )
    _json(handler, HTTPStatus.OK, page, head=head)


def x_status_page(
    handler: Any, *, head: bool, query: dict[str, list[str]], user: str, id: str
) -> None:
    item = handler.replica.catalog().by_id.get(id)
    if item is None:
        handler._send_text(HTTPStatus.NOT_FOUND, "post not found\n", head=head)
        return
    _post_page(handler, item, head=head)


X_SCRIPT = """
<script>
(function () {
  var rawQuery = %(query)s, queryId = %(qid)s, bearer = %(bearer)s, csrfCookie = %(csrf)s;
  var cursor = null, more = true, loading = false;
  function cookie(name) {
    var m = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
    return m ? decodeURIComponent(m[1]) : "";
  }
  function render(results) {
    var box = document.getElementById("timeline");
    results.forEach(function (r) {
      var t = r.tweet || r, user = ((t.core || {}).user_results || {}).result || {};
      var a = document.createElement("a");
      a.href = "/" + ((user.core || {}).screen_name || "i") + "/status/" + t.rest_id;
      a.textContent = (t.legacy || {}).full_text || t.rest_id;
      box.appendChild(a);
    });
  }
  function load() {
    if (loading || !more) return;
    loading = true;
    var variables = {rawQuery: rawQuery, count: 20, querySource: "typed_query", product: "Latest"};
    if (cursor) variables.cursor = cursor;
    var features = {rweb_lists_timeline_redesign_enabled: true};
    var url = "/i/api/graphql/" + queryId + "/SearchTimeline?" + new URLSearchParams({
      variables: JSON.stringify(variables), features: JSON.stringify(features)
    }).toString();
    fetch(url, {credentials: "include", headers: {
        "authorization": "Bearer " + bearer, "x-csrf-token": cookie(csrfCookie),
        "x-twitter-auth-type": "OAuth2Session", "x-twitter-active-user": "yes"}})
      .then(function (r) { return r.json(); })
      .then(function (d) {
        var search = (d.data || {}).search_by_raw_query || {};
        var timeline = (search.search_timeline || {}).timeline || {};
        var results = [];
        (timeline.instructions || []).forEach(function (ins) {
          (ins.entries || (ins.entry ? [ins.entry] : [])).forEach(function (e) {
            var c = e.content || {};
            if (c.cursorType === "Bottom") { cursor = c.value; return; }
            var r = ((c.itemContent || {}).tweet_results || {}).result;
            if (r) results.push(r);
          });
        });
        render(results);
        if (!results.length) more = false;
      })
      .catch(function () { more = false; })
      .finally(function () { loading = false; setTimeout(nearBottom, 50); });
  }
  function nearBottom() {
    var end = document.getElementById("timeline").getBoundingClientRect().bottom;
    if (end < window.innerHeight + 300) load();
  }
  window.addEventListener("scroll", nearBottom);
  load();
})();
</script>
"""


ROUTES = [
    (re.compile(r"/accounts/login/?"), ig_login),
    (re.compile(r"/explore/tags/(?P<tag>[^/]+)/?"), ig_tag_page),
    (re.compile(r"/api/v1/tags/web_info/?"), ig_web_info),
    (re.compile(r"/api/v1/tags/(?P<tag>[^/]+)/sections/?"), ig_sections),
    (re.compile(r"/(?:reel|p)/(?P<code>[A-Za-z0-9_-]+)/?"), ig_post_page),
    (re.compile(r"/i/flow/login"), x_login),
    (re.compile(r"/home"), x_home),
    (re.compile(r"/search"), x_search_page),
    (re.compile(r"/i/api/graphql/(?P<qid>[A-Za-z0-9_-]+)/SearchTimeline"), x_search_timeline),
    (re.compile(r"/(?P<user>[A-Za-z0-9_]{1,15})/status/(?P<id>\d+)"), x_status_page),
]
"""Path patterns (matched against the whole path) and their answers."""

__all__ = ["ROUTES", "storage_state"]
