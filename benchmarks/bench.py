"""Where the time goes: throughput of the whole pipeline, measured in one run on one clip set.

Usage: .venv/bin/python benchmarks/bench.py [--write docs/benchmarks.md] [--quick]
       [--long N] [--short M] [--long-seconds S] [--no-workers]

``make bench`` runs it with ``--write docs/benchmarks.md``: the section "## `make bench`" of
that file is replaced by this run's figures (the other sections are kept).

It makes, in a temporary folder, a catalog of the four built-in evaluation titles and a clip
set (``benchmarks/_clipset.py``): N 60 s 1280x720 H.264/AAC clips and M short 9:16
576x1024 posts of 8 to 30 s, some copying the titles. N=2 and M=8 by default: on the 2-core
development machine the whole run then stays under 15 minutes, of which the index search
at 1M (``index_search.py``) takes about six. Then, on those same files:

* decode-only ceiling: clips per minute when this process only decodes what the signals
  need, with the arguments ``fingerprint_file`` uses (``matcher.decode.decode``);
* FFmpeg full decode: ``ffmpeg -threads 1 -i F -f null -`` (every frame and the audio);
* end to end in-process: the clips as posts on the replica platform under two hashtags (the
  60 s set, the short set), a fresh data home with the catalog, an SMTP sink; one process
  (``benchmarks/_pipeline_run.py``) crawls each hashtag and runs every new post through
  download, fingerprint (every signal with something indexed), match, land and alert as
  ``reelwatch crawl`` does, and reports process start, model loads and per-stage seconds;
* end to end on two ``reelwatch worker`` processes and a real redis-server: ``reelwatch
  crawl`` queues every post, the workers share the chains, the store is polled until every
  post is matched or failed;
* the naive order for comparison (60 s set): every frame decoded at full size to RGB, the
  sampled ones kept, each signal's fingerprint one after another, then each index searched
  (no evidence, no landing: less work than the pipeline does);
* the sub-benchmarks ``benchmarks/index_search.py`` and ``benchmarks/gpu_models.py`` when
  they exist, their Markdown appended.

``--quick`` is a smoke run: one 20 s long clip, two short ones, sub-benchmarks at 10k.
Not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import av  # noqa: E402  (after the repository root is importable)
import numpy as np  # noqa: E402

from benchmarks._clipset import BenchClip, build_clipset, write_references  # noqa: E402
from benchmarks._machine import cpu_model  # noqa: E402
from benchmarks._pipeline_run import decode_for_query, warm_up  # noqa: E402
from benchmarks._services import (  # noqa: E402
    pipeline_env,
    post_states,
    redis_server,
    wait_for_text,
    wait_until_final,
)
from crawler.replica.server import ReplicaServer  # noqa: E402
from crawler.replica.site import ReplicaVideo, build_site  # noqa: E402
from matcher.decode import Decoded, probe  # noqa: E402
from matcher.engine import Matcher  # noqa: E402
from matcher.evaluation import EvalReference, EvalSet, build_catalog  # noqa: E402
from matcher.signals.base import TextInput  # noqa: E402
from reelwatch.demo.evalset import face_photos_dir, find_references  # noqa: E402
from reelwatch.digest import sha256_file  # noqa: E402
from reelwatch.models import Confidence, PostState  # noqa: E402
from reelwatch.settings import Settings, load_settings  # noqa: E402
from tests.workers.conftest import reelwatch_process  # noqa: E402  (as the workers' tests)
from triage.smtp_sink import SmtpSink  # noqa: E402

SECTION = "## `make bench`"
TAG_ALL = "reelbench"
TAG_OF = {"long": "reelbenchlong", "short": "reelbenchshort"}
WAIT_S = 1200.0
FFMPEG_DECODE = ("ffmpeg", "-nostdin", "-v", "error", "-threads", "1", "-i")
FFMPEG_NULL = ("-f", "null", "-")


# The docs section ----------------------------------------------------------------------------


def _is_heading(line: str) -> bool:
    return line.startswith("## ")


def _is_ours(line: str) -> bool:
    return _is_heading(line) and line[3:].strip().strip("`").strip() == "make bench"


def replace_section(doc: str, section: str) -> str:
    """``doc`` with its "## `make bench`" section (up to the next ``## `` heading) replaced
    by ``section``; when it has none, ``section`` goes before the first ``## `` heading (or
    at the end). Every other section is kept as it was."""
    lines = doc.splitlines(keepends=True)
    body = section.rstrip("\n") + "\n\n"
    start = next((i for i, line in enumerate(lines) if _is_ours(line)), None)
    if start is None:
        first = next((i for i, line in enumerate(lines) if _is_heading(line)), len(lines))
        if first == len(lines) and lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        if first == len(lines) and lines and lines[-1].strip():
            body = "\n" + body
        return "".join([*lines[:first], body, *lines[first:]]).rstrip("\n") + "\n"
    end = next((i for i in range(start + 1, len(lines)) if _is_heading(lines[i])), len(lines))
    return "".join([*lines[:start], body, *lines[end:]]).rstrip("\n") + "\n"


def demote_headings(fragment: str) -> str:
    """A sub-benchmark's Markdown with its ``#``/``##`` headings made ``###``, so they sit
    inside this section instead of ending it."""
    out = []
    for line in fragment.splitlines():
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            if level <= 2 and line[level : level + 1] == " ":
                line = "###" + line[level:]
        out.append(line)
    return "\n".join(out).strip("\n")


# The machine ---------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    cpu = cpu_model()
    ram = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 1024**2:.0f} GiB"
                break
    except OSError:
        pass
    gpu = "none"
    if shutil.which("nvidia-smi"):
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
        )
        if done.returncode == 0 and done.stdout.strip():
            gpu = "; ".join(line.strip() for line in done.stdout.strip().splitlines())
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "ram": ram,
        "gpu": gpu,
        "python": platform.python_version(),
        "ffmpeg": _ffmpeg_version(),
    }


def _ffmpeg_version() -> str:
    done = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True)
    first = done.stdout.splitlines()[0] if done.stdout else ""
    return first.split()[2] if len(first.split()) > 2 else "?"


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# Timing the parts ----------------------------------------------------------------------------


def cpu_seconds() -> float:
    """CPU seconds (user + system) of this process and of its children that have ended."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@dataclass
