"""The compose file is valid and wires the services the architecture names."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose not installed")
def test_compose_config_is_valid() -> None:
    out = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker" / "compose.yaml"), "config"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    config = yaml.safe_load(out)
    services = config["services"]
    assert {"redis", "worker", "mailcatcher"} <= set(services)
    env = services["worker"]["environment"]
    assert env["REELWATCH_BROKER_URL"].startswith("redis://redis")
    assert services["worker"]["command"][0] == "worker"
