"""Where the time goes when one 60 s 720p post is matched with every signal that can run.

Usage: .venv/bin/python benchmarks/match_timing.py [--write docs/benchmarks.md] [--seconds 60]
       [--compare-with TREE]

``--compare-with TREE`` first runs the same measurement with the code of another checkout
(``git worktree add /tmp/before <commit>``) in a subprocess, then this one, and prints both
and the ratio of their cold match times: a ratio from one run on one machine.

Makes a 60 s 1280x720 H.264/AAC clip (Ken Burns moves over scikit-image photos and a photo
of a person, with a generated song), a catalog of four titles (reference clips, a theme
song, a face gallery of the person from a *different* photo when ``make test-data`` has
fetched one, title cards), then times, in one run on this machine:

* decode once (sampled frames + the soundtrack),
* each signal's fingerprint of the decoded media,
* each signal's index search,
* the whole ``Matcher.match_file`` cold (no cached fingerprint) and warm (cached).

Not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from matcher.decode import decode
from matcher.engine import Matcher, QueryContext
from matcher.evaluation import EvalReference, EvalSet, build_catalog
from matcher.fingerprint import enabled_signals, media_signals
from reelwatch.demo import audio, media
from reelwatch.demo.evalset import (
    BUILTIN_TITLES,
    face_photos_dir,
    find_references,
    portrait_clip,
    write_builtin_references,
)
from reelwatch.settings import load_settings


def make_query(path: Path, seconds: float, person: Path | None) -> None:
    """Ken Burns moves over photos (three quarters), then a person's photo (a quarter, when
    there is one), 1280x720 at 30 fps, under the first built-in title's song at 70 %."""
    photos: list[str] = ["astronaut", "coffee", "chelsea"]
    scene_s = seconds * (0.75 if person is not None else 1.0)
    clip_path = path.with_suffix(".silent.mp4")
    media.make_reference_clip(
        photos, clip_path, seconds_per_photo=scene_s / len(photos), size=(1280, 720), fps=30, seed=7
    )
    clip = media.read_clip(clip_path)
    clip_path.unlink()
    if person is not None:
        face = portrait_clip(person, seconds - scene_s, seed=8, fps=30, size=(1280, 720))
        clip = replace(clip, frames=clip.frames + face.frames)
    track = audio.song(clip.duration, BUILTIN_TITLES[0].seed)
    media.write_clip(audio.with_soundtrack(clip, track, volume=0.7), path)


def measure(seconds: float) -> dict[str, object]:
    """Times of each step for a ``seconds`` long 720p post (see the module docs)."""
    faces = face_photos_dir()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        settings = load_settings(home=root / "home")
        settings.ensure_home()
        refs = root / "refs"
        write_builtin_references(refs)  # titles, a theme song, a face gallery if photos exist
        titles, found = find_references(refs)
        catalog = build_catalog(
            settings,
            EvalSet(titles, [EvalReference(r.title, r.path, r.kind, r.talent) for r in found], []),
        )
        query = root / "query.mp4"
        make_query(query, seconds, faces / "obama2.jpg" if faces else None)

        m = settings.matcher
        signals = enabled_signals(settings)
        t0 = time.perf_counter()
        decoded = decode(
            query,
            m.sample_fps,
            m.max_frames,
            max_side=m.decode_max_side,
            with_audio=True,
            audio_rate=m.audio_rate,
        )
        rows = [("decode once (frames + audio)", time.perf_counter() - t0)]
        fps = {}
        for s in media_signals(signals):
            t0 = time.perf_counter()
            fps[s.name] = s.fingerprint(decoded, "query")
            rows.append((f"fingerprint: {s.name}", time.perf_counter() - t0))
        context = QueryContext(caption="Starfall Station but make it 4k #starfallstation")
        for s in signals:
            t0 = time.perf_counter()
            on_text = s.references == "titles" and not getattr(s, "reads_media", False)
            fp = s.fingerprint_text(context.text) if on_text else fps[s.name]  # type: ignore[arg-type]
            s.search(catalog.index(s), fp, decoded.duration)
            rows.append(
                (
                    f"fingerprint + search: {s.name}"
                    if s.references == "titles"
                    else f"search: {s.name}",
                    time.perf_counter() - t0,
                )
            )

        matcher = Matcher(settings, catalog)
        t0 = time.perf_counter()
        report = matcher.match_file(query, context=context)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        matcher.match_file(query, context=context)
        warm = time.perf_counter() - t0

    best = report.best
    return {
        "signals": [s.name for s in signals],
        "faces": faces is not None,
        "rows": rows,
        "cold": cold,
        "warm": warm,
        "result": (
            f"{best.title} {best.score:.2f} [{best.confidence.value}] "
            + ", ".join(f"{k} {v:.2f}" for k, v in best.signals.items())
            if best is not None
            else "no match"
        ),
    }


def report_lines(r: dict[str, object], seconds: float, label: str = "") -> list[str]:
    rows = r["rows"]
    assert isinstance(rows, list)
    lines = [
        f"- {time.strftime('%Y-%m-%d')}{label}, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}; {seconds:.0f} s 1280x720 30 fps clip; "
        f"signals: {', '.join(r['signals'])}; "  # type: ignore[arg-type]
        f"face gallery: {'yes' if r['faces'] else 'no (make test-data)'}",
    ]
    lines += [f"  {name}: {sec:.2f} s" for name, sec in rows]
    lines.append(
        f"  match_file cold (decode + all fingerprints + search + evidence): {r['cold']:.2f} s"
    )
    lines.append(f"  match_file warm (fingerprints cached): {r['warm']:.2f} s")
    lines.append(f"  result: {r['result']}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", type=Path, help="append the result to this Markdown file")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--compare-with", type=Path, help="a checkout to measure first")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    lines: list[str] = []
    before: dict[str, object] | None = None
    if args.compare_with:
        env = {**os.environ, "PYTHONPATH": str(args.compare_with.resolve())}
        out = subprocess.run(
            [sys.executable, __file__, "--json", "--seconds", str(args.seconds)],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        before = json.loads(out.strip().splitlines()[-1])
        rev = subprocess.run(
            ["git", "-C", str(args.compare_with), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        lines += report_lines(before, args.seconds, f", before (code at {rev or 'baseline'})")
    now = measure(args.seconds)
    if args.json:
        print(json.dumps(now))
        return
    lines += report_lines(now, args.seconds, ", now" if before else "")
    if before is not None:
        ratio = float(now["cold"]) / float(before["cold"])  # type: ignore[arg-type]
        lines.append(f"  cold match, now / before: {ratio:.2f}x")
    print("\n".join(lines))
    if args.write:
        with args.write.open("a") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
