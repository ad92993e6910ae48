"""The Elasticsearch backend.

With ``ELASTICSEARCH_URL`` set, the whole shared Store contract runs against that cluster (on
indices of a throwaway prefix, deleted afterwards). Without one, the templates and mappings are
checked as data, and the exact requests the store sends (setup, upsert, bulk, status update)
and its fault handling are checked through the real client against a local recorder server.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch, NotFoundError
from pydantic import BaseModel

from reelwatch.models import (
    AIFlag,
    Alert,
    AssetRef,
    Author,
    Enforcement,
    HistoryEntry,
    Match,
    Media,
    Notice,
    Post,
    PostStats,
    Provenance,
    Segment,
    TriageStatus,
    WorkRef,
)
from reelwatch.settings import Settings
from tests.triage.es_recorder import ElasticsearchRecorder, running_recorder
from tests.triage.factories import make_match
from tests.triage.store_contract import StoreContract
from triage.stores import StoreBusyError, StoreError, open_store
from triage.stores.elasticsearch import (
    INDEX_PREFIX,
    KINDS,
    ElasticsearchStore,
    desired_resources,
    mappings_of,
)

ES_URL = os.environ.get("ELASTICSEARCH_URL")

# Contract against a real cluster --------------------------------------------------------------


def _wipe(url: str, prefix: str) -> None:
    """Delete every index, template and policy a test prefix created (by name: clusters refuse
    wildcard deletes by default)."""
    with Elasticsearch(url) as es:
        try:
            indices = list(dict(es.indices.get_alias(name=f"{prefix}-*")))
        except NotFoundError:
            indices = []
        if indices:
            es.indices.delete(index=",".join(indices), ignore_unavailable=True)
        for res in desired_resources(prefix):
            try:
                if res.kind == "index_template":
                    es.indices.delete_index_template(name=res.name)
            except NotFoundError:
                pass
        for res in desired_resources(prefix):
            try:
                if res.kind == "component_template":
                    es.cluster.delete_component_template(name=res.name)
                elif res.kind == "ilm_policy":
                    es.ilm.delete_lifecycle(name=res.name)
            except NotFoundError:
                pass


@pytest.mark.es
@pytest.mark.skipif(ES_URL is None, reason="ELASTICSEARCH_URL is not set: no Elasticsearch server")
class TestElasticsearchStore(StoreContract):
    @pytest.fixture
    def store_settings(self, settings: Settings) -> Iterator[Settings]:
        assert ES_URL is not None
        prefix = f"reelwatch-test-{uuid.uuid4().hex[:10]}"
        settings.store = settings.store.model_copy(
            update={
                "backend": "elasticsearch",
                "elasticsearch_url": ES_URL,
                "elasticsearch_index_prefix": prefix,
            }
        )
        try:
            yield settings
        finally:
            _wipe(ES_URL, prefix)


class TestElasticsearchStoreOnTheRecorder(StoreContract):
    """The same contract through the real client against the recording double: every
    request the contract makes (reads, conditional writes, searches, counts, leases) is one
    the store can form and the double can answer. Not a substitute for the real run above."""

    @pytest.fixture
    def store_settings(self, settings: Settings) -> Iterator[Settings]:
        with running_recorder() as r:
            settings.store = settings.store.model_copy(
                update={"backend": "elasticsearch", "elasticsearch_url": r.url}
            )
            yield settings


# Templates as data ----------------------------------------------------------------------------

KEYWORD_FIELDS = {
    "posts": ["key", "platform", "post_id", "hashtags", "watch", "hashtag", "state"],
    "matches": ["id", "post_key", "platform", "post_id", "account", "hashtags", "title_id"],
    "media": ["sha256"],
    "alerts": ["id", "match_id", "channel", "recipient", "status"],
    "notices": ["id", "platform", "account", "title_id", "match_ids", "status"],
}
MODELS: dict[str, type[BaseModel]] = {
    "posts": Post,
    "media": Media,
    "matches": Match,
    "alerts": Alert,
    "notices": Notice,
}
NESTED_MODELS: dict[str, type[BaseModel]] = {
    "author": Author,
    "stats": PostStats,
    "provenance": Provenance,
    "segments": Segment,
    "history": HistoryEntry,
    "ai": AIFlag,
    "enforcement": Enforcement,
    "work": WorkRef,
    "assets": AssetRef,
}


def _assert_covers(model: type[BaseModel], props: dict[str, Any], where: str) -> None:
    for name in model.model_fields:
        assert name in props, f"{where}.{name} has no explicit mapping"
        nested = NESTED_MODELS.get(name)
        if nested is not None and "properties" in props[name]:
            _assert_covers(nested, props[name]["properties"], f"{where}.{name}")


@pytest.mark.parametrize("kind", KINDS)
def test_every_model_field_is_mapped_and_unknown_fields_are_refused(kind: str) -> None:
    mappings = mappings_of(kind)
    assert mappings["dynamic"] == "strict"
    _assert_covers(MODELS[kind], mappings["properties"], kind)
    for field in KEYWORD_FIELDS[kind]:
        assert mappings["properties"][field]["type"] == "keyword", field


def test_match_mapping_types() -> None:
    props = mappings_of("matches")["properties"]
    assert props["segments"]["type"] == "nested"
    assert props["history"]["type"] == "nested"
    assert props["segments"]["properties"]["ref_asset"]["type"] == "keyword"
    assert props["segments"]["properties"]["query_start"]["type"] == "float"
    assert props["history"]["properties"]["at"]["type"] == "date"
    assert props["title"]["type"] == "keyword"
    assert {props[f]["type"] for f in ("created_at", "updated_at")} == {"date"}
    assert {props[f]["type"] for f in ("score", "confidence_rank")} == {"float", "byte"}
    dynamic = mappings_of("matches")["dynamic_templates"][0]["signal_scores"]
    assert (dynamic["path_match"], dynamic["mapping"]["type"]) == ("signals.*", "float")
    post = mappings_of("posts")["properties"]
    assert post["author"]["properties"]["handle"]["type"] == "keyword"
    assert {post[f]["type"] for f in ("first_seen", "last_seen", "posted_at")} == {"date"}
    assert post["provenance"]["properties"]["raw"]["enabled"] is False


def test_templates_compose_settings_mappings_and_ilm_under_any_prefix() -> None:
    prefix = "acme"
    by_name = {r.name: r for r in desired_resources(prefix)}
    policy = by_name["acme"].body["policy"]
    assert "rollover" in policy["phases"]["hot"]["actions"]
    assert by_name["acme-settings"].body["template"]["settings"]["index"]["lifecycle"] == {
        "name": "acme"
    }
    for kind in KINDS:
        template = by_name[f"acme-{kind}"].body
        assert template["index_patterns"] == [f"acme-{kind}-*"]
        assert template["composed_of"] == ["acme-settings", f"acme-{kind}-mappings"]
        lifecycle = template["template"]["settings"]["index"]["lifecycle"]
        assert lifecycle == {"rollover_alias": f"acme-{kind}"}
        assert all(name in by_name for name in template["composed_of"])
    bodies = {n: {k: v for k, v in r.body.items() if k != "_meta"} for n, r in by_name.items()}
    bodies["acme"] = {"phases": bodies["acme"]["policy"]["phases"]}
    assert [n for n, body in bodies.items() if "reelwatch" in json.dumps(body)] == []


# Requests, through the real client, against the recorder --------------------------------------


@pytest.fixture
def recorder() -> Iterator[ElasticsearchRecorder]:
    with running_recorder() as r:
        yield r


@pytest.fixture
def es_store(recorder: ElasticsearchRecorder) -> Iterator[ElasticsearchStore]:
    with ElasticsearchStore(recorder.url, retry_budget_s=5) as store:
        recorder.clear()
        yield store


def test_opening_an_empty_cluster_installs_templates_then_write_aliases(
    recorder: ElasticsearchRecorder,
) -> None:
    with ElasticsearchStore(recorder.url):
        pass
    puts = [r for r in recorder.requests if r.method == "PUT"]
    wanted = desired_resources()
    paths = {
        "ilm_policy": "/_ilm/policy/",
        "component_template": "/_component_template/",
        "index_template": "/_index_template/",
    }
    assert [(r.path, r.body) for r in puts[: len(wanted)]] == [
        (paths[w.kind] + w.name, w.body) for w in wanted
    ]
    assert [(r.path, r.body) for r in puts[len(wanted) :]] == [
        (f"/reelwatch-{k}-000001", {"aliases": {f"reelwatch-{k}": {"is_write_index": True}}})
        for k in KINDS
    ]
    assert all(w.body["_meta"]["checksum"] for w in wanted if w.kind != "ilm_policy")


def test_es_setup_cli_is_idempotent(recorder: ElasticsearchRecorder, home: Path) -> None:
    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "reelwatch", "es", "setup", "--url", recorder.url],
            capture_output=True,
            text=True,
            env={**os.environ, "REELWATCH_HOME": str(home)},
            timeout=120,
        )

    first = run()
    assert first.returncode == 0, first.stderr
    assert "created index_template reelwatch-matches" in first.stdout
    assert "created index reelwatch-matches-000001 with write alias reelwatch-matches" in (
        first.stdout
    )
    recorder.clear()
    second = run()
    assert second.returncode == 0, second.stderr
    assert "nothing to change" in second.stdout
    assert recorder.writes() == [], "a second setup must not change anything"
    assert len(recorder.requests) > 0


def test_changed_mappings_are_updated_and_applied_to_the_live_index(
    recorder: ElasticsearchRecorder,
) -> None:
    with ElasticsearchStore(recorder.url) as store:
        recorder.components["reelwatch-matches-mappings"]["_meta"]["checksum"] = "old"
        recorder.clear()
        assert store.setup() == [
            "updated component_template reelwatch-matches-mappings",
            "updated mappings of reelwatch-matches",
        ]
    mapping_puts = [r for r in recorder.writes() if r.path.endswith("/_mapping")]
    assert [r.path for r in mapping_puts] == ["/reelwatch-matches/_mapping"]
    assert mapping_puts[0].body == mappings_of("matches")


def _doc(match: Match) -> dict[str, Any]:
    return {**match.model_dump(mode="json"), "id": match.id, "confidence_rank": 2}


def test_upsert_creates_through_the_alias_then_updates_the_version_it_read(
    recorder: ElasticsearchRecorder, es_store: ElasticsearchStore
) -> None:
    match = make_match()
    assert es_store.upsert_match(match) is True
    create = recorder.writes()
    assert [(r.method, r.path, r.params) for r in create] == [
        ("PUT", "/reelwatch-matches/_create/tiktok:7001:the-crown", {"refresh": "wait_for"})
    ]
    assert create[0].body == _doc(match)

    recorder.clear()
    rerun = match.model_copy(update={"score": 0.97})
    assert es_store.upsert_match(rerun) is False
    reads = [r for r in recorder.requests if r.path == "/_mget"]
    assert reads[0].body == {
        "docs": [{"_index": "reelwatch-matches-000001", "_id": "tiktok:7001:the-crown"}]
    }
    update = recorder.writes()
    assert [(r.path, r.params) for r in update] == [
        (
            "/reelwatch-matches-000001/_doc/tiktok:7001:the-crown",
            {"if_seq_no": "0", "if_primary_term": "1", "refresh": "wait_for"},
        )
    ]
    assert update[0].body["score"] == 0.97


def test_status_update_lands_in_place_with_history(
    recorder: ElasticsearchRecorder, es_store: ElasticsearchStore
) -> None:
    match = make_match()
    es_store.upsert_match(match)
    recorder.clear()
    updated = es_store.set_status(match.id, TriageStatus.CONFIRMED, note="same shot", actor="ana")
    (write,) = recorder.writes()
    assert write.path == "/reelwatch-matches-000001/_doc/tiktok:7001:the-crown"
    assert write.params["if_seq_no"] == "0"
    expected = _doc(match)
    expected.update(
        status="confirmed",
        note="same shot",
        history=[updated.history[0].model_dump(mode="json")],
        enforcement=updated.enforcement.model_dump(mode="json"),
    )
    assert write.body == expected
    assert updated.enforcement.confirmed_at == updated.history[0].at
    assert updated.history[0].actor == "ana"
    assert len(recorder.indices["reelwatch-matches-000001"].docs) == 1


def test_a_lost_race_is_redone_on_fresh_data(
    recorder: ElasticsearchRecorder, es_store: ElasticsearchStore
) -> None:
    match = make_match()
    es_store.upsert_match(match)
    recorder.fail_next(1, 409, method="PUT", path_contains="/_doc/")
    es_store.set_status(match.id, TriageStatus.CONFIRMED, note="first", actor="ana")
    got = es_store.get_match(match.id)
    assert got is not None
    assert [h.note for h in got.history] == ["first"], "a redone change is applied once"
    assert len([r for r in recorder.writes() if "/_doc/" in r.path]) == 2


def test_bulk_sends_deterministic_ids_and_keeps_triage(
    recorder: ElasticsearchRecorder, es_store: ElasticsearchStore
) -> None:
    known = make_match("1")
    es_store.upsert_match(known)
    es_store.set_status(known.id, TriageStatus.CONFIRMED, note="seen", actor="ana")
    recorder.clear()

    batch = [make_match("1", score=0.99), make_match("2"), make_match("3")]
    assert es_store.upsert_matches(batch) == 2
    (bulk,) = [r for r in recorder.requests if r.path == "/_bulk"]
    assert bulk.params == {"refresh": "wait_for"}
    actions = bulk.body[0::2]
    assert actions == [
        {
            "index": {
                "_index": "reelwatch-matches-000001",
                "_id": "tiktok:1:the-crown",
                "if_seq_no": 1,
                "if_primary_term": 1,
            }
        },
        {"create": {"_index": "reelwatch-matches", "_id": "tiktok:2:the-crown"}},
        {"create": {"_index": "reelwatch-matches", "_id": "tiktok:3:the-crown"}},
    ]
    assert bulk.body[3] == _doc(batch[1])
    merged = bulk.body[1]
    assert (merged["score"], merged["status"], merged["note"]) == (0.99, "confirmed", "seen")
    assert es_store.upsert_matches(batch) == 0, "the same batch again creates nothing"
    assert len(recorder.indices["reelwatch-matches-000001"].docs) == 3


# The one retry policy (triage/stores/elasticsearch.py, "Faults: one retry policy") -------------

QUICK = {"retry_first_delay_s": 0.001, "retry_budget_s": 60.0}
"""Waits of a millisecond, so attempts (not time) bound a test; the count is what is pinned."""


@pytest.fixture
def quick_store(recorder: ElasticsearchRecorder) -> Iterator[ElasticsearchStore]:
    with ElasticsearchStore(recorder.url, retry_attempts=4, **QUICK) as store:  # type: ignore[arg-type]
        recorder.clear()
        yield store


def _creates(recorder: ElasticsearchRecorder) -> list[Any]:
    return [r for r in recorder.requests if "/_create/" in r.path]


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_a_busy_answer_is_retried_by_the_store_alone_then_lands_once(
    recorder: ElasticsearchRecorder, quick_store: ElasticsearchStore, status: int
) -> None:
    recorder.fail_next(3, status, method="PUT", path_contains="/_create/")
    match = make_match()
    assert quick_store.upsert_match(match) is True
    assert len(_creates(recorder)) == 4, "3 busy answers, then the 4th attempt lands"
    assert recorder.source("reelwatch-matches", match.id) == _doc(match)


@pytest.mark.parametrize("status", [429, 503])
def test_busy_for_good_is_exactly_the_policys_attempts_then_a_transient_error(
    recorder: ElasticsearchRecorder, quick_store: ElasticsearchStore, status: int
) -> None:
    recorder.fail_next(10_000, status, method="PUT", path_contains="/_create/")
    with pytest.raises(StoreBusyError, match=rf"answered {status}.*gave up after 4 attempts"):
        quick_store.upsert_match(make_match())
    # The client's own retries are off: 4 attempts are 4 requests, not 4 x (1 + its retries).
    assert len(_creates(recorder)) == 4
    assert recorder.source("reelwatch-matches", make_match().id) is None


@pytest.mark.parametrize("status", [400, 401, 403, 500])
def test_other_answers_are_not_retried(
    recorder: ElasticsearchRecorder, quick_store: ElasticsearchStore, status: int
) -> None:
    recorder.fail_next(1, status, method="PUT", path_contains="/_create/")
    with pytest.raises(StoreError, match=rf"Elasticsearch said {status}") as raised:
        quick_store.upsert_match(make_match())
    assert not isinstance(raised.value, StoreBusyError)
    assert len(_creates(recorder)) == 1


def test_a_busy_bulk_request_is_resent_whole_and_busy_items_alone(
    recorder: ElasticsearchRecorder, quick_store: ElasticsearchStore
) -> None:
    recorder.fail_next(2, 429, method="PUT", path_contains="/_bulk")
    batch = [make_match(str(i)) for i in range(3)]
    assert quick_store.upsert_matches(batch) == 3
    bulks = [r for r in recorder.requests if r.path == "/_bulk"]
    assert len(bulks) == 3 and all(len(b.body) // 2 == 3 for b in bulks)

    recorder.clear()
    recorder.reject_bulk_items(10_000)
    more = [make_match(str(i)) for i in range(3, 6)]
    with pytest.raises(StoreBusyError, match=r"rejected 3 matches with 429.*after 4 attempts"):
        quick_store.upsert_matches(more)
    bulks = [r for r in recorder.requests if r.path == "/_bulk"]
    assert [len(b.body) // 2 for b in bulks] == [3, 3, 3, 3]


def test_a_connection_dropped_every_time_is_tried_exactly_the_policys_attempts() -> None:
    """A real socket that accepts and hangs up at once: each attempt is one connection."""
    accepted = 0
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        server.settimeout(0.2)
        url = f"http://127.0.0.1:{server.getsockname()[1]}"
        stop = threading.Event()

        def serve() -> None:
            nonlocal accepted
            while not stop.is_set():
                try:
                    conn, _ = server.accept()
                except TimeoutError:
                    continue
                accepted += 1
                conn.close()

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            with pytest.raises(StoreBusyError, match=r"did not answer.*gave up after 3 attempts"):
                ElasticsearchStore(url, retry_attempts=3, **QUICK)  # type: ignore[arg-type]
        finally:
            stop.set()
            thread.join(timeout=10)
    assert accepted == 3


def test_the_time_budget_also_bounds_the_attempts(recorder: ElasticsearchRecorder) -> None:
    with ElasticsearchStore(recorder.url, retry_budget_s=0.5) as store:
        recorder.clear()
        recorder.fail_next(10_000, 503, method="PUT")
        with pytest.raises(StoreBusyError, match=r"answered 503.*within 0\.5 s") as raised:
            store.upsert_match(make_match())
    tried = int(re.findall(r"gave up after (\d+) attempt", str(raised.value))[0])
    assert 1 <= tried < 6, "the 0.5 s budget ends it before the 6 attempts"
    assert len(_creates(recorder)) == tried
    assert recorder.source("reelwatch-matches", make_match().id) is None


def test_credentials_in_the_url_never_reach_errors_or_logs(
    recorder: ElasticsearchRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "es-pw-5f2a91"
    url = recorder.url.replace("http://", f"http://elastic:{secret}@")
    with caplog.at_level(logging.DEBUG):
        with ElasticsearchStore(url, retry_attempts=3, **QUICK) as store:  # type: ignore[arg-type]
            recorder.fail_next(10_000, 503, method="PUT")
            with pytest.raises(StoreBusyError) as busy:
                store.upsert_match(make_match())
        dead = url.rsplit(":", 1)[0] + f":{_free_port()}"
        with pytest.raises(StoreError) as refused:
            ElasticsearchStore(dead, retry_attempts=2, **QUICK)  # type: ignore[arg-type]
    for text in (str(busy.value), str(refused.value), caplog.text):
        assert secret not in text
    assert "elastic:***@127.0.0.1" in str(busy.value)
    assert "elastic:***@127.0.0.1" in str(refused.value)


def test_bulk_items_rejected_with_429_are_resent(
    recorder: ElasticsearchRecorder, es_store: ElasticsearchStore
) -> None:
    recorder.reject_bulk_items(2)
    batch = [make_match(str(i)) for i in range(3)]
    assert es_store.upsert_matches(batch) == 3
    bulks = [r for r in recorder.requests if r.path == "/_bulk"]
    assert [len(b.body) // 2 for b in bulks] == [3, 2]
    assert sorted(recorder.indices["reelwatch-matches-000001"].docs) == sorted(m.id for m in batch)


def test_alert_claims_and_leases_use_conditional_writes(
    recorder: ElasticsearchRecorder, es_store: ElasticsearchStore
) -> None:
    alert = Alert(match_id="tiktok:1:the-crown", channel="email", recipient="a@studio.test")
    assert es_store.claim_alert(alert) is True
    assert es_store.claim_alert(alert) is False
    (create,) = recorder.writes()
    assert create.path == f"/reelwatch-alerts/_create/{alert.id}"
    assert set(create.body) == {*alert.model_dump(mode="json"), "id", "lease_ts", "attempt_token"}
    assert es_store.lease_alert(alert.id, lease_s=3600) is None
    es_store.update_alert(alert.model_copy(update={"error": "server down"}))
    stored = recorder.source("reelwatch-alerts", alert.id)
    assert stored is not None and "lease_ts" not in stored, "recording an attempt frees the lease"
    recorder.clear()
    leased = es_store.lease_alert(alert.id, lease_s=3600)
    assert leased is not None and leased.error == "server down"
    (lease,) = recorder.writes()
    assert lease.params["if_seq_no"] == "1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_dead_server_is_a_clear_store_error() -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(StoreError, match=re.escape(f"Elasticsearch at {url} did not answer")):
        ElasticsearchStore(url, retry_budget_s=0.3)


def test_settings_without_a_url_or_with_a_bad_one_are_clear_errors(settings: Settings) -> None:
    settings.store.backend = "elasticsearch"
    with pytest.raises(StoreError, match="REELWATCH_STORE__ELASTICSEARCH_URL"):
        open_store(settings)
    settings.store.elasticsearch_url = "localhost:9200"
    with pytest.raises(StoreError, match="must start with http"):
        open_store(settings)


def test_default_prefix_is_reelwatch() -> None:
    assert INDEX_PREFIX == "reelwatch"
