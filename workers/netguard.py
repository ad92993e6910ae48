"""The download guard: every connection a download makes goes to an allowed address.

Checking a post URL's host before handing it to yt-dlp is not enough: yt-dlp resolves the name
again (a DNS answer can change between the two lookups), follows redirects, and its
extractors fetch further URLs (media, manifests, API calls) that nobody looked at. So the
check is made where the address is final: a process-wide audit hook (:func:`sys.addaudithook`)
sees each ``socket.connect`` (and ``sendto``/``sendmsg``) with the address about to be
dialled, and refuses it while a :func:`guard` is active in the calling thread.

What a guard refuses, in the thread that entered it:

- a connection to an address that is not globally routable: loopback, private, link-local
  (cloud metadata), shared (CGNAT), reserved, multicast, unspecified; IPv6 addresses that
  embed such an IPv4 address (IPv4-mapped, 6to4, NAT64's well-known prefix) likewise;
- a connection to a host *name* (``socket.connect`` would resolve it after the check) and any
  socket that is not IPv4 or IPv6 (unix sockets, netlink...);
- a ``urllib`` request (redirect hops included) for a scheme other than http(s) (yt-dlp's
  urllib handler would follow a redirect to ``ftp://``; its requests handler has no adapter
  for other schemes);
- starting a program with a URL among its arguments: an external downloader or FFmpeg asked to
  fetch a URL dials from another process, out of the hook's sight.

The address checks are skipped when the guard is opened with ``allow_private=True``
(``download.allow_private_hosts``); the scheme and program checks always apply. Every refusal
raises :class:`Refused` (an ``OSError``, so network code treats it as a failed connection
and closes its socket; yt-dlp's ``create_connection`` then tries the host's next address) and
is recorded on the :class:`Guard`, so the caller can report the refusal in one line whatever
yt-dlp made of the error.

Limits:

- The hook sees only sockets opened by Python code. yt-dlp's ``curl_cffi`` handler dials from
  C; :func:`crawler.ytdlp.new_youtube_dl` leaves it out of guarded clients.
- Only the thread that entered the guard is checked (other threads of the process, such as a
  worker's Redis connection, may dial private addresses). Python 3.11 raises no audit event
  when a thread starts, so a guard cannot follow threads the download starts; the download
  options keep yt-dlp in the calling thread (``concurrent_fragment_downloads: 1``, native
  downloaders only).
- With a proxy configured (yt-dlp's ``proxy`` or the ``*_proxy`` environment variables) the
  address dialled is the proxy's: a private proxy is refused, and a public one must enforce
  its own policy for the addresses it fetches.
- Audit hooks cannot be removed; the hook stays installed for the life of the process and
  costs one set lookup per audit event outside guarded work.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

ALLOWED_SCHEMES = frozenset({"http", "https"})

_NETWORK_EVENTS = frozenset({"socket.connect", "socket.sendto", "socket.sendmsg"})
_PROGRAM_EVENTS = frozenset(
    {"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn"}
)
_WATCHED = _NETWORK_EVENTS | _PROGRAM_EVENTS | {"urllib.Request"}
_URL_ARG = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_INET_FAMILIES = (socket.AF_INET, socket.AF_INET6)


class Refused(PermissionError):
    """A connection, request or program the download guard did not allow."""


@dataclass
class Guard:
    """One guarded piece of work: its policy and what was refused during it."""

    allow_private: bool
    refusals: list[str] = field(default_factory=list)
    address_refused: bool = False
    """Whether an address was refused (``allow_private`` would have let it through)."""

    def refuse(self, reason: str, *, address: bool = False) -> None:
        self.refusals.append(reason)
        self.address_refused = self.address_refused or address
        raise Refused(reason)


_local = threading.local()
_install_lock = threading.Lock()
_installed = False


def address_refusal(address: str) -> str | None:
    """Why ``address`` (an IP address literal) may not be dialled, or None when it may."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return f"{_clip(address)} is a host name, not an address"
    nat64 = _nat64_embedded(ip) if isinstance(ip, ipaddress.IPv6Address) else None
    # NAT64 (DNS64 networks reach every IPv4 host this way): judged by the IPv4 inside
    kind = _non_public_kind(nat64 if nat64 is not None else ip)
    if nat64 is not None and kind is not None:
        kind = f"embeds {nat64}, {kind}"
    elif kind is None and isinstance(ip, ipaddress.IPv6Address) and ip.sixtofour is not None:
        inner = _non_public_kind(ip.sixtofour)
        kind = None if inner is None else f"embeds {ip.sixtofour}, {inner}"
    return None if kind is None else f"{ip} is not a public address ({kind})"


