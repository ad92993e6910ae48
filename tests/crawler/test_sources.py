"""Contract tests every registered source runs, plus the registry's own rules.

Each source is pointed at the replica through its own URL setting, so a new TikTok-shaped
source is tested for free; a source with another structure needs its own replica pages.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from crawler import crawl
from crawler.replica import ReplicaServer
from crawler.sources import SOURCES, Source, get_source
from crawler.sources.tiktok import item_to_post
from reelwatch.errors import InputError
from reelwatch.settings import Settings


@pytest.mark.parametrize("source", SOURCES, ids=[s.name for s in SOURCES])
class TestSourceContract:
    def test_is_found_by_its_name_in_any_case(self, source: type[Source]) -> None:
        assert get_source(source.name.upper()) is source

    def test_crawls_a_tiktok_shaped_site_as_its_platform(
        self, source: type[Source], settings: Settings, replica: ReplicaServer
    ) -> None:
        setattr(settings.crawl, source.url_setting, replica.base_url + "/")
        settings.crawl.download_delay = 0.0
        posts = crawl(settings, source.name, "other", limit=10)
        assert [p.post_id for p in posts] == [f"73000000000000000{n:02d}" for n in (5, 3, 1)]
        assert {p.platform for p in posts} == {source.name}
        assert all(p.url.startswith(f"{replica.base_url}/@user_") for p in posts)

    def test_refuses_a_missing_or_non_http_base_url(
        self, source: type[Source], settings: Settings
    ) -> None:
        setting = f"REELWATCH_CRAWL__{source.url_setting.upper()}"
        setattr(settings.crawl, source.url_setting, "")
        with pytest.raises(InputError, match=f"no URL configured for {source.name}: set {setting}"):
            source.base_url(settings)
        setattr(settings.crawl, source.url_setting, "file:///etc/passwd")
        with pytest.raises(InputError, match="is not an http"):
            source.base_url(settings)


def test_a_sparse_item_still_makes_a_post() -> None:
    """Deleted accounts and restricted posts come with most fields missing or as strings."""
    post = item_to_post(
        {"id": 42, "createTime": "1700000000", "statsV2": {"playCount": "1200"}, "IsAigc": True},
        platform="tiktok",
        base_url="https://www.tiktok.com/",
    )
    assert post.post_id == "42"
    assert post.url == "https://www.tiktok.com/@/video/42"
    assert post.posted_at == datetime.fromtimestamp(1_700_000_000, UTC)
    assert post.stats.views == 1200
    assert post.stats.likes is None
    assert (post.is_ai_labelled, post.ai_label, post.media_url) == (True, None, None)


def test_an_item_without_an_id_is_refused() -> None:
    with pytest.raises(ValueError, match="no id"):
        item_to_post({"desc": "x"}, platform="tiktok", base_url="https://www.tiktok.com")
