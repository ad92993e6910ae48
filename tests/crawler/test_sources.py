"""Contract tests every registered source runs, each against its own replica fixture
(``tests/crawler/fixtures/``), plus the registry's and the query's own rules."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from crawler import crawl_run
from crawler.sources import SOURCES, Query, Source, get_source
from crawler.sources.base import QUERY_KINDS
from crawler.sources.tiktok import item_to_post
from reelwatch.errors import InputError
from reelwatch.settings import Settings
from tests.crawler.fixtures import fixture_for


def _needs_marks(source: type[Source]) -> list[pytest.MarkDecorator]:
    return [pytest.mark.browser] if "browser" in source.needs else []


@pytest.mark.parametrize(
    "source",
    [pytest.param(s, id=s.name, marks=_needs_marks(s)) for s in SOURCES],
)
class TestSourceContract:
    def test_is_found_by_its_name_in_any_case(self, source: type[Source]) -> None:
        assert get_source(source.name.upper()) is source

    def test_has_a_replica_fixture(self, source: type[Source]) -> None:
        assert fixture_for(source.name) is not None, (
            f"source {source.name} has no fixture in tests/crawler/fixtures/"
        )

    def test_lists_its_fixture_as_its_platform_with_provenance(
        self, source: type[Source], settings: Settings, site: Path
    ) -> None:
        factory = fixture_for(source.name)
        assert factory is not None
        with factory(settings, site) as fx:
            before = datetime.now(UTC)
            result = crawl_run(settings, source.name, fx.query, limit=10)
            ids = [p.post_id for p in result.posts]
            if fx.ordered:
                assert ids == fx.expected_ids
            else:
                assert sorted(ids) == sorted(fx.expected_ids)
            assert len(set(ids)) == len(ids)
            for post in result.posts:
                assert post.platform == source.name
                assert post.url.startswith(fx.url_prefix)
                assert post.provenance.raw, "the raw platform item is kept"
                assert post.provenance.source_url.startswith("http")
                assert post.provenance.captured_at >= before
                assert post.provenance.method
                assert post.provenance.query == str(Query.parse(fx.query))
            # The limit holds exactly.
            two = crawl_run(settings, source.name, fx.query, limit=2)
            assert [p.post_id for p in two.posts] == ids[:2] if fx.ordered else len(two.posts) == 2
            assert two.stop == "limit"

    def test_refuses_a_missing_or_non_http_base_url(
        self, source: type[Source], settings: Settings
    ) -> None:
        env = f"REELWATCH_CRAWL__SOURCES__{source.name.upper()}__BASE_URL"
        source.set_base_url(settings, "")
        with pytest.raises(InputError, match=f"no URL configured for {source.name}: set {env}"):
            source(settings).base_url()
        source.set_base_url(settings, "file:///etc/passwd")
        with pytest.raises(InputError, match="is not an http"):
            source(settings).base_url()

    def test_refuses_query_kinds_it_cannot_list(
        self, source: type[Source], settings: Settings
    ) -> None:
        source.set_base_url(settings, "http://127.0.0.1:9")
        samples = {
            "hashtag": "#x",
            "search": "search:x",
            "account": "@x",
            "url": "http://127.0.0.1:9/x",
        }
        assert source.query_kinds, "a source lists at least one kind of query"
        for kind in QUERY_KINDS:
            if kind not in source.query_kinds:
                with pytest.raises(InputError, match=f"cannot list a {kind} query"):
                    crawl_run(settings, source.name, samples[kind], limit=1)

    def test_refuses_a_misspelt_setting_naming_it(
        self, source: type[Source], settings: Settings
    ) -> None:
        settings.crawl.sources[source.name] = {"base_urll": "http://x"}
        with pytest.raises(InputError, match=rf"crawl\.sources\.{source.name}\.base_urll"):
            source(settings)


def test_source_names_are_unique_and_lower_case() -> None:
    names = [s.name for s in SOURCES]
    assert len(set(names)) == len(names)
    assert all(n == n.lower() and n.isidentifier() for n in names)


@pytest.mark.parametrize(
    ("text", "kind", "value", "shown"),
    [
        ("#Bridgerton", "hashtag", "bridgerton", "#bridgerton"),
        ("bridgerton", "hashtag", "bridgerton", "#bridgerton"),
        ("@netflix", "account", "netflix", "@netflix"),
        ("search:queen  charlotte", "search", "queen charlotte", "search:queen charlotte"),
        ("https://example.com/feed.xml", "url", "https://example.com/feed.xml", None),
        (
            "url:ytsearch5:bridgerton edit",
            "url",
            "ytsearch5:bridgerton edit",
            "url:ytsearch5:bridgerton edit",
        ),
    ],
)
def test_queries_parse_from_what_users_type(
    text: str, kind: str, value: str, shown: str | None
) -> None:
    q = Query.parse(text)
    assert (q.kind, q.value) == (kind, value)
    assert str(q) == (shown or value)
    assert Query.parse(str(q)) == q


@pytest.mark.parametrize("bad", ["#", "#bad tag!", "@", "url:file:///etc/passwd", "url:/etc"])
def test_bad_queries_are_refused_in_one_line(bad: str) -> None:
    with pytest.raises(InputError):
        Query.parse(bad)


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
