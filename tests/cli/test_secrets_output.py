"""Secrets set through the environment never reach stdout, stderr, logs or ``--json``.

Every secret setting gets a unique marker; the commands that could print one run as a user
runs them, with ``-v`` (and ``--json`` where they have it), each made to fail on the secret's
service: a proxy that refuses, Elasticsearch refusing the credentials in its URL, Kibana away,
a worker on a Redis that wants a password.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from tests.cli.conftest import Runner
from tests.triage.es_recorder import running_recorder
from triage.smtp_sink import free_port

MARKERS = {
    "REELWATCH_EMAIL__PASSWORD": "MK1-mail-pw",
    "REELWATCH_BOARD__TOKEN": "MK2-board-token",
    "REELWATCH_KIBANA__PASSWORD": "MK3-kibana-pw",
    "REELWATCH_KIBANA__API_KEY": "MK4-kibana-key",
    "REELWATCH_CRAWL__SOURCES__YOUTUBE__API_KEY": "MK5-youtube-key",
}
URL_MARKERS = {
    "broker": "MK6-broker-pw",
    "backend": "MK7-backend-pw",
    "es": "MK8-es-pw",
    "proxy": "MK9-proxy-pw",
    "kibana": "MKA-kibana-url-pw",
}
ALL = [*MARKERS.values(), *URL_MARKERS.values()]


def secret_env(**extra: str) -> dict[str, str]:
    dead = free_port()
    return {
        **MARKERS,
        "REELWATCH_EMAIL__USERNAME": "alerts",
        "REELWATCH_EMAIL__STARTTLS": "true",
        "REELWATCH_KIBANA__USERNAME": "elastic",
        "REELWATCH_KIBANA__URL": f"http://elastic:{URL_MARKERS['kibana']}@127.0.0.1:{dead}",
        "REELWATCH_RESULT_BACKEND": f"redis://:{URL_MARKERS['backend']}@127.0.0.1:{dead}/1",
        "REELWATCH_STORE__ELASTICSEARCH_URL": f"http://elastic:{URL_MARKERS['es']}@127.0.0.1:{dead}",
        "REELWATCH_CRAWL__SOURCES__YOUTUBE__PROXY": (
            f"http://proxyuser:{URL_MARKERS['proxy']}@127.0.0.1:{dead}"
        ),
        "REELWATCH_CRAWL__SOURCES__YOUTUBE__CANARY": "#thecrown",
        **extra,
    }


def assert_no_secret(*outputs: str) -> None:
    for output in outputs:
        leaked = [m for m in ALL if m in output]
        assert not leaked, f"secrets {leaked} printed in:\n{output[-3000:]}"


def test_sources_check_json_and_its_log_name_no_secret(run_cli: Runner) -> None:
    result = run_cli("-v", "sources", "check", "youtube", "--json", env=secret_env())
    assert result.returncode == 1, "the proxy refuses: youtube is broken"
    assert '"state": "broken"' in result.stdout
    assert_no_secret(result.stdout, result.stderr)


def test_es_setup_refused_credentials_in_the_url_are_one_masked_line(run_cli: Runner) -> None:
    with running_recorder() as recorder:
        recorder.fail_next(2, 503)
        recorder.fail_next(1, 401)
        url = recorder.url.replace("http://", f"http://elastic:{URL_MARKERS['es']}@")
        result = run_cli("-v", "es", "setup", "--url", url, env=secret_env())
    assert result.returncode == 1
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("reelwatch: error:")]
    assert "Elasticsearch said 401" in line
    assert "answered 503" in result.stderr and "elastic:***@127.0.0.1" in result.stderr
    assert_no_secret(result.stdout, result.stderr)


def test_kibana_away_is_one_masked_line(run_cli: Runner) -> None:
    result = run_cli("-v", "kibana", "import", env=secret_env())
    assert result.returncode == 1
    assert "reelwatch: error: cannot reach Kibana at http://elastic:***@127.0.0.1" in (
        result.stderr
    )
    assert_no_secret(result.stdout, result.stderr)


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")
def test_a_worker_start_and_its_broker_errors_name_no_secret(home: Path, tmp_path: Path) -> None:
    port = free_port()
    password = URL_MARKERS["broker"]
    server = subprocess.Popen(
        [
            *("redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""),
            *("--dir", str(tmp_path), "--requirepass", password),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(host="127.0.0.1", port=port, password=password)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    pytest.fail("redis-server did not start")
                time.sleep(0.1)
        env = {
            **os.environ,
            "REELWATCH_HOME": str(home),
            **secret_env(REELWATCH_BROKER_URL=f"redis://:{password}@127.0.0.1:{port}/0"),
        }
        log_path = tmp_path / "worker.log"
        with log_path.open("w") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "reelwatch", "-v", "worker", "--loglevel", "DEBUG"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                deadline = time.monotonic() + 120
                while "ready." not in log_path.read_text() and worker.poll() is None:
                    if time.monotonic() > deadline:
                        pytest.fail("the worker did not get ready:\n" + log_path.read_text())
                    time.sleep(0.5)
                # Then the broker goes away: the worker logs its reconnection attempts.
                server.terminate()
                server.wait(timeout=10)
                deadline = time.monotonic() + 60
                while "Cannot connect to redis" not in log_path.read_text():
                    if time.monotonic() > deadline or worker.poll() is not None:
                        break
                    time.sleep(0.5)
            finally:
                worker.terminate()
                try:
                    worker.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait(timeout=10)
        output = log_path.read_text()
        assert "ready." in output, output[-3000:]
        assert f"redis://:**@127.0.0.1:{port}/0" in output, "the banner names the broker, masked"
        assert "Cannot connect to redis" in output, output[-3000:]
        assert_no_secret(output)
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=10)
