"""The ElastAlert2 rules in ``config/elastalert/`` (for Elasticsearch deployments).

Three layers:

- Always: each rule file, with ``$VARS`` filled in as ElastAlert2 does (``os.path.expandvars``
  over the file) from the environment the compose ``elastalert`` service sets, has what
  ElastAlert2 2.19's schema and rule classes require of its type, names only fields of the
  matches mapping with a type Elasticsearch can aggregate (after the ``.keyword`` suffix
  ElastAlert2 adds unless told not to), reads the index the matches template creates, and
  sends a rate-limited email whose text formats and links to the board.
- With elastalert2 importable: ElastAlert2's own loader (its ``schema.yaml`` and rule and
  alerter classes) loads the folder, the new-term rule's start-up queries are recorded, the
  alert subject and body are rendered, and the queries the Elasticsearch test below sends are
  checked to be the ones ElastAlert2 builds. elastalert2 is not a project dependency: it pins
  ``elasticsearch==7.10.1``, which the project's Elasticsearch 8 client excludes.
- With ``ELASTICSEARCH_URL``: the rules' queries run against that cluster over matches landed
  by the project's Elasticsearch store.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import os
import re
import string
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from reelwatch.models import Confidence
from reelwatch.settings import PROJECT_ROOT

ELASTALERT_DIR = PROJECT_ROOT / "config" / "elastalert"
RULES_DIR = ELASTALERT_DIR / "rules"
ES_CONFIG = PROJECT_ROOT / "config" / "elasticsearch"
MATCHES_MAPPING = ES_CONFIG / "component_templates" / "reelwatch-matches-mappings.json"

# What the compose `elastalert` service puts in ElastAlert2's environment (tests/test_docker.py
# checks that the compose file sets every variable the rules use).
ENV = {
    "REELWATCH_EMAIL__SMTP_HOST": "mailcatcher",
    "REELWATCH_EMAIL__SMTP_PORT": "1025",
    "REELWATCH_EMAIL__BOARD_URL": "http://127.0.0.1:8765",
    "REELWATCH_ALERT_EMAIL_TO": "brand-protection@studio.localhost",
    "REELWATCH_ALERT_EMAIL_FROM": "alerts@reelwatch.localhost",
}
BOARD = ENV["REELWATCH_EMAIL__BOARD_URL"]

NO_ELASTALERT = (
    "elastalert2 is not installed (not a project dependency: it pins elasticsearch==7.10.1, "
    "which the project's Elasticsearch 8 client excludes); the always-run checks cover the rules"
)

# From ElastAlert2 2.19.0: schema.yaml's required keys, and each rule class's required_options.
REQUIRED = {"name", "type", "index", "alert"}
REQUIRED_BY_TYPE = {
    "frequency": {"num_events", "timeframe"},
    "spike": {"spike_height", "spike_type", "timeframe"},
    "new_term": set(),  # plus fields or query_key (NewTermsRule refuses neither)
}
TIME_KEYS = {"days", "weeks", "hours", "minutes", "seconds", "milliseconds"}
TIME_OPTIONS = (
    "timeframe",
    "realert",
    "aggregation",
    "terms_window_size",
    "window_step_size",
    "buffer_time",
    "run_every",
    "query_delay",
    "alert_time_limit",
)
# Keys a rule type adds to the match it alerts on (usable in alert text, not in queries).
RULE_KEYS = {"spike": {"spike_count", "reference_count"}, "new_term": {"new_field"}}
AGGREGATABLE = {"keyword", "date", "boolean", "long", "integer", "short", "byte", "double", "float"}
# The indices ElastAlert2 writes its state to: writeback_index and these suffixes.
WRITEBACK_SUFFIXES = ("", "_status", "_silence", "_error", "_past")

_VAR = re.compile(r"\$(\w+)|\$\{(\w+)\}")


def expand(text: str, env: dict[str, str]) -> str:
    """``os.path.expandvars`` with ``env`` instead of ``os.environ`` (unknown names stay)."""
    return _VAR.sub(lambda m: env.get(m.group(1) or m.group(2), m.group(0)), text)


def variables(path: Path) -> set[str]:
    return {a or b for a, b in _VAR.findall(path.read_text())}


def load_rule(path: Path, env: dict[str, str] = ENV) -> dict[str, Any]:
    rule = yaml.safe_load(expand(path.read_text(), env))
    assert isinstance(rule, dict), path
    return rule


def rule_files() -> list[Path]:
    return sorted(RULES_DIR.glob("*.yaml"))


def mapped_types(properties: dict[str, Any], prefix: str = "") -> dict[str, str]:
    types: dict[str, str] = {}
    for name, spec in properties.items():
        if "properties" in spec:
            types |= mapped_types(spec["properties"], prefix + name + ".")
        types[prefix + name] = spec.get("type", "object")
        for sub, sub_spec in spec.get("fields", {}).items():
            types[f"{prefix}{name}.{sub}"] = sub_spec["type"]
    return types


TYPES = mapped_types(json.loads(MATCHES_MAPPING.read_text())["template"]["mappings"]["properties"])


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def filter_fields(clause: Any) -> set[str]:
    """Field names in an Elasticsearch query clause (term, terms, range, exists, ...)."""
    found: set[str] = set()
    if isinstance(clause, list):
        for item in clause:
            found |= filter_fields(item)
    elif isinstance(clause, dict):
        for key, value in clause.items():
            if key in ("term", "terms", "range", "prefix", "wildcard", "match", "match_phrase"):
                found |= {f for f in value if f not in ("boost", "_name")}
            elif key == "exists":
                found.add(value["field"])
            elif key == "query_string":
                raise AssertionError("query_string filters are not checked; use term/terms")
            else:
                found |= filter_fields(value)
    return found


def aggregated_fields(rule: dict[str, Any]) -> set[str]:
    """The fields ElastAlert2 puts in terms aggregations and term filters, as it names them."""
    keyword = ".keyword"
    fields: set[str] = set()
    query_keys = [str(k) for k in as_list(rule.get("query_key", []))]
    raw = rule.get("raw_count_keys", True)  # ElastAlert2 appends .keyword unless false
    fields |= set(query_keys)  # terms queries and new-term lookups use it as written
    fields |= {k + keyword if raw else k for k in query_keys}  # its per-key term filters
    fields |= {k + keyword if raw else k for k in rule.get("top_count_keys", [])}
    if rule["type"] == "new_term":
        postfix = rule.get("use_keyword_postfix", True)
        for field in as_list(rule.get("fields", query_keys)):
            for part in as_list(field):
                fields.add(part + keyword if postfix else part)
    fields |= filter_fields(rule.get("filter", []))
    return fields


def rule_problems(rule: dict[str, Any]) -> list[str]:
    """What ElastAlert2 would refuse, or would query wrongly, in one rule (empty when fine)."""
    problems: list[str] = []
    missing = REQUIRED - set(rule)
    kind = rule.get("type")
    if kind not in REQUIRED_BY_TYPE:
        return [f"rule type {kind!r} is not one this test knows"]
    missing |= REQUIRED_BY_TYPE[kind] - set(rule)
    if kind == "new_term" and not ("fields" in rule or "query_key" in rule):
        missing.add("fields")
    if missing:
        problems.append(f"missing {sorted(missing)}")
    if kind == "spike" and rule.get("spike_type") not in ("up", "down", "both"):
        problems.append(f"spike_type {rule.get('spike_type')!r}")
    if rule.get("use_terms_query") and "query_key" not in rule:
        problems.append("use_terms_query without query_key")
    for option in TIME_OPTIONS:
        if option in rule:
            value = rule[option]
            if not isinstance(value, dict) or not set(value) <= TIME_KEYS:
                problems.append(f"{option} is not a time span: {value!r}")
            elif not all(isinstance(v, int | float) and v >= 0 for v in value.values()):
                problems.append(f"{option} has a value that is not a number: {value!r}")
    if rule.get("timestamp_field") is None or TYPES.get(rule["timestamp_field"]) != "date":
        problems.append(f"timestamp_field {rule.get('timestamp_field')!r} is not a mapped date")
    for field in sorted(aggregated_fields(rule)):
        if TYPES.get(field) not in AGGREGATABLE:
            problems.append(f"{field} is {TYPES.get(field, 'not in the matches mapping')}")
    for option in ("include", "summary_table_fields"):
        for field in rule.get(option, []):
            if field not in TYPES:
                problems.append(f"{option}: {field} is not in the matches mapping")
    produced = set(TYPES) | RULE_KEYS.get(kind, set())
    for option in ("alert_text_args", "alert_subject_args"):
        for field in rule.get(option, []):
            if field not in produced:
                problems.append(f"{option}: {field} is neither a match field nor the rule's")
    return problems


def positional_fields(template: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]


# --- the files, always ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def rules() -> dict[str, dict[str, Any]]:
    return {path.stem: load_rule(path) for path in rule_files()}


def test_the_three_rules_the_issue_asks_for_exist(rules: dict[str, dict[str, Any]]) -> None:
    assert set(rules) == {"new-infringing-account", "title-match-spike", "hashtag-surge"}
    names = [rule["name"] for rule in rules.values()]
    assert len(set(names)) == len(names)  # ElastAlert2 refuses a duplicate name


def test_every_rule_has_what_elastalert2_requires_and_queries_mapped_fields(
    rules: dict[str, dict[str, Any]],
) -> None:
    for stem, rule in rules.items():
        assert rule_problems(rule) == [], stem


def test_every_rule_reads_the_index_the_matches_template_creates(
    rules: dict[str, dict[str, Any]],
) -> None:
    template = json.loads((ES_CONFIG / "index_templates" / "reelwatch-matches.json").read_text())
    for stem, rule in rules.items():
        assert rule["index"] in template["index_patterns"], stem
        assert rule["timestamp_field"] == "created_at", stem  # when the match landed
        assert not rule.get("use_strftime_index"), stem


def test_the_checks_catch_a_misspelt_field_and_a_missing_keyword_opt_out(
    rules: dict[str, dict[str, Any]],
) -> None:
    """The checks above are only worth something if they can fail."""
    spike = dict(rules["title-match-spike"], query_key="titel_id")
    assert "titel_id is not in the matches mapping" in rule_problems(spike)
    keyword = {k: v for k, v in rules["title-match-spike"].items() if k != "raw_count_keys"}
    assert "title_id.keyword is not in the matches mapping" in rule_problems(keyword)
    new_term = {k: v for k, v in rules["new-infringing-account"].items()}
    del new_term["use_keyword_postfix"]
    assert "account.keyword is not in the matches mapping" in rule_problems(new_term)
    text = dict(rules["hashtag-surge"], query_key="caption")
    assert "caption is text" in rule_problems(text)
    no_span = dict(rules["hashtag-surge"], timeframe={"hour": 1})
    assert any(p.startswith("timeframe is not a time span") for p in rule_problems(no_span))
    untyped = dict(rules["hashtag-surge"], spike_type="sideways")
    assert "spike_type 'sideways'" in rule_problems(untyped)


def test_a_new_infringing_account_is_a_new_platform_and_account_at_medium_or_high(
    rules: dict[str, dict[str, Any]],
) -> None:
    rule = rules["new-infringing-account"]
    assert rule["type"] == "new_term"
    assert rule["fields"] == [["platform", "account"]]
    filters = rule["filter"]
    terms = next(f["terms"]["confidence"] for f in filters if "terms" in f)
    assert sorted(terms) == sorted(c.value for c in Confidence if c.at_least(Confidence.MEDIUM))
    assert {"account"} <= filter_fields([f for f in filters if "bool" in f])  # not empty
    assert rule["terms_window_size"] == {"days": 90}
    # Several new accounts at once make one email listing them, none dropped.
    assert rule["aggregation"]["minutes"] > 0
    assert "realert" not in rule
    assert {"platform", "account", "post_url"} <= set(rule["summary_table_fields"])
    assert {"platform", "account"} <= set(rule["alert_text_args"])


def test_a_title_spike_counts_per_title(rules: dict[str, dict[str, Any]]) -> None:
    rule = rules["title-match-spike"]
    assert (rule["type"], rule["query_key"], rule["spike_type"]) == ("spike", "title_id", "up")
    assert rule["spike_height"] > 1
    assert rule["threshold_cur"] >= 1  # a title going from 1 match to 3 is not a spike
    assert not rule.get("use_terms_query")  # the alert shows the title's name from a match
    assert {"title", "title_id"} <= set(rule["include"])


def test_a_hashtag_surge_counts_each_hashtag_of_a_match(rules: dict[str, dict[str, Any]]) -> None:
    rule = rules["hashtag-surge"]
    assert rule["type"] in ("spike", "frequency")
    assert rule["query_key"] == "hashtags"
    # A match carries several hashtags: only a terms aggregation counts each of them (reading
    # documents keys a match by its whole list).
    assert rule["use_terms_query"] is True
    assert rule["terms_size"] >= 50
    assert rule.get("threshold_cur", rule.get("num_events", 0)) >= 5


def test_every_rule_emails_through_the_compose_mail_server_and_links_the_board(
    rules: dict[str, dict[str, Any]],
) -> None:
    for stem, rule in rules.items():
        assert as_list(rule["alert"]) == ["email"], stem
        assert rule["email"] == ENV["REELWATCH_ALERT_EMAIL_TO"], stem
        assert rule["from_addr"] == ENV["REELWATCH_ALERT_EMAIL_FROM"], stem
        assert rule["smtp_host"] == "mailcatcher", stem
        assert rule["smtp_port"] == 1025, stem  # schema.yaml: an integer once expanded
        assert f"{BOARD}/matches" in rule["alert_text"], stem
        # Flood control: a silence per key, or one email per batch.
        span = rule.get("aggregation") or rule.get("realert") or {}
        assert dt.timedelta(**span) >= dt.timedelta(minutes=5), stem
        if "realert" in rule:
            assert "query_key" in rule, f"{stem}: realert without query_key silences all keys"
        assert rule["alert_text_type"] in ("exclude_fields", "alert_text_only"), stem


def test_alert_texts_format_with_their_arguments(rules: dict[str, dict[str, Any]]) -> None:
    for stem, rule in rules.items():
        for text, args in (
            (rule["alert_text"], rule["alert_text_args"]),
            (rule["alert_subject"], rule["alert_subject_args"]),
        ):
            used = positional_fields(text)
            assert sorted(set(used), key=int) == [str(i) for i in range(len(args))], stem
            assert "$" not in text, f"{stem}: a variable the environment did not fill: {text}"
            text.format(*[f"<{a}>" for a in args])


def test_a_variable_left_unset_makes_the_rule_invalid_not_silently_wrong() -> None:
    """ElastAlert2 leaves an unset ``$VAR`` as it is: the SMTP port then is no integer and
    schema.yaml refuses the rule at start-up."""
    env = {k: v for k, v in ENV.items() if k != "REELWATCH_EMAIL__SMTP_PORT"}
    for path in rule_files():
        assert load_rule(path, env)["smtp_port"] == "$REELWATCH_EMAIL__SMTP_PORT"


def test_config_points_at_the_compose_elasticsearch_and_a_writeback_index_of_its_own() -> None:
    config = yaml.safe_load((ELASTALERT_DIR / "config.yaml").read_text())
    # ElastAlert2's required globals (config.py) and the file loader's.
    assert {"run_every", "es_host", "es_port", "writeback_index", "buffer_time"} <= set(config)
    assert config["rules_folder"] == "/opt/elastalert/rules"  # where compose mounts rules/
    assert (config["es_host"], config["es_port"]) == ("elasticsearch", 9200)
    for option in ("run_every", "buffer_time", "alert_time_limit"):
        dt.timedelta(**config[option])
    patterns = [
        pattern
        for path in (ES_CONFIG / "index_templates").glob("*.json")
        for pattern in json.loads(path.read_text())["index_patterns"]
    ]
    assert len(patterns) >= 5
    for suffix in WRITEBACK_SUFFIXES:
        index = config["writeback_index"] + suffix
        clashing = [p for p in patterns if fnmatch.fnmatchcase(index, p)]
        assert clashing == [], f"{index} would get reelwatch's strict mapping from {clashing}"


def test_every_variable_the_rules_use_is_one_the_tests_fill() -> None:
    used = set().union(*(variables(path) for path in rule_files()))
    assert used == set(ENV)


# --- the queries, as ElastAlert2 builds them ----------------------------------------------
# The Elasticsearch test sends these; with elastalert2 importable they are checked to be
# ElastAlert2's own (ElastAlerter.get_query / get_terms_query, NewTermsRule.get_all_terms).


def ts(when: dt.datetime) -> str:
    """ElastAlert2's dt_to_ts for an aware UTC time."""
    return when.astimezone(dt.UTC).isoformat().replace("000+00:00", "Z").replace("+00:00", "Z")


