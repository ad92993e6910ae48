"""Settings: one source of defaults, every value checked, one line for a bad one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from reelwatch.errors import InputError
from reelwatch.settings import MAX_CRAWL_LIMIT, Settings, defaults_file, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.upper().startswith("REELWATCH_"):
            monkeypatch.delenv(key)


def _leaves(data: Any, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    if isinstance(data, dict) and (data or not prefix):
        return [leaf for k, v in data.items() for leaf in _leaves(v, (*prefix, str(k)))]
    return [(prefix, data)]


def test_defaults_yaml_never_disagrees_with_the_code() -> None:
    """The code holds the defaults; config/defaults.yaml may only repeat one, never differ
    (it ships with none active)."""
    active = yaml.safe_load(defaults_file().read_text()) or {}
    code = Settings.model_construct().model_dump(mode="json")
    for loc, value in _leaves(active):
        node: Any = code
        for part in loc:
            assert isinstance(node, dict) and part in node, f"{'.'.join(loc)}: no such setting"
            node = node[part]
        assert node == value, f"{'.'.join(loc)}: defaults.yaml says {value!r}, the code {node!r}"


def test_defaults_yaml_examples_are_valid_settings(tmp_path: Path) -> None:
    """The commented examples, uncommented, are settings the code accepts."""
    examples = defaults_file().read_text().split("\n\n", 1)[1]  # after the header
    data = yaml.safe_load("\n".join(line[2:] for line in examples.splitlines()))
    assert {"crawl", "download", "limits", "matcher", "email"} <= set(data)
    settings = Settings.model_validate(data)
    assert settings.email.smtp_port == 587
    assert settings.limits.max_megapixels == 50


def test_the_yaml_overrides_and_env_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "defaults.yaml").write_text("matcher:\n  high_threshold: 0.8\n")
    monkeypatch.setenv("REELWATCH_CONFIG_DIR", str(tmp_path))
    assert load_settings().matcher.high_threshold == 0.8
    monkeypatch.setenv("REELWATCH_MATCHER__HIGH_THRESHOLD", "0.9")
    assert load_settings().matcher.high_threshold == 0.9


BAD = [
    (
        "REELWATCH_EMAIL__SMTP_PORT",
        "abc",
        "setting email.smtp_port = 'abc': must be an integer (from REELWATCH_EMAIL__SMTP_PORT)",
    ),
    (
        "REELWATCH_EMAIL__SMTP_PORT",
        "0",
        "email.smtp_port = '0': must be greater than or equal to 1",
    ),
    ("REELWATCH_EMAIL__SMTP_PORT", "70000", "must be less than or equal to 65535"),
    ("REELWATCH_MATCHER__HIGH_THRESHOLD", "-3", "matcher.high_threshold = '-3': must be greater"),
    ("REELWATCH_MATCHER__HIGH_THRESHOLD", "1.5", "must be less than or equal to 1"),
    (
        "REELWATCH_MATCHER__HIGH_THRESHOLD",
        "0.3",
        "matcher.medium_threshold (0.45) must be at most matcher.high_threshold (0.3)",
    ),
    ("REELWATCH_MATCHER__SAMPLE_FPS", "0", "matcher.sample_fps = '0': must be greater than 0"),
    ("REELWATCH_MATCHER__MAX_FRAMES", "-1", "matcher.max_frames = '-1'"),
    ("REELWATCH_MATCHER__COPY_MAX_DISTANCE", "300", "less than or equal to 256"),
    ("REELWATCH_MATCHER__REFERENCE_CROPS", "[0.9, 2]", "matcher.reference_crops[1] = 2"),
    ("REELWATCH_MATCHER__SIGNALS", "copy", "matcher.signals = 'copy': must be JSON"),
    ("REELWATCH_MATCHER__INDEX", "fast", "must be 'exact' or 'approximate'"),
    ("REELWATCH_MATCHER__DEVICE", "gpu", "must be auto, cpu, cuda or cuda:N"),
    ("REELWATCH_MATCHER__FACE__MIN_SCORE", "2", "matcher.face.min_score = '2'"),
    ("REELWATCH_MATCHER__DESCRIPTOR__MODEL", "big", "must be 'sscd_distilled' or 'sscd'"),
    ("REELWATCH_CRAWL__DEFAULT_LIMIT", "10000000", "less than or equal to 100000"),
    ("REELWATCH_CRAWL__TIMEOUT_S", "-5", "crawl.timeout_s = '-5': must be greater than 0"),
    ("REELWATCH_DOWNLOAD__MAX_FILESIZE_MB", "0", "download.max_filesize_mb = '0'"),
    ("REELWATCH_DOWNLOAD__ALLOW_PRIVATE_HOSTS", "maybe", "must be true or false"),
    ("REELWATCH_DOWNLOAD__RETRIES", "-1", "must be greater than or equal to 0"),
    ("REELWATCH_LIMITS__MAX_MEGAPIXELS", "0", "limits.max_megapixels = '0'"),
    ("REELWATCH_ALERTS__MIN_CONFIDENCE", "urgent", "alerts.min_confidence = 'urgent'"),
    ("REELWATCH_ALERTS__DIGEST_THRESHOLD", "-2", "alerts.digest_threshold = '-2'"),
    ("REELWATCH_WORKERS__MATCH_QUEUE", "cuda", "must be 'match' or 'gpu'"),
    ("REELWATCH_WORKERS__BATCH_POSTS", "0", "workers.batch_posts = '0'"),
    ("REELWATCH_STORE__BACKEND", "mongo", "must be 'sqlite' or 'elasticsearch'"),
    ("REELWATCH_KIBANA__TIMEOUT_S", "0", "kibana.timeout_s = '0'"),
]


@pytest.mark.parametrize(("var", "value", "expected"), BAD, ids=[f"{v}={x}" for v, x, _ in BAD])
def test_bad_env_value_is_one_line(
    var: str, value: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(InputError) as caught:
        load_settings()
    line = str(caught.value)
    assert "\n" not in line
    assert expected in line
    assert f"(from {var})" in line


def test_every_bad_value_on_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REELWATCH_EMAIL__SMTP_PORT", "abc")
    monkeypatch.setenv("REELWATCH_MATCHER__HIGH_THRESHOLD", "-3")
    with pytest.raises(InputError) as caught:
        load_settings()
    line = str(caught.value)
    assert "\n" not in line
    assert "email.smtp_port" in line and "matcher.high_threshold" in line


def test_secret_values_are_never_shown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "defaults.yaml").write_text("board:\n  token: [hunter2]\n")
    monkeypatch.setenv("REELWATCH_CONFIG_DIR", str(tmp_path))
    with pytest.raises(InputError) as caught:
        load_settings()
    line = str(caught.value)
    assert "board.token = '***': must be a valid string" in line
    assert "hunter2" not in line


def test_a_bad_yaml_value_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "defaults.yaml").write_text("email:\n  smtp_port: 99999\n")
    monkeypatch.setenv("REELWATCH_CONFIG_DIR", str(tmp_path))
    with pytest.raises(InputError, match=r"email.smtp_port = 99999: .*defaults.yaml\)$"):
        load_settings()


def test_malformed_yaml_is_one_line_with_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "defaults.yaml").write_text("email:\n  smtp_port: 25\n  recipients: [a@b\n")
    monkeypatch.setenv("REELWATCH_CONFIG_DIR", str(tmp_path))
    with pytest.raises(InputError) as caught:
        load_settings()
    line = str(caught.value)
    assert "\n" not in line
    assert line.startswith(f"{tmp_path / 'defaults.yaml'}, line 4")
    assert "not valid YAML" in line


def test_overrides_are_checked_too() -> None:
    with pytest.raises(InputError, match="setting home = 5"):
        load_settings(home=5)


def test_secrets_come_from_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "reelwatch_email__password").write_text("hunter2\n")
    (tmp_path / "reelwatch_board__token").write_text("s3cret")
    (tmp_path / "reelwatch_email__smtp_port").write_text("2525")
    monkeypatch.setenv("REELWATCH_SECRETS_DIR", str(tmp_path))
    settings = load_settings()
    assert settings.email.password is not None and settings.board.token is not None
    assert settings.email.password.get_secret_value() == "hunter2"
    assert settings.board.token.get_secret_value() == "s3cret"
    assert settings.email.smtp_port == 2525
    assert "hunter2" not in repr(settings) and "s3cret" not in settings.model_dump_json()
    monkeypatch.setenv("REELWATCH_EMAIL__PASSWORD", "from-env")  # the environment wins
    password = load_settings().email.password
    assert password is not None and password.get_secret_value() == "from-env"


def test_a_bad_secret_file_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "reelwatch_email__smtp_port").write_text("x")
    monkeypatch.setenv("REELWATCH_SECRETS_DIR", str(tmp_path))
    with pytest.raises(InputError, match=r"email.smtp_port = 'x'.*reelwatch_email__smtp_port\)"):
        load_settings()
    monkeypatch.setenv("REELWATCH_SECRETS_DIR", str(tmp_path / "missing"))
    with pytest.raises(InputError, match=r"REELWATCH_SECRETS_DIR=.*: not a folder"):
        load_settings()


def test_query_limits_follow_the_download_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REELWATCH_DOWNLOAD__MAX_DURATION_S", "60")
    query = load_settings().media_limits("query")
    assert query.max_duration_s == 60 and query.duration_setting == "download.max_duration_s"
    monkeypatch.setenv("REELWATCH_LIMITS__MAX_DURATION_S", "30")
    query = load_settings().media_limits("query")
    assert query.max_duration_s == 30 and query.duration_setting == "limits.max_duration_s"
    reference = load_settings().media_limits("reference")
    assert reference.max_duration_s == 4 * 3600
    assert reference.duration_setting == "limits.catalog_max_duration_s"


def test_the_crawl_limit_is_the_crawlers() -> None:
    from crawler.sources.base import MAX_LIMIT

    assert MAX_CRAWL_LIMIT == MAX_LIMIT


def test_every_number_setting_has_a_range() -> None:
    """A new numeric setting without bounds is nonsense waiting to be accepted."""
    unbounded = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            ann = field.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                walk(ann, f"{prefix}{name}.")
            elif ann in (int, float, int | None, float | None) and not field.metadata:
                unbounded.append(prefix + name)

    walk(Settings, "")
    assert unbounded == []


def test_the_cli_says_one_line(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "REELWATCH_HOME": str(tmp_path),
        "REELWATCH_EMAIL__SMTP_PORT": "abc",
    }
    out = subprocess.run(
        [sys.executable, "-m", "reelwatch", "matches", "list"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 1
    assert out.stderr == (
        "reelwatch: error: setting email.smtp_port = 'abc': must be an integer"
        " (from REELWATCH_EMAIL__SMTP_PORT)\n"
    )
