"""Fingerprint a media file once for every enabled signal, cached by content.

The cache lives under ``settings.fingerprint_dir`` as ``<sha[:2]>/<sha>-<role>.npz`` and is
keyed by the media's sha256, so a video reposted by many accounts is decoded and hashed once.
An entry made with other sampling settings is recomputed; a signal whose version or settings
changed, or that was not asked for before, is computed alone and added. Never reused stale.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from matcher.decode import Decoded, check_file, check_size, decode
from matcher.signals import Signal, signal_class
from matcher.signals.base import Fingerprint, Role, write_npz
from reelwatch.digest import sha256_file
from reelwatch.errors import InputError
from reelwatch.models import Media
from reelwatch.settings import Settings
from reelwatch.timing import stage

log = logging.getLogger(__name__)

_META = "__meta__"

SIGNAL_COST = {"face": 8, "ocr": 6, "descriptor": 5, "copy": 3, "melody": 3, "embedding": 3}
"""Rough CPU seconds of each media signal on a 60 s post (``make bench``), to start the
costliest first when signals run in parallel (:attr:`MatcherSettings.signal_threads`)."""

DECODE_VERSION = "upright"
"""Changes when decoding changes what signals see (stills turned by their EXIF orientation),
so fingerprints cached before are recomputed."""


@dataclass
class Fingerprints:
    """Every signal's fingerprint of one media file.

    ``decoded`` is the decoded media when it was just computed (the engine cuts evidence
    thumbnails from it); it is ``None`` when the fingerprints came from the cache.
    """

    media: Media
    role: Role
    signals: dict[str, Fingerprint]
    sample_fps: float
    decoded: Decoded | None = None
    keys: dict[str, str] = field(default_factory=dict)
    """Each signal's :meth:`~matcher.signals.base.Signal.config_key` when it was computed."""
    skipped: dict[str, str] = field(default_factory=dict)
    """Tracks left out because they do not decode, with why (see
    :attr:`~matcher.decode.Decoded.skipped`); kept in the cache, so a fingerprint read back
    still says that its audio (say) was never heard."""

    def only(self, names: Iterable[str]) -> Fingerprints:
        """The same fingerprints restricted to ``names``."""
        keep = set(names)
        return replace(
            self,
            signals={k: v for k, v in self.signals.items() if k in keep},
            keys={k: v for k, v in self.keys.items() if k in keep},
        )

    @property
    def duration(self) -> float:
        return float(self.media.duration or 0.0)


def signal_status(settings: Settings) -> dict[str, str | None]:
    """Each signal named in ``settings.matcher.signals``: ``None`` when it runs, else why not.

    ``InputError`` for a name that is no registered signal (a typo in the settings).
    """
    return {name: signal_class(name)(settings.matcher).unavailable() for name in _names(settings)}


def _names(settings: Settings) -> list[str]:
    return list(dict.fromkeys(settings.matcher.signals))


def enabled_signals(settings: Settings) -> list[Signal]:
    """Instances of the signals the settings ask for that can run here.

    Signals load their models lazily and share them per process, so instances are cheap.
    """
    out: list[Signal] = []
    for name in _names(settings):
        signal = signal_class(name)(settings.matcher)
        reason = signal.unavailable()
        if reason:
            log.info("signal %s is off: %s", name, reason)
            continue
        out.append(signal)
    return out


def media_signals(signals: list[Signal]) -> list[Signal]:
    """The signals that fingerprint media: those that index assets, and title signals that
    read their queries from the frames (not title cards and captions)."""
    return [s for s in signals if s.references == "assets" or s.reads_media]


def _decode_key(settings: Settings, role: Role, sample_fps: float) -> str:
    m = settings.matcher
    return (
        f"{role}|fps={sample_fps:g}|max={m.max_frames}|side={m.decode_max_side}"
        f"|still={m.still_max_side}"
        f"|audio={m.audio_rate}|kf={int(m.scene_keyframes)}|{DECODE_VERSION}"
    )


def _cache_path(settings: Settings, sha: str, role: Role) -> Path:
    return settings.fingerprint_dir / sha[:2] / f"{sha}-{role}.npz"


def _load(path: Path, decode_key: str, media_path: Path) -> Fingerprints | None:
    """The cached fingerprints made with the same decoding, those whose signal keys are still
    current (a signal whose version or settings changed is dropped, to be recomputed)."""
    try:
        with np.load(path) as data:
            meta = json.loads(str(data[_META]))
            if meta.get("decode") != decode_key:
                return None
            keys: dict[str, str] = meta.get("signals", {})
            signals: dict[str, Fingerprint] = {}
            for name in data.files:
                if name == _META:
                    continue
                sig, _, arr = name.partition("/")
                signals.setdefault(sig, {})[arr] = data[name]
    except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
        log.warning("ignoring unreadable fingerprint cache %s: %s", path, exc)
        return None
    media = Media.model_validate(meta["media"]).model_copy(update={"path": str(media_path)})
    fps = Fingerprints(media, meta["role"], signals, float(meta["sample_fps"]))
    fps.keys = {k: v for k, v in keys.items() if k in signals}
    fps.skipped = dict(meta.get("skipped", {}))
    return fps


