"""The accounting of a title: every instance found, what was done about it, and what came down.

Studios' letters ask for "an accounting of all instances". :func:`title_accounting` reads one
title's matches and their posts from the store and gathers the figures such a letter answers:

- counts by status (every :class:`~reelwatch.models.TriageStatus`, in lifecycle order, zeros
  included) and by platform;
- views reached: the sum of the play counts, each instance's latest known count (the post's
  ``stats.views`` when the post was seen after the match last landed, else ``Match.views``);
  instances without a count are counted apart (``views_unknown``), never guessed;
- first and last seen (the posts' ``first_seen`` / ``last_seen``), first and last posted;
- the AI-generated share (instances whose match is flagged AI-generated);
- time to removal (``Enforcement.removal_s``: from the notice being marked sent to the post
  found removed) as count, median, mean, 90th percentile (nearest rank) and maximum, overall
  and per platform, with the instances still up after a notice and the notices sent;
- every instance with its post, status times, signals, matched times and evidence files
  (paths relative to the data home, with the sha256 recorded when they were cut).

Outputs: :func:`accounting_csv` (one row per instance), :func:`accounting_summary_csv` (the
figures, as a second CSV: a spreadsheet of instances stays one flat table that sorts and
pivots), :func:`accounting_html` (one self-contained, printable page: evidence images are
embedded as ``data:`` URIs, so the file can be mailed or printed to PDF as it is) and
:meth:`TitleAccounting.to_json`. The board's report page and ``reelwatch report`` show the same
figures.
"""

from __future__ import annotations

import base64
import csv
import io
import math
import mimetypes
import statistics
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2

from reelwatch.digest import sha256_file
from reelwatch.errors import InputError
from reelwatch.models import Match, NoticeStatus, Post, Segment, TriageStatus, utcnow
from triage.cells import matched_times, spreadsheet_cell
from triage.stores.base import Store, as_utc

if TYPE_CHECKING:
    from reelwatch.settings import Settings

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"

STILL_UP = frozenset({TriageStatus.NOTICE_SENT, TriageStatus.REJECTED, TriageStatus.REINSTATED})
"""Statuses of an instance whose notice went out and whose post is (again) up."""

MAX_IMAGE_BYTES = 4 * 1024 * 1024
"""Largest evidence image embedded in the HTML; bigger ones are listed by path."""
MAX_EMBEDDED_BYTES = 96 * 1024 * 1024
"""All embedded images together stop here (a title with thousands of instances); the rest
are listed by path and sha256, which is what proves them."""
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "image/gif"})


# Figures ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EvidenceRef:
    """One evidence file of an instance, as recorded on its match (or the page screenshot)."""

    path: str
    """Relative to the data home."""
    sha256: str | None
    """As recorded when the file was written; None for evidence landed before hashing and
    for screenshots (whose hash is not recorded)."""
    label: str
    """What it is: ``copy 3.0-12.5s``, ``page screenshot``."""


@dataclass
class Instance:
    """One match of the title with its post."""

    match_id: str
    url: str
    platform: str
    post_id: str
    account: str
    caption: str
    hashtags: list[str]
    posted_at: datetime | None
    first_seen: datetime
    """When reelwatch first saw the post (the match's landing when the post record is gone)."""
    last_seen: datetime
    views: int | None
    score: float
    tier: str
    status: TriageStatus
    status_at: datetime
    """When the instance entered its current status."""
    status_times: dict[str, datetime]
    """Status -> the latest time the instance entered it (``new``: when the match landed)."""
    removal_s: float | None
    ai: bool
    ai_reasons: list[str]
    signals: dict[str, float]
    matched_times: str
    evidence: list[EvidenceRef]
    notice_id: str | None
    check: str | None
    """What the latest re-check found (``up``, ``removed``, ``unknown``), if any."""
    checked_at: datetime | None
    check_detail: str
    note: str


