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

from reelwatch.settings import Settings
from tests.test_elastalert import variables
from workers.app import QUEUES, task_routes

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker" / "compose.yaml"
ELASTALERT_CONFIG = ROOT / "config" / "elastalert" / "config.yaml"
MATCH_QUEUE_VAR = "REELWATCH_WORKERS__MATCH_QUEUE"

needs_compose = pytest.mark.skipif(
    shutil.which("docker-compose") is None, reason="docker-compose not installed"
)


def _config(
    *args: str, token: str | None = "t0ken", **interpolated: str
) -> subprocess.CompletedProcess[str]:
    """``docker-compose config`` with only the variables given (``interpolated``) set among
    those the compose file reads."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "REELWATCH_BOARD_TOKEN",
            "REELWATCH_MATCH_QUEUE",
            "REELWATCH_ALERT_EMAIL_TO",
            "REELWATCH_ALERT_EMAIL_FROM",
        )
    }
    if token is not None:
        env["REELWATCH_BOARD_TOKEN"] = token
    env.update(interpolated)
    return subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), *args, "config"],
        capture_output=True,
        text=True,
        env=env,
    )


def _services(*args: str, **interpolated: str) -> dict[str, Any]:
    out = _config(*args, **interpolated)
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
        "elastalert",
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
def test_elastalert_runs_the_rules_against_the_compose_elasticsearch_and_mail() -> None:
    services = _services()
    alert = services["elastalert"]
    image, _, tag = alert["image"].rpartition(":")
    assert image == "jertel/elastalert2"
    assert re.fullmatch(r"\d+\.\d+\.\d+", tag), f"pin a release, not {tag!r}"
    assert alert["depends_on"]["elasticsearch"]["condition"] == "service_healthy"
    assert "mailcatcher" in alert["depends_on"]
    assert "profiles" not in alert and not alert.get("ports")
    # config/elastalert mounted where ElastAlert2's image reads it and config.yaml looks.
    config = yaml.safe_load(ELASTALERT_CONFIG.read_text())
    mounts = {}
    for volume in alert["volumes"]:
        source, target, mode = (
            volume.split(":")
            if isinstance(volume, str)
            else (
                volume["source"],
                volume["target"],
                "ro" if volume.get("read_only") else "rw",
            )
        )
        mounts[target] = (Path(source), mode)
    assert mounts["/opt/elastalert/config.yaml"] == (ELASTALERT_CONFIG, "ro")
    assert mounts[config["rules_folder"]] == (ELASTALERT_CONFIG.parent / "rules", "ro")
    assert config["es_host"] in services and config["es_port"] == 9200
    # Every $VAR of the rules is set, with the mail server and board the workers use.
    env = alert["environment"]
    used = set().union(*(variables(p) for p in (ELASTALERT_CONFIG.parent / "rules").glob("*")))
    assert used and used <= set(env)
    worker = services["worker"]["environment"]
    for name in (
        "REELWATCH_EMAIL__SMTP_HOST",
        "REELWATCH_EMAIL__SMTP_PORT",
        "REELWATCH_EMAIL__BOARD_URL",
    ):
        assert env[name] == worker[name], name
    assert env["REELWATCH_EMAIL__SMTP_HOST"] in services
    assert "REELWATCH_BROKER_URL" not in env  # not a reelwatch process
    to = _services(REELWATCH_ALERT_EMAIL_TO="legal@studio.example")["elastalert"]["environment"]
    assert to["REELWATCH_ALERT_EMAIL_TO"] == "legal@studio.example"


def _queues(service: dict[str, Any]) -> list[str]:
    command: list[str] = service["command"]
    return command[command.index("--queues") + 1].split(",")


def _match_queue(service: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> str:
    """Where this service's processes send fingerprint and match: the settings read from its
    environment, then the routes built from them."""
    with monkeypatch.context() as m:
        m.setenv(MATCH_QUEUE_VAR, service["environment"][MATCH_QUEUE_VAR])
        return task_routes(Settings())["reelwatch.match"]["queue"]


def _senders(services: dict[str, Any]) -> list[str]:
    """The services that send or run tasks (those on the broker)."""
    return [n for n, s in services.items() if "REELWATCH_BROKER_URL" in s.get("environment", {})]


@needs_compose
def test_cpu_workers_serve_match_and_only_the_gpu_worker_serves_gpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    services = _services("--profile", "gpu", "--profile", "cli")
    cpu, gpu = _queues(services["worker"]), _queues(services["worker-gpu"])
    assert sorted(cpu) == ["crawl", "land", "match", "media"]
    assert gpu == ["gpu"]
    assert set(cpu) | set(gpu) == set(QUEUES)
    senders = _senders(services)
    assert {"worker", "worker-gpu", "beat", "board", "setup", "cli"} <= set(senders)
    # By default every process routes fingerprint and match to the CPU workers' match queue.
    assert {_match_queue(services[n], monkeypatch) for n in senders} == {"match"}


@needs_compose
def test_one_variable_moves_fingerprint_and_match_to_the_gpu_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    services = _services("--profile", "gpu", "--profile", "cli", REELWATCH_MATCH_QUEUE="gpu")
    senders = _senders(services)
    assert {_match_queue(services[n], monkeypatch) for n in senders} == {"gpu"}
    assert _queues(services["worker-gpu"]) == ["gpu"]
    assert "gpu" not in _queues(services["worker"])


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


def test_the_cpu_image_installs_every_package_from_the_lock() -> None:
    """Like `make`, the CPU image installs each package at the version constraints.txt pins
    (the GPU image's CUDA builds of torch, faiss and onnxruntime are outside that lock)."""
    cpu = (ROOT / "docker" / "Dockerfile").read_text()
    copied = re.search(r"^COPY (.+) \./$", cpu, re.MULTILINE)
    assert copied and "constraints.txt" in copied.group(1).split()
    installs = re.findall(r"pip install [^\n\\&]*", cpu)
    assert len(installs) == 3
    assert all("-c constraints.txt" in line for line in installs), installs
