"""One in-process end-to-end run for ``benchmarks/bench.py``: crawl hashtags on the replica and
put every new post through the pipeline the way ``reelwatch crawl`` does, then write where
the time went as JSON.

    python -m benchmarks._pipeline_run --tag TAG [--tag TAG...] --out RESULT.json --work DIR

Run from the repository root, with ``REELWATCH_HOME`` (a catalog in it), the replica's base
URL and the SMTP sink in the environment (see ``benchmarks/_services.py``), and
``BENCH_SPAWNED_AT`` set to the parent's ``time.time()`` just before it started this process.

What it measures, in order:

* process start: from spawn to the end of the imports ``reelwatch crawl`` needs
  (interpreter, CLI, Celery app, pipeline, matcher, crawler, store);
* model loads: the first call of each signal the catalog asks for (its fingerprint of a 2 s
  clip of one photo with a tune, then a search of its index), timed per signal; models and
  indexes are loaded once per process, so the posts after it do not pay for them;
* per hashtag: listing (``Pipeline.discover_run``), the chains of every new post
  (``reelwatch.cli.ops.process_posts``, in-process Celery), held alerts and failure counts
  (``finish_processing``), and the per-stage totals of :mod:`reelwatch.timing` they added.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from rich.console import Console

import reelwatch.cli  # noqa: F401  (what `reelwatch crawl` imports first)
from matcher.decode import Decoded, decode
from matcher.engine import Matcher
from matcher.signals.base import Signal, TextInput
from reelwatch import timing
from reelwatch.cli.ops import finish_processing, process_posts, progress_bar
from reelwatch.digest import sha256_file
from reelwatch.settings import Settings, load_settings
from reelwatch.watches import WatchOptions
from workers.app import configure
from workers.tasks import pipeline


def decode_for_query(
    path: Path, settings: Settings, signals: list[Signal], sha256: str | None = None
) -> Decoded:
    """Decode ``path`` as :func:`matcher.fingerprint.fingerprint_file` does for a post that
    ``signals`` fingerprint (same sampling, sizes, audio and keyframes). Pass ``sha256`` as
    the pipeline does (the download step knows it); without it the file is hashed first."""
    m = settings.matcher
    return decode(
        path,
        m.sample_fps,
        m.max_frames,
        max_side=m.decode_max_side,
        still_max_side=m.still_max_side,
        with_audio=any(s.needs_audio for s in signals),
        audio_rate=m.audio_rate,
        keyframes=m.scene_keyframes,
        sha256=sha256 or sha256_file(path),
    )


def warm_up(matcher: Matcher, work: Path) -> dict[str, float]:
    """Seconds of the first call of each signal ``matcher`` runs for a post: fingerprint a
    2 s clip of one photo (with a face) and a tune, or a caption for text signals, then
    search the signal's index. Loads the models and the catalog's indexes."""
    from reelwatch.demo import media

    photo = media.load_photo("astronaut")
    clip = media.Clip((photo,) * 4, 2.0, media.melody(2.0, 1))
    path = media.write_clip(clip, work / "warm-up.mp4")
    media_signals = matcher.query_signals()
    decoded = decode_for_query(path, matcher.settings, media_signals)
    names = {s.name for s in media_signals}
    seconds: dict[str, float] = {}
    for signal in matcher.catalog.signals:
        start = time.perf_counter()
        if signal.references == "titles" and not signal.reads_media:
            fp = signal.fingerprint_text(TextInput(text="warm up", hashtags=("warmup",)))
        elif signal.name in names:
            fp = signal.fingerprint(decoded, "query")
        else:
            continue
        signal.search(matcher.catalog.index(signal), fp, decoded.duration)
        seconds[signal.name] = time.perf_counter() - start
    return seconds


def stage_delta(
    after: dict[str, timing.StageTotal], before: dict[str, timing.StageTotal]
) -> dict[str, list[float]]:
    """``{stage: [seconds, calls]}`` added between two :func:`reelwatch.timing.totals`."""
    out = {}
    for name, total in after.items():
        prior = before.get(name, timing.StageTotal())
        if total.calls > prior.calls:
            out[name] = [total.seconds - prior.seconds, total.calls - prior.calls]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tag", action="append", required=True, help="hashtag to crawl")
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON")
    parser.add_argument("--work", type=Path, required=True, help="a folder for scratch files")
    args = parser.parse_args()
    imported = time.time()
    spawned = float(os.environ.get("BENCH_SPAWNED_AT", imported))
    result: dict[str, object] = {"process_start_s": imported - spawned}

    settings = load_settings()
    settings.ensure_home()
    args.work.mkdir(parents=True, exist_ok=True)
    configure(settings)
    p = pipeline()
    start = time.perf_counter()
    result["model_load_s"] = warm_up(p.matcher, args.work)
    p.store  # noqa: B018  (open the store and notifiers now, as the first post would)
    p.notifiers  # noqa: B018
    result["warm_up_s"] = time.perf_counter() - start

    err = Console(stderr=True, markup=False, highlight=False)
    watch = WatchOptions()
    sets: dict[str, dict[str, object]] = {}
    for tag in args.tag:
        before = timing.totals()
        t0 = time.perf_counter()
        found = p.discover_run("replica", f"#{tag}", limit=None, watch=watch)
        t1 = time.perf_counter()
        with progress_bar(on=err) as progress:
            process_posts(settings, found.todo, watch, progress, f"#{tag}")
        t2 = time.perf_counter()
        finish_processing(settings, [found])
        t3 = time.perf_counter()
        sets[tag] = {
            "posts": len(found.todo),
            "list_s": t1 - t0,
            "process_s": t2 - t1,
            "finish_s": t3 - t2,
            "wall_s": t3 - t0,
            "stages": stage_delta(timing.totals(), before),
        }
    result["sets"] = sets
    result["total_s"] = time.time() - spawned
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
