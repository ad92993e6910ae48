"""Kibana saved objects and ``reelwatch kibana import``.

Without a Kibana server: the ndjson files are checked for what Kibana's import needs (JSON on
every line, unique ids, references that resolve, fields that exist in the Match documents), and
the CLI is run against a local HTTP server that records the request and answers like Kibana's
``_import`` API. With ``KIBANA_URL`` set, the objects are imported into a throwaway space of
that Kibana and read back.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from pydantic import BaseModel

from reelwatch.errors import InputError
from reelwatch.models import Match, Post, TriageStatus
from reelwatch.settings import PROJECT_ROOT, load_settings
from triage.kibana import (
    BOARD_URL_PLACEHOLDER,
    KibanaSettings,
    import_saved_objects,
    load_saved_objects,
)

KIBANA_DIR = PROJECT_ROOT / "config" / "kibana"
BOARD_URL = "https://board.studio.example:8443"

EXPECTED_VISUALIZATIONS = {
    "reelwatch-matches-over-time",
    "reelwatch-confidence-mix",
    "reelwatch-platforms",
    "reelwatch-top-hashtags",
    "reelwatch-repeat-accounts",
    "reelwatch-ai-share",
    "reelwatch-triage-funnel",
    "reelwatch-status-by-platform",
    "reelwatch-views-reached",
    "reelwatch-time-to-removal",
    "reelwatch-removals-over-time",
}
SEARCH_ID = "reelwatch-new-high-confidence"


# --- what the objects may name ------------------------------------------------------------


def model_fields(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Dotted field names of a document built from ``model`` (nested models flattened)."""
    names: set[str] = set()
    for name, info in model.model_fields.items():
        full = prefix + name
        names.add(full)
        annotation = info.annotation
        inner = getattr(annotation, "__args__", (annotation,))
        for arg in inner:
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                names |= model_fields(arg, full + ".")
    return names


MATCH_FIELDS = model_fields(Match) | {"id"}
POST_FIELDS = model_fields(Post) | {"id"}
DICT_FIELDS = ("signals.",)
"""Match fields that are maps: any key under them is a field (``signals.copy``)."""

_KQL_FIELD = re.compile(r"(?:^|\(|\s)([A-Za-z_][\w.]*)\s*:")


def kql_fields(query: str) -> set[str]:
    return set(_KQL_FIELD.findall(query))


def fields_used(obj: dict[str, Any]) -> set[str]:
    """Every field name a saved object asks Elasticsearch about."""
    attrs = obj["attributes"]
    used: set[str] = set()
    meta = attrs.get("kibanaSavedObjectMeta", {}).get("searchSourceJSON")
    if meta:
        source = json.loads(meta)
        used |= kql_fields(source.get("query", {}).get("query", ""))
        for flt in source.get("filter", []):
            used.add(flt["meta"]["key"])
    if obj["type"] == "visualization":
        for agg in json.loads(attrs["visState"])["aggs"]:
            params = agg.get("params", {})
            if "field" in params:
                used.add(params["field"])
            for flt in params.get("filters", []):
                used |= kql_fields(flt["input"]["query"])
    elif obj["type"] == "search":
        used |= set(attrs["columns"])
        used |= {column for column, _ in attrs.get("sort", [])}
    elif obj["type"] == "index-pattern":
        used.add(attrs["timeFieldName"])
        used |= set(json.loads(attrs.get("fieldFormatMap") or "{}"))
    return used


def unknown_fields(obj: dict[str, Any]) -> set[str]:
    allowed = POST_FIELDS if obj["attributes"].get("title") == "reelwatch-posts" else MATCH_FIELDS
    return {f for f in fields_used(obj) if f not in allowed and not f.startswith(DICT_FIELDS)}


# --- the files ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return load_saved_objects(BOARD_URL, KIBANA_DIR)


def by_id(objects: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["type"], o["id"]): o for o in objects}


