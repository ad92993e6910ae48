"""Download-guard cases run inside a network namespace (``python -m tests.netns_guard_cases``).

Run only under ``unshare -n -m`` (see :mod:`tests.netns`): it changes ``lo``, mounts over
``/etc/resolv.conf`` and ``/etc/hosts`` and may mount a tmpfs. Each case prints one JSON line:
what the download returned or raised, and what every server saw.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.netns import PUBLIC_IP, MiniSite, TcpListener, loopback_world

POST = "/@victim/video/1"
INTERNAL = "127.0.0.1"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _instrument(args: argparse.Namespace, result: dict[str, Any]) -> None:
    """Record the yt-dlp request handlers used; force urllib or switch the guard off when
    asked (the control runs that show a broken guard would be caught)."""
    from yt_dlp.networking.common import RequestHandler

    import workers.download
    import workers.netguard

    used: list[str] = result.setdefault("handlers", [])
    send = RequestHandler.send

    def recording_send(self: RequestHandler, request: Any) -> Any:
        if self.RH_KEY not in used:
            used.append(self.RH_KEY)
        return send(self, request)

    RequestHandler.send = recording_send
    if args.handler == "urllib":
        options = workers.download._ydl_options

        def urllib_options(*a: Any, **kw: Any) -> dict[str, Any]:
            return {**options(*a, **kw), "compat_opts": {"prefer-legacy-http-handler"}}

        workers.download._ydl_options = urllib_options
    if args.no_guard:

        @contextlib.contextmanager
        def no_guard(*, allow_private: bool = False) -> Iterator[workers.netguard.Guard]:
            yield workers.netguard.Guard(allow_private=allow_private)

        workers.netguard.guard = no_guard


def _settings(home: Path, allow_private: bool) -> Any:
    from reelwatch.settings import load_settings

    os.environ["REELWATCH_HOME"] = str(home)
    settings = load_settings(home=home)
    settings.download.allow_private_hosts = allow_private
    settings.download.socket_timeout_s = 10
    settings.ensure_home()
    return settings


def _attempt(args: argparse.Namespace, home: Path, url: str, result: dict[str, Any]) -> None:
    from reelwatch.errors import ReelwatchError
    from workers.download import download

    settings = _settings(home, args.allow_private)
    try:
        got = download(settings, url)
    except ReelwatchError as exc:
        result.update(ok=False, error_type=type(exc).__name__, error=str(exc))
    else:
        result.update(ok=True, sha256=got.sha256, bytes=got.bytes, path=str(got.path))
    result["media_files"] = _files(settings.media_dir)


def case_rebind(args: argparse.Namespace, work: Path, result: dict[str, Any]) -> None:
    """The name answers a public address to the first lookup and loopback after."""
    zone = {"rebind.test": [PUBLIC_IP, INTERNAL]}
    with loopback_world(zone, work / "net") as dns:
        public = MiniSite(PUBLIC_IP, 8080, video=args.video)
        internal = MiniSite(INTERNAL, 8080, video=args.video)
        _attempt(args, work / "home", f"http://rebind.test:8080{POST}", result)
        result.update(public=public.requests(), internal=internal.requests())
        result["lookups"] = dict(dns.lookups)


REDIRECTS = {
    "literal": {POST: f"http://{INTERNAL}:8081{POST}"},
    "name": {POST: f"http://internal.test:8081{POST}"},
    "mapped": {POST: f"http://[::ffff:{INTERNAL}]:8081{POST}"},
    "chain": {POST: "http://public.test:8080/hop", "/hop": f"http://{INTERNAL}:8081{POST}"},
    "media": {},
}


def case_redirect(args: argparse.Namespace, work: Path, result: dict[str, Any]) -> None:
    """A public post page that sends the client to a loopback server (``args.target``)."""
    zone = {"public.test": [PUBLIC_IP], "internal.test": [INTERNAL]}
    with loopback_world(zone, work / "net"):
        media = f"http://{INTERNAL}:8081/video/1.mp4" if args.target == "media" else None
        public = MiniSite(PUBLIC_IP, 8080, args.video, REDIRECTS[args.target], media)
        internal = MiniSite(INTERNAL, 8081, video=args.video)
        _attempt(args, work / "home", f"http://public.test:8080{POST}", result)
        result.update(public=public.requests(), internal=internal.requests())


def case_scheme(args: argparse.Namespace, work: Path, result: dict[str, Any]) -> None:
    """A public post page redirecting to ``file://`` (a canary file) or ``ftp://``."""
    canary = work / "canary.mp4"
    canary.write_bytes(b"secret")
    opened: list[str] = []

    def watch_open(event: str, hook_args: tuple[Any, ...]) -> None:
        if event == "open" and str(hook_args[0]).endswith(canary.name):
            opened.append(str(hook_args[0]))

    sys.addaudithook(watch_open)
    location = {
        "file": f"file://{canary}",
        "ftp": f"ftp://{PUBLIC_IP}/secret.mp4",
        "ftp-name": "ftp://public.test/secret.mp4",
    }[args.target]
    zone = {"public.test": [PUBLIC_IP]}
    with loopback_world(zone, work / "net"):
        ftp = TcpListener(PUBLIC_IP, 21)
        public = MiniSite(PUBLIC_IP, 8080, args.video, {POST: location})
        _attempt(args, work / "home", f"http://public.test:8080{POST}", result)
        result.update(public=public.requests(), ftp_connections=ftp.accepted, canary_opened=opened)


