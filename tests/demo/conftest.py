"""The demo content is made once per machine: pytest's cache folder keeps it between runs
(its manifest carries CONTENT_VERSION, so a changed generator remakes it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelwatch.demo.content import DemoContent, generate_demo_content


@pytest.fixture(scope="session")
def demo_dir(request: pytest.FixtureRequest) -> Path:
    return Path(request.config.cache.mkdir("reelwatch-demo-content"))


@pytest.fixture(scope="session")
def demo(demo_dir: Path) -> DemoContent:
    return generate_demo_content(demo_dir)
