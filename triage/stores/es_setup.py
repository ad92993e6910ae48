"""Index setup and lifecycle of the Elasticsearch store, apart from the store's documents.

Each kind of record (``posts``, ``media``, ``matches``, ``alerts``, ``notices``) lives behind
an alias ``<prefix>-<kind>`` whose write index is ``<prefix>-<kind>-000001`` (later ``-000002``
... when ILM rolls it over). The index templates, component templates (explicit, strict
mappings) and the ILM policy are JSON files under ``config/elasticsearch/``;
:func:`setup_indices` installs them, then creates each missing first index with its write
alias. It is idempotent: each body carries a checksum in its ``_meta``, so a second run sends
nothing, and an index another process created first is accepted. A changed mappings component
is also applied to the live indices behind its alias.

Both the store (:class:`~triage.stores.elasticsearch.ElasticsearchStore`, which sets up a
cluster it finds empty) and ``reelwatch es setup`` call these functions on a client, inside
the store module's one retry policy; nothing here retries on its own.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from elasticsearch import ApiError, NotFoundError

from reelwatch.settings import config_dir
from triage.stores.base import StoreError

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

INDEX_PREFIX = "reelwatch"
"""Names of every alias, index, template and policy start with this (settings may override)."""
KINDS = ("posts", "media", "matches", "alerts", "notices")
META_OWNER = "reelwatch"
"""``_meta.managed_by`` on everything setup installs."""

ResourceKind = Literal["ilm_policy", "component_template", "index_template"]


def templates_dir() -> Path:
    return config_dir() / "elasticsearch"


def alias_of(prefix: str, kind: str) -> str:
    return f"{prefix}-{kind}"


def check_prefix(prefix: str) -> str:
    """``prefix`` when Elasticsearch accepts it at the head of index names, else StoreError."""
    if not prefix or prefix != prefix.lower() or prefix.startswith(("_", "-", "+")):
        raise StoreError(f"bad Elasticsearch index prefix {prefix!r}: use lower-case letters")
    return prefix


@dataclass(frozen=True)
class Resource:
    """One thing setup installs: an ILM policy, a component or an index template."""

    kind: ResourceKind
    name: str
    body: dict[str, Any]
    """The request body, ``_meta`` (with its checksum) included."""

    @property
    def checksum(self) -> str:
        return str(_meta_of(self.kind, self.body)["checksum"])


def _renamed(value: Any, prefix: str) -> Any:
    """The shipped JSON names things ``reelwatch``/``reelwatch-*``; rename them for ``prefix``.

    Nothing else in the bodies starts with ``reelwatch``, so the files stay usable as they are
    with ``curl -XPUT`` for the default prefix.
    """
    if isinstance(value, dict):
        return {k: _renamed(v, prefix) for k, v in value.items()}
    if isinstance(value, list):
        return [_renamed(v, prefix) for v in value]
    if isinstance(value, str) and prefix != INDEX_PREFIX:
        if value == INDEX_PREFIX:
            return prefix
        if value.startswith(INDEX_PREFIX + "-"):
            return prefix + value[len(INDEX_PREFIX) :]
    return value


def _meta_of(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    holder = body.get("policy", {}) if kind == "ilm_policy" else body
    meta = holder.get("_meta")
    return meta if isinstance(meta, dict) else {}


def _with_checksum(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with ``_meta.checksum`` set: the servers reformat what they store (settings
    become strings, defaults appear), so comparing our checksum is the reliable "unchanged"."""
    body = copy.deepcopy(body)
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    meta = {"managed_by": META_OWNER, "checksum": hashlib.sha256(canonical.encode()).hexdigest()}
    if kind == "ilm_policy":
        body["policy"]["_meta"] = meta
    else:
        body["_meta"] = meta
    return body


def _load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise StoreError(f"cannot read the Elasticsearch template {path}: {e}") from None
    if not isinstance(data, dict):
        raise StoreError(f"the Elasticsearch template {path} is not a JSON object")
    return data


def desired_resources(prefix: str = INDEX_PREFIX) -> list[Resource]:
    """Everything setup installs, in install order (a template needs its policy/components)."""
    base = templates_dir()
    out: list[Resource] = []
    folders: tuple[tuple[ResourceKind, str], ...] = (
        ("ilm_policy", "ilm"),
        ("component_template", "component_templates"),
        ("index_template", "index_templates"),
    )
    for kind, folder in folders:
        paths = sorted((base / folder).glob("*.json"))
        if not paths:
            raise StoreError(f"no Elasticsearch templates in {base / folder}")
        for path in paths:
            name = _renamed(path.stem, prefix)
            body = _with_checksum(kind, _renamed(_load_json(path), prefix))
            out.append(Resource(kind, name, body))
    return out


