"""The domain model shared by every stage.

Identities are deterministic so that re-processing updates rather than duplicates:
a Post is ``platform:post_id``, a Match is ``platform:post_id:title_id``, an Alert is
``match_id:channel:recipient``, and a Media is its sha256.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


def utcnow() -> datetime:
    return datetime.now(UTC)


_SLUG_RE = re.compile(r"[^a-z0-9]+")


def slugify(name: str) -> str:
    """Lower-case ASCII id for a title or talent name (``The Crown`` -> ``the-crown``)."""
    slug = _SLUG_RE.sub("-", name.lower()).strip("-")
    return slug or "untitled"


def normalize_hashtag(tag: str) -> str:
    """``#Bridgerton`` and ``bridgerton`` are the same hashtag."""
    return tag.strip().lstrip("#").lower()


class Confidence(StrEnum):
    """Tier of a match; compare with :meth:`rank`."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    @property
    def rank(self) -> int:
        return {"low": 0, "medium": 1, "high": 2}[self.value]

    def at_least(self, other: Confidence | str) -> bool:
        return self.rank >= Confidence(other).rank


class TriageStatus(StrEnum):
    """Where a match is in the enforcement loop: detect, validate, enforce, confirm removal.

    ``new`` -> ``confirmed`` (a reviewer agrees) -> ``notice_drafted`` (a takedown notice
    names it) -> ``notice_sent`` (a reviewer marked the notice sent; re-checks start) ->
    ``removed`` (the post is gone), ``rejected`` (the platform refused the notice) or, after a
    removal, ``reinstated`` (the post came back). ``dismissed``: not infringing. Reviewers may
    set any status; re-checks move only ``notice_sent``, ``removed`` and ``reinstated``.
    """

    NEW = "new"
    CONFIRMED = "confirmed"
    NOTICE_DRAFTED = "notice_drafted"
    NOTICE_SENT = "notice_sent"
    REMOVED = "removed"
    REJECTED = "rejected"
    REINSTATED = "reinstated"
    DISMISSED = "dismissed"

    @classmethod
    def _missing_(cls, value: object) -> TriageStatus | None:
        # Stores and scripts from before the lifecycle said "takedown_requested" for what is
        # now "notice_sent"; they keep working.
        return cls.NOTICE_SENT if value == "takedown_requested" else None

    @property
    def at_field(self) -> str | None:
        """The :class:`Enforcement` field that records when a match last entered it (none for
        ``new``: that is ``Match.created_at``)."""
        return None if self is TriageStatus.NEW else f"{self.value}_at"


class PostState(StrEnum):
    """Where a post is in the pipeline; ``failed`` posts carry ``error``."""

    DISCOVERED = "discovered"
    DOWNLOADED = "downloaded"
    FINGERPRINTED = "fingerprinted"
    MATCHED = "matched"
    FAILED = "failed"


class AssetKind(StrEnum):
    VIDEO = "video"
    IMAGE = "image"
    AUDIO = "audio"
    FACE = "face"


class Author(BaseModel):
    id: str = ""
    handle: str = ""
    nickname: str | None = None
    followers: int | None = None


class PostStats(BaseModel):
    views: int | None = None
    likes: int | None = None
    shares: int | None = None
    comments: int | None = None


class Provenance(BaseModel):
    """What was captured, when and from where: the evidence behind a Post's fields."""

    raw: dict[str, Any] = Field(default_factory=dict)
    """The item exactly as the platform sent it (one element of its JSON answer)."""
    captured_at: datetime = Field(default_factory=utcnow)
    source_url: str = ""
    """The URL of the answer the item came in (an API response, a page, a feed)."""
    user_agent: str = ""
    status: int | None = None
    """HTTP status of that answer."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Response headers of that answer (cookies removed)."""
    method: str = ""
    """How it was captured: ``browser`` (the platform's own page), ``http``, ``ytdlp``, ``api``."""
    query: str = ""
    """What was being listed: ``#tag``, ``@account``, ``search: words`` or a URL."""
    screenshot: str | None = None
    """Path of a screenshot of the post's page taken at capture time, relative to the data home."""