def test_every_line_is_a_saved_object_with_parseable_json_attributes() -> None:
    files = sorted(KIBANA_DIR.glob("*.ndjson"))
    assert files, f"no ndjson in {KIBANA_DIR}"
    count = 0
    for path in files:
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            obj = json.loads(line)
            where = f"{path.name}:{number}"
            assert {"id", "type", "attributes", "references"} <= set(obj), where
            assert obj["migrationVersion"], where
            for key, value in obj["attributes"].items():
                if key.endswith("JSON") or key in ("fieldFormatMap", "fields", "fieldAttrs"):
                    json.loads(value)
            source = obj["attributes"].get("kibanaSavedObjectMeta", {}).get("searchSourceJSON")
            if source:
                json.loads(source)
            count += 1
    assert count == 15


def test_ids_are_unique(objects: list[dict[str, Any]]) -> None:
    ids = [o["id"] for o in objects]
    assert len(ids) == len(set(ids))


def test_every_reference_resolves(objects: list[dict[str, Any]]) -> None:
    known = by_id(objects)
    for obj in objects:
        names = {ref["name"] for ref in obj["references"]}
        for ref in obj["references"]:
            assert (ref["type"], ref["id"]) in known, f"{obj['id']} -> {ref}"
        meta = obj["attributes"].get("kibanaSavedObjectMeta", {}).get("searchSourceJSON")
        if meta and "indexRefName" in json.loads(meta):
            assert json.loads(meta)["indexRefName"] in names, obj["id"]


def test_visualizations_and_search_read_the_matches_data_view(
    objects: list[dict[str, Any]],
) -> None:
    for obj in objects:
        if obj["type"] in ("visualization", "search"):
            assert [r["id"] for r in obj["references"]] == ["reelwatch-matches"], obj["id"]


def test_every_field_is_a_match_field(objects: list[dict[str, Any]]) -> None:
    checked = 0
    for obj in objects:
        assert unknown_fields(obj) == set(), obj["id"]
        checked += len(fields_used(obj))
    assert checked > 20


MATCHES_MAPPING = (
    PROJECT_ROOT
    / "config"
    / "elasticsearch"
    / "component_templates"
    / "reelwatch-matches-mappings.json"
)


def mapped_types(properties: dict[str, Any], prefix: str = "") -> dict[str, str]:
    types: dict[str, str] = {}
    for name, spec in properties.items():
        if "properties" in spec:
            types |= mapped_types(spec["properties"], prefix + name + ".")
        types[prefix + name] = spec.get("type", "object")
    return types


@pytest.mark.skipif(not MATCHES_MAPPING.exists(), reason="no matches mapping in config/")
def test_aggregated_fields_are_aggregatable_in_the_mapping(objects: list[dict[str, Any]]) -> None:
    """Kibana can only bucket on keyword, date, boolean and numeric fields, never on text."""
    mapping = json.loads(MATCHES_MAPPING.read_text())["template"]["mappings"]["properties"]
    types = mapped_types(mapping)
    aggregated = {"id": "keyword"}
    for obj in objects:
        if obj["type"] == "visualization":
            for agg in json.loads(obj["attributes"]["visState"])["aggs"]:
                if "field" in agg["params"]:
                    aggregated[agg["params"]["field"]] = types.get(agg["params"]["field"], "?")
    aggregatable = {"keyword", "date", "boolean", "float", "double", "byte", "long", "integer"}
    assert {f: t for f, t in aggregated.items() if t not in aggregatable} == {}
    assert {"title", "confidence", "platform", "hashtags", "account"} <= set(aggregated)
    assert types["ai.is_ai"] == "boolean"
    assert types["status"] == "keyword"


def test_a_misspelt_field_would_be_caught(objects: list[dict[str, Any]]) -> None:
    """The field check above is only worth something if it can fail."""
    vis = json.loads(json.dumps(by_id(objects)[("visualization", "reelwatch-platforms")]))
    state = json.loads(vis["attributes"]["visState"])
    state["aggs"][1]["params"]["field"] = "platfrom"
    vis["attributes"]["visState"] = json.dumps(state)
    assert unknown_fields(vis) == {"platfrom"}
    search = json.loads(json.dumps(by_id(objects)[("search", SEARCH_ID)]))
    search["attributes"]["columns"].append("likes")
    assert unknown_fields(search) == {"likes"}


