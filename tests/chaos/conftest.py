"""What the chaos tests share: a redis-server that can be killed and started again on its port
and data folder (with AOF), ``reelwatch worker`` processes in process groups of their own (so
``kill -9`` takes the pool with it, as a lost machine would), a replica site of cheap posts
with one catalogued title, and readers of the store and the workers' logs.

Media is cheap: a few short low-resolution clips (copies of the catalogued title and
unrelated clips), each published by many posts, with only the ``copy`` signal.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from crawler.replica.server import ReplicaServer
from crawler.replica.site import ReplicaVideo, build_site
from crawler.sources import ReplicaSource
from reelwatch.demo.media import crop, make_reference_clip, mirror, transform_file
from reelwatch.models import Match, Post, PostState, post_key
from reelwatch.settings import Settings
from tests.workers.conftest import process_env
from triage.smtp_sink import SmtpSink, free_port
from triage.stores import open_store
from workers.app import configure

SIGNALS = ["copy"]
SIZE = (320, 180)
TITLE = "Starfall Station"
STEP_RE = re.compile(r"workers\.tasks: (reelwatch\.\w+) (\S+)$", re.M)
RETRY_RE = re.compile(
    r"workers\.tasks: (reelwatch\.\w+) (\S+): retry \d+ of \d+ in [\d.]+ s: (.*)$", re.M
)
READY_RE = re.compile(r"reelwatch-[\w-]+@\S+ ready")

needs_redis = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="redis-server not installed"
)


@dataclass(frozen=True)
class Clips:
    reference: Path
    copies: list[Path]
    others: list[Path]


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Clips:
    """The title's reference, two copies of it (mirrored, cropped) and two unrelated clips."""
    root = tmp_path_factory.mktemp("clips")
    reference = make_reference_clip(
        ["astronaut", "rocket"], root / "reference.mp4", seconds_per_photo=4, size=SIZE, seed=11
    )
    copy_a = transform_file(reference, root / "copy-a.mp4", [mirror], start=1.0, duration=5.0)
    copy_b = transform_file(reference, root / "copy-b.mp4", [crop], start=2.5, duration=5.0)
    other_a = make_reference_clip(
        ["camera"], root / "other-a.mp4", seconds_per_photo=5, size=SIZE, seed=99
    )
    other_b = make_reference_clip(
        ["coffee"], root / "other-b.mp4", seconds_per_photo=5, size=SIZE, seed=7
    )
    return Clips(reference=reference, copies=[copy_a, copy_b], others=[other_a, other_b])


@dataclass(frozen=True)
class Site:
    root: Path
    tag: str
    copies: list[str]
    """Post ids whose video is a copy of the title."""
    others: list[str]

    @property
    def keys(self) -> list[str]:
        return sorted(post_key("replica", i) for i in self.copies + self.others)

    @property
    def copy_keys(self) -> list[str]:
        return sorted(post_key("replica", i) for i in self.copies)


def make_site(
    root: Path, tag: str, posts: int, clips: Clips, files: list[Path] | None = None
) -> Site:
    """``posts`` posts under ``#tag``, cycling through ``files`` (default: copy, other, copy,
    other), newest first, a minute apart."""
    files = files or [clips.copies[0], clips.others[0], clips.copies[1], clips.others[1]]
    now = int(time.time())
    videos, copies, others = [], [], []
    for i in range(posts):
        vid = f"75{i:017d}"
        path = files[i % len(files)]
        (copies if path in clips.copies else others).append(vid)
        videos.append(
            ReplicaVideo(
                id=vid,
                user=f"poster{i % 7}",
                caption=f"clip number {i}",
                hashtags=[tag],
                path=path,
                create_time=now - 60 * (i + 1),
                duration=5,
                width=SIZE[0],
                height=SIZE[1],
            )
        )
    return Site(root=build_site(root, videos), tag=tag, copies=copies, others=others)


