"""The compose file is valid (Debian's docker-compose) and wires the services the
architecture names; both images install the project the way the Makefile does."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker" / "compose.yaml"

needs_compose = pytest.mark.skipif(
    shutil.which("docker-compose") is None, reason="docker-compose not installed"
)


def _config(*args: str, token: str | None = "t0ken") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "REELWATCH_BOARD_TOKEN"}
    if token is not None:
        env["REELWATCH_BOARD_TOKEN"] = token
    return subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), *args, "config"],
        capture_output=True,
        text=True,
        env=env,
    )


def _services(*args: str) -> dict[str, Any]:
    out = _config(*args)
    assert out.returncode == 0, out.stderr
    services: dict[str, Any] = yaml.safe_load(out.stdout)["services"]
    return services


@needs_compose
def test_compose_config_is_valid_and_wires_the_stack() -> None:
    services = _services()
    assert {
        "redis",
        "elasticsearch",
        "kibana",
        "mailcatcher",
        "setup",
        "worker",
        "beat",
        "board",
    } <= set(services)
    assert services["worker-gpu"]["profiles"] == ["gpu"]  # started only with --profile gpu
    assert services["cli"]["profiles"] == ["cli"]
    assert not any("profiles" in services[n] for n in ("worker", "beat", "board", "setup"))
    env = services["worker"]["environment"]
    assert env["REELWATCH_BROKER_URL"].startswith("redis://redis")
    assert env["REELWATCH_STORE__BACKEND"] == "elasticsearch"
    assert env["REELWATCH_STORE__ELASTICSEARCH_URL"] == "http://elasticsearch:9200"
    assert services["worker"]["command"][0] == "worker"
    assert services["beat"]["command"] == ["beat"]
    assert services["board"]["command"][0] == "board"
    assert services["board"]["environment"]["REELWATCH_BOARD__TOKEN"] == "t0ken"
    assert "es setup" in services["setup"]["command"][0]
    assert "kibana import" in services["setup"]["command"][0]
    # Workers wait for the one-shot setup job; ports only on loopback.
    assert services["worker"]["depends_on"]["setup"]["condition"] == (
        "service_completed_successfully"
    )
    for name in ("elasticsearch", "kibana", "mailcatcher", "board"):
        for port in services[name].get("ports", []):
            published = port if isinstance(port, str) else port.get("host_ip", "")
            assert "127.0.0.1" in str(published), (name, port)


@needs_compose
def test_the_gpu_worker_runs_the_gpu_image_on_a_reserved_gpu() -> None:
    gpu = _services()["worker-gpu"]
    assert gpu["build"]["dockerfile"].endswith("Dockerfile.gpu")
    assert gpu["command"][:3] == ["worker", "--queues", "gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]


@needs_compose
def test_the_board_is_not_exposed_without_a_token() -> None:
    out = _config(token=None)
    assert out.returncode != 0
    assert "REELWATCH_BOARD_TOKEN" in out.stderr


def test_images_install_exactly_one_faiss_build() -> None:
    cpu = (ROOT / "docker" / "Dockerfile").read_text()
    gpu = (ROOT / "docker" / "Dockerfile.gpu").read_text()
    assert '-e ".[cpu]"' in cpu and "faiss-gpu" not in cpu
    assert '-e ".[gpu]"' in gpu and "[cpu" not in gpu
    assert "torch==2.13.0" in cpu and "torch==2.13.0" in gpu


def test_the_crawling_image_has_the_browser_that_browser_sources_drive() -> None:
    """The CPU image runs the crawl queue (compose's worker), where TikTok, Instagram and X
    are listed in Debian's chromium."""
    cpu = (ROOT / "docker" / "Dockerfile").read_text()
    assert re.search(r"apt-get install[^&]*\bchromium\b", cpu)
