"""The replica's anti-crawler measures: signed API calls, session cookies, expiring media.

Real TikTok refuses item-list calls that its own page script did not sign (``msToken``,
``X-Bogus``, ``X-Gnarly``): it answers them with HTTP 200 and an empty body. The replica does
the same with a scheme of its own that is just as out of reach for a client that runs no
JavaScript: the tag page sets an ``msToken`` cookie and ships a script that signs each call's
query string with it. Media URLs carry an expiry and a MAC, and are served only to a client
holding the session cookie and sending the site as Referer, as TikTok's CDN does.

The signature is four rounds of 32-bit FNV-1a over ``round:token|query``: no cryptography is
claimed, only that computing it needs the page's script (or this module).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from urllib.parse import urlencode

TOKEN_COOKIE = "msToken"
CHAIN_COOKIE = "tt_chain_token"
SIGNATURE_PARAM = "X-Bogus"
SESSION_MAX_AGE_S = 10 * 86400
"""How long the session cookies live (TikTok's ``msToken`` lasts days)."""

CAPTCHA_PAGE = (
    b'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Security Check'
    b'</title></head><body><div id="captcha-verify-container-main-page" '
    b'class="captcha-verify-container"><p>Drag the slider to fit the puzzle</p>'
    b'<div class="captcha_verify_slide--slidebar"></div></div></body></html>\n'
)
"""What TikTok serves a client it wants to verify: a slider puzzle, no data."""


def new_secret() -> bytes:
    return secrets.token_bytes(32)


def _mac(secret: bytes, text: str, size: int = 16) -> str:
    return hmac.new(secret, text.encode(), hashlib.sha256).hexdigest()[:size]


def new_token(secret: bytes) -> str:
    nonce = secrets.token_hex(12)
    return f"{nonce}{_mac(secret, 'token:' + nonce)}"


def token_is_valid(secret: bytes, token: str) -> bool:
    nonce, mac = token[:24], token[24:]
    return len(token) == 40 and hmac.compare_digest(mac, _mac(secret, "token:" + nonce))


def chain_token(secret: bytes, token: str) -> str:
    return _mac(secret, "chain:" + token, 32)


def signature(token: str, query: str) -> str:
    """The page script's signature of ``query`` (the URL's query string before
    ``&X-Bogus=``) under ``token``; must equal ``sign`` in :data:`LISTING_SCRIPT`."""
    out = []
    for r in range(4):
        h = 0x811C9DC5 ^ r
        for ch in f"{r}:{token}|{query}":
            h ^= ord(ch)
            h = (h * 0x01000193) & 0xFFFFFFFF
        out.append(f"{h:08x}")
    return "".join(out)


def request_is_signed(secret: bytes, token: str, raw_query: str) -> bool:
    """Whether an item-list query string ends with the right ``&X-Bogus=`` for ``token`` and
    names the same ``msToken``."""
    signed, sep, sig = raw_query.rpartition(f"&{SIGNATURE_PARAM}=")
    if not sep or not token_is_valid(secret, token):
        return False
    if f"{TOKEN_COOKIE}={token}" not in signed.split("&"):
        return False
    return hmac.compare_digest(sig, signature(token, signed))


def media_query(secret: bytes, video_id: str, ttl_s: float) -> str:
    expire = int(time.time() + ttl_s)
    return urlencode({"expire": expire, "sig": _mac(secret, f"media:{video_id}:{expire}")})


def media_url_is_valid(secret: bytes, video_id: str, query: dict[str, list[str]]) -> bool:
    try:
        expire = int(query["expire"][0])
        sig = query["sig"][0]
    except (KeyError, IndexError, ValueError):
        return False
    if expire < time.time():
        return False
    return hmac.compare_digest(sig, _mac(secret, f"media:{video_id}:{expire}"))


LISTING_SCRIPT = """
<style>#items a{display:block;height:240px;margin:8px;border:1px solid #ccc}</style>
<div id="items"></div>
<script>
(function () {
  var challengeID = %(challenge)s, count = %(count)d;
  var cursor = "0", hasMore = true, loading = false;
  function cookie(name) {
    var m = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
    return m ? decodeURIComponent(m[1]) : "";
  }
  function sign(token, query) {
    var out = "";
    for (var r = 0; r < 4; r++) {
      var h = (0x811c9dc5 ^ r) >>> 0, s = r + ":" + token + "|" + query;
      for (var i = 0; i < s.length; i++) {
        h ^= s.charCodeAt(i);
        h = Math.imul(h, 0x01000193) >>> 0;
      }
      out += ("00000000" + h.toString(16)).slice(-8);
    }
    return out;
  }
  function render(items) {
    var box = document.getElementById("items");
    items.forEach(function (it) {
      var a = document.createElement("a");
      a.href = "/@" + encodeURIComponent((it.author || {}).uniqueId || "") + "/video/" + it.id;
      a.className = "item";
      a.textContent = it.desc || it.id;
      box.appendChild(a);
    });
  }
  function more() {
    if (loading || !hasMore) return;
    loading = true;
    var token = cookie("%(cookie)s");
    var query = new URLSearchParams({aid: "1988", challengeID: challengeID,
      count: String(count), cursor: cursor, msToken: token}).toString();
    fetch("/api/challenge/item_list/?" + query + "&%(param)s=" + sign(token, query),
          {credentials: "same-origin"})
      .then(function (r) { return r.text(); })
      .then(function (text) {
        if (!text) { hasMore = false; return; }
        var data = JSON.parse(text);
        render(data.itemList || []);
        cursor = String(data.cursor);
        hasMore = !!data.hasMore;
      })
      .finally(function () { loading = false; setTimeout(nearBottom, 50); });
  }
  function nearBottom() {
    // Like a feed's bottom sentinel: load more when the end of the list is in view,
    // including right after a short page that does not fill the screen.
    var end = document.getElementById("items").getBoundingClientRect().bottom;
    if (end < window.innerHeight + 300) more();
  }
  window.addEventListener("scroll", nearBottom);
  more();
})();
</script>
"""


def with_listing_script(page: bytes, challenge_id: str, count: int) -> bytes:
    """A tag page with the script that signs and loads its item list (first page on load,
    the next ones as the reader scrolls)."""
    import json

    script = LISTING_SCRIPT % {
        "challenge": json.dumps(challenge_id),
        "count": count,
        "cookie": TOKEN_COOKIE,
        "param": SIGNATURE_PARAM,
    }
    return page.replace(b"</body>", script.encode() + b"</body>", 1)
