"""``python -m crawler.replica --site DIR [--host H] [--port N] [--signed] [--captcha]``:
serve a site folder (``--generate N --hashtag NAME`` first writes one of N tiny posts).

Prints the base URL on the first line of stdout (so a script or test can read it) and serves
until interrupted (Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from crawler.replica.server import ReplicaServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m crawler.replica", description="Serve a replica platform site folder."
    )
    parser.add_argument("--site", type=Path, required=True, help="folder holding site.json")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--page-size", type=int, default=30, help="posts per tag page")
    parser.add_argument(
        "--signed",
        action="store_true",
        help="act like TikTok to crawlers: signed item-list calls (unsigned ones get an empty "
        "200), posts loaded by the page's script on scroll, expiring media URLs",
    )
    parser.add_argument(
        "--media-ttl", type=float, default=None, help="seconds a media URL lives (signed: 600)"
    )
    parser.add_argument(
        "--captcha", action="store_true", help="serve a captcha instead of tag and video pages"
    )
    parser.add_argument(
        "--generate", type=int, metavar="N", help="first write a site of N tiny posts into --site"
    )
    parser.add_argument("--hashtag", default="replica", help="hashtag of --generate's posts")
    args = parser.parse_args(argv)

    if args.generate is not None:
        from crawler.replica.generate import generate_site

        if not 0 < args.generate <= 10_000:
            parser.error("--generate takes 1 to 10000 posts")
        generate_site(args.site, args.generate, args.hashtag.lstrip("#").lower())
    server = ReplicaServer(
        args.site,
        host=args.host,
        port=args.port,
        page_size=args.page_size,
        signed=args.signed,
        media_ttl_s=args.media_ttl,
        captcha=args.captcha,
    )
    try:
        base_url = server.start()
    except (OSError, ValueError) as exc:
        print(f"error: cannot serve {args.site}: {exc}", file=sys.stderr)
        return 2

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(base_url, flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
