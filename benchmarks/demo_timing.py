"""Time `reelwatch demo --no-board` on a fresh data home, then again (nothing new).

Usage: .venv/bin/python benchmarks/demo_timing.py [--write docs/benchmarks.md]

Reports wall time of the first run (content generation + crawl + pipeline for every post)
and of the second (crawl only: every post is known), and their ratio; and, of the first run,
the seconds spent processing the posts (``reelwatch.timing``'s ``process`` stage: download,
fingerprint, match, land, alert of every post) against a single-threaded FFmpeg decode of
every frame and the audio of the same files (``ffmpeg -threads 1 -i F -f null -``), all
measured in one run on whatever machine runs it. Not a test: nothing here asserts a time.
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
from pathlib import Path

# Runs `reelwatch demo` in a fresh interpreter and writes its stage totals as JSON at exit.
_RUNNER = """
import atexit, json, sys
from reelwatch import timing
from reelwatch.cli import main
out = sys.argv[1]
atexit.register(lambda: open(out, "w").write(
    json.dumps({k: v.seconds for k, v in timing.totals().items()})))
sys.argv = ["reelwatch", "demo", "--no-board"]
main()
"""


def run_demo(home: Path) -> tuple[float, dict[str, float]]:
    """Wall seconds of one ``reelwatch demo --no-board`` and its stage totals."""
    env = {**os.environ, "REELWATCH_HOME": str(home)}
    env.pop("REELWATCH_BROKER_URL", None)
    stages = home.parent / f"{home.name}-stages.json"
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", _RUNNER, str(stages)],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - start
    return wall, json.loads(stages.read_text())


def ffmpeg_decode(files: list[Path]) -> float:
    """Seconds to decode every frame and the audio of ``files`` on one thread."""
    start = time.perf_counter()
    for f in files:
        subprocess.run(
            ["ffmpeg", "-nostdin", "-v", "error", "-threads", "1", "-i", str(f), "-f", "null", "-"],
            check=True,
        )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", type=Path, help="append the result to this Markdown file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        first, stages = run_demo(home)
        posts = sorted(p for p in (home / "media").glob("*/*") if p.is_file())
        decoding = ffmpeg_decode(posts)
        second, _ = run_demo(home)
    cpus = os.cpu_count()
    lines = [
        f"- {time.strftime('%Y-%m-%d')}, {platform.machine()}, {cpus} CPUs, "
        f"Python {platform.python_version()}:",
        f"  first run (generate content, crawl, download, fingerprint, match, land, alert): "
        f"{first:.1f} s",
        f"  second run (all posts known, nothing landed or sent): {second:.1f} s "
        f"(ratio {first / second:.1f}x)",
        f"  first run, processing its {len(posts)} posts (download to alert): "
        f"{stages.get('process', 0.0):.1f} s; FFmpeg full decode of the same files on one "
        f"thread: {decoding:.2f} s (ratio {stages.get('process', 0.0) / decoding:.1f}x)",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        with args.write.open("a") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()