def case_replica(args: argparse.Namespace, work: Path, result: dict[str, Any]) -> None:
    """A download from the replica: on loopback (``--allow-private``) or on the public-looking
    address by name (default settings); ``--disk-full`` puts the data home on a tmpfs half
    the video's size."""
    from crawler.replica.server import ReplicaServer

    zone = {"public.test": [PUBLIC_IP]}
    with loopback_world(zone, work / "net"):
        home = work / "home"
        if args.disk_full:
            full = work / "full"
            full.mkdir()
            size = max(64 * 1024, args.video.stat().st_size // 2) // 4096 * 4096
            subprocess.run(
                ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(full)], check=True
            )
            home = full / "home"
            result["tmpfs_bytes"] = size
        host = INTERNAL if args.allow_private else PUBLIC_IP
        with ReplicaServer(args.site, host=host, port=8080):
            name = INTERNAL if args.allow_private else "public.test"
            _attempt(args, home, f"http://{name}:8080/@{args.user}/video/{args.id}", result)
        result["expected_sha256"] = _sha256(args.video)
        result["home_files"] = _files(home)


def case_cli(args: argparse.Namespace, work: Path, result: dict[str, Any]) -> None:
    """``reelwatch match URL`` on a rebinding name: what the user sees."""
    zone = {"rebind.test": [PUBLIC_IP, INTERNAL]}
    with loopback_world(zone, work / "net"):
        MiniSite(PUBLIC_IP, 8080, video=args.video)
        internal = MiniSite(INTERNAL, 8080, video=args.video)
        url = f"http://rebind.test:8080{POST}?pad={'x' * args.pad}"
        home = work / "home"
        home.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            [str(Path(sys.executable).with_name("reelwatch")), "match", url],
            env={**os.environ, "REELWATCH_HOME": str(home)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        result.update(
            rc=proc.returncode,
            stderr=proc.stderr,
            stdout=proc.stdout,
            internal=internal.requests(),
        )


CASES = {
    "rebind": case_rebind,
    "redirect": case_redirect,
    "scheme": case_scheme,
    "replica": case_replica,
    "cli": case_cli,
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("case", choices=sorted(CASES))
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--video", type=Path, required=True)
    parser.add_argument("--site", type=Path)
    parser.add_argument("--user", default="")
    parser.add_argument("--id", default="")
    parser.add_argument("--target", default="literal")
    parser.add_argument("--handler", choices=("default", "urllib"), default="default")
    parser.add_argument("--allow-private", action="store_true")
    parser.add_argument("--no-guard", action="store_true")
    parser.add_argument("--disk-full", action="store_true")
    parser.add_argument("--pad", type=int, default=0)
    args = parser.parse_args()
    result: dict[str, Any] = {"case": args.case}
    _instrument(args, result)
    CASES[args.case](args, args.work, result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