def _non_public_kind(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        inner = _non_public_kind(ip.ipv4_mapped)
        return None if inner is None else f"IPv4-mapped {inner}"
    for kind in ("loopback", "unspecified", "link_local", "multicast", "private", "reserved"):
        if getattr(ip, f"is_{kind}"):
            return kind.replace("_", "-")
    return None if ip.is_global else "not globally routable"


def _nat64_embedded(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _check_address(guard: Guard, sock: Any, address: Any) -> None:
    family = getattr(sock, "family", None)
    if family not in _INET_FAMILIES:
        guard.refuse(
            f"refusing a {getattr(family, 'name', family)} socket ({_clip(repr(address))})",
            address=True,
        )
    if address is None:  # sendmsg on a connected socket: its peer was checked at connect
        return
    if not (isinstance(address, tuple) and len(address) >= 2 and isinstance(address[0], str)):
        guard.refuse(
            f"refusing to connect to {_clip(repr(address))}: not an IP address", address=True
        )
    reason = address_refusal(address[0])
    if reason is not None:
        guard.refuse(
            f"refusing to connect to {address[0]} port {address[1]}: {reason}", address=True
        )


def _check_program(guard: Guard, event: str, args: tuple[Any, ...]) -> None:
    # subprocess.Popen: (executable, args, cwd, env); os.exec, os.posix_spawn: (path, argv,
    # env); os.spawn: (mode, path, args, env); os.system: (command,)
    raw = args[2] if event == "os.spawn" else args[0] if event == "os.system" else args[1]
    if isinstance(raw, (str, bytes)):
        argv = os.fsdecode(raw).split()
    else:
        argv = [
            os.fsdecode(a) if isinstance(a, (str, bytes, os.PathLike)) else str(a)
            for a in raw or ()
        ]
    for arg in argv:
        if _URL_ARG.match(arg):
            program = os.path.basename(argv[0])
            guard.refuse(
                f"refusing to let {program} fetch {_clip(arg)}: a download fetches URLs itself"
            )


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if event not in _WATCHED:
        return
    guard: Guard | None = getattr(_local, "guard", None)
    if guard is None:
        return
    if event in _NETWORK_EVENTS:
        if not guard.allow_private:
            _check_address(guard, args[0], args[1] if len(args) > 1 else None)
    elif event == "urllib.Request":
        scheme = urlsplit(str(args[0])).scheme.lower()
        if scheme not in ALLOWED_SCHEMES:
            guard.refuse(f"refusing {_clip(str(args[0]))}: only http(s) is fetched")
    else:
        _check_program(guard, event, args)


def install() -> None:
    """Install the audit hook (once per process; it does nothing outside a guard)."""
    global _installed
    with _install_lock:
        if not _installed:
            sys.addaudithook(_hook)
            _installed = True


@contextmanager
def guard(*, allow_private: bool = False) -> Iterator[Guard]:
    """Check every connection, urllib request and program start made by this thread until the
    block ends; yields the :class:`Guard` whose ``refusals`` say what was refused."""
    install()
    current = Guard(allow_private=allow_private)
    outer = getattr(_local, "guard", None)
    _local.guard = current
    try:
        yield current
    finally:
        _local.guard = outer
