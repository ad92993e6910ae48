"""TikTok's data formats, in one place for the three parts that speak them.

The replica server (:mod:`crawler.replica.server`) writes them, the spider
(:mod:`crawler.sources.tiktok`) and the yt-dlp extractor (:mod:`crawler.replica.ytdlp`) read
them. Pages are server-side rendered with a JSON blob in
``<script id="__UNIVERSAL_DATA_FOR_REHYDRATION__">`` whose ``__DEFAULT_SCOPE__`` maps
``"webapp.<page>"`` keys to the page's data. This module imports neither Scrapy nor yt-dlp, so
the replica and the download worker stay cheap to import.
"""

from __future__ import annotations

import html
import json
from typing import Any

from parsel import Selector

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
    blocks, X's ``views.count``); None for anything else (booleans included)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


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