def _save(path: Path, decode_key: str, fps: Fingerprints) -> None:
    meta = {
        "decode": decode_key,
        "signals": fps.keys,
        "role": fps.role,
        "sample_fps": fps.sample_fps,
        "media": fps.media.model_dump(mode="json"),
        "skipped": fps.skipped,
    }
    arrays = {f"{sig}/{k}": v for sig, fp in fps.signals.items() for k, v in fp.items()}
    arrays[_META] = np.array(json.dumps(meta))
    write_npz(path, arrays)


def fingerprint_file(
    path: Path | str,
    settings: Settings,
    sha256: str | None = None,
    *,
    role: Role = "query",
    signals: list[Signal] | None = None,
) -> Fingerprints:
    """Fingerprints of ``path`` for ``signals`` (default: every enabled media signal), from
    the cache when possible.

    ``role="reference"`` is for catalog assets (denser sampling, crop variants); queries
    are posts. Pass ``sha256`` when it is known (downloads are content-addressed) to skip
    hashing the file. The cache keeps every signal's fingerprint of a file made with the same
    decoding, so asking for a signal that is missing (or whose version changed) decodes the
    file once more and computes only that signal. Raises ``InputError`` for missing or
    unreadable media.
    """
    [result] = fingerprint_files([(path, sha256)], settings, role=role, signals=signals)
    if isinstance(result, InputError):
        raise result
    return result


@dataclass
class _Pending:
    """One file of :func:`fingerprint_files` whose cache lacks some signals."""

    slot: int
    cache: Path
    fps: Fingerprints
    decoded: Decoded
    missing: list[Signal]


def fingerprint_files(
    items: Sequence[tuple[Path | str, str | None]],
    settings: Settings,
    *,
    role: Role = "query",
    signals: list[Signal] | None = None,
) -> list[Fingerprints | InputError]:
    """:func:`fingerprint_file` of several ``(path, sha256 or None)`` items at once, in
    order; an item that cannot be read gives its ``InputError`` in its place and the others
    go on.

    Each file is decoded once; then each signal fingerprints every file that lacks it in one
    call (:meth:`~matcher.signals.base.Signal.fingerprint_many`), so models run on batches
    of frames from several posts.
    """
    m = settings.matcher
    sample_fps = m.reference_sample_fps if role == "reference" else m.sample_fps
    wanted = media_signals(enabled_signals(settings) if signals is None else signals)
    decode_key = _decode_key(settings, role, sample_fps)
    limits = settings.media_limits(role)
    results: list[Fingerprints | InputError | None] = [None] * len(items)
    pending: list[_Pending] = []
    for slot, (raw_path, sha256) in enumerate(items):
        path = Path(raw_path)
        try:
            check_size(path, check_file(path), limits)  # before hashing a huge file
            sha = sha256 or sha256_file(path)
            cache = _cache_path(settings, sha, role)
            cached = _load(cache, decode_key, path) if cache.exists() else None
            missing = [
                s for s in wanted if cached is None or cached.keys.get(s.name) != s.config_key()
            ]
            if cached is not None and not missing:
                results[slot] = cached.only(s.name for s in wanted)
                continue
            with stage("decode"):
                decoded = decode(
                    path,
                    sample_fps,
                    m.max_frames,
                    max_side=m.decode_max_side,
                    still_max_side=m.still_max_side,
                    with_audio=any(s.needs_audio for s in missing),
                    audio_rate=m.audio_rate,
                    keyframes=m.scene_keyframes,
                    sha256=sha,
                    limits=limits,
                )
        except InputError as exc:
            results[slot] = exc
            continue
        fps = cached or Fingerprints(decoded.media, role, {}, sample_fps)
        fps.decoded = decoded
        fps.skipped.update(decoded.skipped)
        pending.append(_Pending(slot, cache, fps, decoded, missing))
    jobs = [(s, todo) for s in wanted if (todo := [p for p in pending if s in p.missing])]

    def run(job: tuple[Signal, list[_Pending]]) -> list[Fingerprint]:
        s, todo = job
        with stage(f"signal.{s.name}"):
            return s.fingerprint_many([p.decoded for p in todo], role)

    threads = min(m.signal_threads, len(jobs))
    if threads > 1:
        # Signals are independent and each keeps to its own models; their native code
        # (ONNX Runtime, OpenCV, dlib, FFT) runs outside the GIL, so a single-threaded
        # one (face detection) overlaps with the others. Costliest first.
        jobs.sort(key=lambda job: -SIGNAL_COST.get(job[0].name, 1))
        with ThreadPoolExecutor(threads, thread_name_prefix="reelwatch-signal") as pool:
            outputs = list(pool.map(run, jobs))
    else:
        outputs = [run(job) for job in jobs]
    for (s, todo), prints in zip(jobs, outputs, strict=True):
        for p, fp in zip(todo, prints, strict=True):
            p.fps.signals[s.name] = fp
            p.fps.keys[s.name] = s.config_key()
    for p in pending:
        _save(p.cache, decode_key, p.fps)
        results[p.slot] = p.fps.only(s.name for s in wanted)
    return [r for r in results if r is not None]
