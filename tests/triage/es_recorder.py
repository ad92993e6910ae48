"""A small local HTTP server that answers like Elasticsearch, enough for the official client
and for the requests ``ElasticsearchStore`` sends outside searches, and records every request.

It lets the tests check the exact bodies the store sends (setup, upsert, bulk, status update)
through the real ``elasticsearch`` client, and inject the faults a real cluster shows (429 on
a request, 429 on single bulk items), without an Elasticsearch server. It keeps templates,
policies, indices, aliases and documents (with ``_seq_no`` and conflict checks) in memory.
Searches answer the subset of the query DSL the store uses (``bool`` filters of ``term``
and ``range``, ``sort``, ``size``, ``search_after``; ``_count``), so list and count requests are
checked too; relevance, analysis and aggregations are not imitated. It is a test double for
request shapes, not Elasticsearch: the contract suite's real run needs ``ELASTICSEARCH_URL``.
"""

from __future__ import annotations

import fnmatch
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

Json = dict[str, Any]


@dataclass
class Recorded:
    method: str
    path: str
    """Decoded path, e.g. ``/reelwatch-matches/_create/tiktok:1:the-crown``."""
    params: dict[str, str]
    body: Any
    """Parsed JSON; for ``_bulk`` the list of NDJSON lines, parsed."""


@dataclass
class _Index:
    aliases: dict[str, Json] = field(default_factory=dict)
    docs: dict[str, tuple[int, Json]] = field(default_factory=dict)
    """id -> (seq_no, source)"""
    next_seq: int = 0
    mappings: Json = field(default_factory=dict)


@dataclass
class _Fault:
    status: int
    method: str | None
    path_contains: str | None
    times: int


