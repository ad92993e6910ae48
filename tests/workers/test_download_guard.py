"""The download guard (workers/netguard.py) and download errors (workers/download.py).

The hostile-network cases run in a network namespace with only loopback
(:mod:`tests.netns`, script :mod:`tests.netns_guard_cases`): a server on a public-looking
address (1.2.3.4 on ``lo``), servers on 127.0.0.1 that must never be reached, a DNS server
whose answers change between lookups. Each refusal case has a control run with the
connect-time check switched off that does reach the loopback server, so the setup itself is
shown to catch a broken guard.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from reelwatch.errors import InputError, PermanentError, TransientError
from reelwatch.settings import Settings
from tests.netns import MiniSite, NetnsRun, netns_unavailable, run_in_netns
from tests.workers.conftest import COPY_ID, World
from workers import netguard
from workers.download import download

HANDLERS = ["default", "urllib"]
"""yt-dlp's preferred handler (requests) and its legacy urllib one."""

needs_netns = pytest.mark.skipif(
    netns_unavailable() is not None, reason=f"network namespace: {netns_unavailable()}"
)


def _case(world: World, tmp_path: Path, case: str, *args: str) -> NetnsRun:
    work = tmp_path / "work"
    work.mkdir()
    return run_in_netns(
        "tests.netns_guard_cases",
        case,
        "--work",
        str(work),
        "--video",
        str(world.copy),
        "--site",
        str(world.site),
        "--user",
        "mirror.king",
        "--id",
        COPY_ID,
        *args,
    )


def _assert_refused(run: NetnsRun, *, handler: str) -> dict[str, Any]:
    result = run.result
    assert run.returncode == 0 and result, run
    assert result["ok"] is False, run
    assert result["error_type"] == "PermanentError", run
    assert "\n" not in result["error"] and len(result["error"]) < 600, run
    assert result["media_files"] == [], run
    expected = {"default": "Requests", "urllib": "Urllib"}[handler]
    assert result["handlers"] == [expected], run
    return result


# Hostile networks (namespace) ---------------------------------------------------------------


@pytest.mark.parametrize("handler", HANDLERS)
@pytest.mark.netns
@needs_netns
def test_rebinding_name_is_refused_at_connect(world: World, tmp_path: Path, handler: str) -> None:
    run = _case(world, tmp_path, "rebind", "--handler", handler)
    result = _assert_refused(run, handler=handler)
    assert result["internal"] == [], run
    assert "refusing to connect to 127.0.0.1 port 8080" in result["error"], run
    # The early check saw the public answer; yt-dlp's own lookup got loopback.
    assert result["lookups"]["rebind.test"] >= 2, run


@pytest.mark.netns
@needs_netns
def test_rebinding_control_reaches_loopback_without_the_connect_check(
    world: World, tmp_path: Path
) -> None:
    run = _case(world, tmp_path, "rebind", "--no-guard")
    assert run.result.get("ok") is True, run
    assert run.result["internal"], run


@pytest.mark.parametrize("target", ["literal", "name", "mapped", "chain", "media"])
@pytest.mark.parametrize("handler", HANDLERS)
@pytest.mark.netns
@needs_netns
def test_redirect_or_link_to_loopback_is_refused(
    world: World, tmp_path: Path, handler: str, target: str
) -> None:
    """A public page redirecting to 127.0.0.1 (literal, by a name, IPv4-mapped IPv6, after
    a public hop) or naming a loopback media URL for the extractor to fetch."""
    run = _case(world, tmp_path, "redirect", "--target", target, "--handler", handler)
    result = _assert_refused(run, handler=handler)
    assert result["internal"] == [], run
    assert result["public"], run
    assert "not a public address" in result["error"], run


@pytest.mark.parametrize("target", ["literal", "media"])
@pytest.mark.netns
@needs_netns
def test_redirect_control_reaches_loopback_without_the_connect_check(
    world: World, tmp_path: Path, target: str
) -> None:
    run = _case(world, tmp_path, "redirect", "--target", target, "--no-guard")
    assert run.result.get("ok") is True, run
    assert run.result["internal"], run