class Post(BaseModel):
    platform: str
    post_id: str
    url: str
    author: Author = Field(default_factory=Author)
    caption: str = ""
    hashtags: list[str] = Field(default_factory=list)
    posted_at: datetime | None = None
    stats: PostStats = Field(default_factory=PostStats)
    media_url: str | None = None
    duration: float | None = None
    ai_label: str | None = None
    """What the platform says about AI generation (TikTok ``AIGCDescription``), if anything."""
    is_ai_labelled: bool = False
    watch: str | None = None
    hashtag: str | None = None
    first_seen: datetime = Field(default_factory=utcnow)
    last_seen: datetime = Field(default_factory=utcnow)
    provenance: Provenance = Field(default_factory=Provenance)
    state: PostState = PostState.DISCOVERED
    error: str | None = None
    media_sha256: str | None = None
    failed_at: datetime | None = None
    """When the post failed (set while ``state`` is failed)."""
    failed_step: str | None = None
    """The step it failed at: ``download``, ``fingerprint``, ``match``, ``land``, ``alert``."""
    failed_settings: str | None = None
    """Digest of the settings a failure can depend on (``download`` and the media limits) when
    it failed; a later run under other settings re-runs a permanent failure once
    (:mod:`workers.retry`)."""
    failed_transient: bool = False
    """True when the post failed on a fault worth retrying whose retries ran out (429s, a
    timeout): ``reelwatch posts retry`` re-runs it, a settings change does not."""
    retries: int = 0
    """Times the post was put back through the pipeline after failing."""

    @property
    def key(self) -> str:
        return post_key(self.platform, self.post_id)


def post_key(platform: str, post_id: str) -> str:
    return f"{platform}:{post_id}"


class Media(BaseModel):
    """A downloaded or local media file, identified by content."""

    sha256: str
    path: str
    bytes: int
    duration: float | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    video_codec: str | None = None
    audio_codec: str | None = None
    c2pa: dict[str, Any] | None = None
    captured_at: datetime | None = None
    """When the file was first downloaded (or first read, for a local file)."""
    source_url: str | None = None
    """What it was fetched from: the post's URL handed to the downloader, or a local file's
    ``file://`` URL."""
    media_url: str | None = None
    """The URL the file's bytes came from, where the downloader names one (a CDN address)."""
    first_post: str | None = None
    """The key of the post whose download first stored the file (later reposts share it)."""


class Talent(BaseModel):
    id: str
    name: str
    titles: list[str] = Field(default_factory=list)


class TitlePolicy(BaseModel):
    """What a match on this title must show before it counts, like Content ID's match policies.

    A title match that misses the policy is kept (with its evidence and the reason) at the low
    tier; ``hold_for_review`` caps matches at medium, so they go to the board but never alert
    on their own.
    """

    min_matched_s: float = 0.0
    """Seconds of the post that the counted signals must cover (0: no minimum)."""
    min_query_share: float = 0.0
    """Or this share (0-1) of the post; when both are set, meeting either one is enough."""
    signals: list[str] = Field(default_factory=list)
    """Signals that count for this title (empty: all). Others are shown, not scored."""
    hold_for_review: bool = False

    def describe(self) -> str:
        parts = []
        if self.min_matched_s or self.min_query_share:
            need = []
            if self.min_matched_s:
                need.append(f"{self.min_matched_s:g} s")
            if self.min_query_share:
                need.append(f"{self.min_query_share:.0%} of the post")
            parts.append("at least " + " or ".join(need))
        if self.signals:
            parts.append("signals " + ", ".join(self.signals))
        if self.hold_for_review:
            parts.append("hold for review")
        return "; ".join(parts) or "default"