class Run:
    parts: dict[str, float] = field(default_factory=dict)
    """Wall seconds of each part."""
    cpu: dict[str, float] = field(default_factory=dict)
    """CPU seconds of each part (this process and the processes it started and waited for):
    on a quiet machine wall time is about CPU time over the cores kept busy; much more wall
    than that means other programs shared the CPUs."""
    figures: dict[str, object] = field(default_factory=dict)

    @contextmanager
    def part(self, name: str) -> Iterator[None]:
        print(f"== {name} (load average {_load()})", flush=True)
        start, cpu = time.perf_counter(), cpu_seconds()
        try:
            yield
        finally:
            self.parts[name] = time.perf_counter() - start
            self.cpu[name] = cpu_seconds() - cpu
            print(f"   {name}: {self.parts[name]:.1f} s ({self.cpu[name]:.0f} CPU s)", flush=True)


def per_minute(n: int, seconds: float) -> float:
    return 60.0 * n / seconds if seconds > 0 else float("nan")


# Catalog and site ----------------------------------------------------------------------------


def build_template(home: Path, refs: Path) -> Settings:
    """A data home with the built-in titles catalogued (copied for every end-to-end run)."""
    settings = load_settings(home=home)
    settings.ensure_home()
    titles, found = find_references(refs)
    evalset = EvalSet(titles, [EvalReference(r.title, r.path, r.kind, r.talent) for r in found], [])
    build_catalog(settings, evalset)
    return settings


def post_id(k: int) -> str:
    return str(7400000000000000000 + k)


def build_bench_site(site: Path, clips: Sequence[BenchClip]) -> dict[str, BenchClip]:
    """Every clip as a post under ``#reelbench`` and its set's hashtag; post id -> clip."""
    now = int(time.time())
    videos, by_id = [], {}
    for k, clip in enumerate(clips):
        pid = post_id(k)
        by_id[pid] = clip
        videos.append(
            ReplicaVideo(
                id=pid,
                user=f"bench.{clip.name}",
                caption=f"weekend upload {k}",
                hashtags=[TAG_ALL, TAG_OF[clip.group]],
                path=clip.path,
                create_time=now - 60 * k,
                duration=round(clip.seconds),
                width=clip.size[0],
                height=clip.size[1],
            )
        )
    build_site(site, videos)
    return by_id