def test_data_views(objects: list[dict[str, Any]]) -> None:
    known = by_id(objects)
    matches = known[("index-pattern", "reelwatch-matches")]["attributes"]
    posts = known[("index-pattern", "reelwatch-posts")]["attributes"]
    assert (matches["title"], matches["timeFieldName"]) == ("reelwatch-matches", "updated_at")
    assert (posts["title"], posts["timeFieldName"]) == ("reelwatch-posts", "first_seen")
    assert "first_seen" in POST_FIELDS


def test_board_link_is_a_url_formatter_on_id_with_the_configured_board(
    objects: list[dict[str, Any]],
) -> None:
    matches = by_id(objects)[("index-pattern", "reelwatch-matches")]
    formats = json.loads(matches["attributes"]["fieldFormatMap"])
    assert formats["id"]["id"] == "url"
    assert formats["id"]["params"]["urlTemplate"] == f"{BOARD_URL}/matches/{{{{value}}}}"
    assert formats["post_url"]["id"] == "url"
    assert BOARD_URL_PLACEHOLDER not in json.dumps(objects)


def test_board_url_with_a_trailing_slash_makes_no_double_slash() -> None:
    objects = load_saved_objects("http://127.0.0.1:8765/", KIBANA_DIR)
    matches = by_id(objects)[("index-pattern", "reelwatch-matches")]
    template = json.loads(matches["attributes"]["fieldFormatMap"])["id"]["params"]["urlTemplate"]
    assert template == "http://127.0.0.1:8765/matches/{{value}}"


@pytest.mark.parametrize("bad", ["ftp://x/", "board", 'http://x/"}', "http://x/{{value}}"])
def test_bad_board_url_is_an_input_error(bad: str) -> None:
    with pytest.raises(InputError, match="BOARD_URL"):
        load_saved_objects(bad, KIBANA_DIR)


def test_each_visualization_shows_what_the_issue_asks(objects: list[dict[str, Any]]) -> None:
    known = by_id(objects)
    vis_ids = {i for t, i in known if t == "visualization"}
    assert vis_ids == EXPECTED_VISUALIZATIONS

    def aggs(vis_id: str) -> list[dict[str, Any]]:
        state = json.loads(known[("visualization", vis_id)]["attributes"]["visState"])
        return list(state["aggs"])

    over_time = {a["type"]: a["params"].get("field") for a in aggs("reelwatch-matches-over-time")}
    assert over_time["date_histogram"] == "created_at"
    assert over_time["terms"] == "title"
    assert aggs("reelwatch-confidence-mix")[1]["params"]["field"] == "confidence"
    assert aggs("reelwatch-platforms")[1]["params"]["field"] == "platform"
    assert aggs("reelwatch-top-hashtags")[1]["params"]["field"] == "hashtags"
    accounts = next(a for a in aggs("reelwatch-repeat-accounts") if a["type"] == "terms")
    assert accounts["params"]["field"] == "account"
    assert json.loads(accounts["params"]["json"]) == {"min_doc_count": 2}
    ai_queries = [f["input"]["query"] for f in aggs("reelwatch-ai-share")[1]["params"]["filters"]]
    assert all(kql_fields(q) == {"ai.is_ai"} for q in ai_queries)
    funnel = aggs("reelwatch-triage-funnel")[1]["params"]["filters"]
    statuses = [re.findall(r'"(\w+)"', f["input"]["query"]) for f in funnel]
    assert statuses == [[s.value] for s in TriageStatus]  # in lifecycle order


