"""Is a post still up? What a source's answer says about a post, for removal tracking.

After a takedown notice is marked sent, :mod:`workers.removals` re-checks each named post on a
schedule; :mod:`workers.recheck` fetches the answer (under the download guard) and this module
says what it means:

- TikTok-structured platforms (``tiktok`` and the ``replica``) through the post page, as a
  reader's browser gets it: the rehydration blob's ``webapp.video-detail`` says ``statusCode``
  0 with the ``itemStruct`` for a live post, and a non-zero code without one for a post that is
  gone (TikTok keeps answering HTTP 200);
- every other platform through yt-dlp (``extract_info`` without downloading), with the
  download's guard (:mod:`workers.netguard`: public addresses only unless
  ``download.allow_private_hosts``; only Python-socket request handlers).

A check ends in :class:`~reelwatch.models.CheckOutcome` ``UP``, ``REMOVED`` or ``UNKNOWN`` and
one line saying what the source answered. The rule is to mark a post removed only on an answer
that says so: HTTP 404 or 410, a removal status code, yt-dlp's "Video unavailable", "has been
removed", "account terminated", "Private video" and the like. A rate limit, a server error, a
timeout, a captcha or verification page, a login wall, an age or region gate, an empty or
unparseable answer, an error nobody recognises: all ``UNKNOWN``, so the next check decides.

Caveat: TikTok answers ``statusCode`` 10204 ("item doesn't exist") both for removed posts and,
at times, for posts blocked in the checker's region (yt-dlp reads it as an IP block). A
checker that TikTok blocks would see every post as removed; ``removal.confirm_checks`` above 1
and a checker in the audience's region guard against that.

This module imports neither yt-dlp nor Scrapy, so the replica server can use its status codes
cheaply.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from reelwatch.models import CheckOutcome
from reelwatch.text import one_line as text_one_line

if TYPE_CHECKING:
    from crawler.sources.base import SourceSettings
    from reelwatch.models import Post
    from reelwatch.settings import Settings

log = logging.getLogger(__name__)

ITEM_NOT_FOUND = 10204
"""TikTok's ``statusCode`` for a post that does not exist (removed or deleted)."""
ITEM_PRIVATE = 10216
"""TikTok's ``statusCode`` for a post its uploader made private."""
ACCOUNT_PRIVATE = 10222
"""TikTok's ``statusCode`` for a post of an account that went private."""
REMOVED_STATUS_CODES: dict[int, str] = {
    ITEM_NOT_FOUND: "item doesn't exist",
    ITEM_PRIVATE: "private post",
    ACCOUNT_PRIVATE: "private account",
}
"""``webapp.video-detail`` status codes that mean the post is no longer publicly visible;
any other non-zero code (rate limits, server errors, codes we do not know) is unknown."""

MAX_PAGE_BYTES = 8 * 1024 * 1024
"""Most of a post page read (TikTok's are well under 1 MB); a longer answer is unknown."""
DETAIL_SHOWN = 200
"""Characters of a source's own message a check's detail keeps."""


@dataclass(frozen=True)
class PostCheck:
    """What one re-check found, and what the source said in one line."""

    outcome: CheckOutcome
    detail: str


def one_line(text: str, limit: int = DETAIL_SHOWN) -> str:
    """A source's answer as a check's detail: one line, at most ``limit`` characters."""
    return text_one_line(text, limit)


# -- the post page --------------------------------------------------------------------------
_CAPTCHA_MARKERS = (
    b"captcha",
    b"verify you are human",
    b"verify to continue",
    b"are you a robot",
    b"unusual traffic",
    b"security check",
)
_LOGIN_PATH = re.compile(r"/(?:login|signin|sign-in|accounts/login)(?:/|$)", re.IGNORECASE)
_HTTP_UNKNOWN = {
    401: "login required",
    403: "forbidden, blocked?",
    408: "request timeout",
    429: "rate limited",
    451: "unavailable for legal reasons in this region",
}


def classify_page(
    status: int, body: bytes, *, post_id: str, final_url: str = "", content_type: str = ""
) -> PostCheck:
    """What a TikTok-structured post page's answer says about the post (see the module
    docstring); ``final_url`` is where redirects ended."""
    head = f"HTTP {status}"
    if status in (404, 410):
        return PostCheck(CheckOutcome.REMOVED, head)
    if status != 200:
        why = _HTTP_UNKNOWN.get(status) or ("server error" if status >= 500 else "unexpected")
        return PostCheck(CheckOutcome.UNKNOWN, f"{head} ({why})")
    if final_url and _LOGIN_PATH.search(urlsplit(final_url).path):
        return PostCheck(CheckOutcome.UNKNOWN, f"{head} login wall at {urlsplit(final_url).path}")
    if not body.strip():
        return PostCheck(CheckOutcome.UNKNOWN, f"{head} empty body")
    from crawler.tiktok_format import as_dict, as_int, rehydration_scope

    text = body.decode("utf-8", "replace")
    scope = rehydration_scope(text) if "html" in content_type or "<" in text[:512] else None
    if scope is None:
        lowered = body[:200_000].lower()
        if any(marker in lowered for marker in _CAPTCHA_MARKERS):
            return PostCheck(CheckOutcome.UNKNOWN, f"{head} captcha or verification page")
        return PostCheck(CheckOutcome.UNKNOWN, f"{head} no rehydration data (a block page?)")
    if "webapp.video-detail" not in scope:
        return PostCheck(CheckOutcome.UNKNOWN, f"{head} no video detail in the page")
    detail = as_dict(scope.get("webapp.video-detail"))
    code = as_int(detail.get("statusCode"))
    item = as_dict(as_dict(detail.get("itemInfo")).get("itemStruct"))
    if code == 0 or (code is None and item):
        found = str(item.get("id") or "")
        if not found:
            return PostCheck(CheckOutcome.UNKNOWN, f"{head} statusCode 0 without the post")
        if found != str(post_id):
            return PostCheck(CheckOutcome.UNKNOWN, f"{head} statusCode 0 for another post {found}")
        return PostCheck(CheckOutcome.UP, f"{head} statusCode 0")
    message = one_line(str(detail.get("statusMsg") or ""), 80)
    said = f"{head} statusCode {detail.get('statusCode')!r}" + (f" ({message})" if message else "")
    if code in REMOVED_STATUS_CODES and not item:
        if not message:
            said += f" ({REMOVED_STATUS_CODES[code]})"
        return PostCheck(CheckOutcome.REMOVED, said)
    return PostCheck(CheckOutcome.UNKNOWN, said)


