"""A private network with only loopback, for tests of hostile networks (DNS rebinding,
redirects to internal addresses).

Tests run a script under ``unshare -n -m`` (a new network and mount namespace; needs root):
:func:`run_in_netns` from pytest, and inside the namespace :func:`loopback_world` brings ``lo``
up, adds public-looking addresses to it (so a server can listen on :data:`PUBLIC_IP`),
starts :class:`DnsServer` on 127.0.0.1:53 with answers that may change between lookups, and
bind-mounts a ``resolv.conf`` pointing at it and a ``hosts`` file naming only localhost over
the host's (the mount namespace keeps both mounts private to the test). :class:`MiniSite` is
a small recording web server that serves TikTok-shaped post pages, media and redirects.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

PUBLIC_IP = "1.2.3.4"
"""A globally routable address the namespace puts on ``lo``: a server there looks public."""

ROOT = Path(__file__).resolve().parent.parent


@functools.cache
def netns_unavailable() -> str | None:
    """Why the namespace tests cannot run here, or None when they can."""
    if sys.platform != "linux":
        return "network namespaces need Linux"
    for tool in ("unshare", "ip", "mount"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (util-linux / iproute2)"
    if os.geteuid() != 0:
        return "`unshare -n -m` needs root"
    probe = subprocess.run(
        ["unshare", "-n", "-m", "--", "ip", "link", "set", "lo", "up"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if probe.returncode != 0:
        return f"`unshare -n -m` is not permitted here: {probe.stderr.strip()[:200]}"
    return None


@dataclass(repr=False)
class NetnsRun:
    """What a script run in a namespace printed: its last stdout line as JSON."""

    returncode: int
    result: dict[str, Any]
    stdout: str
    stderr: str

    def __repr__(self) -> str:  # what an assertion failure shows
        return (
            f"rc={self.returncode}\nresult={json.dumps(self.result, indent=1)}\n"
            f"stderr (tail)=\n{self.stderr[-3000:]}"
        )


def run_in_netns(module: str, *args: str, timeout: float = 180) -> NetnsRun:
    """Run ``python -m module args`` from the project root in a fresh network and mount
    namespace; its last stdout line must be a JSON object."""
    proc = subprocess.run(
        ["unshare", "-n", "-m", "--", sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = proc.stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1]) if lines else {}
    except ValueError:
        result = {}
    return NetnsRun(proc.returncode, result, proc.stdout, proc.stderr)


# Inside the namespace ----------------------------------------------------------------------


class DnsServer:
    """A DNS server for A queries on 127.0.0.1:53 with TTL 0.

    ``zone`` maps a name to the answers of its successive A lookups (the last one repeats), so
    ``{"rebind.test": [PUBLIC_IP, "127.0.0.1"]}`` answers the public address once and loopback
    after. AAAA queries get no answer; unknown names NXDOMAIN. ``lookups`` counts A queries.
    """

    def __init__(self, zone: dict[str, list[str]]) -> None:
        self.zone = {name.lower().rstrip("."): answers for name, answers in zone.items()}
        self.lookups: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 53))
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            data, peer = self._sock.recvfrom(512)
            try:
                self._sock.sendto(self._answer(data), peer)
            except (IndexError, struct.error, UnicodeDecodeError):
                continue

    def _answer(self, data: bytes) -> bytes:
        query_id, flags = struct.unpack(">HH", data[:4])
        labels, i = [], 12
        while data[i]:
            labels.append(data[i + 1 : i + 1 + data[i]].decode("ascii"))
            i += 1 + data[i]
        qtype = struct.unpack(">H", data[i + 1 : i + 3])[0]
        question = data[12 : i + 5]
        name = ".".join(labels).lower()
        rcode, answers = 0, b""
        if name not in self.zone:
            rcode = 3
        elif qtype == 1:
            with self._lock:
                n = self.lookups[name]
                self.lookups[name] += 1
            address = self.zone[name][min(n, len(self.zone[name]) - 1)]
            answers = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 0, 4) + socket.inet_aton(address)
        header = struct.pack(
            ">HHHHHH", query_id, 0x8480 | (flags & 0x0100) | rcode, 1, 1 if answers else 0, 0, 0
        )
        return header + question + answers


def _run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, text=True)


@contextmanager
def loopback_world(zone: dict[str, list[str]], workdir: Path) -> Iterator[DnsServer]:
    """Make this (already unshared) namespace a small internet: see the module docstring."""
    _run("ip", "link", "set", "lo", "up")
    _run("ip", "addr", "add", f"{PUBLIC_IP}/32", "dev", "lo")
    workdir.mkdir(parents=True, exist_ok=True)
    resolv = workdir / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\noptions attempts:1 timeout:2\n")
    hosts = workdir / "hosts"
    hosts.write_text("127.0.0.1 localhost\n::1 localhost\n")
    _run("mount", "--bind", str(resolv), "/etc/resolv.conf")
    _run("mount", "--bind", str(hosts), "/etc/hosts")
    yield DnsServer(zone)


@dataclass
class Seen:
    method: str
    path: str
    host: str


@dataclass
class MiniSite:
    """A recording web server on ``host:port``: ``/@<user>/video/<id>`` is a TikTok-shaped
        post page whose media address is ``media_url`` (default: this server, as the client
        named it, ``/video/<id>.mp4``), ``/video/<id>.mp4`` serves ``video``, and ``redirects``
        maps a path to a ``Location``. Every request is kept in ``seen``. Also usable outside a
    namespace (``port=0`` picks a free port; :attr:`base_url`)."""

    host: str
    port: int
    video: Path | None = None
    redirects: dict[str, str] = field(default_factory=dict)
    media_url: str | None = None
    statuses: dict[str, int] = field(default_factory=dict)
    """Paths answered with this HTTP status and an empty body."""
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_HEAD(self) -> None:
                self.do_GET()

            def do_GET(self) -> None:
                site.seen.append(Seen(self.command, self.path, self.headers.get("Host", "")))
                status, headers, body = site.answer(self.path, self.headers.get("Host", ""))
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

        self._httpd = ThreadingHTTPServer((self.host, self.port), Handler)
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def answer(self, path: str, host: str) -> tuple[int, dict[str, str], bytes]:
        from crawler.tiktok_format import rehydration_page

        path = path.split("?")[0]
        if path in self.statuses:
            return self.statuses[path], {"Content-Type": "text/plain"}, b""
        if path in self.redirects:
            return 302, {"Location": self.redirects[path]}, b""
        parts = path.strip("/").split("/")
        if len(parts) == 3 and parts[0].startswith("@") and parts[1] == "video":
            vid = parts[2]
            media = self.media_url or f"http://{host}/video/{vid}.mp4"
            item = {
                "id": vid,
                "desc": "a post",
                "author": {"uniqueId": parts[0][1:]},
                "video": {"playAddr": media, "format": "mp4", "duration": 7},
            }
            scope = {"webapp.video-detail": {"statusCode": 0, "itemInfo": {"itemStruct": item}}}
            return 200, {"Content-Type": "text/html"}, rehydration_page("post", scope)
        if path.startswith("/video/") and path.endswith(".mp4") and self.video is not None:
            return 200, {"Content-Type": "video/mp4"}, self.video.read_bytes()
        return 404, {"Content-Type": "text/plain"}, b"not found\n"

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def requests(self) -> list[dict[str, str]]:
        return [vars(s) for s in self.seen]


class TcpListener:
    """Accepts TCP connections on ``host:port`` and counts them (an FTP server's stand-in)."""

    def __init__(self, host: str, port: int) -> None:
        self.accepted = 0
        self._sock = socket.create_server((host, port))
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            conn, _ = self._sock.accept()
            self.accepted += 1
            conn.sendall(b"220 ftp ready\r\n")
            conn.close()