def outcome(home: Path, by_id: dict[str, BenchClip], mails: int) -> dict[str, object]:
    """What the pipeline found: posts by state, the titles each clip landed at high, alerts."""
    from triage.stores import open_store

    states = post_states(home)
    high: dict[str, list[str]] = {}
    with open_store(load_settings(home=home)) as store:
        for key in states:
            clip = by_id.get(key.rsplit(":", 1)[-1])
            if clip is not None:
                found = store.list_matches(post_key=key, min_confidence=Confidence.HIGH)
                high[clip.name] = sorted(m.title for m in found)
        n_matches = store.count_matches()
    copies = [c for c in by_id.values() if c.expect]
    return {
        "posts": len(states),
        "matched": sum(1 for s in states.values() if s == PostState.MATCHED),
        "failed": sum(1 for s in states.values() if s == PostState.FAILED),
        "copies_high": sum(1 for c in copies if c.expect in high.get(c.name, [])),
        "copies": len(copies),
        "high": high,
        "matches": n_matches,
        "alerts": mails,
    }


def _found_line(label: str, found: dict[str, object]) -> str:
    high = found["high"]
    assert isinstance(high, dict)
    listed = "; ".join(f"{name} {', '.join(titles)}" for name, titles in high.items() if titles)
    return (
        f"{label}: {found['posts']} posts, {found['matched']} matched, {found['failed']} "
        f"failed; copies at high under their title {found['copies_high']}/{found['copies']}; "
        f"{found['matches']} matches landed, {found['alerts']} alert emails; at high: "
        f"{listed or 'none'}"
    )


# Decoding ------------------------------------------------------------------------------------


def decode_only(clips: Sequence[BenchClip], settings: Settings) -> float:
    """Seconds to decode ``clips`` one after another as the pipeline does."""
    signals = Matcher(settings).query_signals()
    total = 0.0
    for clip in clips:
        sha = sha256_file(clip.path)
        start = time.perf_counter()
        decode_for_query(clip.path, settings, signals, sha)
        total += time.perf_counter() - start
    return total


def ffmpeg_decode(clips: Sequence[BenchClip]) -> float:
    """Seconds of ``ffmpeg -threads 1 -i F -f null -`` (every frame and the audio) over
    ``clips``, one after another."""
    total = 0.0
    for clip in clips:
        start = time.perf_counter()
        subprocess.run(
            [*FFMPEG_DECODE, str(clip.path), *FFMPEG_NULL],
            check=True,
        )
        total += time.perf_counter() - start
    return total


def naive_decode(path: Path, settings: Settings, with_audio: bool) -> Decoded:
    """Every frame decoded at full size and converted to RGB (the decoder neither skips nor
    scales), the frames at the matcher's sample times kept; the soundtrack as mono at the
    matcher's rate."""
    m = settings.matcher
    media = probe(path)
    step = 1.0 / m.sample_fps
    next_t = 0.0
    frames: list[np.ndarray] = []
    times: list[float] = []
    chunks: list[np.ndarray] = []
    with av.open(str(path)) as container:
        vs = container.streams.video[0]
        vs.thread_type = "AUTO"
        aus = container.streams.audio[0] if with_audio and container.streams.audio else None
        resampler = av.AudioResampler(format="flt", layout="mono", rate=m.audio_rate)
        for packet in container.demux(*[s for s in (vs, aus) if s is not None]):
            for frame in packet.decode():
                if isinstance(frame, av.VideoFrame):
                    rgb = frame.to_ndarray(format="rgb24")
                    t = float(frame.time or 0.0)
                    if t + 1e-6 >= next_t and len(frames) < m.max_frames:
                        frames.append(rgb)
                        times.append(t)
                        while next_t <= t + 1e-6:
                            next_t += step
                elif isinstance(frame, av.AudioFrame):
                    chunks += [r.to_ndarray().reshape(-1) for r in resampler.resample(frame)]
        if aus is not None:
            chunks += [r.to_ndarray().reshape(-1) for r in resampler.resample(None)]
    audio = np.concatenate(chunks).astype(np.float32) if chunks else None
    return Decoded(
        media,
        np.stack(frames),
        np.asarray(times),
        audio=audio,
        sample_rate=m.audio_rate if audio is not None else None,
    )