def documents_query(rule: dict[str, Any], start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    """What a document-reading rule (the spike on title_id) asks for each run."""
    must = [{"range": {rule["timestamp_field"]: {"gt": ts(start), "lte": ts(end)}}}]
    must += list(rule.get("filter", []))
    return {
        "query": {"bool": {"filter": {"bool": {"must": must}}}},
        "sort": [{rule["timestamp_field"]: {"order": "asc"}}],
    }


def terms_query(rule: dict[str, Any], start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    """What a use_terms_query rule (the hashtag surge) asks for each run."""
    query = documents_query(rule, start, end)
    del query["sort"]
    size = rule.get("terms_size", 50)
    field = rule["query_key"]
    query["aggs"] = {"counts": {"terms": {"field": field, "size": size, "min_doc_count": 1}}}
    return query


def new_term_query(rule: dict[str, Any], start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    """The start-up query of a new_term rule over one window step: the terms already seen."""
    (fields,) = rule["fields"]
    level: dict[str, Any] = {}
    aggs = level
    for i, field in enumerate(fields):
        aggs["values"] = {"terms": {"field": field, "size": 2147483647}}
        if i < len(fields) - 1:
            aggs["values"]["aggs"] = {}
            aggs = aggs["values"]["aggs"]
    time_filter = {rule["timestamp_field"]: {"lt": ts(end), "gte": ts(start)}}
    must = [{"range": time_filter}, *rule.get("filter", [])]
    return {"aggs": {"filtered": {"aggs": level, "filter": {"bool": {"must": must}}}}, "size": 0}


# --- ElastAlert2 itself, when installed ---------------------------------------------------


class RecordingElasticsearch:
    """Stands in for the cluster a new_term rule reads at start-up; records each search."""

    def __init__(self) -> None:
        self.searches: list[tuple[str, dict[str, Any]]] = []

    def search(self, body: dict[str, Any], index: str, **_: Any) -> dict[str, Any]:
        self.searches.append((index, json.loads(json.dumps(body))))
        return {}


@pytest.fixture
def elastalert_rules(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[list[dict[str, Any]], RecordingElasticsearch]]:
    loaders = pytest.importorskip("elastalert.loaders", reason=NO_ELASTALERT)
    ruletypes = pytest.importorskip("elastalert.ruletypes", reason=NO_ELASTALERT)
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    conf = loaders.read_yaml(str(ELASTALERT_DIR / "config.yaml"))
    conf["rules_folder"] = str(RULES_DIR)
    recorder = RecordingElasticsearch()
    monkeypatch.setattr(ruletypes, "elasticsearch_client", lambda rule: recorder)
    loader = loaders.FileRulesLoader(conf)
    yield loader.load(conf), recorder


def test_elastalert2_loads_every_rule_with_its_schema_and_classes(
    elastalert_rules: tuple[list[dict[str, Any]], RecordingElasticsearch],
) -> None:
    from elastalert.alerters.email import EmailAlerter
    from elastalert.ruletypes import NewTermsRule, SpikeRule

    loaded, _ = elastalert_rules
    by_file = {Path(rule["rule_file"]).stem: rule for rule in loaded}
    assert set(by_file) == {path.stem for path in rule_files()}
    assert isinstance(by_file["new-infringing-account"]["type"], NewTermsRule)
    assert isinstance(by_file["title-match-spike"]["type"], SpikeRule)
    assert isinstance(by_file["hashtag-surge"]["type"], SpikeRule)
    for stem, rule in by_file.items():
        (alerter,) = rule["alert"]
        assert isinstance(alerter, EmailAlerter), stem
        assert (alerter.smtp_host, alerter.smtp_port) == ("mailcatcher", 1025), stem
        assert alerter.rule["email"] == [ENV["REELWATCH_ALERT_EMAIL_TO"]], stem


def test_elastalert2_renders_each_alert_with_the_board_link(
    elastalert_rules: tuple[list[dict[str, Any]], RecordingElasticsearch],
) -> None:
    from elastalert.alerts import BasicMatchString

    loaded, _ = elastalert_rules
    by_file = {Path(rule["rule_file"]).stem: rule for rule in loaded}
    match = {
        "id": "tiktok:7001:the-crown",
        "platform": "tiktok",
        "account": "leaker",
        "title": "The Crown",
        "title_id": "the-crown",
        "confidence": "high",
        "post_url": "https://www.tiktok.com/@leaker/video/7001",
        "created_at": "2025-01-02T03:04:05Z",
        "spike_count": 12,
        "reference_count": 2,
        "new_field": ["platform", "account"],
    }
    account = by_file["new-infringing-account"]
    body = str(BasicMatchString(account, match))
    assert "New infringing account leaker on tiktok" in body
    assert f"{BOARD}/matches/tiktok:7001:the-crown" in body
    assert f"{BOARD}/accounts/tiktok/leaker" in body
    subject = account["alert"][0].create_title([match])
    assert subject == "reelwatch: new infringing account leaker on tiktok"

    spike = by_file["title-match-spike"]
    body = str(BasicMatchString(spike, match))
    assert "Matches of The Crown (the-crown) are spiking: 12 in the last hour, against 2" in body
    assert f"{BOARD}/matches?title=the-crown" in body

    surge = by_file["hashtag-surge"]
    tag = {"hashtags": "thecrown", "created_at": "2025-01-02T03:04:05Z"}
    body = str(BasicMatchString(surge, tag | {"spike_count": 40, "reference_count": 3}))
    assert "The hashtag #thecrown carried 40 matches in the last hour" in body
    assert f"{BOARD}/matches?hashtag=thecrown" in body


def test_the_queries_sent_below_are_the_ones_elastalert2_builds(
    elastalert_rules: tuple[list[dict[str, Any]], RecordingElasticsearch],
) -> None:
    from elastalert.elastalert import ElastAlerter

    loaded, recorder = elastalert_rules
    by_file = {Path(rule["rule_file"]).stem: rule for rule in loaded}
    ours = {stem: load_rule(RULES_DIR / f"{stem}.yaml") for stem in by_file}
    end = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    start = end - dt.timedelta(hours=1)

    spike = by_file["title-match-spike"]
    theirs = ElastAlerter.get_query(
        spike["filter"], start, end, timestamp_field="created_at", to_ts_func=spike["dt_to_ts"]
    )
    assert theirs == documents_query(ours["title-match-spike"], start, end)

    surge = by_file["hashtag-surge"]
    base = ElastAlerter.get_query(
        surge["filter"],
        start,
        end,
        timestamp_field="created_at",
        sort=False,
        to_ts_func=surge["dt_to_ts"],
    )
    theirs = ElastAlerter.get_terms_query(None, base, surge, 100, surge["query_key"])
    assert theirs == terms_query(ours["hashtag-surge"], start, end)

    # The new-term rule read 90 days of known accounts, a day at a time, when it loaded.
    assert len(recorder.searches) == 90
    assert {index for index, _ in recorder.searches} == {"reelwatch-matches-*"}
    account = ours["new-infringing-account"]
    for _, body in recorder.searches:
        window = body["aggs"]["filtered"]["filter"]["bool"]["must"][0]["range"]["created_at"]
        lo, hi = (dt.datetime.fromisoformat(window[k]) for k in ("gte", "lt"))
        assert body == new_term_query(account, lo, hi)


# --- a real cluster ------------------------------------------------------------------------

ES_URL = os.environ.get("ELASTICSEARCH_URL")


@pytest.mark.es
@pytest.mark.skipif(ES_URL is None, reason="ELASTICSEARCH_URL is not set: no Elasticsearch server")
def test_the_rules_queries_find_the_right_matches_in_elasticsearch(settings: Any) -> None:
    """Matches landed by the project's store, then each rule's query over them: the new-term
    baseline lists (platform, account) pairs of medium/high matches only, the spike reads a
    title's matches, the surge counts every hashtag of every match."""
    from elasticsearch import Elasticsearch

    from tests.triage.factories import make_match
    from tests.triage.test_es_store import _wipe
    from triage.stores import open_store

    assert ES_URL is not None
    prefix = f"reelwatch-test-{uuid.uuid4().hex[:10]}"
    settings.store = settings.store.model_copy(
        update={
            "backend": "elasticsearch",
            "elasticsearch_url": ES_URL,
            "elasticsearch_index_prefix": prefix,
        }
    )
    rules = {path.stem: load_rule(path) for path in rule_files()}
    index = {stem: rule["index"].replace("reelwatch", prefix, 1) for stem, rule in rules.items()}
    medium, low = Confidence.MEDIUM, Confidence.LOW
    matches = [
        make_match("1", account="alpha", hashtags=["thecrown", "leak"]),
        make_match("2", account="alpha", hashtags=["thecrown"], confidence=medium),
        make_match("3", account="beta", platform="youtube", hashtags=["leak"]),
        make_match("4", account="gamma", confidence=low, hashtags=["leak"]),
        make_match("5", account="", hashtags=["thecrown"]),
        make_match("6", "bridgerton", account="alpha", platform="x", hashtags=["leak"]),
    ]
    now = dt.datetime.now(dt.UTC)
    try:
        with open_store(settings) as store:
            assert store.upsert_matches(matches) == len(matches)
        with Elasticsearch(ES_URL) as es:
            es.indices.refresh(index=f"{prefix}-matches")
            start, end = now - dt.timedelta(hours=1), now + dt.timedelta(minutes=5)

            account = rules["new-infringing-account"]
            body = new_term_query(account, now - dt.timedelta(days=1), end)
            got = es.search(index=index["new-infringing-account"], body=body)
            pairs = {
                (platform["key"], acc["key"])
                for platform in got["aggregations"]["filtered"]["values"]["buckets"]
                for acc in platform["values"]["buckets"]
            }
            assert pairs == {("tiktok", "alpha"), ("youtube", "beta"), ("x", "alpha")}

            spike = rules["title-match-spike"]
            body = documents_query(spike, start, end) | {"_source": spike["include"], "size": 100}
            got = es.search(index=index["title-match-spike"], body=body)
            by_title: dict[str, int] = {}
            for hit in got["hits"]["hits"]:
                assert set(hit["_source"]) <= set(spike["include"])
                title = hit["_source"][spike["query_key"]]
                by_title[title] = by_title.get(title, 0) + 1
            assert by_title == {"the-crown": 5, "bridgerton": 1}

            surge = rules["hashtag-surge"]
            got = es.search(index=index["hashtag-surge"], body=terms_query(surge, start, end))
            counts = {b["key"]: b["doc_count"] for b in got["aggregations"]["counts"]["buckets"]}
            assert counts == {"leak": 4, "thecrown": 3}
    finally:
        _wipe(ES_URL, prefix)