def test_the_accounting_figures_of_the_report_are_on_the_dashboard(
    objects: list[dict[str, Any]],
) -> None:
    """Issue 12's accounting: matches by status and platform, views reached, time to removal
    per platform (in hours), removals over time, repeat-infringer accounts."""
    known = by_id(objects)

    def vis(vis_id: str) -> tuple[str, list[dict[str, Any]], str]:
        attrs = known[("visualization", vis_id)]["attributes"]
        state = json.loads(attrs["visState"])
        query = json.loads(attrs["kibanaSavedObjectMeta"]["searchSourceJSON"])["query"]["query"]
        return state["type"], list(state["aggs"]), query

    def used(aggs: list[dict[str, Any]]) -> list[tuple[str, str | None, str]]:
        return [(a["type"], a["params"].get("field"), a["schema"]) for a in aggs]

    kind, aggs, _ = vis("reelwatch-status-by-platform")
    assert kind == "histogram"
    assert used(aggs)[1:] == [("terms", "platform", "segment"), ("terms", "status", "group")]
    state = json.loads(
        known[("visualization", "reelwatch-status-by-platform")]["attributes"]["visState"]
    )
    assert state["params"]["seriesParams"][0]["mode"] == "stacked"
    assert aggs[2]["params"]["size"] >= len(TriageStatus)  # every status its own colour

    kind, aggs, _ = vis("reelwatch-views-reached")
    assert (kind, used(aggs)[0]) == ("metric", ("sum", "views", "metric"))

    kind, aggs, query = vis("reelwatch-time-to-removal")
    assert kind == "table"
    metrics = {(t, f) for t, f, schema in used(aggs) if schema == "metric"}
    assert {("median", "enforcement.removal_s"), ("avg", "enforcement.removal_s")} <= metrics
    assert ("terms", "platform", "bucket") in used(aggs)
    assert kql_fields(query) == {"enforcement.removal_s"}  # over the removed matches only
    # Seconds in the documents, hours on the screen: the data view formats the field.
    matches = known[("index-pattern", "reelwatch-matches")]["attributes"]
    duration = json.loads(matches["fieldFormatMap"])["enforcement.removal_s"]
    assert duration["id"] == "duration"
    assert (duration["params"]["inputFormat"], duration["params"]["outputFormat"]) == (
        "seconds",
        "asHours",
    )

    kind, aggs, query = vis("reelwatch-removals-over-time")
    assert used(aggs)[1] == ("date_histogram", "enforcement.removed_at", "segment")
    assert kql_fields(query) == {"enforcement.removed_at"}

    _, aggs, _ = vis("reelwatch-repeat-accounts")
    assert ("sum", "views", "metric") in used(aggs)
    assert ("terms", "account", "bucket") in used(aggs)


def test_saved_search_lists_new_high_confidence_matches(objects: list[dict[str, Any]]) -> None:
    search = by_id(objects)[("search", SEARCH_ID)]["attributes"]
    query = json.loads(search["kibanaSavedObjectMeta"]["searchSourceJSON"])["query"]
    assert query["language"] == "kuery"
    assert 'status : "new"' in query["query"]
    assert 'confidence : "high"' in query["query"]
    assert {"post_url", "id", "title", "account"} <= set(search["columns"])
    assert search["sort"] == [["updated_at", "desc"]]


def test_dashboard_panels_reference_every_visualization_and_the_search(
    objects: list[dict[str, Any]],
) -> None:
    known = by_id(objects)
    dashboard = known[("dashboard", "reelwatch-dashboard")]
    refs = {ref["name"]: ref for ref in dashboard["references"]}
    panels = json.loads(dashboard["attributes"]["panelsJSON"])
    shown = set()
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        ref = refs[panel["panelRefName"]]
        assert (ref["type"], ref["id"]) in known
        assert panel["type"] == ref["type"]
        shown.add(ref["id"])
        grid = panel["gridData"]
        assert grid["x"] + grid["w"] <= 48
        area = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not area & cells, f"panel {panel['panelIndex']} overlaps another"
        cells |= area
    assert shown == EXPECTED_VISUALIZATIONS | {SEARCH_ID}
    assert len({p["panelIndex"] for p in panels}) == len(panels)