@dataclass
class RemovalTimes:
    """Times to removal (seconds) of a set of instances, and how many are still up."""

    count: int = 0
    """Instances removed after a notice (those with a time to removal)."""
    median_s: float | None = None
    mean_s: float | None = None
    p90_s: float | None = None
    """90th percentile, nearest rank."""
    max_s: float | None = None
    noticed: int = 0
    """Instances whose notice was marked sent."""
    still_up: int = 0
    """Of those, the ones up now: notice sent and not removed, rejected, or reinstated."""


@dataclass
class RemovalStats(RemovalTimes):
    by_platform: dict[str, RemovalTimes] = field(default_factory=dict)
    notices_sent: int = 0
    """Notices about this title marked sent."""


@dataclass
class TitleAccounting:
    title_id: str
    title: str
    owner: str
    """The rights owner: the catalog title's owner, else ``notices.rights_owner``, else ""."""
    generated_at: datetime
    total: int
    by_status: dict[str, int]
    by_platform: dict[str, dict[str, int]]
    """Platform -> status -> count (every status, zeros included), plus ``total``."""
    views: int
    views_unknown: int
    first_seen: datetime | None
    last_seen: datetime | None
    ai_share: float | None
    removal: RemovalStats
    instances: list[Instance]
    first_posted: datetime | None = None
    last_posted: datetime | None = None
    ai_count: int = 0

    @property
    def platforms(self) -> list[str]:
        return list(self.by_platform)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types (datetimes as ISO 8601 strings)."""
        return _jsonable(self)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, TriageStatus):
        return value.value
    if hasattr(value, "__dataclass_fields__"):
        return {name: _jsonable(getattr(value, name)) for name in value.__dataclass_fields__}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def title_accounting(
    settings: Settings, store: Store, title_id: str, *, now: datetime | None = None
) -> TitleAccounting:
    """The accounting of ``title_id`` from what the store holds; :class:`InputError` when the
    store has no match of that title."""
    matches = store.list_matches(title_id=title_id)
    if not matches:
        raise InputError(
            f"no matches of title {title_id!r} in the store: nothing to account for "
            "(title ids are listed by `reelwatch matches list`)"
        )
    posts: dict[str, Post | None] = {}
    for m in matches:
        if m.post_key not in posts:
            posts[m.post_key] = store.get_post(m.post_key)
    instances = sorted(
        (_instance(m, posts[m.post_key]) for m in matches),
        key=lambda i: (as_utc(i.posted_at or i.first_seen), i.match_id),
    )
    statuses = [s.value for s in TriageStatus]
    by_status = dict.fromkeys(statuses, 0)
    by_platform: dict[str, dict[str, int]] = {}
    for i in instances:
        by_status[i.status.value] += 1
        row = by_platform.setdefault(i.platform, {**dict.fromkeys(statuses, 0), "total": 0})
        row[i.status.value] += 1
        row["total"] += 1
    by_platform = dict(sorted(by_platform.items()))
    known_views = [i.views for i in instances if i.views is not None]
    posted = [as_utc(i.posted_at) for i in instances if i.posted_at is not None]
    ai_count = sum(i.ai for i in instances)
    notices_sent = sum(n.title_id == title_id for n in store.list_notices(status=NoticeStatus.SENT))
    removal = RemovalStats(**vars(_removal_times(instances)), notices_sent=notices_sent)
    removal.by_platform = {
        p: _removal_times([i for i in instances if i.platform == p]) for p in by_platform
    }
    return TitleAccounting(
        title_id=title_id,
        title=matches[0].title,
        owner=_owner(settings, matches),
        generated_at=now or utcnow(),
        total=len(instances),
        by_status=by_status,
        by_platform=by_platform,
        views=sum(known_views),
        views_unknown=len(instances) - len(known_views),
        first_seen=min((as_utc(i.first_seen) for i in instances), default=None),
        last_seen=max((as_utc(i.last_seen) for i in instances), default=None),
        first_posted=min(posted, default=None),
        last_posted=max(posted, default=None),
        ai_share=ai_count / len(instances) if instances else None,
        ai_count=ai_count,
        removal=removal,
        instances=instances,
    )


def _owner(settings: Settings, matches: Iterable[Match]) -> str:
    """``notices.rights_owner`` when set (as on notices), else the owner the catalog gave the
    title when its matches were made (:attr:`Match.work`)."""
    if settings.notices.rights_owner:
        return settings.notices.rights_owner
    return next((m.work.owner for m in matches if m.work is not None and m.work.owner), "")


def latest_views(match: Match, post: Post | None) -> int | None:
    """The latest play count known for the instance: the post's when it was seen after the
    match last landed (a re-crawl), else the one the match landed with."""
    if post is None or post.stats.views is None:
        return match.views
    if match.views is None or as_utc(post.last_seen) >= as_utc(match.updated_at):
        return post.stats.views
    return match.views


def _instance(m: Match, post: Post | None) -> Instance:
    enf = m.enforcement
    times: dict[str, datetime] = {TriageStatus.NEW.value: m.created_at}
    for status in TriageStatus:
        at = getattr(enf, status.at_field, None) if status.at_field else None
        if at is not None:
            times[status.value] = at
    evidence: list[EvidenceRef] = []
    for segment in m.segments:
        recorded = {f.path: f.sha256 for f in segment.evidence_files}
        label = _segment_label(segment)
        evidence.extend(EvidenceRef(path, recorded.get(path), label) for path in segment.evidence)
    if post is not None and post.provenance.screenshot:
        evidence.append(EvidenceRef(post.provenance.screenshot, None, "page screenshot"))
    return Instance(
        match_id=m.id,
        url=m.post_url,
        platform=m.platform,
        post_id=m.post_id,
        account=m.account,
        caption=post.caption if post is not None and post.caption else m.caption,
        hashtags=list(m.hashtags),
        posted_at=post.posted_at if post is not None else None,
        first_seen=post.first_seen if post is not None else m.created_at,
        last_seen=post.last_seen if post is not None else m.updated_at,
        views=latest_views(m, post),
        score=m.score,
        tier=m.confidence.value,
        status=m.status,
        status_at=times.get(m.status.value, m.updated_at),
        status_times=times,
        removal_s=enf.removal_s,
        ai=m.ai.is_ai,
        ai_reasons=list(m.ai.reasons),
        signals=dict(sorted(m.signals.items())),
        matched_times=matched_times(m),
        evidence=evidence,
        notice_id=enf.notice_id,
        check=enf.check.value if enf.check is not None else None,
        checked_at=enf.checked_at,
        check_detail=enf.check_detail,
        note=m.note,
    )


def _segment_label(segment: Segment) -> str:
    """Which segment an evidence file belongs to, as ``matched_times`` words it."""
    if not segment.timed:
        return f"{segment.signal} (caption)"
    return f"{segment.signal} {segment.query_start:.1f}-{segment.query_end:.1f}s"


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile of non-empty ``values`` (``share`` in 0-1): the smallest value
    with at least that share of the values at or below it."""
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


