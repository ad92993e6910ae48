"""The distributed store: posts, media, matches and alerts in an Elasticsearch cluster.

Layout
------
Each kind of record (``posts``, ``media``, ``matches``, ``alerts``) lives behind an alias
``<prefix>-<kind>`` whose write index rolls over under ILM. Templates, the ILM policy, aliases
and their lifecycle are :mod:`triage.stores.es_setup`'s business (``reelwatch es setup`` uses
it too); the store only calls it when it finds the cluster empty.

Updating in place across rollovers
----------------------------------
Documents keep their model id (``Post.key``, ``Match.id`` ...) as ``_id``. A read is a realtime
``mget`` over every concrete index behind the alias (so a document written a millisecond ago is
found, and so is one in an index that ILM has since rolled away from). A change is then written
to the index the document lives in, guarded by ``if_seq_no``/``if_primary_term``; a new one is
``create``d through the alias (its write index). Either write fails with 409 when another writer
got there first, and the read-merge-write starts over. That gives the same atomicity SQLite's
``BEGIN IMMEDIATE`` gives, without locks: triage status updates in place, re-matches keep triage
work (:func:`~triage.stores.base.merge_match`), and an alert is claimed by exactly one worker.

Faults: one retry policy
------------------------
Every request goes through one place, :meth:`ElasticsearchStore._retrying`; the client's own
retries are off (``max_retries=0``) and ``streaming_bulk`` does not retry either, so retries
never multiply. An operation (a whole read-merge-write, a search, a bulk chunk) is tried up to
``RETRY_ATTEMPTS`` times (6) while ``RETRY_BUDGET_S`` (30 s) lasts, waiting 0.25 s, 0.5 s,
1 s, 2 s, 4 s between tries (doubling, at most ``RETRY_MAX_DELAY_S``). Retried: no
connection, a timeout, and the answers that mean "busy or briefly away", 429, 502, 503 and
504 (``RETRY_STATUSES``), for the whole request or for single bulk items (only the rejected
items are sent again). Anything else (400, 401, 403, 404, 500 ...) fails at once with a
:class:`~triage.stores.base.StoreError` naming the answer. Redoing an operation is safe
because every write is conditional (below). Past the attempts or the budget the caller gets
:class:`StoreBusyError` (a ``TransientError``), so a Celery task is retried later by the
task's own policy (``workers/tasks.py``): a match is delayed, never dropped. The cluster's
URL appears in messages with its password masked.

Client version
--------------
reelwatch pins the 8.x ``elasticsearch`` client: it sends ``compatible-with=8`` headers, which
Elasticsearch 8 and 9 both accept. A cluster that only speaks 9 (or a user who wants the 9.x
client) installs ``elasticsearch>=9,<10`` instead; this module only uses APIs both clients have
and never the removed ``body=`` parameter.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from elasticsearch import (
    ApiError,
    ConflictError,
    ConnectionError,
    ConnectionTimeout,
    Elasticsearch,
)
from elasticsearch.helpers import streaming_bulk
from pydantic import BaseModel

from reelwatch.errors import InputError
from reelwatch.models import (
    Alert,
    AlertStatus,
    Confidence,
    Match,
    Media,
    Notice,
    NoticeStatus,
    Post,
    PostState,
    TriageStatus,
)
from reelwatch.redact import redact_url
from triage.stores import es_setup
from triage.stores.base import (
    Store,
    StoreBusyError,
    StoreError,
    apply_post_state,
    merge_match,
    merge_post,
    parse_alert_status,
    parse_confidence,
    parse_notice_status,
    parse_post_state,
    parse_status,
)
from triage.stores.es_setup import (
    INDEX_PREFIX,
    KINDS,
    Resource,
    desired_resources,
    mappings_of,
    templates_dir,
)

if TYPE_CHECKING:
    from typing import Self

    from reelwatch.settings import Settings

log = logging.getLogger(__name__)

__all__ = [
    "INDEX_PREFIX",
    "KINDS",
    "ElasticsearchStore",
    "Resource",
    "connect",
    "desired_resources",
    "mappings_of",
    "templates_dir",
]

RETRY_STATUSES = (429, 502, 503, 504)
"""Answers that mean "busy or briefly away, ask again" (the only statuses retried)."""
RETRY_ATTEMPTS = 6
"""Tries of one operation, the first included, before StoreBusyError."""
RETRY_BUDGET_S = 30.0
"""How long one operation keeps trying a cluster that is away before StoreBusyError."""
RETRY_FIRST_DELAY_S = 0.25
RETRY_MAX_DELAY_S = 5.0
REQUEST_TIMEOUT_S = 30.0
BULK_CHUNK = 500
MAX_CONFLICTS = 100
"""Lost optimistic-concurrency races one operation tolerates before giving up (a livelock)."""
PAGE = 1000

Refresh = Literal["true", "false", "wait_for"]

_M = TypeVar("_M", bound=BaseModel)
_T = TypeVar("_T")


# Record kinds -------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Kind(Generic[_M]):
    """How one model maps onto one alias: its fields plus ``derived`` ones (the identity, and
    sort keys a search cannot compute from the model's own fields)."""

    name: str
    model: type[_M]
    id_of: Callable[[_M], str]
    derived: Callable[[_M], dict[str, Any]]

    def doc(self, item: _M) -> dict[str, Any]:
        return {**item.model_dump(mode="json"), **self.derived(item)}

    def load(self, source: dict[str, Any]) -> _M:
        fields = self.model.model_fields
        return self.model.model_validate({k: v for k, v in source.items() if k in fields})


_POSTS = _Kind("posts", Post, lambda p: p.key, lambda p: {"key": p.key})
_MEDIA = _Kind("media", Media, lambda m: m.sha256, lambda m: {})
_MATCHES = _Kind(
    "matches",
    Match,
    lambda m: m.id,
    lambda m: {"id": m.id, "confidence_rank": m.confidence.rank},
)
_ALERTS = _Kind("alerts", Alert, lambda a: a.id, lambda a: {"id": a.id})
_NOTICES = _Kind("notices", Notice, lambda n: n.id, lambda n: {})


@dataclass(frozen=True)
class _Found:
    """A document as read, with what a conditional write back to it needs."""

    index: str
    seq_no: int
    primary_term: int
    source: dict[str, Any]


class _Conflict(Exception):
    """Another writer changed the document between our read and our write: start over."""


class _ItemsBusy(Exception):
    """Some bulk items were rejected as busy (the request itself succeeded): retry them."""


def connect(url: str) -> Elasticsearch:
    """A client for ``url`` with its own retries off: the store's policy is the only one."""
    if not url.startswith(("http://", "https://")):
        raise StoreError(
            f"the Elasticsearch URL must start with http:// or https://: {redact_url(url)!r}"
        )
    try:
        return Elasticsearch(
            url,
            max_retries=0,
            retry_on_timeout=False,
            retry_on_status=(),
            request_timeout=REQUEST_TIMEOUT_S,
        )
    except ValueError as e:
        raise StoreError(f"bad Elasticsearch URL {redact_url(url)!r}: {e}") from None


# The store ----------------------------------------------------------------------------------
class ElasticsearchStore(Store):
    """A :class:`Store` on an Elasticsearch cluster; see the module docstring for the design."""

    name = "elasticsearch"

    def __init__(
        self,
        url: str,
        *,
        prefix: str = INDEX_PREFIX,
        retry_budget_s: float = RETRY_BUDGET_S,
        retry_attempts: int = RETRY_ATTEMPTS,
        retry_first_delay_s: float = RETRY_FIRST_DELAY_S,
        refresh: Refresh = "wait_for",
        client: Elasticsearch | None = None,
        auto_setup: bool = True,
    ) -> None:
        """Connect to ``url``; with ``auto_setup``, install templates and aliases if missing.

        ``refresh="wait_for"`` makes every write visible to searches before it returns, so the
        board lists what a worker just landed; bulk loads refresh once per request.
        Retries follow the module docstring; a ``client`` passed in should have its own
        retries off (:func:`connect` makes one so), or they multiply with ours.
        """
        self.url = url
        self.where = redact_url(url)
        """The URL for messages and logs: its password masked."""
        self.prefix = es_setup.check_prefix(prefix)
        self.retry_budget_s = retry_budget_s
        self.retry_attempts = max(1, retry_attempts)
        self.retry_first_delay_s = retry_first_delay_s
        self.refresh: Refresh = refresh
        self._client: Elasticsearch | None = client or connect(url)
        self._indices: dict[str, list[str]] = {}
        try:
            self._refresh_aliases()
            if auto_setup and any(not self._indices.get(k) for k in KINDS):
                self.setup()
        except BaseException:
            self.close()
            raise

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        url = settings.store.elasticsearch_url
        if not url:
            raise StoreError(
                "the elasticsearch store needs a URL: set store.elasticsearch_url "
                "(REELWATCH_STORE__ELASTICSEARCH_URL)"
            )
        prefix = settings.store.elasticsearch_index_prefix or INDEX_PREFIX
        return cls(url, prefix=str(prefix))

    @property
    def client(self) -> Elasticsearch:
        if self._client is None:
            raise StoreError(f"the Elasticsearch store at {self.where} is closed")
        return self._client

    def alias(self, kind: str) -> str:
        return f"{self.prefix}-{kind}"

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # Setup ---------------------------------------------------------------------------------
    def setup(self) -> list[str]:
        """Install or update the ILM policy, templates and aliases; return what changed.

        Safe to run any number of times and from several processes at once: unchanged items
        are left alone (one GET each), and an index that another process created first is
        accepted.
        """
        return self._retrying("set up the Elasticsearch indices", self._setup)

    def _setup(self) -> list[str]:
        changes = es_setup.setup_indices(self.client, self.prefix, where=self.where)
        self._load_aliases()
        return changes

    def _refresh_aliases(self) -> None:
        """Learn which concrete indices sit behind each alias, riding out a cluster away."""
        self._retrying("open the Elasticsearch store", self._load_aliases)

    def _load_aliases(self) -> None:
        """Learn which concrete indices sit behind each alias (rollover adds some)."""
        self._indices = es_setup.load_aliases(self.client, self.prefix)

    def _indices_of(self, kind: str) -> list[str]:
        if not self._indices.get(kind):
            self._load_aliases()
        indices = self._indices.get(kind)
        if not indices:
            raise StoreError(
                f"the Elasticsearch alias {self.alias(kind)} is missing; run `reelwatch es setup`"
            )
        return indices

    # Faults --------------------------------------------------------------------------------
    def _retrying(self, what: str, op: Callable[[], _T]) -> _T:
        """Run ``op`` under the store's one retry policy (see the module docstring).

        ``op`` must be safe to run again from the start: every caller re-reads before it
        writes, and writes are conditional, so a write whose answer got lost is not doubled.
        """
        deadline = time.monotonic() + self.retry_budget_s
        delay = self.retry_first_delay_s
        attempt = 0
        while True:
            attempt += 1
            try:
                return op()
            except (ConnectionError, ConnectionTimeout) as e:
                cause = f"Elasticsearch at {self.where} did not answer ({_short(e)})"
            except _ItemsBusy as e:
                cause = f"Elasticsearch at {self.where} {e}"
            except ApiError as e:
                if e.status_code not in RETRY_STATUSES:
                    raise StoreError(f"cannot {what}: Elasticsearch said {_describe(e)}") from None
                cause = f"Elasticsearch at {self.where} answered {e.status_code} ({_describe(e)})"
            if attempt >= self.retry_attempts or time.monotonic() + delay > deadline:
                raise StoreBusyError(
                    f"cannot {what}: {cause}; gave up after {attempt} "
                    f"attempt{'s' if attempt > 1 else ''} (at most {self.retry_attempts} "
                    f"within {self.retry_budget_s:g} s)"
                ) from None
            log.warning("%s; retrying in %.2f s", cause, delay)
            time.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_DELAY_S)

    # Documents -----------------------------------------------------------------------------
    def _find(self, kind: _Kind[Any], id: str, *, recheck: bool = True) -> _Found | None:
        """Realtime read of one document from whichever index behind the alias holds it.

        A miss re-reads the alias once (``recheck``): a rollover since we last looked may have
        added the index the document was written to.
        """
        indices = self._indices_of(kind.name)
        resp = self.client.mget(docs=[{"_index": i, "_id": id} for i in indices])
        for doc in resp["docs"]:
            if doc.get("found"):
                return _Found(doc["_index"], doc["_seq_no"], doc["_primary_term"], doc["_source"])
        if recheck:
            before = indices
            self._load_aliases()
            if self._indices.get(kind.name) != before:
                return self._find(kind, id, recheck=False)
        return None

    def _write(self, kind: _Kind[Any], id: str, doc: dict[str, Any], at: _Found | None) -> None:
        """Create through the alias, or overwrite exactly the version we read; 409 -> retry."""
        try:
            if at is None:
                self.client.create(
                    index=self.alias(kind.name), id=id, document=doc, refresh=self.refresh
                )
            else:
                self.client.index(
                    index=at.index,
                    id=id,
                    document=doc,
                    if_seq_no=at.seq_no,
                    if_primary_term=at.primary_term,
                    refresh=self.refresh,
                )
        except ConflictError:
            raise _Conflict from None

    def _change(
        self, kind: _Kind[_M], id: str, change: Callable[[_M | None], _M | None], what: str
    ) -> tuple[_M | None, _M | None]:
        """Optimistic read-merge-write of one document; returns (before, after).

        ``change`` gets the stored item (None when new) and returns what to store (None: store
        nothing). It may run several times, when other writers race us.
        """

        def attempt() -> tuple[_M | None, _M | None]:
            for _ in range(MAX_CONFLICTS):
                found = self._find(kind, id, recheck=False)
                before = None if found is None else kind.load(found.source)
                after = change(None if before is None else before.model_copy(deep=True))
                if after is None:
                    return before, None
                try:
                    self._write(kind, id, kind.doc(after), found)
                except _Conflict:
                    self._indices.pop(kind.name, None)
                    continue
                return before, after
            raise StoreBusyError(f"cannot {what}: {MAX_CONFLICTS} concurrent writers beat us")

        return self._retrying(what, attempt)

    def _upsert(self, kind: _Kind[_M], item: _M, merge: Callable[[_M, _M], _M]) -> bool:
        """Insert ``item`` or merge it into the stored one; True if it was new."""
        id = kind.id_of(item)
        before, _ = self._change(
            kind,
            id,
            lambda old: item if old is None else merge(old, item),
            f"land {kind.name} {id!r}",
        )
        return before is None

    def _get(self, kind: _Kind[_M], id: str) -> _M | None:
        found = self._retrying(f"read {kind.name} {id!r}", lambda: self._find(kind, id))
        return None if found is None else kind.load(found.source)

    def _search(
        self,
        kind: _Kind[_M],
        query: dict[str, Any],
        sort: list[dict[str, str]],
        limit: int | None = None,
        offset: int = 0,
    ) -> list[_M]:
        """Every hit in ``sort`` order (the last sort key must be unique), paged with
        ``search_after`` so neither a large offset nor a large result hits the 10k window."""

        def run() -> list[_M]:
            out: list[_M] = []
            skip = max(offset, 0)
            want = None if limit is None else max(limit, 0)
            after: list[Any] | None = None
            while want is None or len(out) < want:
                extra: dict[str, Any] = {} if after is None else {"search_after": after}
                resp = self.client.search(
                    index=self.alias(kind.name),
                    query=query,
                    sort=sort,
                    size=PAGE,
                    track_total_hits=False,
                    **extra,
                )
                hits = resp["hits"]["hits"]
                for hit in hits:
                    if skip:
                        skip -= 1
                    elif want is None or len(out) < want:
                        out.append(kind.load(hit["_source"]))
                if len(hits) < PAGE:
                    break
                after = hits[-1]["sort"]
            return out

        return self._retrying(f"search {kind.name}", run)

    def _count(self, kind: _Kind[Any], query: dict[str, Any]) -> int:
        resp = self._retrying(
            f"count {kind.name}",
            lambda: self.client.count(index=self.alias(kind.name), query=query),
        )
        return int(resp["count"])

    # Posts ---------------------------------------------------------------------------------
    def upsert_post(self, post: Post) -> bool:
        return self._upsert(_POSTS, post, merge_post)

    def upsert_posts(self, posts: Iterable[Post]) -> int:
        """Land many posts in bulk (same merge as :meth:`upsert_post`); how many were new."""
        return self._bulk_upsert(_POSTS, posts, merge_post)

    def get_post(self, key: str) -> Post | None:
        return self._get(_POSTS, key)

    def has_post(self, key: str) -> bool:
        return self.get_post(key) is not None

    def set_post_state(
        self,
        key: str,
        state: PostState | str,
        *,
        error: str | None = None,
        media_sha256: str | None = None,
        step: str | None = None,
        settings_digest: str | None = None,
        transient: bool = False,
        expect: PostState | str | None = None,
    ) -> Post:
        parse_post_state(state)

        def change(post: Post | None) -> Post:
            return apply_post_state(
                post,
                key,
                state,
                error=error,
                media_sha256=media_sha256,
                step=step,
                settings_digest=settings_digest,
                transient=transient,
                expect=expect,
            )

        _, after = self._change(_POSTS, key, change, f"set the state of post {key!r}")
        assert after is not None
        return after

    def list_posts(
        self, state: PostState | str | None = None, limit: int | None = None
    ) -> list[Post]:
        filters = [] if state is None else [{"term": {"state": parse_post_state(state).value}}]
        sort = [{"first_seen": "asc"}, {"key": "asc"}]
        return self._search(_POSTS, {"bool": {"filter": filters}}, sort, limit)

    # Media ---------------------------------------------------------------------------------
    def upsert_media(self, media: Media) -> None:
        self._change(_MEDIA, media.sha256, lambda old: media, f"land media {media.sha256}")

    def get_media(self, sha256: str) -> Media | None:
        return self._get(_MEDIA, sha256)

    # Matches -------------------------------------------------------------------------------
    def upsert_match(self, match: Match) -> bool:
        return self._upsert(_MATCHES, match, merge_match)

    def upsert_matches(self, matches: Iterable[Match]) -> int:
        """Land many matches in bulk (same merge as :meth:`upsert_match`); how many were new."""
        return self._bulk_upsert(_MATCHES, matches, merge_match)

    def get_match(self, id: str) -> Match | None:
        return self._get(_MATCHES, id)

    def list_matches(
        self,
        *,
        status: TriageStatus | str | None = None,
        min_confidence: Confidence | str | None = None,
        title_id: str | None = None,
        platform: str | None = None,
        post_key: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Match]:
        query = _match_query(status, min_confidence, title_id, platform, post_key)
        sort = [
            {"confidence_rank": "desc"},
            {"score": "desc"},
            {"updated_at": "desc"},
            {"id": "asc"},
        ]
        return self._search(_MATCHES, query, sort, limit, offset)

    def count_matches(
        self,
        *,
        status: TriageStatus | str | None = None,
        min_confidence: Confidence | str | None = None,
        title_id: str | None = None,
        platform: str | None = None,
        post_key: str | None = None,
    ) -> int:
        query = _match_query(status, min_confidence, title_id, platform, post_key)
        return self._count(_MATCHES, query)

    def update_match(self, match_id: str, change: Callable[[Match], object]) -> Match:
        def apply(match: Match | None) -> Match:
            if match is None:
                raise InputError(f"unknown match {match_id!r}")
            change(match)
            return match

        _, after = self._change(_MATCHES, match_id, apply, f"update match {match_id!r}")
        assert after is not None
        return after

    # Notices -------------------------------------------------------------------------------
    def upsert_notice(self, notice: Notice) -> None:
        self._change(_NOTICES, notice.id, lambda _old: notice, f"write notice {notice.id!r}")

    def get_notice(self, id: str) -> Notice | None:
        return self._get(_NOTICES, id)

    def list_notices(
        self,
        *,
        status: NoticeStatus | str | None = None,
        match_id: str | None = None,
        platform: str | None = None,
        account: str | None = None,
    ) -> list[Notice]:
        filters: list[dict[str, Any]] = []
        if status is not None:
            filters.append({"term": {"status": parse_notice_status(status).value}})
        for field, value in (("match_ids", match_id), ("platform", platform), ("account", account)):
            if value is not None:
                filters.append({"term": {field: value}})
        sort = [{"created_at": "desc"}, {"id": "asc"}]
        return self._search(_NOTICES, {"bool": {"filter": filters}}, sort)

    # Alerts --------------------------------------------------------------------------------
    def claim_alert(self, alert: Alert) -> bool:
        """Create the alert through the alias unless it exists anywhere behind it.

        The document carries a random ``attempt_token``: if our create landed but its answer
        was lost (and the retry then met a 409), finding our own token says we won after all,
        so the alert is not orphaned.
        """
        token = uuid.uuid4().hex
        doc = {**_ALERTS.doc(alert), "lease_ts": time.time(), "attempt_token": token}

        def attempt() -> bool:
            found = self._find(_ALERTS, alert.id, recheck=False)
            if found is None:
                try:
                    self._write(_ALERTS, alert.id, doc, None)
                    return True
                except _Conflict:
                    found = self._find(_ALERTS, alert.id, recheck=False)
            return found is not None and found.source.get("attempt_token") == token

        return self._retrying(f"claim alert {alert.id!r}", attempt)

    def lease_alert(self, alert_id: str, *, lease_s: float) -> Alert | None:
        token = uuid.uuid4().hex

        def attempt() -> Alert | None:
            for _ in range(MAX_CONFLICTS):
                now = time.time()
                found = self._find(_ALERTS, alert_id, recheck=False)
                if found is None:
                    return None
                src = found.source
                if src.get("attempt_token") == token:
                    return _ALERTS.load(src)
                if src.get("status") != AlertStatus.PENDING.value:
                    return None
                lease_ts = src.get("lease_ts")
                if lease_ts is not None and float(lease_ts) > now - lease_s:
                    return None
                try:
                    doc = {**src, "lease_ts": now, "attempt_token": token}
                    self._write(_ALERTS, alert_id, doc, found)
                except _Conflict:
                    continue
                return _ALERTS.load(src)
            raise StoreBusyError(f"cannot lease alert {alert_id!r}: too many concurrent writers")

        return self._retrying(f"lease alert {alert_id!r}", attempt)

    def update_alert(self, alert: Alert) -> None:
        def change(old: Alert | None) -> Alert | None:
            if old is None:
                raise InputError(f"unknown alert {alert.id!r}")
            return None if old.status == AlertStatus.SENT else alert

        # The stored doc is rebuilt from ``alert``: lease_ts and attempt_token drop, which
        # releases the lease.
        self._change(_ALERTS, alert.id, change, f"record alert {alert.id!r}")

    def get_alert(self, id: str) -> Alert | None:
        return self._get(_ALERTS, id)

    def list_alerts(self, status: AlertStatus | str | None = None) -> list[Alert]:
        filters = [] if status is None else [{"term": {"status": parse_alert_status(status).value}}]
        sort = [{"created_at": "asc"}, {"id": "asc"}]
        return self._search(_ALERTS, {"bool": {"filter": filters}}, sort)

    # Bulk ----------------------------------------------------------------------------------
    def _bulk_upsert(
        self, kind: _Kind[_M], items: Iterable[_M], merge: Callable[[_M, _M], _M]
    ) -> int:
        """Land a batch with ``streaming_bulk``: one realtime ``mget``, merge in Python (the same
        rules as one-by-one), then conditional index/create actions with the model ids.

        Items rejected as busy (429, 502, 503, 504) are sent again, alone, under the store's
        retry policy; one that lost a race (409) goes through the one-by-one path; anything
        else fails the call with a :class:`StoreError` naming the first rejected id, after the
        rest have landed.
        """
        batch: dict[str, _M] = {}
        for item in items:
            id = kind.id_of(item)
            batch[id] = item if id not in batch else merge(batch[id], item)
        new = 0
        ids = list(batch)
        for start in range(0, len(ids), BULK_CHUNK):
            pending = {i: batch[i] for i in ids[start : start + BULK_CHUNK]}
            created: list[int] = []
            land = functools.partial(self._bulk_chunk, kind, pending, merge, created)
            self._retrying(f"land {len(pending)} {kind.name} in bulk", land)
            new += sum(created)
        return new

    def _bulk_chunk(
        self,
        kind: _Kind[_M],
        pending: dict[str, _M],
        merge: Callable[[_M, _M], _M],
        created: list[int],
    ) -> None:
        """Send ``pending`` once; landed items leave it (their creations are appended to
        ``created``). Raises :class:`_ItemsBusy` when some were rejected as busy, so the
        retry policy sends just those again."""
        indices = self._indices_of(kind.name)
        resp = self.client.mget(docs=[{"_index": i, "_id": id} for id in pending for i in indices])
        found: dict[str, _Found] = {}
        for doc in resp["docs"]:
            if doc.get("found"):
                found[doc["_id"]] = _Found(
                    doc["_index"], doc["_seq_no"], doc["_primary_term"], doc["_source"]
                )
        conflicts: list[str] = []
        failures: list[str] = []
        busy: list[int] = []
        for ok, info in streaming_bulk(
            self.client,
            _bulk_actions(kind, pending, found, merge, self.alias(kind.name)),
            chunk_size=BULK_CHUNK,
            max_retries=0,
            raise_on_error=False,
            raise_on_exception=True,
            refresh=self.refresh,
        ):
            op, result = next(iter(info.items()))
            id = result.get("_id")
            status = result.get("status")
            if ok:
                created.append(op == "create")
                pending.pop(id, None)
            elif status == 409:
                conflicts.append(id)
            elif status in RETRY_STATUSES:
                busy.append(int(status))
            else:
                pending.pop(id, None)
                failures.append(f"{id}: {status} {result.get('error')}")
        for id in conflicts:
            created.append(self._upsert(kind, pending.pop(id), merge))
        if failures:
            raise StoreError(f"Elasticsearch rejected {len(failures)} {kind.name}: {failures[0]}")
        if busy:
            raise _ItemsBusy(f"rejected {len(busy)} {kind.name} with {busy[0]} (busy)")


