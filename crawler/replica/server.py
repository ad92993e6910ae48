"""The replica platform: a local HTTP server that looks like TikTok to a crawler and to yt-dlp.

The demo and the tests point reelwatch at it instead of a real platform, so it imitates the
parts of TikTok's structure our spider and extractor rely on:

- ``/tag/<name>``: an HTML page whose ``<script id="__UNIVERSAL_DATA_FOR_REHYDRATION__">``
  holds ``__DEFAULT_SCOPE__["webapp.challenge-detail"]`` (``statusCode`` 0 and
  ``challengeInfo``, or 10205 and no ``challengeInfo`` for an unknown hashtag) and the first
  page of posts under ``"webapp.challenge-item-list"``;
- ``/api/challenge/item_list/?challengeID=&cursor=&count=``: JSON pages of items, newest first,
  with ``cursor`` and ``hasMore``;
- ``/@<user>/video/<id>``: a post page with ``"webapp.video-detail"``;
- ``/video/<id>.mp4``: the media, with HEAD and single byte ranges;
- ``/robots.txt``: allows everything.

Items come from a site folder (:mod:`crawler.replica.site`), re-read when ``site.json``
changes, so a demo can publish posts while the server runs. ``video.playAddr`` and
``downloadAddr`` are filled in per request from the ``Host`` the client used.

:class:`Faults` makes the server behave like a hostile platform for tests (429 with
``Retry-After``, 500s, garbage instead of JSON from the API; an outage window or a share of
every request refused with 429/503; media served slowly); the switches may be flipped while
serving.

``signed=True`` makes it the adversary real TikTok is to crawlers (:mod:`crawler.replica.signing`):
tag pages embed no posts but set an ``msToken`` cookie and run a script that signs each
item-list call (``X-Bogus``, computed from the cookie and the query string) and loads further
pages with ``fetch`` as the reader scrolls; unsigned or wrongly signed calls get HTTP 200
with an empty body; media URLs expire after ``media_ttl_s`` and need the session's cookie and
a Referer from the site. ``captcha=True`` (switchable while serving) answers tag and video
pages with a verification page instead.

:meth:`ReplicaServer.take_down` removes a post the way TikTok does (switchable while serving,
undone by :meth:`ReplicaServer.restore`): its page still answers HTTP 200, with
``webapp.video-detail`` carrying a non-zero ``statusCode`` (:data:`~crawler.recheck.ITEM_NOT_FOUND`
for a post removed for copyright or deleted, :data:`~crawler.recheck.ITEM_PRIVATE` for one made
private) and no ``itemStruct``; its media answers 404 and it drops out of every listing (tag
pages, the item-list API, account pages and the other platforms' faces). An id the site never
had still answers 404. Faults (429, 503, captcha) apply to its page as to any other.
"""

from __future__ import annotations

import html
import json
import logging
import random
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar
from urllib.parse import parse_qs, unquote, urlsplit

from crawler.recheck import ITEM_NOT_FOUND, ITEM_PRIVATE
from crawler.replica import signing
from crawler.replica.faces import face_routes
from crawler.replica.site import SITE_FILE, challenge_id, load_items
from crawler.tiktok_format import CHALLENGE_NOT_FOUND, item_hashtags, rehydration_page
from reelwatch.models import normalize_hashtag

logger = logging.getLogger(__name__)

ALWAYS = 1 << 62
"""A fault count that never runs out."""

MAX_PAGE_COUNT = 50
"""Largest ``count`` the item-list API honours, as real platforms cap page sizes."""

SIGNED_PAGE_COUNT = 20
"""Largest page the signed API serves (TikTok's web client asks for at most this)."""

_ID_RE = re.compile(r"[A-Za-z0-9_-]+")