class ElasticsearchRecorder:
    """Start with :func:`running_recorder`; read ``requests``; inject faults with
    :meth:`fail_next` and :meth:`reject_bulk_items`."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.policies: dict[str, Json] = {}
        self.components: dict[str, Json] = {}
        self.index_templates: dict[str, Json] = {}
        self.indices: dict[str, _Index] = {}
        self.faults: list[_Fault] = []
        self.bulk_rejections = 0
        self.lock = threading.RLock()
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def fail_next(
        self,
        times: int,
        status: int = 429,
        *,
        method: str | None = None,
        path_contains: str | None = None,
    ) -> None:
        """Answer the next ``times`` matching requests with ``status`` and do nothing."""
        with self.lock:
            self.faults.append(_Fault(status, method, path_contains, times))

    def reject_bulk_items(self, count: int) -> None:
        """Reject the next ``count`` bulk items with 429 (the request itself answers 200)."""
        with self.lock:
            self.bulk_rejections += count

    def writes(self) -> list[Recorded]:
        """Requests that change something (everything but reads)."""
        reads = ("/_mget", "/_search", "/_count")
        return [
            r
            for r in self.requests
            if r.method in ("PUT", "POST", "DELETE") and not r.path.endswith(reads)
        ]

    def clear(self) -> None:
        with self.lock:
            self.requests.clear()

    def source(self, alias_or_index: str, id: str) -> Json | None:
        with self.lock:
            for name in self._read_targets(alias_or_index):
                got = self.indices[name].docs.get(id)
                if got is not None:
                    return got[1]
            return None

    # Request handling ------------------------------------------------------------------------
    def handle(self, method: str, raw_path: str, body: bytes) -> tuple[int, Any]:
        split = urlsplit(raw_path)
        path = unquote(split.path)
        params = dict(parse_qsl(split.query))
        parsed: Any = None
        if body:
            text = body.decode()
            if path.endswith("/_bulk"):
                parsed = [json.loads(line) for line in text.splitlines() if line.strip()]
            else:
                parsed = json.loads(text)
        with self.lock:
            self.requests.append(Recorded(method, path, params, parsed))
            for fault in self.faults:
                if (
                    fault.times > 0
                    and fault.method in (None, method)
                    and (fault.path_contains is None or fault.path_contains in path)
                ):
                    fault.times -= 1
                    return fault.status, _error("es_rejected_execution_exception", "busy")
            return self._route(method, path, params, parsed)

    def _route(self, method: str, path: str, params: dict[str, str], body: Any) -> tuple[int, Any]:
        parts = [p for p in path.split("/") if p]
        if not parts:
            return 200, {"version": {"number": "8.19.0"}, "tagline": "You Know, for Search"}
        head = parts[0]
        if head == "_ilm" and parts[1:2] == ["policy"]:
            return self._named(self.policies, parts[2], method, body, "policy")
        if head == "_component_template":
            return self._named(self.components, parts[1], method, body, "component")
        if head == "_index_template":
            return self._named(self.index_templates, parts[1], method, body, "index")
        if head == "_alias" and method == "GET":
            return self._get_alias(parts[1])
        if head == "_mget":
            return 200, {"docs": [self._get(d["_index"], d["_id"]) for d in body["docs"]]}
        if head == "_bulk":
            return 200, self._bulk(body)
        if len(parts) == 2 and parts[1] in ("_search", "_count"):
            return self._search(head, body or {}, count=parts[1] == "_count")
        if len(parts) == 1 and method == "PUT":
            return self._create_index(head, body or {})
        if len(parts) == 2 and parts[1] == "_mapping":
            for name in self._read_targets(head):
                self.indices[name].mappings = body
            return 200, {"acknowledged": True}
        if len(parts) == 3 and parts[1] in ("_create", "_doc"):
            op = "create" if parts[1] == "_create" else "index"
            seq = params.get("if_seq_no")
            return self._write(op, head, parts[2], body, None if seq is None else int(seq))
        return 501, _error("unsupported_by_recorder", f"{method} {path}")

    def _search(self, target: str, body: Json, *, count: bool) -> tuple[int, Any]:
        query = body.get("query", {"match_all": {}})
        docs = [
            (name, id_, src)
            for name in self._read_targets(target)
            for id_, (_, src) in self.indices[name].docs.items()
            if _matches(src, query)
        ]
        if count:
            return 200, {"count": len(docs), "_shards": {"total": 1, "successful": 1}}
        keys = [next(iter(k.items())) for k in body.get("sort", [])]

        def sort_values(src: Json) -> list[Any]:
            return [src.get(f) for f, _ in keys]

        for f, direction in reversed(keys):
            docs.sort(key=lambda d, f=f: _sortable(d[2].get(f)), reverse=direction == "desc")
        after = body.get("search_after")
        if after is not None:
            pos = next((i for i, d in enumerate(docs) if sort_values(d[2]) == after), len(docs) - 1)
            docs = docs[pos + 1 :]
        size = int(body.get("size", 10))
        hits = [
            {"_index": n, "_id": i, "_source": src, "sort": sort_values(src)}
            for n, i, src in docs[:size]
        ]
        return 200, {"hits": {"hits": hits}, "timed_out": False}

    def _named(
        self, store: dict[str, Json], name: str, method: str, body: Any, kind: str
    ) -> tuple[int, Any]:
        if method == "PUT":
            store[name] = body
            return 200, {"acknowledged": True}
        if name not in store:
            return 404, _error("resource_not_found_exception", f"{name} missing")
        if kind == "policy":
            return 200, {name: {"version": 1, "policy": store[name]["policy"]}}
        if kind == "component":
            return 200, {"component_templates": [{"name": name, "component_template": store[name]}]}
        return 200, {"index_templates": [{"name": name, "index_template": store[name]}]}

    def _get_alias(self, pattern: str) -> tuple[int, Any]:
        out = {
            name: {
                "aliases": {a: cfg for a, cfg in idx.aliases.items() if fnmatch.fnmatch(a, pattern)}
            }
            for name, idx in self.indices.items()
        }
        return 200, {k: v for k, v in out.items() if v["aliases"]}

    def _create_index(self, name: str, body: Json) -> tuple[int, Any]:
        if name in self.indices:
            return 400, _error("resource_already_exists_exception", f"index [{name}] exists")
        self.indices[name] = _Index(aliases=dict(body.get("aliases", {})))
        return 200, {"acknowledged": True, "index": name}

    def _read_targets(self, name: str) -> list[str]:
        if name in self.indices:
            return [name]
        return [n for n, idx in self.indices.items() if name in idx.aliases]

    def _write_target(self, name: str) -> str | None:
        if name in self.indices:
            return name
        for n, idx in self.indices.items():
            if idx.aliases.get(name, {}).get("is_write_index"):
                return n
        return None

    def _get(self, index: str, id: str) -> Json:
        idx = self.indices.get(index)
        if idx is None:
            return {"_index": index, "_id": id, "error": _error("index_not_found_exception", "")}
        got = idx.docs.get(id)
        if got is None:
            return {"_index": index, "_id": id, "found": False}
        seq, source = got
        return {
            "_index": index,
            "_id": id,
            "_version": seq + 1,
            "_seq_no": seq,
            "_primary_term": 1,
            "found": True,
            "_source": source,
        }

    def _write(
        self, op: str, target: str, id: str, source: Json, if_seq_no: int | None
    ) -> tuple[int, Json]:
        name = self._write_target(target)
        if name is None:
            return 404, _error("index_not_found_exception", f"no write index for [{target}]")
        idx = self.indices[name]
        current = idx.docs.get(id)
        conflict = (op == "create" and current is not None) or (
            if_seq_no is not None and (current is None or current[0] != if_seq_no)
        )
        if conflict:
            return 409, _error("version_conflict_engine_exception", f"[{id}]: version conflict")
        seq = idx.next_seq
        idx.next_seq += 1
        idx.docs[id] = (seq, source)
        status = 201 if current is None else 200
        result = "created" if current is None else "updated"
        return status, {
            "_index": name,
            "_id": id,
            "_seq_no": seq,
            "_primary_term": 1,
            "result": result,
            "status": status,
        }

    def _bulk(self, lines: list[Json]) -> Json:
        items = []
        errors = False
        it = iter(lines)
        for action in it:
            op, meta = next(iter(action.items()))
            source = next(it)
            if self.bulk_rejections > 0:
                self.bulk_rejections -= 1
                status, result = (
                    429,
                    {
                        **_error("es_rejected_execution_exception", "queue full"),
                        "_id": meta["_id"],
                        "status": 429,
                    },
                )
            else:
                status, result = self._write(
                    op, meta["_index"], meta["_id"], source, meta.get("if_seq_no")
                )
                result = {"_id": meta["_id"], **result, "status": status}
            errors = errors or status >= 300
            items.append({op: result})
        return {"took": 1, "errors": errors, "items": items}


def _error(type_: str, reason: str) -> Json:
    return {"error": {"type": type_, "reason": reason}, "status": 0}


class _Handler(BaseHTTPRequestHandler):
    recorder: ElasticsearchRecorder

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        status, payload = self.server.recorder.handle(self.command, self.path, body)  # type: ignore[attr-defined]
        if isinstance(payload, dict) and payload.get("status") == 0:
            payload["status"] = status
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Elastic-Product", "Elasticsearch")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def running_recorder() -> Iterator[ElasticsearchRecorder]:
    """A recorder listening on 127.0.0.1 (a free port) for the duration of the block."""
    recorder = ElasticsearchRecorder()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.recorder = recorder  # type: ignore[attr-defined]
    recorder.server = server
    thread = threading.Thread(target=server.serve_forever, name="es-recorder", daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _field(src: Json, path: str) -> Any:
    value: Any = src
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _matches(src: Json, query: Json) -> bool:
    """``query`` (``match_all``, ``bool`` with ``filter``/``must``, ``term``, ``terms``,
    ``range``) holds."""
    ((kind, spec),) = query.items()
    if kind == "match_all":
        return True
    if kind == "bool":
        clauses = list(spec.get("filter", [])) + list(spec.get("must", []))
        return all(_matches(src, c) for c in clauses)
    if kind == "term":
        ((path, want),) = spec.items()
        want = want.get("value") if isinstance(want, dict) else want
        value = _field(src, path)
        return want in value if isinstance(value, list) else value == want
    if kind == "terms":
        ((path, wanted),) = spec.items()
        value = _field(src, path)
        values = value if isinstance(value, list) else [value]
        return any(v in wanted for v in values)
    if kind == "range":
        ((path, bounds),) = spec.items()
        value = _field(src, path)
        if value is None:
            return False
        ops = {"gte": value >= bounds.get("gte", value), "lte": value <= bounds.get("lte", value)}
        if "gt" in bounds:
            ops["gt"] = value > bounds["gt"]
        if "lt" in bounds:
            ops["lt"] = value < bounds["lt"]
        return all(ops.values())
    raise ValueError(f"query {kind!r} is not imitated by the recorder")


def _sortable(value: Any) -> tuple[int, Any]:
    return (0, value) if value is not None else (1, 0)
