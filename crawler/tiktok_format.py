"""TikTok's data formats, in one place for the three parts that speak them.

The replica server (:mod:`crawler.replica.server`) writes them, the spider
(:mod:`crawler.sources.tiktok`) and the yt-dlp extractor (:mod:`crawler.replica.ytdlp`) read
them. Pages are server-side rendered with a JSON blob in
``<script id="__UNIVERSAL_DATA_FOR_REHYDRATION__">`` whose ``__DEFAULT_SCOPE__`` maps
``"webapp.<page>"`` keys to the page's data. This module imports neither Scrapy nor yt-dlp, so
the replica and the download worker stay cheap to import.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import re
import unicodedata
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from parsel import Selector

from reelwatch.errors import InputError
from reelwatch.models import normalize_hashtag

REHYDRATION_SCRIPT_ID = "__UNIVERSAL_DATA_FOR_REHYDRATION__"
CHALLENGE_NOT_FOUND = 10205
"""TikTok's ``statusCode`` for a challenge (hashtag) that does not exist."""

_SCRIPT_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_int(value: Any) -> int | None:
    """A count or time as platforms send it: a number, or a string of one (TikTok's ``*V2``
    blocks, X's ``views.count``); None for anything else (booleans, NaN and infinities
    included)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str) and len(value) > 40:
        return None  # int() of a huge digit string is slow, and no count is that long
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return None


# -- What every parser makes of platform values -------------------------------------------------
# Platform JSON is untrusted input: a changed layout, a broken answer, or a hostile page posing
# as a platform. The parsers of every source read fields through these, so a value of the wrong
# type, out of range or unsafe becomes None (or the item is skipped), never an exception.

MAX_COUNT = 2**63 - 1
"""Counts above this fit no store (SQLite integers, Elasticsearch longs): treated as unknown."""
MAX_DURATION_S = 10_000_000.0
MAX_ID = 2048
"""Longest post id kept (yt-dlp's generic ids are page URLs)."""
MAX_URL = 8192
_LAST_TIMESTAMP = 253402300799
"""9999-12-31T23:59:59Z, the last second a datetime holds."""


class MalformedItem(InputError, ValueError):
    """An item a parser skips: no usable id or URL. It is an :class:`InputError` (bad input
    from a platform, one line, never retried) and a ``ValueError``, which the listings catch
    to log and skip it."""


def _unsafe_char(c: str) -> bool:
    """Control and format characters (NUL, CR/LF, escape, bidi overrides, zero-width)."""
    return unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")


def as_text(value: Any) -> str:
    """A string field: strings as they are, numbers written out, anything else empty."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""


def as_count(value: Any) -> int | None:
    """A non-negative count that fits 64 bits; None for anything else."""
    n = as_int(value)
    return n if n is not None and 0 <= n <= MAX_COUNT else None


def as_duration(value: Any) -> float | None:
    """Seconds of video: a finite positive number (not a string, not a boolean)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    seconds = float(value) if abs(value) < 1e300 else math.inf
    return seconds if math.isfinite(seconds) and 0 < seconds <= MAX_DURATION_S else None


def as_timestamp(value: Any) -> datetime | None:
    """Seconds since the epoch as an aware datetime; None when absent, not positive or past
    the year 9999."""
    seconds = as_int(value)
    if seconds is None or not 0 < seconds <= _LAST_TIMESTAMP:
        return None
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def as_http_url(value: Any) -> str | None:
    """An absolute http(s) URL with a host and no whitespace or control characters."""
    if not isinstance(value, str) or not value or len(value) > MAX_URL:
        return None
    if any(c.isspace() or _unsafe_char(c) for c in value):
        return None
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:  # a malformed port or IPv6 literal
        return None
    return value if parts.scheme in ("http", "https") and host else None


def post_id_of(value: Any, what: str = "item") -> str:
    """A post id as platforms send it (a string or an integer), trimmed; ``MalformedItem``
    when it is missing, too long or holds control or format characters (NUL, CR/LF, bidi
    overrides), which have no place in the keys, logs and URLs an id ends up in. An id may
    hold ``/`` (yt-dlp's generic ids are URLs): file names are made with
    :func:`safe_file_name`, never from an id as it is."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        value = ""
    text = str(value).strip()
    if not text:
        raise MalformedItem(f"{what} has no id")
    if len(text) > MAX_ID:
        raise MalformedItem(f"{what} id is too long ({len(text)} characters)")
    if any(_unsafe_char(c) for c in text):
        raise MalformedItem(f"{what} id {text[:60]!a} holds control characters")
    return text


_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
MAX_NAME = 80


def safe_file_name(text: str) -> str:
    """One harmless file-name component for any id: ASCII letters, digits, ``.``, ``_`` and
    ``-`` only, not starting with a dot or a dash (never ``.`` or ``..``), at most 97
    characters. An id
    that needs changing gets a short hash of itself appended, so two ids never share a name
    (``a/b`` and ``a_b``)."""
    name = _NAME_UNSAFE.sub("_", text).lstrip(".-")[:MAX_NAME]
    if name and name == text:
        return name
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{name or 'id'}-{digest}"


def script_json(obj: Any) -> str:
    """JSON that is safe inside ``<script>``: no ``<``, ``>`` or ``&`` can end the element.

    Those characters only occur inside JSON strings, where ``\\u003c`` etc. decode back to
    the same text, so a caption such as ``</script><script>alert(1)</script>`` survives as
    data. ``ensure_ascii`` escapes U+2028/U+2029 too, which some JavaScript parsers treat as
    line breaks.
    """
    return json.dumps(obj, separators=(",", ":")).translate(_SCRIPT_ESCAPES)


def rehydration_page(title: str, scope: dict[str, Any], app_html: str = "") -> bytes:
    """An HTML page carrying ``scope`` the way TikTok's server-side render does;
    ``app_html`` (already escaped) is what the page shows a reader."""
    blob = script_json({"__DEFAULT_SCOPE__": scope})
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<title>{html.escape(title)}</title></head>\n<body><div id="app">{app_html}</div>\n'
        f'<script id="{REHYDRATION_SCRIPT_ID}" type="application/json">'
        f"{blob}</script>\n</body></html>\n"
    )
    return page.encode("utf-8")


def rehydration_scope(page: str) -> dict[str, Any] | None:
    """The ``__DEFAULT_SCOPE__`` of a page's rehydration blob; None when the page has no blob
    that parses as a JSON object (a captcha or block page, or a changed layout)."""
    blob = Selector(text=page).css(f"script#{REHYDRATION_SCRIPT_ID}::text").get()
    if not blob:
        return None
    try:
        data = json.loads(blob)
    except ValueError:
        return None
    return as_dict(data.get("__DEFAULT_SCOPE__")) if isinstance(data, dict) else None


def item_hashtags(item: dict[str, Any]) -> list[str]:
    """Normalised hashtags of an item, from ``textExtra`` then ``challenges``, without repeats."""
    names = [as_dict(t).get("hashtagName") for t in as_list(item.get("textExtra"))]
    names += [as_dict(c).get("title") for c in as_list(item.get("challenges"))]
    tags = (normalize_hashtag(n) for n in names if isinstance(n, str))
    return list(dict.fromkeys(t for t in tags if t))