TAKE_DOWN_REASONS: dict[str, tuple[int, str, str]] = {
    "copyright": (ITEM_NOT_FOUND, "item doesn't exist", "Video currently unavailable"),
    "deleted": (ITEM_NOT_FOUND, "item doesn't exist", "Video currently unavailable"),
    "private": (ITEM_PRIVATE, "item is private", "This video is private"),
}
"""Why a post was taken down -> the ``statusCode`` and ``statusMsg`` its page carries, and
what the page shows a reader (TikTok says the same for a copyright removal and a deletion)."""
_RANGE_RE = re.compile(r"bytes=(\d*)-(\d*)")


@dataclass
class Faults:
    """Switches that make the API misbehave, for tests of a hostile platform.

    They apply to ``/api/`` requests in order: the first ``rate_limit`` answer 429 with
    ``Retry-After: retry_after``, the next ``server_errors`` answer 500, the next ``garbage``
    answer 200 with an HTML block page instead of JSON; after that the API behaves. Use
    :data:`ALWAYS` for a fault that never stops. ``api_requests`` counts what was asked.
    """

    rate_limit: int = 0
    retry_after: str = "1"
    server_errors: int = 0
    garbage: int = 0
    api_requests: int = 0
    flaky: float = 0.0
    """Share (0 to 1) of every request but ``robots.txt`` (pages, API, media) answered 429 with
    ``Retry-After: retry_after`` or 503, at random (one in two each)."""
    media_chunk_delay_s: float = 0.0
    """Pause after each 64 KB of media sent: a slow platform, so a test can act mid-download."""
    outage_until: float = 0.0
    """``time.monotonic()`` until which every request but ``robots.txt`` is refused with
    ``outage_status`` (see :meth:`outage`)."""
    outage_status: int = 503
    seed: int = 0
    """Seeds the draws of ``flaky``, so a run of a test refuses the same requests."""
    refused: dict[str, int] = field(default_factory=dict)
    """What a signed replica counted: ``unsigned`` item-list calls refused, ``media_refused``,
    ``captcha`` pages served, ``sessions_started`` (new session cookies issued)."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    _random: random.Random | None = field(default=None, repr=False, compare=False)

    def count(self, what: str) -> None:
        with self._lock:
            self.refused[what] = self.refused.get(what, 0) + 1

    def outage(self, seconds: float, status: int = 503) -> None:
        """Refuse every request but ``robots.txt`` with ``status`` (429 carries
        ``Retry-After: retry_after``) for ``seconds`` from now; 0 ends an outage."""
        with self._lock:
            self.outage_status = status
            self.outage_until = time.monotonic() + seconds

    def next_request_fault(self) -> int | None:
        """The HTTP status that refuses this request (an outage, a flaky draw), or None;
        counted in :attr:`refused` as ``outage_<status>`` or ``flaky_<status>``."""
        with self._lock:
            if time.monotonic() < self.outage_until:
                status, what = self.outage_status, "outage"
            elif self.flaky > 0:
                if self._random is None:
                    self._random = random.Random(self.seed)
                if self._random.random() >= self.flaky:
                    return None
                status = self._random.choice((429, 503))
                what = "flaky"
            else:
                return None
            key = f"{what}_{status}"
            self.refused[key] = self.refused.get(key, 0) + 1
        return status

    def next_api_fault(self) -> str | None:
        """Count one API request and say which fault, if any, it should get."""
        with self._lock:
            n = self.api_requests
            self.api_requests += 1
        if n < self.rate_limit:
            return "rate_limit"
        n -= self.rate_limit
        if n < self.server_errors:
            return "server_error"
        n -= self.server_errors
        if n < self.garbage:
            return "garbage"
        return None


@dataclass(frozen=True)
class _Catalog:
    """One version of the site's items, newest first, indexed by id, hashtag and challenge id.

    A request takes one catalog and uses only it, so a reload mid-request cannot mix versions.
    """

    by_id: dict[str, dict[str, Any]]
    by_tag: dict[str, list[dict[str, Any]]]
    tag_by_challenge: dict[str, str]

    @classmethod
    def load(cls, site_dir: Path) -> _Catalog:
        items = sorted(
            load_items(site_dir),
            key=lambda i: (int(i.get("createTime") or 0), str(i["id"])),
            reverse=True,
        )
        by_tag: dict[str, list[dict[str, Any]]] = {}
        for item in items:
            for tag in item_hashtags(item):
                by_tag.setdefault(tag, []).append(item)
        return cls(
            by_id={str(i["id"]): i for i in items},
            by_tag=by_tag,
            tag_by_challenge={challenge_id(t): t for t in by_tag},
        )

    def without(self, ids: frozenset[str]) -> _Catalog:
        """This catalog with the posts of ``ids`` gone from every index (taken down)."""
        if not ids:
            return self
        by_tag = {
            tag: kept
            for tag, items in self.by_tag.items()
            if (kept := [i for i in items if str(i["id"]) not in ids])
        }
        return _Catalog(
            by_id={k: v for k, v in self.by_id.items() if k not in ids},
            by_tag=by_tag,
            tag_by_challenge={k: t for k, t in self.tag_by_challenge.items() if t in by_tag},
        )


def _query_int(query: dict[str, list[str]], key: str, default: int) -> int:
    """A non-negative integer query parameter, or ``default`` when absent or not a number."""
    try:
        return max(0, int(query[key][0]))
    except (KeyError, ValueError):
        return default


class _ReplicaHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    replica: ReplicaServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client hanging up mid-answer (yt-dlp probing, a crawler shutting down) is normal;
        anything else is a bug in the replica and is logged with its traceback."""
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            logger.debug("client %s went away: %s", client_address, exc)
            return
        logger.exception("replica failed answering %s", client_address)