def _removal_times(instances: list[Instance]) -> RemovalTimes:
    times = [i.removal_s for i in instances if i.removal_s is not None]
    noticed = [i for i in instances if TriageStatus.NOTICE_SENT.value in i.status_times]
    figures = RemovalTimes(
        count=len(times),
        noticed=len(noticed),
        still_up=sum(i.status in STILL_UP for i in noticed),
    )
    if times:
        figures.median_s = float(statistics.median(times))
        figures.mean_s = statistics.fmean(times)
        figures.p90_s = percentile(times, 0.9)
        figures.max_s = max(times)
    return figures


# Words --------------------------------------------------------------------------------------
_UNITS = (("d", 86400), ("h", 3600), ("min", 60), ("s", 1))


def human_duration(seconds: float | None) -> str:
    """``seconds`` in the two largest units that say it, rounded half up to the smaller one
    (``100800`` -> ``1 d 4 h``, ``90`` -> ``1 min 30 s``, ``3599.7`` -> ``1 h``); ``-`` for
    None."""
    if seconds is None:
        return "-"
    total = max(0.0, float(seconds))
    for (big, big_size), (small, small_size) in pairwise(_UNITS):
        rounded = int(total / small_size + 0.5) * small_size
        if rounded >= big_size:
            whole, rest = divmod(rounded, big_size)
            return f"{whole} {big}" + (f" {rest // small_size} {small}" if rest else "")
    return f"{int(total + 0.5)} s"


