"""Session fixtures for matcher tests: the demo content (made once per machine, see
tests/conftest.py) and one catalog of the demo titles shared by read-only tests."""

from __future__ import annotations

import pytest

from matcher.catalog import Catalog
from matcher.engine import Matcher
from reelwatch.demo.content import DemoContent
from reelwatch.settings import Settings, load_settings


@pytest.fixture(scope="session")
def demo_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    s = load_settings(home=tmp_path_factory.mktemp("demo-home"))
    s.ensure_home()
    return s


@pytest.fixture(scope="session")
def demo_catalog(demo: DemoContent, demo_settings: Settings) -> Catalog:
    catalog = Catalog(demo_settings)
    for t in demo.titles:
        catalog.add_title(
            t.name,
            owner=t.owner,
            aliases=t.aliases,
            hashtags=t.hashtags,
            description=t.description,
            talents=t.talents,
        )
        catalog.add_assets(t.id, t.references)
    return catalog


@pytest.fixture(scope="session")
def demo_matcher(demo_settings: Settings, demo_catalog: Catalog) -> Matcher:
    return Matcher(demo_settings, demo_catalog)