class Title(BaseModel):
    id: str
    name: str
    owner: str = ""
    aliases: list[str] = Field(default_factory=list)
    hashtags: list[str] = Field(default_factory=list)
    description: str = ""
    talents: list[str] = Field(default_factory=list)
    policy: TitlePolicy = Field(default_factory=TitlePolicy)


class Asset(BaseModel):
    """A reference item of a Title (a clip, a still, a soundtrack, a face of a Talent)."""

    id: str
    title_id: str
    kind: AssetKind
    path: str
    sha256: str
    name: str = ""
    duration: float | None = None
    talent_id: str | None = None
    added_at: datetime = Field(default_factory=utcnow)
    notes: list[str] = Field(default_factory=list)
    """What of the file is not used, and why ("audio skipped: undecodable audio track (...)")."""
    face_box: tuple[int, int, int, int] | None = None
    """Where the talent is in a face asset: x0, y0, x1, y1 in pixels of the file as shown
    (after EXIF orientation), whatever size frames are decoded at; ``None`` when the face
    signal chose it alone or the still holds only the talent."""


class EvidenceFile(BaseModel):
    """One evidence file as written: where it is (relative to the data home), its sha256 and
    its size, so ``reelwatch verify`` can tell whether it is still the file that was cut."""

    path: str
    sha256: str
    bytes: int


class Segment(BaseModel):
    """A stretch of the query that matches a stretch of a reference asset."""

    signal: str
    query_start: float
    query_end: float
    ref_asset: str
    ref_start: float
    ref_end: float
    score: float = 0.0
    distance: float | None = None
    """Signal-specific distance (e.g. mean PDQ Hamming distance), lower is closer."""
    evidence: list[str] = Field(default_factory=list)
    """Paths (relative to the data home) of evidence images: query frame, reference frame
    (for faces: the two face crops)."""
    evidence_files: list[EvidenceFile] = Field(default_factory=list)
    """The sha256 and size of each of ``evidence`` as it was written (empty on matches landed
    before evidence was hashed)."""
    talent: str | None = None
    """The person a face segment names."""
    note: str = ""
    """What matched, in words ("audio offset +12.3 s", "caption names 'Bridgerton'")."""

    @property
    def timed(self) -> bool:
        """False for evidence without a place in the post (a caption, a hashtag)."""
        return self.query_end > self.query_start

    @property
    def offset(self) -> float:
        """Reference time minus query time at the segment start (the audio/video offset)."""
        return round(self.ref_start - self.query_start, 3)


class AIFlag(BaseModel):
    is_ai: bool = False
    reasons: list[str] = Field(default_factory=list)


class AssetRef(BaseModel):
    """A reference asset as the catalog held it when a match was made."""

    id: str
    kind: AssetKind
    name: str = ""
    sha256: str = ""
    duration: float | None = None
    talent: str | None = None
    """The talent's name, for a face asset."""
    added_at: datetime | None = None


class WorkRef(BaseModel):
    """The copyrighted work a match is about, as the catalog described it when the match was
    made: the owner, the description and the reference assets the segments name. Notices,
    evidence packs and the accounting read it from the match, so they need no catalog (a
    board on Elasticsearch may have none) and show the reference as it was matched."""

    owner: str = ""
    description: str = ""
    aliases: list[str] = Field(default_factory=list)
    assets: list[AssetRef] = Field(default_factory=list)


class TitleMatch(BaseModel):
    """The matcher's verdict on one title for one media file."""

    title_id: str
    title: str
    score: float
    confidence: Confidence
    signals: dict[str, float] = Field(default_factory=dict)
    segments: list[Segment] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    """Why the score and tier are what they are (policy, signals left out)."""
    work: WorkRef | None = None


class CheckOutcome(StrEnum):
    """What a re-check of a post through its source found."""

    UP = "up"
    REMOVED = "removed"
    UNKNOWN = "unknown"
    """The source did not say (429, a timeout, a captcha): try again later, change nothing."""


