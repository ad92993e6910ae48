"""Fixtures shared by every test package: an isolated data home and settings for it."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelwatch.demo.content import DemoContent, generate_demo_content
from reelwatch.settings import Settings, load_settings


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    return h


@pytest.fixture
def settings(home: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings on a fresh data home; private hosts allowed so the replica on 127.0.0.1 works."""
    monkeypatch.setenv("REELWATCH_HOME", str(home))
    s = load_settings(home=home)
    s.download.allow_private_hosts = True
    s.ensure_home()
    return s


@pytest.fixture(scope="session")
def demo_dir(request: pytest.FixtureRequest) -> Path:
    """The demo content is made once per machine: pytest's cache folder keeps it between runs
    (its manifest carries CONTENT_VERSION, so a changed generator remakes it)."""
    return Path(request.config.cache.mkdir("reelwatch-demo-content"))


@pytest.fixture(scope="session")
def demo(demo_dir: Path) -> DemoContent:
    return generate_demo_content(demo_dir)
