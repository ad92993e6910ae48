"""What the board asks of a Store: filtered, paged queues, facets, accounts, CSV rows.

The Store contract filters by status, tier, title and platform; the board adds exact tier,
hashtag, account and AI flag on top. Filters the store can answer are pushed down (and the
store pages); the others scan the store's filtered list in its own order (tier, score,
newest), which keeps the queue's order identical either way.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from reelwatch.errors import InputError
from reelwatch.models import Confidence, Match, TriageStatus, normalize_hashtag
from triage.cells import matched_times, spreadsheet_cell
from triage.ledger import handle_key
from triage.stores.base import Store, parse_confidence, parse_status

AI_CHOICES = ("", "yes", "no")
MAX_FACET_VALUES = 200


@dataclass(frozen=True)
class QueueFilters:
    """The queue's filters as the query string gives them; empty means "any"."""

    title: str = ""
    platform: str = ""
    status: str = ""
    tier: str = ""
    hashtag: str = ""
    account: str = ""
    ai: str = ""

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            object.__setattr__(self, name, value.strip())
        object.__setattr__(self, "hashtag", normalize_hashtag(self.hashtag))
        object.__setattr__(self, "account", self.account.lstrip("@"))
        if self.status:
            parse_status(self.status)
        if self.tier:
            parse_confidence(self.tier)
        if self.ai not in AI_CHOICES:
            raise InputError(f"unknown AI filter {self.ai!r}; use one of: yes, no")

    def store_filters(self) -> dict[str, Any]:
        return {
            "status": self.status or None,
            "min_confidence": self.tier or None,
            "title_id": self.title or None,
            "platform": self.platform or None,
        }

    @property
    def needs_scan(self) -> bool:
        """True when some filter is one the Store cannot apply (so the board pages itself)."""
        exact_tier = bool(self.tier) and Confidence(self.tier) != Confidence.HIGH
        return bool(self.hashtag or self.account or self.ai or exact_tier)

    def keep(self, match: Match) -> bool:
        if self.tier and match.confidence != Confidence(self.tier):
            return False
        if self.hashtag and self.hashtag not in {normalize_hashtag(h) for h in match.hashtags}:
            return False
        if self.account and match.account.lstrip("@") != self.account:
            return False
        return not self.ai or match.ai.is_ai == (self.ai == "yes")

    def query(self, **changes: Any) -> str:
        """The query string of these filters (plus ``changes``, e.g. ``page=2``), no ``?``."""
        values = {k: v for k, v in asdict(self).items() if v}
        values.update({k: v for k, v in changes.items() if v not in ("", None)})
        return urlencode(values)

    def without(self, name: str) -> QueueFilters:
        return replace(self, **{name: ""})

    @property
    def active(self) -> bool:
        return any(asdict(self).values())


@dataclass(frozen=True)
class QueuePage:
    matches: list[Match]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def first_index(self) -> int:
        return (self.page - 1) * self.per_page + 1 if self.total else 0

    @property
    def last_index(self) -> int:
        return min(self.total, self.page * self.per_page)


def select_matches(
    store: Store, filters: QueueFilters, *, page: int = 1, per_page: int | None = 50
) -> QueuePage:
    """One page of the queue; ``per_page=None`` returns everything (exports)."""
    if page < 1:
        raise InputError(f"page must be 1 or more, not {page}")
    pushed = filters.store_filters()
    if per_page is None:
        rows = [m for m in store.list_matches(**pushed) if filters.keep(m)]
        return QueuePage(rows, len(rows), 1, max(1, len(rows)))
    offset = (page - 1) * per_page
    if filters.needs_scan:
        kept = [m for m in store.list_matches(**pushed) if filters.keep(m)]
        return QueuePage(kept[offset : offset + per_page], len(kept), page, per_page)
    total = store.count_matches(**pushed)
    rows = store.list_matches(**pushed, limit=per_page, offset=offset)
    return QueuePage(rows, total, page, per_page)


@dataclass
class Facets:
    """Values to offer in the filter form, from the matches in the store."""

    titles: list[tuple[str, str]] = field(default_factory=list)
    platforms: list[str] = field(default_factory=list)
    hashtags: list[str] = field(default_factory=list)
    accounts: list[str] = field(default_factory=list)


def facets(store: Store) -> Facets:
    """Distinct titles and platforms, and the most frequent hashtags and accounts.

    This reads every match; fine for a board over one machine's store. A store of hundreds of
    thousands of matches would want a facet query in the Store contract instead.
    """
    titles: dict[str, str] = {}
    platforms: set[str] = set()
    hashtags: Counter[str] = Counter()
    accounts: Counter[str] = Counter()
    for m in store.list_matches():
        titles.setdefault(m.title_id, m.title)
        platforms.add(m.platform)
        hashtags.update({normalize_hashtag(h) for h in m.hashtags if normalize_hashtag(h)})
        if m.account:
            accounts[m.account] += 1
    return Facets(
        titles=sorted(titles.items(), key=lambda kv: kv[1].lower()),
        platforms=sorted(platforms),
        hashtags=[h for h, _ in hashtags.most_common(MAX_FACET_VALUES)],
        accounts=[a for a, _ in accounts.most_common(MAX_FACET_VALUES)],
    )


def same_account_and_title(store: Store, match: Match) -> list[Match]:
    """The other confirmed matches of ``match``'s account (as the ledger compares handles) and
    title on its platform: what one notice about that account's copies can name with it."""
    if not handle_key(match.account):
        return []
    return [
        m
        for m in store.list_matches(
            status=TriageStatus.CONFIRMED, title_id=match.title_id, platform=match.platform
        )
        if m.id != match.id and handle_key(m.account) == handle_key(match.account)
    ]


CSV_COLUMNS = (
    "match_id",
    "title_id",
    "title",
    "platform",
    "post_id",
    "post_url",
    "account",
    "score",
    "confidence",
    "status",
    "ai_generated",
    "ai_reasons",
    "signals",
    "matched_times",
    "hashtags",
    "created_at",
    "updated_at",
    "note",
    "caption",
)


def csv_rows(matches: Iterable[Match]) -> Iterator[str]:
    """The CSV export, header first, one string per row (streamed to the client)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush(row: list[str]) -> str:
        writer.writerow(row)
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    yield flush(list(CSV_COLUMNS))
    for m in matches:
        row = [
            m.id,
            m.title_id,
            m.title,
            m.platform,
            m.post_id,
            m.post_url,
            m.account,
            f"{m.score:.4f}",
            m.confidence.value,
            m.status.value,
            "yes" if m.ai.is_ai else "no",
            "; ".join(m.ai.reasons),
            "; ".join(f"{k}={v:.3f}" for k, v in sorted(m.signals.items())),
            matched_times(m),
            " ".join(m.hashtags),
            m.created_at.isoformat(),
            m.updated_at.isoformat(),
            m.note,
            m.caption,
        ]
        yield flush([spreadsheet_cell(v) for v in row])


@dataclass(frozen=True)
class LifecycleStep:
    status: TriageStatus
    at: datetime | None
    """When the match last entered this status (``new``: when it was found)."""
    current: bool


def lifecycle(match: Match) -> list[LifecycleStep]:
    """Every status of the enforcement loop, in order, with the time the match entered it."""
    steps = []
    for status in TriageStatus:
        field_name = status.at_field
        at = match.created_at if field_name is None else getattr(match.enforcement, field_name)
        steps.append(LifecycleStep(status, at, status == match.status))
    return steps