class _Handler(BaseHTTPRequestHandler):
    """Routes requests; every answer carries Content-Length so keep-alive works."""

    protocol_version = "HTTP/1.1"
    server_version = "replica/1.0"
    server: _ReplicaHTTPServer

    _routes: ClassVar[list[tuple[re.Pattern[str], str]]] = [
        (re.compile(r"/robots\.txt"), "robots"),
        (re.compile(r"/tag/(?P<name>[^/]+)/?"), "tag_page"),
        (re.compile(r"/api/challenge/item_list/?"), "item_list"),
        (re.compile(r"/@(?P<user>[^/]+)/video/(?P<id>[^/]+)/?"), "video_page"),
        (re.compile(r"/video/(?P<id>[^/]+)\.mp4"), "media"),
    ]

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._dispatch(head=False)

    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    # -- plumbing ---------------------------------------------------------------------------
    @property
    def replica(self) -> ReplicaServer:
        return self.server.replica

    @property
    def base_url(self) -> str:
        host = self.headers.get("Host")
        return f"http://{host}" if host else self.replica.base_url

    def _dispatch(self, *, head: bool) -> None:
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        if path != "/robots.txt":
            refused = self.replica.faults.next_request_fault()
            if refused is not None:
                headers = {"Retry-After": self.replica.faults.retry_after} if refused == 429 else {}
                body = f"{refused} {HTTPStatus(refused).phrase}\n".encode()
                self._send(refused, body, "text/plain; charset=utf-8", head=head, headers=headers)
                return
        for pattern, name in self._routes:
            m = pattern.fullmatch(path)
            if m:
                getattr(self, f"_{name}")(head=head, query=parse_qs(parts.query), **m.groupdict())
                return
        for pattern, route in face_routes():
            m = pattern.fullmatch(path)
            if m:
                route(self, head=head, query=parse_qs(parts.query), **m.groupdict())
                return
        self._send_text(HTTPStatus.NOT_FOUND, "not found\n", head=head)

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        *,
        head: bool,
        headers: dict[str, str] | None = None,
    ) -> None:
        self._send_head(status, content_type, len(body), headers)
        if not head:
            self.wfile.write(body)

    def _send_head(
        self, status: int, content_type: str, length: int, headers: dict[str, str] | None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        for cookie in self._set_cookies:
            self.send_header("Set-Cookie", cookie)
        self._set_cookies = []
        self.end_headers()

    _set_cookies: list[str]

    def setup(self) -> None:
        super().setup()
        self._set_cookies = []

    def _cookie(self, name: str) -> str | None:
        from http.cookies import CookieError, SimpleCookie

        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(self.headers.get("Cookie") or "")
        except CookieError:
            return None
        morsel = jar.get(name)
        return morsel.value if morsel is not None else None

    def _start_session(self) -> str:
        """The client's session token (``msToken`` and ``tt_chain_token`` cookies), issuing
        one when the client has none or a forged one."""
        token = self._cookie(signing.TOKEN_COOKIE)
        if token and signing.token_is_valid(self.replica.secret, token):
            return token
        token = signing.new_token(self.replica.secret)
        self.replica.faults.count("sessions_started")
        # Persistent cookies, as TikTok sets them (days, not the browser session), so a
        # profile that is closed and reopened still holds them.
        lifetime = f"Max-Age={signing.SESSION_MAX_AGE_S}"
        self._set_cookies = [
            f"{signing.TOKEN_COOKIE}={token}; Path=/; {lifetime}; SameSite=Lax",
            f"{signing.CHAIN_COOKIE}={signing.chain_token(self.replica.secret, token)}; "
            f"Path=/; {lifetime}; HttpOnly; SameSite=Lax",
        ]
        return token

    def _send_captcha(self, *, head: bool) -> None:
        self.replica.faults.count("captcha")
        self._send_html(signing.CAPTCHA_PAGE, head=head)

    def _send_text(self, status: int, text: str, *, head: bool) -> None:
        self._send(status, text.encode(), "text/plain; charset=utf-8", head=head)

    def _send_json(self, obj: Any, *, head: bool) -> None:
        body = json.dumps(obj, ensure_ascii=False).encode("utf-8")
        self._send(HTTPStatus.OK, body, "application/json; charset=utf-8", head=head)

    def _send_html(self, body: bytes, *, head: bool) -> None:
        self._send(HTTPStatus.OK, body, "text/html; charset=utf-8", head=head)

    def _public_item(self, item: dict[str, Any]) -> dict[str, Any]:
        """The item as served: media addresses on the host the client asked (the catalog's
        item is shared between requests, so it is copied, not changed); signed and expiring
        when the replica is signed."""
        media = f"{self.base_url}/video/{item['id']}.mp4"
        if self.replica.media_ttl_s is not None:
            media += "?" + signing.media_query(
                self.replica.secret, str(item["id"]), self.replica.media_ttl_s
            )
        video = {**(item.get("video") or {}), "playAddr": media, "downloadAddr": media}
        return {**item, "video": video}

    def _page(self, items: list[dict[str, Any]], cursor: int, count: int) -> dict[str, Any]:
        chunk = items[cursor : cursor + count]
        end = cursor + len(chunk)
        return {
            "itemList": [self._public_item(i) for i in chunk],
            "cursor": str(end),
            "hasMore": end < len(items),
        }

    # -- routes -----------------------------------------------------------------------------
    def _robots(self, *, head: bool, query: dict[str, list[str]]) -> None:
        self._send_text(HTTPStatus.OK, "User-agent: *\nAllow: /\n", head=head)

    def _tag_page(self, *, head: bool, query: dict[str, list[str]], name: str) -> None:
        if self.replica.captcha:
            self._send_captcha(head=head)
            return
        if self.replica.signed:
            self._start_session()
        tag = normalize_hashtag(name)
        items = self.replica.catalog().by_tag.get(tag)
        scope: dict[str, Any] = {"webapp.app-context": {"language": "en", "region": "US"}}
        if not items:
            scope["webapp.challenge-detail"] = {
                "statusCode": CHALLENGE_NOT_FOUND,
                "statusMsg": "challenge not found",
            }
        else:
            views = sum(int((i.get("stats") or {}).get("playCount") or 0) for i in items)
            scope["webapp.challenge-detail"] = {
                "statusCode": 0,
                "statusMsg": "",
                "challengeInfo": {
                    "challenge": {"id": challenge_id(tag), "title": tag, "desc": ""},
                    "stats": {"videoCount": len(items), "viewCount": views},
                },
            }
            if self.replica.embed_items and not self.replica.signed:
                scope["webapp.challenge-item-list"] = self._page(items, 0, self.replica.page_size)
        body = rehydration_page(f"#{tag} | replica", scope)
        if self.replica.signed and items:
            count = min(self.replica.page_size, SIGNED_PAGE_COUNT)
            body = signing.with_listing_script(body, challenge_id(tag), count)
        self._send_html(body, head=head)

    def _item_list(self, *, head: bool, query: dict[str, list[str]]) -> None:
        fault = self.replica.faults.next_api_fault()
        if fault == "rate_limit":
            self._send(
                HTTPStatus.TOO_MANY_REQUESTS,
                b'{"statusCode": 10000, "statusMsg": "rate limited"}',
                "application/json",
                head=head,
                headers={"Retry-After": self.replica.faults.retry_after},
            )
            return
        if fault == "server_error":
            self._send_text(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error\n", head=head)
            return
        if fault == "garbage":
            body = b"<html><body><h1>Please verify you are human</h1></body></html>"
            self._send_html(body, head=head)
            return

        if self.replica.signed and not self._signature_ok():
            # What TikTok does to a request its page script did not sign: 200, no body.
            self.replica.faults.count("unsigned")
            self._send(HTTPStatus.OK, b"", "application/json; charset=utf-8", head=head)
            return
        catalog = self.replica.catalog()
        tag = catalog.tag_by_challenge.get(query.get("challengeID", [""])[0])
        if tag is None:
            empty = {"itemList": [], "hasMore": False, "cursor": "0"}
            self._send_json({"statusCode": CHALLENGE_NOT_FOUND, **empty}, head=head)
            return
        cap = SIGNED_PAGE_COUNT if self.replica.signed else MAX_PAGE_COUNT
        count = min(_query_int(query, "count", self.replica.page_size) or 1, cap)
        page = self._page(catalog.by_tag[tag], _query_int(query, "cursor", 0), count)
        self.replica.served_pages.append(len(page["itemList"]))
        self._send_json({**page, "statusCode": 0}, head=head)

    def _signature_ok(self) -> bool:
        """Whether an item-list call carries the signature the tag page's script computes."""
        raw_query = urlsplit(self.path).query
        token = self._cookie(signing.TOKEN_COOKIE)
        return bool(token) and signing.request_is_signed(self.replica.secret, str(token), raw_query)

    def _video_page(self, *, head: bool, query: dict[str, list[str]], user: str, id: str) -> None:
        if self.replica.captcha:
            self._send_captcha(head=head)
            return
        if self.replica.signed:
            self._start_session()
        reason = self.replica.taken_down(id)
        if reason is not None:
            self._send_taken_down(id, reason, head=head)
            return
        item = self.replica.catalog().by_id.get(id)
        if item is None:
            self._send_text(HTTPStatus.NOT_FOUND, "video not found\n", head=head)
            return
        public = self._public_item(item)
        scope = {
            "webapp.video-detail": {
                "itemInfo": {"itemStruct": public},
                "statusCode": 0,
                "statusMsg": "",
            }
        }
        title = f"{item.get('desc', '')} | replica"
        author = html.escape(str((item.get("author") or {}).get("uniqueId") or ""))
        shown = (
            f'<main style="font:16px sans-serif;margin:24px"><h2>@{author}</h2>'
            f'<video src="{html.escape(public["video"]["playAddr"])}" width="240" controls '
            f'preload="none"></video><p>{html.escape(str(item.get("desc") or ""))}</p>'
            f"<p>{int((item.get('stats') or {}).get('playCount') or 0)} views · posted "
            f"{int(item.get('createTime') or 0)}</p></main>"
        )
        self._send_html(rehydration_page(title, scope, shown), head=head)

    def _send_taken_down(self, id: str, reason: str, *, head: bool) -> None:
        """A taken-down post's page as TikTok serves one: 200, a status code, no item."""
        status, message, shown = TAKE_DOWN_REASONS[reason]
        scope = {
            "webapp.app-context": {"language": "en", "region": "US"},
            "webapp.video-detail": {"statusCode": status, "statusMsg": message},
        }
        body = (
            f'<main style="font:16px sans-serif;margin:24px"><h2>{html.escape(shown)}</h2></main>'
        )
        self._send_html(rehydration_page(f"{shown} | replica", scope, body), head=head)

    def _media_refusal(self, id: str, query: dict[str, list[str]]) -> str | None:
        """Why a signed media URL is refused (expired, forged, no session cookie or Referer)."""
        secret = self.replica.secret
        if not signing.media_url_is_valid(secret, id, query):
            return "media URL expired or not signed"
        token = self._cookie(signing.TOKEN_COOKIE)
        chain = self._cookie(signing.CHAIN_COOKIE)
        if not token or not chain or chain != signing.chain_token(secret, token):
            return "no session cookie"
        referer = self.headers.get("Referer") or ""
        if urlsplit(referer).netloc != (self.headers.get("Host") or ""):
            return "no Referer from this site"
        return None

    def _media(self, *, head: bool, query: dict[str, list[str]], id: str) -> None:
        path = self.replica.site_dir / "videos" / f"{id}.mp4"
        gone = self.replica.taken_down(id) is not None
        if gone or not _ID_RE.fullmatch(id) or not path.is_file():
            self._send_text(HTTPStatus.NOT_FOUND, "media not found\n", head=head)
            return
        if self.replica.media_ttl_s is not None:
            refusal = self._media_refusal(id, query)
            if refusal:
                self.replica.faults.count("media_refused")
                self._send_text(HTTPStatus.FORBIDDEN, refusal + "\n", head=head)
                return
        size = path.stat().st_size
        start, end = 0, size - 1
        status = HTTPStatus.OK
        headers = {"Accept-Ranges": "bytes"}
        range_header = self.headers.get("Range")
        if range_header:
            m = _RANGE_RE.fullmatch(range_header.strip())
            parsed = _resolve_range(m.group(1), m.group(2), size) if m else None
            if parsed is None:
                headers["Content-Range"] = f"bytes */{size}"
                self._send(
                    HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE,
                    b"",
                    "video/mp4",
                    head=head,
                    headers=headers,
                )
                return
            start, end = parsed
            status = HTTPStatus.PARTIAL_CONTENT
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        self._send_head(status, "video/mp4", end - start + 1, headers)
        if head:
            return
        with path.open("rb") as f:
            f.seek(start)
            remaining = end - start + 1
            while remaining > 0:
                chunk = f.read(min(remaining, 64 * 1024))
                if not chunk:
                    break
                self.wfile.write(chunk)
                remaining -= len(chunk)
                if self.replica.faults.media_chunk_delay_s and remaining > 0:
                    time.sleep(self.replica.faults.media_chunk_delay_s)


def _resolve_range(first: str, last: str, size: int) -> tuple[int, int] | None:
    """Inclusive byte bounds of ``bytes=first-last`` in a file of ``size``, or None (416)."""
    if not first and not last:
        return None
    if not first:
        length = int(last)
        if length == 0 or size == 0:
            return None
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        return None
    return start, end


class ReplicaServer:
    """Serves a site folder over HTTP from a daemon thread.

    ``port=0`` picks a free port; :attr:`base_url` is known after :meth:`start`. Use it as a
    context manager in tests so the port is released even when a test fails. ``page_size``
    is how many posts the tag page embeds (and the API's default ``count``);
    ``embed_items=False`` serves tag pages with the challenge only, as TikTok often does, so
    every post comes from the API. ``signed``, ``media_ttl_s`` and ``captcha``: see the
    module docstring.
    """

    def __init__(
        self,
        site_dir: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: Faults | None = None,
        page_size: int = 30,
        embed_items: bool = True,
        signed: bool = False,
        media_ttl_s: float | None = None,
        captcha: bool = False,
    ) -> None:
        self.site_dir = Path(site_dir)
        self.signed = signed
        self.media_ttl_s = media_ttl_s if media_ttl_s is not None or not signed else 600.0
        """Seconds a media URL lives (signed replicas: 10 minutes unless said otherwise)."""
        self.captcha = captcha
        """Serve a verification page instead of tag and video pages; may be switched on and
        off while serving."""
        self.secret = signing.new_secret()
        self.served_pages: list[int] = []
        """Items in each item-list page served, in order (what a client really fetched)."""
        self.host = host
        self.port = port
        self.faults = faults or Faults()
        self.page_size = page_size
        self.embed_items = embed_items
        self._catalog: _Catalog | None = None
        self._catalog_version: tuple[int, int] | None = None
        self._catalog_lock = threading.Lock()
        self._taken_down: dict[str, str] = {}
        self._served: tuple[tuple[int, int], frozenset[str], _Catalog] | None = None
        self._httpd: _ReplicaHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the replica server is not running; call start() first")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def catalog(self) -> _Catalog:
        """The site as it is now, without the posts taken down: ``site.json`` is re-read when
        its modification time or size changed, so rewrite the file (``build_site`` does)
        rather than edit it in place within the same instant."""
        stat = (self.site_dir / SITE_FILE).stat()
        version = (stat.st_mtime_ns, stat.st_size)
        with self._catalog_lock:
            if self._catalog is None or version != self._catalog_version:
                self._catalog = _Catalog.load(self.site_dir)
                self._catalog_version = version
            gone = frozenset(self._taken_down)
            if self._served is None or self._served[:2] != (version, gone):
                self._served = (version, gone, self._catalog.without(gone))
            return self._served[2]

    def take_down(self, post_id: str, reason: str = "copyright") -> None:
        """Remove a post as the platform would after a notice (``copyright``), its uploader
        (``deleted``) or a change of its privacy (``private``); see the module docstring.
        Takes effect on the next request; :meth:`restore` undoes it. ``KeyError`` for an id
        the site does not have, ``ValueError`` for an unknown reason."""
        post_id = str(post_id)
        if reason not in TAKE_DOWN_REASONS:
            known = ", ".join(TAKE_DOWN_REASONS)
            raise ValueError(f"unknown take-down reason {reason!r}; use one of: {known}")
        self.catalog()  # loads the site once, so an id is known after a reload
        with self._catalog_lock:
            catalog = self._catalog
            if post_id not in self._taken_down and (
                catalog is None or post_id not in catalog.by_id
            ):
                raise KeyError(f"the replica has no post {post_id}")
            self._taken_down[post_id] = reason

    def restore(self, post_id: str) -> None:
        """Put a taken-down post back as it was (reinstated); nothing for one that is up."""
        with self._catalog_lock:
            self._taken_down.pop(str(post_id), None)

    def taken_down(self, post_id: str) -> str | None:
        """Why ``post_id`` is taken down, or None when it is not."""
        with self._catalog_lock:
            return self._taken_down.get(str(post_id))

    def start(self) -> str:
        """Load the site, bind, serve in the background; returns the base URL."""
        if self._httpd is not None:
            return self.base_url
        if not (self.site_dir / SITE_FILE).is_file():
            raise FileNotFoundError(f"{self.site_dir / SITE_FILE} does not exist")
        self.catalog()
        httpd = _ReplicaHTTPServer((self.host, self.port), _Handler)
        httpd.replica = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> ReplicaServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