def human_when(value: datetime | None) -> str:
    return as_utc(value).strftime("%Y-%m-%d %H:%M UTC") if value else "-"


def human_share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def status_label(status: str) -> str:
    return status.replace("_", " ")


# CSV ----------------------------------------------------------------------------------------
INSTANCE_COLUMNS = (
    "match_id",
    "title_id",
    "title",
    "platform",
    "post_id",
    "post_url",
    "account",
    "posted_at",
    "first_seen",
    "last_seen",
    "views",
    "score",
    "tier",
    "status",
    "status_at",
    *(f"{s.value}_at" for s in TriageStatus),
    "time_to_removal_s",
    "time_to_removal",
    "last_check",
    "last_check_at",
    "ai_generated",
    "ai_reasons",
    "signals",
    "matched_times",
    "notice_id",
    "evidence",
    "evidence_sha256",
    "hashtags",
    "note",
    "caption",
)
"""``new_at`` is when the match landed; ``evidence`` and ``evidence_sha256`` are ``; ``-joined
in the same order (``-`` where no hash was recorded)."""


def _csv_lines(rows: Iterable[list[str]]) -> Iterator[str]:
    """Each row as one CSV line, every cell made formula-safe (:func:`_cell`)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in rows:
        writer.writerow([spreadsheet_cell(v) for v in row])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


def _iso(value: datetime | None) -> str:
    return as_utc(value).isoformat() if value is not None else ""


def accounting_csv(acc: TitleAccounting) -> Iterator[str]:
    """Every instance, one row each (:data:`INSTANCE_COLUMNS`), header first. The figures are
    in :func:`accounting_summary_csv`, a second file."""

    def rows() -> Iterator[list[str]]:
        yield list(INSTANCE_COLUMNS)
        for i in acc.instances:
            yield [
                i.match_id,
                acc.title_id,
                acc.title,
                i.platform,
                i.post_id,
                i.url,
                i.account,
                _iso(i.posted_at),
                _iso(i.first_seen),
                _iso(i.last_seen),
                "" if i.views is None else str(i.views),
                f"{i.score:.4f}",
                i.tier,
                i.status.value,
                _iso(i.status_at),
                *(_iso(i.status_times.get(s.value)) for s in TriageStatus),
                "" if i.removal_s is None else f"{i.removal_s:.0f}",
                "" if i.removal_s is None else human_duration(i.removal_s),
                i.check or "",
                _iso(i.checked_at),
                "yes" if i.ai else "no",
                "; ".join(i.ai_reasons),
                "; ".join(f"{k}={v:.3f}" for k, v in i.signals.items()),
                i.matched_times,
                i.notice_id or "",
                "; ".join(e.path for e in i.evidence),
                "; ".join(e.sha256 or "-" for e in i.evidence),
                " ".join(i.hashtags),
                i.note,
                i.caption,
            ]

    return _csv_lines(rows())


SUMMARY_COLUMNS = ("figure", "platform", "status", "value")


def accounting_summary_csv(acc: TitleAccounting) -> Iterator[str]:
    """The figures as ``figure, platform, status, value`` rows (``platform`` empty: all
    platforms); durations in seconds, times in ISO 8601, the share as a fraction."""

    def num(value: float | None) -> str:
        return "" if value is None else f"{value:g}"

    def rows() -> Iterator[list[str]]:
        yield list(SUMMARY_COLUMNS)
        yield ["title_id", "", "", acc.title_id]
        yield ["title", "", "", acc.title]
        yield ["owner", "", "", acc.owner]
        yield ["generated_at", "", "", _iso(acc.generated_at)]
        yield ["instances", "", "", str(acc.total)]
        for status, n in acc.by_status.items():
            yield ["instances", "", status, str(n)]
        for platform, counts in acc.by_platform.items():
            yield ["instances", platform, "", str(counts["total"])]
            for status, n in counts.items():
                if status != "total":
                    yield ["instances", platform, status, str(n)]
        yield ["views", "", "", str(acc.views)]
        yield ["views_unknown", "", "", str(acc.views_unknown)]
        yield ["first_seen", "", "", _iso(acc.first_seen)]
        yield ["last_seen", "", "", _iso(acc.last_seen)]
        yield ["first_posted", "", "", _iso(acc.first_posted)]
        yield ["last_posted", "", "", _iso(acc.last_posted)]
        yield ["ai_generated", "", "", str(acc.ai_count)]
        yield ["ai_share", "", "", num(acc.ai_share)]
        yield ["notices_sent", "", "", str(acc.removal.notices_sent)]
        for platform, t in [("", acc.removal), *acc.removal.by_platform.items()]:
            yield ["noticed", platform, "", str(t.noticed)]
            yield ["still_up_after_notice", platform, "", str(t.still_up)]
            yield ["removed_after_notice", platform, "", str(t.count)]
            yield ["removal_median_s", platform, "", num(t.median_s)]
            yield ["removal_mean_s", platform, "", num(t.mean_s)]
            yield ["removal_p90_s", platform, "", num(t.p90_s)]
            yield ["removal_max_s", platform, "", num(t.max_s)]

    return _csv_lines(rows())


# HTML ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Picture:
    """An evidence file as the HTML shows it."""

    ref: EvidenceRef
    data_uri: str | None
    """The image itself, when it could be embedded."""
    found_sha256: str | None
    """The file's sha256 now (None: not read)."""
    problem: str
    """Why it is not shown ("missing", "not an image", "over 4 MiB"), else ""."""

    @property
    def verified(self) -> bool | None:
        """True: the file is the one recorded; False: it differs; None: nothing to compare."""
        if self.ref.sha256 is None or self.found_sha256 is None:
            return None
        return self.ref.sha256 == self.found_sha256