# --- the CLI against a recording server -----------------------------------------------------


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeKibana:
    """A local HTTP server that records requests; ``answer`` builds each reply."""

    url: str
    requests: list[Recorded] = field(default_factory=list)
    answer: Callable[[Recorded], tuple[int, Any]] | None = None


def multipart_parts(request: Recorded) -> list[Message]:
    raw = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode() + request.body
    message = BytesParser(policy=HTTP).parsebytes(raw)
    assert message.is_multipart()
    return list(message.iter_parts())


def kibana_like_success(request: Recorded) -> tuple[int, Any]:
    """What Kibana's ``_import`` answers when every object imports."""
    payload = multipart_parts(request)[0].get_payload(decode=True)
    assert isinstance(payload, bytes)
    objs = [json.loads(line) for line in payload.decode().splitlines() if line]
    results = [
        {"type": o["type"], "id": o["id"], "meta": {"title": o["attributes"].get("title")}}
        for o in objs
    ]
    return 200, {"success": True, "successCount": len(objs), "successResults": results}


@pytest.fixture
def fake_kibana() -> Iterator[FakeKibana]:
    server_box: dict[str, FakeKibana] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            recorded = Recorded(
                self.command,
                self.path,
                {k.lower(): v for k, v in self.headers.items()},
                self.rfile.read(length),
            )
            fake = server_box["fake"]
            fake.requests.append(recorded)
            status, body = (fake.answer or kibana_like_success)(recorded)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake = FakeKibana(url=f"http://127.0.0.1:{server.server_address[1]}")
    server_box["fake"] = fake
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def run_cli(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("REELWATCH_KIBANA__", "REELWATCH_EMAIL__"))
    }
    full_env |= {"REELWATCH_HOME": str(home), **env}
    return subprocess.run(
        [sys.executable, "-m", "reelwatch", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=120,
    )


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got: {stderr!r}"
    assert lines[0].startswith("reelwatch: error: ")
    return lines[0]


def test_import_sends_one_multipart_request_with_every_object(
    fake_kibana: FakeKibana, home: Path
) -> None:
    result = run_cli(
        home,
        "kibana",
        "import",
        "--url",
        fake_kibana.url + "/",
        REELWATCH_EMAIL__BOARD_URL="http://board.internal:8765",
        REELWATCH_KIBANA__USERNAME="elastic",
        REELWATCH_KIBANA__PASSWORD="s3cret",
    )
    assert result.returncode == 0, result.stderr
    assert len(fake_kibana.requests) == 1
    request = fake_kibana.requests[0]
    assert request.method == "POST"
    assert request.path == "/api/saved_objects/_import?overwrite=true"
    assert request.headers["kbn-xsrf"]
    assert request.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert request.headers["authorization"] == "Basic ZWxhc3RpYzpzM2NyZXQ="  # elastic:s3cret

    parts = multipart_parts(request)
    assert len(parts) == 1
    assert parts[0].get_param("name", header="content-disposition") == "file"
    assert parts[0].get_filename() == "reelwatch.ndjson"
    payload = parts[0].get_payload(decode=True)
    assert isinstance(payload, bytes)
    sent = [json.loads(line) for line in payload.decode().splitlines()]
    expected = load_saved_objects("http://board.internal:8765", KIBANA_DIR)
    assert sent == expected
    assert "http://board.internal:8765/matches/{{value}}" in payload.decode().replace("\\", "")

    assert "imported 15 saved objects" in result.stdout
    assert "1 dashboard, 2 index-pattern, 1 search, 11 visualization" in result.stdout
    assert f"{fake_kibana.url}/app/dashboards#/view/reelwatch-dashboard" in result.stdout


def test_import_into_a_space_with_an_api_key(fake_kibana: FakeKibana, home: Path) -> None:
    result = run_cli(
        home,
        "kibana",
        "import",
        "--space",
        "brand-protection",
        REELWATCH_KIBANA__URL=fake_kibana.url,
        REELWATCH_KIBANA__API_KEY="a2V5OnZhbHVl",
    )
    assert result.returncode == 0, result.stderr
    request = fake_kibana.requests[0]
    assert request.path == "/s/brand-protection/api/saved_objects/_import?overwrite=true"
    assert request.headers["authorization"] == "ApiKey a2V5OnZhbHVl"
    assert "/s/brand-protection/app/dashboards#/view/reelwatch-dashboard" in result.stdout


def test_kibana_errors_become_one_line(fake_kibana: FakeKibana, home: Path) -> None:
    def partial(request: Recorded) -> tuple[int, Any]:
        return 200, {
            "success": False,
            "successCount": 10,
            "errors": [
                {
                    "id": "reelwatch-platforms",
                    "type": "visualization",
                    "title": "reelwatch: platforms",
                    "meta": {"title": "reelwatch: platforms"},
                    "error": {
                        "type": "missing_references",
                        "references": [{"type": "index-pattern", "id": "reelwatch-matches"}],
                    },
                }
            ],
        }

    fake_kibana.answer = partial
    result = run_cli(home, "kibana", "import", "--url", fake_kibana.url)
    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert "imported 10 of 15" in line
    assert "visualization reelwatch-platforms: missing_references" in line
    assert "index-pattern reelwatch-matches" in line


def test_kibana_http_error_becomes_one_line(fake_kibana: FakeKibana, home: Path) -> None:
    fake_kibana.answer = lambda _: (
        401,
        {"statusCode": 401, "error": "Unauthorized", "message": "unable to authenticate user"},
    )
    result = run_cli(home, "kibana", "import", "--url", fake_kibana.url)
    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert "HTTP 401" in line
    assert "unable to authenticate user" in line


def test_unreachable_kibana_is_one_line(home: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    result = run_cli(home, "kibana", "import", "--url", url)  # retries, quietly, then fails
    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert f"cannot reach Kibana at {url}" in line
    assert "refused" in line.lower()


def test_bad_space_is_an_input_error(objects: list[dict[str, Any]]) -> None:
    with pytest.raises(InputError, match="space"):
        import_saved_objects(objects, KibanaSettings(), url="http://127.0.0.1:9", space="Bad/Sp")


# --- a real Kibana --------------------------------------------------------------------------


@pytest.mark.kibana
@pytest.mark.skipif(not os.environ.get("KIBANA_URL"), reason="KIBANA_URL is not set")
def test_import_into_a_real_kibana(objects: list[dict[str, Any]]) -> None:
    """Import into a throwaway space, read the dashboard back, then delete the space."""
    settings = load_settings().kibana  # REELWATCH_KIBANA__* credentials, as the CLI reads them
    url = os.environ["KIBANA_URL"].rstrip("/")
    space = f"reelwatch-test-{uuid.uuid4().hex[:8]}"
    auth = (
        (settings.username, settings.password.get_secret_value() if settings.password else "")
        if settings.username
        else None
    )
    headers = {"kbn-xsrf": "reelwatch-tests"}
    if settings.api_key is not None:
        headers["Authorization"] = f"ApiKey {settings.api_key.get_secret_value()}"
    created = requests.post(
        f"{url}/api/spaces/space",
        json={"id": space, "name": space},
        headers=headers,
        auth=auth,
        timeout=30,
    )
    assert created.status_code == 200, created.text
    try:
        result = import_saved_objects(objects, settings, url=url, space=space)
        assert result.success_count == len(objects)
        dash = next(o for o in result.objects if o.type == "dashboard")
        got = requests.get(
            f"{url}/s/{space}/api/saved_objects/dashboard/{dash.destination_id or dash.id}",
            headers=headers,
            auth=auth,
            timeout=30,
        )
        assert got.status_code == 200, got.text
        assert len(json.loads(got.json()["attributes"]["panelsJSON"])) == 12
        again = import_saved_objects(objects, settings, url=url, space=space)
        assert again.success_count == len(objects)
    finally:
        requests.delete(f"{url}/api/spaces/space/{space}", headers=headers, auth=auth, timeout=30)