def catalogue(settings: Settings, clips: Clips, tag: str) -> str:
    """Catalogue the title (cheap signals only); returns its id."""
    from matcher.catalog import Catalog

    settings.matcher.signals = list(SIGNALS)
    catalog = Catalog(settings)
    title = catalog.add_title(TITLE, owner="Northlight", hashtags=[tag])
    catalog.add_assets(title.id, [clips.reference])
    return title.id


@pytest.fixture
def broker_settings(settings: Settings) -> Iterator[Settings]:
    """The test's settings; it sends its tasks to the broker it points them at, until it ends
    (then they are eager again, for the tests after it)."""
    yield settings
    settings.broker_url = None
    configure(settings)


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with SmtpSink() as s:
        yield s


def worker_env(settings: Settings, broker: str, sink: SmtpSink, **extra: str) -> dict[str, str]:
    """The environment of a chaos worker: the test's home, replica and mail sink, cheap
    signals, one email per alert, a short visibility timeout and a quick retry backoff."""
    settings.email.smtp_host = "127.0.0.1"
    settings.email.smtp_port = sink.port
    defaults = {
        "REELWATCH_BROKER_URL": broker,
        "REELWATCH_MATCHER__SIGNALS": '["copy"]',
        "REELWATCH_ALERTS__DIGEST_THRESHOLD": "0",
        "REELWATCH_WORKERS__VISIBILITY_TIMEOUT_S": "10",
        "REELWATCH_WORKERS__RETRY_BACKOFF_S": "1",
        "REELWATCH_WORKERS__RETRY_BACKOFF_MAX_S": "8",
    }
    return process_env(settings, **{**defaults, **extra})