def mappings_of(kind: str, prefix: str = INDEX_PREFIX) -> dict[str, Any]:
    """The explicit mappings of one record kind, as the component template declares them."""
    for r in desired_resources(prefix):
        if r.kind == "component_template" and r.name == f"{prefix}-{kind}-mappings":
            mappings: dict[str, Any] = r.body["template"]["mappings"]
            return mappings
    raise StoreError(f"no mappings component template for {kind!r}")


# Talking to the cluster ---------------------------------------------------------------------
def load_aliases(client: Elasticsearch, prefix: str) -> dict[str, list[str]]:
    """kind -> the concrete indices behind its alias (sorted), in one GET of ``<prefix>-*``
    aliases; rollover adds indices behind them. Kinds without an alias are absent."""
    try:
        resp = client.indices.get_alias(name=f"{prefix}-*")
    except NotFoundError:
        return {}
    found: dict[str, list[str]] = {}
    wanted = {alias_of(prefix, k): k for k in KINDS}
    for index, info in dict(resp).items():
        for alias in info.get("aliases", {}):
            if alias in wanted:
                found.setdefault(wanted[alias], []).append(index)
    return {k: sorted(v) for k, v in found.items()}


def installed_checksum(client: Elasticsearch, res: Resource) -> str | None:
    """The checksum the installed copy carries ("" when it is not ours), None if absent."""
    try:
        if res.kind == "ilm_policy":
            got = client.ilm.get_lifecycle(name=res.name)
            body = dict(got).get(res.name, {})
        elif res.kind == "component_template":
            got = client.cluster.get_component_template(name=res.name)
            items = got["component_templates"]
            body = items[0]["component_template"] if items else {}
        else:
            got = client.indices.get_index_template(name=res.name)
            items = got["index_templates"]
            body = items[0]["index_template"] if items else {}
    except NotFoundError:
        return None
    if not body:
        return None
    return str(_meta_of(res.kind, body).get("checksum", ""))


def put_resource(client: Elasticsearch, res: Resource) -> None:
    body = {("meta" if k == "_meta" else k): v for k, v in res.body.items()}
    if res.kind == "ilm_policy":
        client.ilm.put_lifecycle(name=res.name, policy=body["policy"])
    elif res.kind == "component_template":
        client.cluster.put_component_template(name=res.name, **body)
    else:
        client.indices.put_index_template(name=res.name, **body)


def setup_indices(client: Elasticsearch, prefix: str, *, where: str) -> list[str]:
    """Install or update the ILM policy, templates and aliases; return what changed.

    ``where`` names the cluster in errors (a URL with its password already masked). Safe to
    run any number of times and from several processes at once (see the module docstring).
    """
    changes: list[str] = []
    changed_mappings: set[str] = set()
    for res in desired_resources(prefix):
        current = installed_checksum(client, res)
        if current == res.checksum:
            continue
        put_resource(client, res)
        changes.append(f"{'updated' if current is not None else 'created'} {res.kind} {res.name}")
        if current is not None and res.name.endswith("-mappings"):
            changed_mappings.add(res.name[len(prefix) + 1 : -len("-mappings")])
    indices = load_aliases(client, prefix)
    for kind in KINDS:
        alias = alias_of(prefix, kind)
        if indices.get(kind):
            if kind in changed_mappings:
                client.indices.put_mapping(index=alias, **mappings_of(kind, prefix))
                changes.append(f"updated mappings of {alias}")
            continue
        first = f"{alias}-000001"
        try:
            client.indices.create(index=first, aliases={alias: {"is_write_index": True}})
            changes.append(f"created index {first} with write alias {alias}")
        except ApiError as e:
            if error_type(e) != "resource_already_exists_exception":
                raise
    indices = load_aliases(client, prefix)
    missing = [alias_of(prefix, k) for k in KINDS if not indices.get(k)]
    if missing:
        raise StoreError(
            f"Elasticsearch at {where} has indices named like {', '.join(missing)} but "
            "no such aliases; delete those indices or pick another index prefix"
        )
    return changes


def error_type(e: ApiError) -> str:
    body = e.body if isinstance(e.body, dict) else {}
    error = body.get("error")
    return str(error.get("type", "")) if isinstance(error, dict) else ""


__all__ = [
    "INDEX_PREFIX",
    "KINDS",
    "META_OWNER",
    "Resource",
    "alias_of",
    "check_prefix",
    "desired_resources",
    "error_type",
    "installed_checksum",
    "load_aliases",
    "mappings_of",
    "put_resource",
    "setup_indices",
    "templates_dir",
]
