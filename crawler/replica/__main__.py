"""``python -m crawler.replica --site DIR [--host H] [--port N]``: serve a site folder.

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
    args = parser.parse_args(argv)

    server = ReplicaServer(args.site, host=args.host, port=args.port, page_size=args.page_size)
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