# -- redis ----------------------------------------------------------------------------------
class RedisServer:
    """A redis-server on a fixed port and data folder, so it can be killed and started again
    with what it persisted (``aof``: ``appendonly yes``, ``appendfsync always``)."""

    def __init__(self, folder: Path, aof: bool = False) -> None:
        self.folder = folder
        self.port = free_port()
        self.aof = aof
        self.proc: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def start(self) -> None:
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "always"]
            if self.aof
            else ["--appendonly", "no"]
        )
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                *persistence,
                "--dir",
                str(self.folder),
            ],
            stdout=(self.folder / "redis.log").open("a"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                # Serving, and done loading what the AOF held.
                if self.client().ping() and not self.client().info("persistence").get("loading"):
                    return
            except redis.ConnectionError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail("redis-server did not start")
            time.sleep(0.1)

    def kill(self) -> None:
        """``kill -9``: nothing is flushed beyond what the AOF already holds."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
            self.proc = None

    def queued(self) -> int:
        """Messages waiting on the reelwatch queues plus those taken and not acknowledged."""
        c = self.client()
        waiting = sum(int(c.llen(q)) for q in ("crawl", "media", "match", "land"))
        return waiting + int(c.hlen("unacked"))


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not installed")
    server = RedisServer(tmp_path / "redis", aof=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# -- workers --------------------------------------------------------------------------------
class Worker:
    """``reelwatch worker`` (prefork, one pool process) in a process group of its own; each
    start logs to a new file ``<name>-<n>.log``."""

    def __init__(self, name: str, env: dict[str, str], folder: Path) -> None:
        self.name = name
        self.env = env
        self.folder = folder
        self.logs: list[Path] = []
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait: bool = True) -> Worker:
        log = self.folder / f"{self.name}-{len(self.logs) + 1}.log"
        self.logs.append(log)
        with log.open("w") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "reelwatch",
                    "worker",
                    "--concurrency",
                    "1",
                    "--loglevel",
                    "INFO",
                ],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if wait:
            self.wait_for(READY_RE, timeout=120)
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """``kill -9`` the worker and its pool: nothing is acknowledged or put back."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.proc = None

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.proc = None

    def text(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.logs if p.exists())

    def current_log(self) -> str:
        return self.logs[-1].read_text(errors="replace") if self.logs else ""

    def wait_for(self, pattern: re.Pattern[str] | str, timeout: float) -> re.Match[str]:
        """Wait until this start's log matches ``pattern``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            compiled = pattern if isinstance(pattern, re.Pattern) else re.compile(pattern, re.M)
            found = compiled.search(self.current_log())
            if found:
                return found
            if not self.alive:
                break
            time.sleep(0.1)
        pytest.fail(f"{self.name} never logged {pattern!s}:\n{self.current_log()[-3000:]}")

    def steps(self) -> dict[str, Counter[str]]:
        """Per step, how often this worker (over all its starts) began it for each post."""
        found: dict[str, Counter[str]] = {}
        for step, key in STEP_RE.findall(self.text()):
            found.setdefault(step, Counter())[key] += 1
        return found

    def retries(self) -> list[tuple[str, str, str]]:
        """(step, post key, reason) of each retry this worker scheduled."""
        return RETRY_RE.findall(self.text())


class Workers:
    """The workers of one test, stopped (and their logs shown on failure) at its end."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.all: list[Worker] = []

    def add(self, name: str, env: dict[str, str], start: bool = True) -> Worker:
        worker = Worker(name, env, self.folder)
        self.all.append(worker)
        if start:
            worker.start()
        return worker

    def steps(self) -> dict[str, Counter[str]]:
        total: dict[str, Counter[str]] = {}
        for w in self.all:
            for step, counts in w.steps().items():
                total.setdefault(step, Counter()).update(counts)
        return total

    def retries(self) -> list[tuple[str, str, str]]:
        return [r for w in self.all for r in w.retries()]

    def dump(self) -> None:
        for w in self.all:
            for log in w.logs:
                print(f"--- {log.name}\n{log.read_text(errors='replace')[-4000:]}")

    def stop(self) -> None:
        for w in self.all:
            w.stop()


@pytest.fixture
def workers(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Workers]:
    group = Workers(tmp_path)
    try:
        yield group
    finally:
        group.stop()
        report = getattr(request.node, "rep_call", None)
        if report is None or report.failed:
            group.dump()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    report = yield
    if report.when == "call":  # type: ignore[attr-defined]
        item.rep_call = report  # type: ignore[attr-defined]
    return report


# -- the store --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    posts: dict[str, Post | None]
    matches: list[Match]

    def states(self) -> Counter[str]:
        return Counter(p.state.value if p else "missing" for p in self.posts.values())

    def failed(self) -> dict[str, str]:
        return {
            k: p.error or ""
            for k, p in self.posts.items()
            if p is not None and p.state == PostState.FAILED
        }


def outcome(settings: Settings, keys: list[str]) -> Outcome:
    with open_store(settings) as store:
        return Outcome(
            posts={k: store.get_post(k) for k in keys}, matches=list(store.list_matches())
        )


def wait_until_done(settings: Settings, keys: list[str], timeout: float) -> Outcome:
    """Wait until every post of ``keys`` ended (matched or failed); fail the test otherwise."""
    deadline = time.monotonic() + timeout
    done = {PostState.MATCHED, PostState.FAILED}
    while True:
        got = outcome(settings, keys)
        if all(p is not None and p.state in done for p in got.posts.values()):
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"posts not done within {timeout:.0f} s: {dict(got.states())}")
        time.sleep(0.5)


def assert_every_post_once(got: Outcome, site: Site, title_id: str) -> None:
    """Every post matched (none failed, none missing) and each copy landed exactly one match
    with the title, under its deterministic id; the unrelated clips landed nothing of note."""
    from reelwatch.models import Confidence, match_id

    assert dict(got.states()) == {"matched": len(site.keys)}, got.failed()
    expected = {match_id(k, title_id) for k in site.copy_keys}
    notable = [m for m in got.matches if m.confidence != Confidence.LOW]
    assert sorted(m.id for m in notable) == sorted(expected)
    assert Counter(m.post_key for m in notable) == Counter(dict.fromkeys(site.copy_keys, 1))


def point_at(settings: Settings, replica: ReplicaServer) -> None:
    ReplicaSource.set_base_url(settings, replica.base_url)