def naive(clips: Sequence[BenchClip], settings: Settings, work: Path) -> dict[str, float]:
    """Seconds of the naive order over ``clips`` (after a warm-up that loads the models)."""
    matcher = Matcher(settings)
    warm_up(matcher, work)
    signals = matcher.query_signals()
    with_audio = any(s.needs_audio for s in signals)
    text = TextInput(text="weekend upload", hashtags=(TAG_ALL,))
    seconds = {"decode": 0.0, "fingerprint": 0.0, "search": 0.0}
    for clip in clips:
        t0 = time.perf_counter()
        decoded = naive_decode(clip.path, settings, with_audio)
        t1 = time.perf_counter()
        fps = {s.name: s.fingerprint(decoded, "query") for s in signals}
        t2 = time.perf_counter()
        for s in matcher.catalog.signals:
            if s.references == "titles" and not s.reads_media:
                fp = s.fingerprint_text(text)
            elif s.name in fps:
                fp = fps[s.name]
            else:
                continue
            s.search(matcher.catalog.index(s), fp, decoded.duration)
        t3 = time.perf_counter()
        seconds["decode"] += t1 - t0
        seconds["fingerprint"] += t2 - t1
        seconds["search"] += t3 - t2
    seconds["total"] = seconds["decode"] + seconds["fingerprint"] + seconds["search"]
    return seconds


# End to end ----------------------------------------------------------------------------------


def in_process(
    template: Path, work: Path, replica_url: str, sink: SmtpSink, groups: Sequence[str]
) -> dict[str, object]:
    """One ``benchmarks._pipeline_run`` process crawling each group's hashtag."""
    home = work / "home-inprocess"
    shutil.copytree(template, home)
    out = work / "inprocess.json"
    env = pipeline_env(home, replica_url, sink.port, BENCH_SPAWNED_AT=repr(time.time()))
    args = [sys.executable, "-m", "benchmarks._pipeline_run", "--out", str(out)]
    args += ["--work", str(work / "inprocess-scratch")]
    for g in groups:
        args += ["--tag", TAG_OF[g]]
    log = work / "inprocess.log"
    start = time.perf_counter()
    with log.open("w") as fh:
        done = subprocess.run(args, env=env, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        print(log.read_text()[-4000:], file=sys.stderr)
        raise RuntimeError(f"the in-process run failed (exit {done.returncode})")
    result: dict[str, object] = json.loads(out.read_text())
    result["process_wall_s"] = wall
    result["home"] = str(home)
    return result


def two_workers(
    template: Path, work: Path, replica_url: str, sink: SmtpSink, n_posts: int
) -> dict[str, object]:
    """Two ``reelwatch worker`` processes on a fresh redis-server; ``reelwatch crawl`` queues
    every post of ``#reelbench``; seconds from the crawl's start until every post is done."""
    home = work / "home-workers"
    shutil.copytree(template, home)
    (work / "redis").mkdir()
    with redis_server(work / "redis") as url:
        env = pipeline_env(home, replica_url, sink.port, broker_url=url)
        worker = ["worker", "--concurrency", "1", "--loglevel", "INFO"]
        with (
            reelwatch_process(worker, env, work / "worker-1.log") as w1,
            reelwatch_process(worker, env, work / "worker-2.log") as w2,
        ):
            for proc, name in ((w1, "worker-1.log"), (w2, "worker-2.log")):
                wait_for_text(work / name, " ready.", proc, timeout=180)
            start = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "reelwatch",
                    "crawl",
                    "--platform=replica",
                    f"--hashtag={TAG_ALL}",
                ],
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
            )
            queued = time.perf_counter()
            finished = wait_until_final(home, n_posts, timeout=WAIT_S)
    return {"wall_s": finished - start, "crawl_s": queued - start, "home": str(home)}


# Sub-benchmarks ------------------------------------------------------------------------------


def sub_benchmark(script: str, extra: list[str], work: Path) -> tuple[str, float] | None:
    """Run ``benchmarks/<script>`` with ``--markdown FILE``; its Markdown and seconds, or
    ``None`` when the script does not exist."""
    path = ROOT / "benchmarks" / script
    if not path.exists():
        print(f"   skipped: {path.relative_to(ROOT)} does not exist", flush=True)
        return None
    md = work / f"{path.stem}.md"
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(path), "--markdown", str(md), *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0 or not md.exists():
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        print("\n".join(tail), file=sys.stderr)
        return f"`{path.relative_to(ROOT)}` failed (exit {done.returncode}).", seconds
    return demote_headings(md.read_text()), seconds