@pytest.mark.parametrize("target", ["file", "ftp", "ftp-name"])
@pytest.mark.parametrize("handler", HANDLERS)
@pytest.mark.netns
@needs_netns
def test_redirect_to_another_scheme_is_refused_in_one_line(
    world: World, tmp_path: Path, handler: str, target: str
) -> None:
    run = _case(world, tmp_path, "scheme", "--target", target, "--handler", handler)
    result = _assert_refused(run, handler=handler)
    assert result["canary_opened"] == [], run
    assert result["ftp_connections"] == 0, run
    if not (handler == "urllib" and target == "file"):
        # urllib itself refuses a redirect to file:// ("HTTP Error 302"); the rest name it.
        assert "only http(s) is fetched" in result["error"], run


@pytest.mark.netns
@needs_netns
def test_ftp_control_connects_without_the_guard(world: World, tmp_path: Path) -> None:
    """yt-dlp's urllib handler follows a redirect to ftp:// when nothing stops it."""
    run = _case(world, tmp_path, "scheme", "--target", "ftp", "--handler", "urllib", "--no-guard")
    assert run.result.get("ftp_connections") == 1, run


@pytest.mark.netns
@needs_netns
def test_replica_on_loopback_downloads_with_private_hosts_allowed(
    world: World, tmp_path: Path
) -> None:
    run = _case(world, tmp_path, "replica", "--allow-private")
    assert run.result.get("ok") is True, run
    assert run.result["sha256"] == run.result["expected_sha256"], run
    assert run.result["handlers"] == ["Requests"], run


@pytest.mark.parametrize("handler", HANDLERS)
@pytest.mark.netns
@needs_netns
def test_replica_on_a_public_address_downloads_with_default_settings(
    world: World, tmp_path: Path, handler: str
) -> None:
    run = _case(world, tmp_path, "replica", "--handler", handler)
    assert run.result.get("ok") is True, run
    assert run.result["sha256"] == run.result["expected_sha256"], run


@pytest.mark.netns
@needs_netns
def test_full_disk_fails_in_one_line_and_keeps_no_partial_file(
    world: World, tmp_path: Path
) -> None:
    run = _case(world, tmp_path, "replica", "--disk-full")
    result = run.result
    assert result.get("ok") is False, run
    assert result["error_type"] == "TransientError", run
    assert result["error"].startswith("no space left on device under "), run
    assert "\n" not in result["error"], run
    assert result["home_files"] == [], run  # nothing under media/, media/tmp or anywhere


@pytest.mark.netns
@needs_netns
def test_cli_match_prints_one_line_for_a_rebinding_overlong_url(
    world: World, tmp_path: Path
) -> None:
    # 100 KB of URL (one argument to a program may not exceed 128 KiB)
    run = _case(world, tmp_path, "cli", "--pad", "100000")
    result = run.result
    assert result.get("rc") == 1, run
    lines = result["stderr"].splitlines()
    assert len(lines) == 1 and lines[0].startswith("reelwatch: error: download of "), run
    assert "refusing to connect to 127.0.0.1 port 8080" in lines[0], run
    assert len(lines[0]) < 600, run
    assert result["internal"] == [], run


# In-process (no namespace) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("169.254.169.254", "link-local"),
        ("100.64.0.1", "not globally routable"),
        ("0.0.0.0", "unspecified"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
        ("2002:7f00:1::1", "embeds 127.0.0.1"),
        ("64:ff9b::a00:1", "embeds 10.0.0.1"),
        ("fe80::1%lo", "link-local"),
        ("evil.example", "host name"),
    ],
)
def test_non_public_addresses_are_named(address: str, kind: str) -> None:
    reason = netguard.address_refusal(address)
    assert reason is not None and kind in reason


@pytest.mark.parametrize("address", ["1.2.3.4", "8.8.8.8", "2606:4700::1111", "64:ff9b::808:808"])
def test_public_addresses_pass(address: str) -> None:
    assert netguard.address_refusal(address) is None


