"""Run the real ``reelwatch`` console entry point in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from reelwatch.demo.media import make_reference_clip

Runner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run_cli(home: Path) -> Runner:
    def run(
        *args: str, env: dict[str, str] | None = None, timeout: float = 240
    ) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, "REELWATCH_HOME": str(home), **(env or {})}
        full_env.pop("REELWATCH_BROKER_URL", None)
        return subprocess.run(
            [sys.executable, "-m", "reelwatch", *args],
            capture_output=True,
            text=True,
            env=full_env,
            timeout=timeout,
        )

    return run


@pytest.fixture(scope="session")
def reference_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli-ref") / "astronaut.mp4"
    return make_reference_clip(["astronaut", "rocket"], out, seconds_per_photo=6, seed=11)