# The report ----------------------------------------------------------------------------------


def _f(x: float, digits: int = 1) -> str:
    return f"{x:.{digits}f}"


def report(
    run: Run,
    clips: Sequence[BenchClip],
    info: dict[str, str],
    command: str,
    started: str,
    loads: tuple[str, str],
    total_s: float,
) -> str:
    fig = run.figures
    groups = [g for g in ("long", "short") if any(c.group == g for c in clips)]
    n = {g: sum(1 for c in clips if c.group == g) for g in groups}
    secs = {g: sum(c.seconds for c in clips if c.group == g) for g in groups}
    long_s = next((c.seconds for c in clips if c.group == "long"), 0.0)
    label = {
        "long": f"{long_s:.0f} s 1280x720",
        "short": "short 576x1024",
    }
    ip = fig["inprocess"]
    assert isinstance(ip, dict)
    sets = ip["sets"]
    lines = [
        SECTION,
        "",
        "`make bench` (`.venv/bin/python benchmarks/bench.py --write docs/benchmarks.md`) "
        "measures throughput in one run on one clip set and replaces this section; "
        "`benchmarks/bench.py`'s docstring says what each figure is. Nothing here asserts a "
        "time.",
        "",
        f"- machine: {info['cpu']}, {info['cores']} cores, {info['ram']} RAM, "
        f"GPU: {info['gpu']}; Python {info['python']}, FFmpeg {info['ffmpeg']}",
        f"- date: {started}; load average (1, 5, 15 min) at the start {loads[0]}, "
        f"at the end {loads[1]}",
        f"- command: `{command}`; {_f(total_s / 60)} min in all",
        f"- clip set: {n.get('long', 0)} x {label['long']} 30 fps H.264/AAC "
        f"({_f(secs.get('long', 0.0), 0)} s), {n.get('short', 0)} x 9:16 576x1024 "
        f"({', '.join(f'{c.seconds:.0f}' for c in clips if c.group == 'short')} s; "
        f"{_f(secs.get('short', 0.0), 0)} s); copies of the catalogued titles and unrelated "
        f"clips; face gallery: {'yes' if face_photos_dir() else 'no (make test-data)'}",
        "- clips: " + "; ".join(f"{c.name} ({c.seconds:.0f} s) {c.recipe}" for c in clips),
        "",
        "| clips | " + " | ".join(f"{label[g]} ({n[g]})" for g in groups) + " |",
        "|---|" + "---:|" * len(groups),
    ]

    def row(name: str, values: dict[str, str]) -> None:
        lines.append(f"| {name} | " + " | ".join(values.get(g, "") for g in groups) + " |")

    dec, ffm = fig["decode_only"], fig["ffmpeg"]
    assert isinstance(dec, dict) and isinstance(ffm, dict)
    cpm: dict[str, dict[str, float]] = {
        "decode": {g: per_minute(n[g], dec[g]) for g in groups},
        "ffmpeg": {g: per_minute(n[g], ffm[g]) for g in groups},
        "e2e": {g: per_minute(n[g], sets[TAG_OF[g]]["wall_s"]) for g in groups},
    }
    row("decode-only ceiling, clips/min", {g: _f(cpm["decode"][g]) for g in groups})
    row("FFmpeg full decode, 1 thread, clips/min", {g: _f(cpm["ffmpeg"][g]) for g in groups})
    row("end to end in-process, clips/min", {g: _f(cpm["e2e"][g]) for g in groups})
    nv = fig.get("naive")
    if isinstance(nv, dict):
        cpm["naive"] = {"long": per_minute(n["long"], nv["total"])}
        row("naive order, clips/min", {"long": _f(cpm["naive"]["long"])})
    row(
        "end to end / decode-only ceiling (issue 10: at least 0.7 on the 60 s set)",
        {g: f"{cpm['e2e'][g] / cpm['decode'][g]:.2f}" for g in groups},
    )
    if "naive" in cpm:
        row(
            "end to end / naive (issue 10: at least 3x on the 60 s set)",
            {"long": f"{cpm['e2e']['long'] / cpm['naive']['long']:.2f}x"},
        )
    row(
        "pipeline time / FFmpeg full decode time (issue 10: at most 5x on short posts)",
        {g: f"{sets[TAG_OF[g]]['wall_s'] / ffm[g]:.1f}x" for g in groups},
    )

    total_posts = sum(n.values())
    steady = sum(float(sets[TAG_OF[g]]["wall_s"]) for g in groups)
    wk = fig.get("workers")
    lines += [
        "",
        "| all clips | clips/min | seconds |",
        "|---|---:|---:|",
        f"| in-process, posts only (after start and model loads) | "
        f"{_f(per_minute(total_posts, steady))} | {_f(steady)} |",
        f"| in-process, whole process (start, model loads, {len(groups)} crawls) | "
        f"{_f(per_minute(total_posts, float(ip['process_wall_s'])))} | "
        f"{_f(float(ip['process_wall_s']))} |",
    ]
    if isinstance(wk, dict):
        lines.append(
            f"| two `reelwatch worker` processes on Redis, from the crawl to the last post "
            f"done (each loads its models on its first post) | "
            f"{_f(per_minute(total_posts, wk['wall_s']))} | {_f(wk['wall_s'])} |"
        )

    lines += [
        "",
        "Seconds per clip by stage (in-process run; `reelwatch.timing` totals divided by the "
        "clips). Stages add up the seconds of every thread that ran them, and downloads run "
        "ahead in a thread while signals run side by side, so their sum can exceed the wall "
        "time; where it falls short, the rest is what no stage times (the fingerprint cache, "
        "the caption's text fingerprint, AI flags, the store, alerts, the in-process queue):",
        "",
        "| stage | " + " | ".join(label[g] for g in groups) + " |",
        "|---|" + "---:|" * len(groups),
    ]
    stage_names: list[str] = []
    for g in groups:
        for name in sets[TAG_OF[g]]["stages"]:
            if name not in stage_names:
                stage_names.append(name)
    order = ["download", "decode"]
    order += sorted(s for s in stage_names if s.startswith("signal."))
    order += sorted(s for s in stage_names if s.startswith("search."))
    order += [s for s in stage_names if s not in order]
    row(
        "listing (the crawl of the hashtag)",
        {g: f"{sets[TAG_OF[g]]['list_s'] / n[g]:.2f}" for g in groups},
    )
    for name in order:
        row(
            name,
            {
                g: f"{sets[TAG_OF[g]]['stages'][name][0] / n[g]:.2f}"
                for g in groups
                if name in sets[TAG_OF[g]]["stages"]
            },
        )
    summed = {}
    for g in groups:
        st = sets[TAG_OF[g]]
        summed[g] = f"{(st['list_s'] + sum(v[0] for v in st['stages'].values())) / n[g]:.2f}"
    row("sum of the rows above", summed)
    row("all (crawl wall / clips)", {g: f"{sets[TAG_OF[g]]['wall_s'] / n[g]:.2f}" for g in groups})
    loads_s = ip["model_load_s"]
    assert isinstance(loads_s, dict)
    lines += [
        "",
        f"- once per process: start (interpreter and the imports of `reelwatch crawl`) "
        f"{_f(float(ip['process_start_s']), 2)} s; model and index loads (the first call of "
        f"each signal: its fingerprint of a 2 s clip of one photo, then a search) "
        f"{_f(sum(loads_s.values()), 2)} s: "
        + ", ".join(f"{k} {v:.2f}" for k, v in loads_s.items()),
    ]
    if isinstance(nv, dict):
        lines.append(
            f"- naive order on the {label['long']} set: decode {_f(nv['decode'])} s, "
            f"fingerprints {_f(nv['fingerprint'])} s, searches {_f(nv['search'])} s"
        )
    found_lines = []
    for key, where in (("found_inprocess", "in-process"), ("found_workers", "on two workers")):
        found = fig.get(key)
        if isinstance(found, dict):
            found_lines.append(_found_line(f"- what the pipeline found {where}", found))
    lines += found_lines
    lines.append(
        "- elapsed per part (wall, then CPU seconds of this process and those it waited for): "
        + ", ".join(f"{k} {v:.0f} s ({run.cpu[k]:.0f})" for k, v in run.parts.items())
    )
    for name in ("index_search.py", "gpu_models.py"):
        sub = fig.get(name)
        if isinstance(sub, str):
            lines += ["", sub]
    return "\n".join(lines) + "\n"


