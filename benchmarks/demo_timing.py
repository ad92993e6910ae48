"""Time `reelwatch demo --no-board` on a fresh data home, then again (nothing new).

Usage: .venv/bin/python benchmarks/demo_timing.py [--write docs/benchmarks.md]

Reports wall time of the first run (content generation + crawl + pipeline for every post)
and of the second (crawl only: every post is known), and their ratio, measured in one run
on whatever machine runs it. Not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_demo(home: Path) -> float:
    env = {**os.environ, "REELWATCH_HOME": str(home)}
    env.pop("REELWATCH_BROKER_URL", None)
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "reelwatch", "demo", "--no-board"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", type=Path, help="append the result to this Markdown file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        first = run_demo(home)
        second = run_demo(home)
    cpus = os.cpu_count()
    lines = [
        f"- {time.strftime('%Y-%m-%d')}, {platform.machine()}, {cpus} CPUs, "
        f"Python {platform.python_version()}:",
        f"  first run (generate content, crawl, download, fingerprint, match, land, alert): "
        f"{first:.1f} s",
        f"  second run (all posts known, nothing landed or sent): {second:.1f} s "
        f"(ratio {first / second:.1f}x)",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        with args.write.open("a") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()