class Enforcement(BaseModel):
    """When a match entered each status of the lifecycle, and what re-checks of its post found.

    Each ``<status>_at`` is the latest time the match entered that status (``new_at`` is not
    kept: ``Match.created_at`` is that). ``removal_s`` is the time to removal: from the notice
    being marked sent to the post found removed, set the first time it is removed.
    """

    confirmed_at: datetime | None = None
    notice_drafted_at: datetime | None = None
    notice_sent_at: datetime | None = None
    removed_at: datetime | None = None
    rejected_at: datetime | None = None
    reinstated_at: datetime | None = None
    dismissed_at: datetime | None = None
    notice_id: str | None = None
    """The latest notice that names this match."""
    removal_s: float | None = None
    checked_at: datetime | None = None
    """When the post was last re-checked through its source."""
    check: CheckOutcome | None = None
    check_detail: str = ""
    """What the source answered, in one line ("HTTP 404", "yt-dlp: Video unavailable")."""
    checks: int = 0
    """How many checks in a row found ``check`` (``removal.confirm_checks`` counts on it)."""


class HistoryEntry(BaseModel):
    at: datetime = Field(default_factory=utcnow)
    status: TriageStatus
    note: str = ""
    actor: str = ""


class Match(BaseModel):
    """A (post, title) match as landed for triage."""

    post_key: str
    platform: str
    post_id: str
    post_url: str
    account: str = ""
    caption: str = ""
    hashtags: list[str] = Field(default_factory=list)
    title_id: str
    title: str
    score: float
    confidence: Confidence
    signals: dict[str, float] = Field(default_factory=dict)
    segments: list[Segment] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    ai: AIFlag = Field(default_factory=AIFlag)
    work: WorkRef | None = None
    """The work as the catalog described it at match time (None: landed before it was kept)."""
    media_sha256: str | None = None
    watch: str | None = None
    views: int | None = None
    """The post's play count when the match last landed (the accounting's "views reached")."""
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    status: TriageStatus = TriageStatus.NEW
    assignee: str | None = None
    note: str = ""
    history: list[HistoryEntry] = Field(default_factory=list)
    enforcement: Enforcement = Field(default_factory=Enforcement)

    @property
    def id(self) -> str:
        return match_id(self.post_key, self.title_id)


def match_id(post_key_: str, title_id: str) -> str:
    return f"{post_key_}:{title_id}"


class AlertStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class Alert(BaseModel):
    """One notification of one match to one recipient on one channel; never sent twice."""

    match_id: str
    channel: str
    recipient: str
    status: AlertStatus = AlertStatus.PENDING
    created_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = None
    error: str | None = None
    message_id: str | None = None

    @property
    def id(self) -> str:
        return f"{self.match_id}:{self.channel}:{self.recipient}"


class NoticeStatus(StrEnum):
    DRAFTED = "drafted"
    SENT = "sent"
    WITHDRAWN = "withdrawn"


class Notice(BaseModel):
    """A takedown notice to one platform about one account's copies of one title.

    Drafting never sends anything: a reviewer submits ``text`` (or the platform's form, whose
    fields are ``form``) and then marks the notice sent, which moves its matches to
    ``notice_sent`` and starts the re-checks.
    """

    id: str
    platform: str
    account: str
    title_id: str
    title: str
    match_ids: list[str]
    urls: list[str]
    status: NoticeStatus = NoticeStatus.DRAFTED
    created_at: datetime = Field(default_factory=utcnow)
    created_by: str = ""
    sent_at: datetime | None = None
    sent_by: str = ""
    reference: str = ""
    """The platform's case or ticket number, entered when the notice is marked sent."""
    template: str = ""
    """The file under ``config/notices/`` the notice was drafted from."""
    subject: str = ""
    text: str = ""
    """The notice letter, with every DMCA 512(c)(3) element, ready to send."""
    form_url: str = ""
    """Where the platform takes copyright reports."""
    form: dict[str, str] = Field(default_factory=dict)
    """The platform form's fields (label -> value), filled in."""
    note: str = ""