def source_config(settings: Settings, platform: str) -> tuple[SourceSettings | None, bool]:
    """The platform's source settings (None when it has no source) and whether its posts are
    checked through the page."""
    from crawler.sources import TikTokSource, get_source
    from reelwatch.errors import InputError

    try:
        source = get_source(platform)
    except InputError:
        return None, False
    page = issubclass(source, TikTokSource)
    try:
        return source.config_of(settings), page
    except InputError:
        return None, page


def page_url(post: Post, config: SourceSettings | None) -> str:
    """Where the post page is now: the post's path on the source's configured address (a
    replica or mirror may have moved since the crawl), else the URL as crawled."""
    base = (config.base_url if config is not None else None) or ""
    parts = urlsplit(post.url)
    if not base or parts.scheme not in ("http", "https"):
        return post.url
    home = urlsplit(base.rstrip("/"))
    if home.scheme not in ("http", "https") or not home.netloc:
        return post.url
    return urlunsplit((home.scheme, home.netloc, home.path + parts.path, parts.query, ""))


# -- yt-dlp ---------------------------------------------------------------------------------
_UNKNOWN, _REMOVED = CheckOutcome.UNKNOWN, CheckOutcome.REMOVED
_YTDLP_RULES: tuple[tuple[re.Pattern[str], CheckOutcome], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), outcome)
    for pattern, outcome in (
        # Gates and faults that say nothing about the post: first, since their messages may
        # also say "unavailable" ("Video unavailable. This content isn't available, try again
        # later" is YouTube rate-limiting a session).
        (r"try again later|rate.?limit|too many requests|HTTP Error 429", _UNKNOWN),
        (r"not a bot|captcha|verify (?:you|that)|unusual traffic", _UNKNOWN),
        (r"confirm your age|age.?restrict|inappropriate for some", _UNKNOWN),
        (r"in your country|geo.?restrict|ip address is blocked", _UNKNOWN),
        (r"members.?only|join this channel|premieres? in|live event will begin", _UNKNOWN),
        (r"HTTP Error 5\d\d|timed out|timeout|connection (?:refused|reset|aborted)", _UNKNOWN),
        (r"name resolution|getaddrinfo|network is unreachable|\bssl\b", _UNKNOWN),
        (r"not comfortable for some audiences|nsfw", _UNKNOWN),
        # What platforms say of a post that is gone (or no longer public).
        (r"private video|video is private|this (?:post|tweet|content) is private", _REMOVED),
        (
            r"not have permission to view this post|only available for registered users who follow",
            _REMOVED,
        ),
        (r"has been removed|been removed (?:by|for)|removed for (?:a )?violat", _REMOVED),
        (r"account .{0,80}(?:terminated|suspended|closed|deleted)|\bsuspended\b", _REMOVED),
        (
            r"violat\w* .{0,60}(?:terms|policy|guidelines)"
            r"|copyright (?:claim|grounds|infringement)",
            _REMOVED,
        ),
        (
            r"video (?:currently )?unavailable|this video is (?:no longer available|unavailable)",
            _REMOVED,
        ),
        (r"no longer available|has been deleted|was deleted|\bdeleted\b", _REMOVED),
        (
            r"does(?: not|n't) exist|no status found|tweet is unavailable|post isn't available",
            _REMOVED,
        ),
        (r"status ?code:? ?(?:10204|10216|10222)\b", _REMOVED),
        (r"HTTP Error (?:404|410)\b", _REMOVED),
        # A login wall: the post may well be up.
        (r"\blog ?in\b|\bsign ?in\b|logged.in|cookies|authenticat|registered users", _UNKNOWN),
    )
)


def classify_ytdlp_error(message: str) -> CheckOutcome:
    """What yt-dlp's error ``message`` says about the post: removed only on a message that
    says so, unknown for faults, gates, login walls and anything not recognised."""
    for pattern, outcome in _YTDLP_RULES:
        if pattern.search(message):
            return outcome
    return CheckOutcome.UNKNOWN


_YTDLP_PREFIX = re.compile(r"^(?:ERROR:\s*)?(?:\[[^\]]*\]\s*)?(?:[^\s:]{1,200}:\s+)?")
_BUG_TAIL = re.compile(r";? *please report this issue on .*$", re.IGNORECASE)


def ytdlp_detail(message: str) -> str:
    """yt-dlp's message without its ``ERROR: [extractor] id:`` prefix and bug-report tail."""
    text = _BUG_TAIL.sub("", " ".join(str(message).split()))
    return one_line(_YTDLP_PREFIX.sub("", text, count=1) or text)