class _Embedder:
    def __init__(self, settings: Settings) -> None:
        self.home = settings.home.resolve()
        self.budget = MAX_EMBEDDED_BYTES

    def picture(self, ref: EvidenceRef) -> Picture:
        try:
            path = (self.home / ref.path).resolve()
        except (OSError, RuntimeError, ValueError):
            return Picture(ref, None, None, "unreadable path")
        if not path.is_relative_to(self.home):
            return Picture(ref, None, None, "outside the data home")
        if not path.is_file():
            return Picture(ref, None, None, "missing")
        mime, _ = mimetypes.guess_type(path.name)
        size = path.stat().st_size
        try:
            found = sha256_file(path)
        except OSError as exc:
            return Picture(ref, None, None, f"unreadable ({exc.strerror or exc})")
        if mime not in IMAGE_TYPES:
            return Picture(ref, None, found, "not an image")
        if size > MAX_IMAGE_BYTES:
            return Picture(ref, None, found, f"over {MAX_IMAGE_BYTES // 2**20} MiB")
        if size > self.budget:
            return Picture(ref, None, found, "not embedded: the report's image budget is spent")
        try:
            data = path.read_bytes()
        except OSError as exc:
            return Picture(ref, None, found, f"unreadable ({exc.strerror or exc})")
        self.budget -= size
        uri = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
        return Picture(ref, uri, found, "")


def _http_url(value: str) -> str | None:
    """``value`` if it is an http(s) URL fit for an ``href``; anything else shows as text."""
    from urllib.parse import urlsplit

    parts = urlsplit(value.strip())
    return value.strip() if parts.scheme in ("http", "https") and parts.netloc else None


_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.filters["duration"] = human_duration
_ENV.filters["when"] = human_when
_ENV.filters["share"] = human_share
_ENV.filters["label"] = status_label
_ENV.filters["http_url"] = _http_url


def accounting_html(settings: Settings, acc: TitleAccounting) -> str:
    """One self-contained HTML page (inline CSS, no script, images as ``data:`` URIs) that
    prints: the figures on the first page, then every instance with its evidence. Text from
    strangers is escaped (Jinja2 autoescape)."""
    embed = _Embedder(settings)
    pictures = {i.match_id: [embed.picture(ref) for ref in i.evidence] for i in acc.instances}
    return _ENV.get_template("accounting.html").render(
        acc=acc,
        pictures=pictures,
        statuses=[s.value for s in TriageStatus],
    )