def test_guard_refuses_loopback_in_its_thread_only() -> None:
    accepted: list[object] = []
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        server.settimeout(0.5)
        with netguard.guard() as guard:
            with pytest.raises(netguard.Refused, match=r"127\.0\.0\.1 port"):
                socket.create_connection(("127.0.0.1", port), timeout=5)
            # another thread of the process (a worker's Redis connection) is not checked
            other = threading.Thread(
                target=lambda: socket.create_connection(("127.0.0.1", port), timeout=5).close()
            )
            other.start()
            other.join()
            accepted.append(server.accept()[0])
        assert guard.refusals and guard.address_refused
        with pytest.raises(TimeoutError):
            server.accept()  # the refused attempt never reached the listener
        socket.create_connection(("127.0.0.1", port), timeout=5).close()  # guard over
    assert len(accepted) == 1


def test_guard_refuses_unix_sockets_and_host_names(tmp_path: Path) -> None:
    with (
        netguard.guard(),
        socket.socket(socket.AF_UNIX) as unix,
        pytest.raises(netguard.Refused, match="AF_UNIX"),
    ):
        unix.connect(str(tmp_path / "sock"))
    with (
        netguard.guard(),
        socket.socket() as tcp,
        pytest.raises(netguard.Refused, match="host name"),
    ):
        tcp.connect(("localhost", 9))


def test_guard_refuses_programs_given_a_url_even_with_private_hosts_allowed() -> None:
    with netguard.guard(allow_private=True) as guard:
        with pytest.raises(netguard.Refused, match="ffmpeg"):
            subprocess.run(["ffmpeg", "-i", "http://127.0.0.1:9/x.m3u8"], check=False)
        subprocess.run([sys.executable, "-c", "pass", "file:/local/path"], check=True)
    assert len(guard.refusals) == 1


def test_download_client_keeps_python_socket_handlers_only() -> None:
    from crawler.ytdlp import PYTHON_SOCKET_HANDLERS, new_youtube_dl

    with new_youtube_dl({}, python_sockets_only=True) as ydl:
        keys = set(ydl._request_director.handlers)
    assert keys and keys <= PYTHON_SOCKET_HANDLERS
    assert "Urllib" in keys


def test_overlong_url_is_shown_once_and_short(settings: Settings) -> None:
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    url = f"http://127.0.0.1:{port}/" + "x" * 200_000
    with pytest.raises(TransientError) as caught:  # connection refused: worth retrying
        download(settings, url)
    message = str(caught.value)
    assert len(message) < 700 and "\n" not in message
    assert message.count("http://127.0.0.1") == 1


def test_a_host_on_loopback_is_refused_before_anything_is_fetched(settings: Settings) -> None:
    settings.download.allow_private_hosts = False
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(0.5)
        url = f"http://127.0.0.1:{server.getsockname()[1]}/@someone/video/1"
        with pytest.raises(PermanentError, match=r"not a public address.*allow_private_hosts"):
            download(settings, url)
        with pytest.raises(TimeoutError):
            server.accept()


def test_non_http_url_is_refused_in_one_line(settings: Settings) -> None:
    with pytest.raises(InputError, match="not an http"):
        download(settings, "file:///etc/passwd")


@pytest.mark.parametrize(("status", "error"), [(429, TransientError), (503, TransientError)])
def test_rate_limits_and_server_errors_stay_transient(
    settings: Settings, world: World, status: int, error: type[Exception]
) -> None:
    site = MiniSite("127.0.0.1", 0, world.copy, statuses={"/video/1.mp4": status})
    try:
        with pytest.raises(error, match=f"HTTP Error {status}"):
            download(settings, f"{site.base_url}/@someone/video/1")
    finally:
        site.close()
    assert not list(settings.media_dir.rglob("*.mp4"))


def test_missing_media_is_permanent(settings: Settings, world: World) -> None:
    site = MiniSite("127.0.0.1", 0, world.copy, statuses={"/video/1.mp4": 404})
    try:
        with pytest.raises(PermanentError, match="HTTP Error 404"):
            download(settings, f"{site.base_url}/@someone/video/1")
    finally:
        site.close()