def _bulk_actions(
    kind: _Kind[_M],
    chunk: dict[str, _M],
    found: dict[str, _Found],
    merge: Callable[[_M, _M], _M],
    alias: str,
) -> Iterator[dict[str, Any]]:
    for id, item in chunk.items():
        at = found.get(id)
        if at is None:
            yield {"_op_type": "create", "_index": alias, "_id": id, "_source": kind.doc(item)}
        else:
            merged = merge(kind.load(at.source), item)
            yield {
                "_op_type": "index",
                "_index": at.index,
                "_id": id,
                "if_seq_no": at.seq_no,
                "if_primary_term": at.primary_term,
                "_source": kind.doc(merged),
            }


def _match_query(
    status: TriageStatus | str | None,
    min_confidence: Confidence | str | None,
    title_id: str | None,
    platform: str | None,
    post_key: str | None,
) -> dict[str, Any]:
    filters: list[dict[str, Any]] = []
    if status is not None:
        wanted = parse_status(status)
        values = [wanted.value]
        if wanted == TriageStatus.NOTICE_SENT:
            values.append("takedown_requested")  # matches triaged before the lifecycle
        filters.append({"terms": {"status": values}})
    if min_confidence is not None:
        filters.append(
            {"range": {"confidence_rank": {"gte": parse_confidence(min_confidence).rank}}}
        )
    for field, value in (("title_id", title_id), ("platform", platform), ("post_key", post_key)):
        if value is not None:
            filters.append({"term": {field: value}})
    return {"bool": {"filter": filters}}


def _describe(e: ApiError) -> str:
    body = e.body if isinstance(e.body, dict) else {}
    error = body.get("error")
    if isinstance(error, dict):
        return f"{e.status_code} {error.get('type', '')}: {error.get('reason', '')}".strip()
    return f"{e.status_code} {e.message}"


def _short(e: Exception) -> str:
    text = " ".join(str(getattr(e, "message", "") or e).split())
    return text[:200] or type(e).__name__