# Main ----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", type=Path, help="replace this file's make bench section")
    parser.add_argument("--quick", action="store_true", help="a small smoke run (~2 minutes)")
    parser.add_argument("--long", type=int, help="60 s 720p clips (default 2; quick 1)")
    parser.add_argument("--short", type=int, help="short 9:16 clips (default 8; quick 2)")
    parser.add_argument("--long-seconds", type=float, help="length of the long clips (60)")
    parser.add_argument("--no-workers", action="store_true", help="skip the Redis run")
    args = parser.parse_args()
    n_long = args.long if args.long is not None else (1 if args.quick else 2)
    n_short = args.short if args.short is not None else (2 if args.quick else 8)
    long_seconds = args.long_seconds or (20.0 if args.quick else 60.0)
    sub_size = "10000" if args.quick else "1000000"
    write = args.write.resolve() if args.write else None
    command = " ".join([".venv/bin/python", "benchmarks/bench.py", *sys.argv[1:]])
    os.chdir(ROOT)  # the face photos of `make test-data` and `python -m benchmarks...`
    info = machine()
    t_start = time.perf_counter()
    started = time.strftime("%Y-%m-%d %H:%M")
    load_start = _load()
    print(
        f"{info['cpu']}, {info['cores']} cores, {info['ram']}, GPU {info['gpu']}; "
        f"clip set: {n_long} x {long_seconds:.0f} s 1280x720, {n_short} x 9:16 576x1024",
        flush=True,
    )
    run = Run()
    with tempfile.TemporaryDirectory(prefix="reelwatch-bench-") as tmp:
        work = Path(tmp)
        with run.part("references and catalog"):
            write_references(work / "refs")
            template = build_template(work / "template", work / "refs")
        with run.part("clip set"):
            clips = build_clipset(work / "clips", work / "refs", n_long, n_short, long_seconds)
        for c in clips:
            print(f"   {c.name}: {c.seconds:.0f} s {c.size[0]}x{c.size[1]}, {c.recipe}")
        groups = [g for g in ("long", "short") if any(c.group == g for c in clips)]
        by_group = {g: [c for c in clips if c.group == g] for g in groups}
        with run.part("decode-only ceiling"):
            run.figures["decode_only"] = {g: decode_only(by_group[g], template) for g in groups}
        with run.part("FFmpeg full decode"):
            run.figures["ffmpeg"] = {g: ffmpeg_decode(by_group[g]) for g in groups}
        by_id = build_bench_site(work / "site", clips)
        with ReplicaServer(work / "site") as replica:
            with run.part("end to end in-process"), SmtpSink() as sink:
                ip = in_process(template.home, work, replica.base_url, sink, groups)
                run.figures["inprocess"] = ip
                found = outcome(Path(str(ip["home"])), by_id, len(sink.messages))
                run.figures["found_inprocess"] = found
            if not args.no_workers:
                with run.part("end to end on two workers (Redis)"), SmtpSink() as sink:
                    wk = two_workers(template.home, work, replica.base_url, sink, len(clips))
                    run.figures["workers"] = wk
                    found = outcome(Path(str(wk["home"])), by_id, len(sink.messages))
                    run.figures["found_workers"] = found
        if "long" in by_group:
            with run.part(f"naive order ({long_seconds:.0f} s set)"):
                run.figures["naive"] = naive(by_group["long"], template, work / "naive")
        subs: list[tuple[str, list[str]]] = [
            ("index_search.py", ["--hashes", sub_size, "--descriptors", sub_size]),
            ("gpu_models.py", []),
        ]
        for script, extra in subs:
            name = f"benchmarks/{script}"
            with run.part(name):
                got = sub_benchmark(script, extra, work)
            if got is None:
                del run.parts[name]
            else:
                run.figures[script] = got[0]
    total_s = time.perf_counter() - t_start
    text = report(run, clips, info, command, started, (load_start, _load()), total_s)
    print()
    print(text)
    if write is not None:
        doc = write.read_text() if write.exists() else "# Benchmarks\n"
        write.write_text(replace_section(doc, text))
        print(f"wrote the make bench section of {write}")
    print(f"bench: {total_s / 60:.1f} min in all")


if __name__ == "__main__":
    main()
