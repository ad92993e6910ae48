"""Re-created melodies: notes transcribed by basic-pitch, interval/rhythm n-gram hashes.

AI video models re-play a title's theme in another key, at another tempo, on other
instruments. Nothing of the waveform survives (Chromaprint sees different chroma, different
timing), but the *tune* does: the steps between consecutive notes in semitones and the
ratios between consecutive note spacings do not change when the whole melody is transposed
or played faster. This signal hashes those.

Transcription
    Spotify's basic-pitch model (``nmp.onnx`` from the PyPI package ``basic-pitch`` 0.4.0,
    Apache-2.0, 230 kB; loaded by path with onnxruntime, the package's own code is never
    imported) reads 22050 Hz mono audio in windows of :data:`WINDOW_SAMPLES` (2 s less one
    hop) and returns, per 256-sample frame (86.13 frames a second) and per piano key
    (bin 0 is MIDI 21, A0), a note-activity and an onset posteriorgram (and a finer pitch
    contour, unused here). The decoded 16 kHz soundtrack is resampled with a polyphase
    filter; windows overlap by :data:`OVERLAP_FRAMES` frames, of which each side's half is
    dropped (the model is unsure at window edges), so the kept frames tile the timeline
    exactly. Notes are onset peaks (local maxima over time above ``onset_threshold``)
    extended while the note posterior stays above ``frame_threshold``; short ones are
    dropped.

Melody
    The *skyline*: at each onset, the highest note, unless a higher melody note is still
    sounding (an accompaniment chord under a held note is not a melody note). A note an
    octave or two above a louder simultaneous note is taken for an overtone the model
    mistook for a note, and is skipped. The fingerprint is that note list (onset, end,
    MIDI pitch, strength): small, readable, and the index derives everything else from it.

Hashes
    Every run of ``ngram_notes`` consecutive melody notes gives one key: its
    ``ngram_notes - 1`` pitch intervals (clipped to +-15 semitones) and its
    ``ngram_notes - 2`` inter-onset-interval ratios quantised on a log2 grid of half steps
    (so 1:1, 1.5:1 and 2:1 are different, 1.3:1 and 1.5:1 are one value: onsets are only
    known to a frame or two). Keys pack into one 64-bit integer; the index is an inverted
    file of sorted keys (numpy arrays; per-asset note lists persisted with
    :func:`~matcher.signals.base.write_npz`, keys rebuilt on load).

Search
    Each query n-gram found in a reference gives a pair (query note i, reference note j).
    A true re-creation gives a *chain* of pairs along one diagonal ``j - i`` (a missed or an
    extra note moves it by one); chance agreements of a common n-gram are scattered. The
    longest chains per reference are found by dynamic programming, then the reference
    onsets are fitted against the query onsets: the slope is the tempo ratio (any from
    1/2x to 2x), and chains whose notes stray from the line are refused. A chain needs
    ``min_run`` n-grams.

    Agreement of common steps proves little: a chain's *surprise* is what its agreeing
    intervals and rhythm ratios say in bits (``-log2`` of how common each is among the
    catalog's melody steps, given the step before, mixed with a prior), less ``log2`` of the
    alignments chance had (query steps x catalog steps) and of the choices each skip or
    drift of the chain had. A hit needs ``min_surprise_bits``; its ``distance`` is
    ``2 ** -bits``, about the expected number of chance agreements as good.

Score
    A lead, never proof on its own: ``max_score * (1 - exp(-B / 12))`` for ``B`` bits above
    chance, so it never passes ``max_score`` (0.6 by default, and always under
    ``high_threshold``). The engine fuses signals with noisy-OR, so a melody at 0.6 and
    another signal at 0.4 give 0.76 (high); the melody alone stays at medium at most:
    themes are short, and tunes from one scale and one style share fragments by chance.
"""

from __future__ import annotations

import functools
import importlib.util
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from matcher import accel
from matcher.decode import Decoded
from matcher.signals.base import (
    Fingerprint,
    Role,
    Signal,
    SignalHit,
    SignalIndex,
    load_per_asset,
    save_per_asset,
)
from reelwatch.errors import InputError
from reelwatch.models import AssetKind

MODEL_RATE = 22050
"""Sample rate basic-pitch was trained on."""
FFT_HOP = 256
"""Samples per output frame."""
FRAME_S = FFT_HOP / MODEL_RATE
"""Seconds per posteriorgram frame (86.13 frames a second)."""
WINDOW_SAMPLES = 2 * MODEL_RATE - FFT_HOP
"""The model's fixed input length: 43844 samples, 172 output frames."""
WINDOW_FRAMES = 172
OVERLAP_FRAMES = 30
"""Frames shared by neighbouring windows; half of them is dropped at each window edge."""
KEPT_FRAMES = WINDOW_FRAMES - OVERLAP_FRAMES
"""Frames each window contributes (142), so windows advance by ``KEPT_FRAMES * FFT_HOP``."""
LOWEST_MIDI = 21
"""MIDI pitch of posteriorgram bin 0 (A0, 27.5 Hz); 88 bins, one per piano key."""
_INPUT = "serving_default_input_2:0"
_NOTE_OUT, _ONSET_OUT = "StatefulPartitionedCall:1", "StatefulPartitionedCall:2"
_BATCH = 8
"""Windows per model call (16 s of audio)."""
_QUIET_PEAK = 10 ** (-50 / 20)
"""Audio whose peak stays under -50 dBFS holds no melody worth transcribing."""

_ONSET_MERGE_FRAMES = 3
"""Onset peaks of one pitch closer than this (35 ms) are one onset."""
_FRAME_GAP = 2
"""Frames a note may dip under ``frame_threshold`` and go on (vibrato, a beat)."""
_REONSET = 0.8
"""Onset posterior that splits a still-sounding note in two (see :func:`extract_notes`)."""
"""Frames a note may dip under ``frame_threshold`` and go on (vibrato, a beat)."""
_CHORD_S = 0.05
"""Onsets this close are struck together: the skyline keeps the top one."""
_OVERTONE_RATIO = 0.8
"""A note at an overtone's distance above a simultaneous note (:func:`_overtone_step`) and
weaker than this share of it is taken for that overtone."""

_INTERVAL_CLIP = 15
_INTERVAL_BITS = 5
_RATIO_CLIP = 4
_RATIO_BITS = 4
_RATIO_STEPS = 2.0
"""IOI ratios are quantised as ``round(2 * log2(ratio))``."""
_MAX_POSTINGS = 64
"""Keys held more often than this across the index (a repeated note, a scale run) are too
common to propose anything and are skipped."""
_MAX_GAP = 7
"""Query n-grams a chain may skip: one wrong note spoils the ``ngram_notes`` n-grams that
hold it, a missed or extra note a few more."""
_CHAINS_PER_ASSET = 3
_MAX_RESIDUAL_S = 0.12
"""Median distance (reference seconds) of a chain's onsets from its fitted tempo line."""
_MIN_SLOPE, _MAX_SLOPE = 0.5, 2.0
_TAU_BITS = 12.0
"""Surprise (bits above chance) giving ``1 - 1/e`` of ``max_score``."""
_PRIOR_WEIGHT = 200.0
"""Pseudo-steps of the prior mixed into the catalog's own step statistics (a small catalog
says little about how common a step is)."""


def _prior(values: np.ndarray, scale: float) -> np.ndarray:
    p = np.exp(-np.abs(values) / scale)
    return p / p.sum()


_CONTEXT_WEIGHT = 20.0
"""Pseudo-counts of the marginal in each previous-step context."""
_INTERVAL_VALUES = np.arange(-_INTERVAL_CLIP, _INTERVAL_CLIP + 1)
_RATIO_VALUES = np.arange(-_RATIO_CLIP, _RATIO_CLIP + 1)
_INTERVAL_PRIOR = _prior(_INTERVAL_VALUES, 3.0)
"""Melodies move mostly by small steps; a fifth or more is rarer."""
_RATIO_PRIOR = _prior(_RATIO_VALUES, 0.7)
"""Most consecutive notes keep the rhythm's pace (ratio 1)."""


@functools.lru_cache(maxsize=1)
def default_model_path() -> Path | None:
    """``nmp.onnx`` inside the installed ``basic-pitch`` package, found without importing
    it (its ``__init__`` pulls TensorFlow); ``None`` when the package is not installed."""
    spec = importlib.util.find_spec("basic_pitch")
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        path = Path(loc) / "saved_models" / "icassp_2022" / "nmp.onnx"
        if path.is_file():
            return path
    return None


@functools.lru_cache(maxsize=4)
def _session(path: str, threads: int, device: str) -> Any:
    """One session per model, thread count and device (its providers: see
    :func:`matcher.accel.onnx_providers`)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return accel.inference_session(path, opts, device)


def to_model_rate(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono float32 audio resampled to :data:`MODEL_RATE` with a polyphase filter."""
    from scipy.signal import resample_poly

    a = np.asarray(audio, np.float32).reshape(-1)
    if sample_rate == MODEL_RATE or a.size == 0:
        return a
    ratio = Fraction(MODEL_RATE, int(sample_rate))
    return resample_poly(a, ratio.numerator, ratio.denominator).astype(np.float32)


def posteriorgrams(
    audio: np.ndarray, sample_rate: int, model: Path, threads: int = 2, device: str = "auto"
) -> tuple[np.ndarray, np.ndarray]:
    """basic-pitch's (note, onset) posteriorgrams of mono ``audio``: ``(frames, 88)`` each,
    frame ``k`` at ``k * FRAME_S`` seconds, bin ``b`` at MIDI ``LOWEST_MIDI + b``.

    The audio is peak-normalised first (a quiet copy is the same tune). Windows start
    ``OVERLAP_FRAMES / 2`` frames early so that the kept middle of window ``w`` covers
    frames ``[w * KEPT_FRAMES, (w + 1) * KEPT_FRAMES)`` of the timeline exactly.
    """
    y = to_model_rate(audio, sample_rate)
    n_frames = math.ceil(y.size / FFT_HOP)
    if n_frames == 0:
        return np.zeros((0, 88), np.float32), np.zeros((0, 88), np.float32)
    peak = float(np.max(np.abs(y)))
    if peak > 0:
        y = y * (0.9 / peak)
    lead = (OVERLAP_FRAMES // 2) * FFT_HOP
    step = KEPT_FRAMES * FFT_HOP
    n_windows = math.ceil(n_frames / KEPT_FRAMES)
    padded = np.zeros((n_windows - 1) * step + WINDOW_SAMPLES, np.float32)
    padded[lead : lead + y.size] = y
    windows = np.lib.stride_tricks.sliding_window_view(padded, WINDOW_SAMPLES)[::step]
    session = _session(str(model), threads, accel.parse_device(device).name)
    notes: list[np.ndarray] = []
    onsets: list[np.ndarray] = []
    keep = slice(OVERLAP_FRAMES // 2, OVERLAP_FRAMES // 2 + KEPT_FRAMES)
    for i in range(0, n_windows, _BATCH):
        batch = np.ascontiguousarray(windows[i : i + _BATCH])[:, :, None]
        note, onset = session.run([_NOTE_OUT, _ONSET_OUT], {_INPUT: batch})
        notes.append(note[:, keep].reshape(-1, 88))
        onsets.append(onset[:, keep].reshape(-1, 88))
    return np.concatenate(notes)[:n_frames], np.concatenate(onsets)[:n_frames]


@dataclass(frozen=True)
class Notes:
    """Transcribed notes, sorted by onset: seconds, MIDI pitch, mean note posterior."""

    onset: np.ndarray
    end: np.ndarray
    pitch: np.ndarray
    strength: np.ndarray

    def __len__(self) -> int:
        return len(self.onset)

    def take(self, rows: Sequence[int] | np.ndarray) -> Notes:
        r = np.asarray(rows, np.int64)
        return Notes(self.onset[r], self.end[r], self.pitch[r], self.strength[r])


def extract_notes(
    note: np.ndarray,
    onset: np.ndarray,
    onset_threshold: float,
    frame_threshold: float,
    min_note_s: float,
) -> Notes:
    """Notes from posteriorgrams: onset peaks extended while the note posterior holds.

    An onset peak on a pitch that is still sounding splits the note only when it is sure
    (:data:`_REONSET`): drums and chords struck under a held note make the model see weak
    onsets at every sounding pitch, while a real repeated note gives a clear one.
    """
    n_frames = len(note)
    prev = np.vstack([np.zeros((1, 88), onset.dtype), onset[:-1]])
    nxt = np.vstack([onset[1:], np.zeros((1, 88), onset.dtype)])
    peak = (onset >= onset_threshold) & (onset >= prev) & (onset > nxt)
    min_frames = max(1, round(min_note_s / FRAME_S))
    reonset = max(onset_threshold, _REONSET)
    rows: list[tuple[float, float, int, float]] = []
    for b in np.flatnonzero(peak.any(axis=0)):
        starts = np.flatnonzero(peak[:, b])
        active = note[:, b] >= frame_threshold
        k = 0
        while k < len(starts):
            f0 = int(starts[k])
            k += 1
            f, gap, end = f0, 0, f0
            while f < n_frames and gap <= _FRAME_GAP:
                if k < len(starts) and f == starts[k]:
                    if f - f0 < _ONSET_MERGE_FRAMES or (gap == 0 and onset[f, b] < reonset):
                        k += 1  # the same note goes on
                    else:
                        break
                if active[f]:
                    end, gap = f + 1, 0
                else:
                    gap += 1
                f += 1
            while k < len(starts) and starts[k] < end:
                k += 1
            if end - f0 < min_frames:
                continue
            strength = float(np.mean(note[f0:end, b]))
            rows.append((f0 * FRAME_S, end * FRAME_S, LOWEST_MIDI + int(b), strength))
    rows.sort()
    if not rows:
        return Notes(
            np.zeros(0, np.float32),
            np.zeros(0, np.float32),
            np.zeros(0, np.int16),
            np.zeros(0, np.float32),
        )
    arr = np.array(rows, np.float64)
    return Notes(
        arr[:, 0].astype(np.float32),
        arr[:, 1].astype(np.float32),
        arr[:, 2].astype(np.int16),
        arr[:, 3].astype(np.float32),
    )


def skyline(notes: Notes) -> Notes:
    """The melody: per group of simultaneous onsets the highest real note, unless a higher
    melody note is still sounding (see the module docs)."""
    chosen: list[int] = []
    i, n = 0, len(notes)
    while i < n:
        j = i
        while j < n and notes.onset[j] - notes.onset[i] <= _CHORD_S:
            j += 1
        group = list(range(i, j))
        i = j
        real = [
            g
            for g in group
            if not any(
                _overtone_step(int(notes.pitch[g]) - int(notes.pitch[h]))
                and notes.strength[g] < _OVERTONE_RATIO * notes.strength[h]
                for h in group
            )
        ]
        top = max(real, key=lambda g: (int(notes.pitch[g]), float(notes.strength[g])))
        if chosen:
            held = chosen[-1]
            still = notes.end[held] - _CHORD_S > notes.onset[top]
            if still and notes.pitch[held] > notes.pitch[top]:
                continue
        chosen.append(top)
    return notes.take(chosen)


def _overtone_step(semitones: int) -> bool:
    """Whether a note this far above another may be one of its overtones: the 2nd and 3rd
    harmonics (12, 19 semitones) or anything from the 4th up (24 and more; real strings and
    pianos stretch the upper harmonics sharp, so they land between the tempered steps)."""
    return semitones in (12, 19) or semitones >= 23


def transitions(onset: np.ndarray, pitch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per step from note ``j`` to ``j + 1``: the interval in semitones and the quantised
    ratio of its inter-onset interval to the previous one (row 0, with no previous step,
    holds 0)."""
    steps = np.clip(np.diff(np.asarray(pitch, np.int64)), -_INTERVAL_CLIP, _INTERVAL_CLIP)
    ioi = np.maximum(np.diff(np.asarray(onset, np.float64)), FRAME_S)
    ratios = np.zeros(len(steps), np.int64)
    if len(ioi) > 1:
        ratios[1:] = np.round(_RATIO_STEPS * np.log2(ioi[1:] / ioi[:-1]))
    return steps, np.clip(ratios, -_RATIO_CLIP, _RATIO_CLIP)


def ngram_keys(onset: np.ndarray, pitch: np.ndarray, n: int) -> np.ndarray:
    """One 64-bit key per run of ``n`` consecutive notes (see the module docs); the key of
    the run starting at note ``i`` is at row ``i``."""
    count = len(pitch) - n + 1
    if count <= 0 or n < 3:
        return np.zeros(0, np.uint64)
    steps, ratio_rows = transitions(onset, pitch)
    ratios = ratio_rows[1:]
    key = np.zeros(count, np.uint64)
    for k in range(n - 1):
        v = (steps[k : k + count] + _INTERVAL_CLIP).astype(np.uint64)
        key = (key << np.uint64(_INTERVAL_BITS)) | v
    for k in range(n - 2):
        v = (ratios[k : k + count] + _RATIO_CLIP).astype(np.uint64)
        key = (key << np.uint64(_RATIO_BITS)) | v
    return key


def _bits(pairs: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """``-log2 P(next | previous)`` from bigram counts, backed off to the marginal."""
    marginal = pairs.sum(axis=0)
    p_marg = (marginal + _PRIOR_WEIGHT * prior) / (marginal.sum() + _PRIOR_WEIGHT)
    rows = pairs.sum(axis=1, keepdims=True)
    p = (pairs + _CONTEXT_WEIGHT * p_marg[None]) / (rows + _CONTEXT_WEIGHT)
    return np.asarray(-np.log2(p))


class MelodyIndex(SignalIndex):
    """Reference melodies per asset and an inverted file of their n-gram keys.

    Only the note lists are persisted (one ``.npz``, replaced atomically); keys are derived
    on add and load. The merged sorted key table is rebuilt lazily on the first search after
    a change: a sort of a few integers per reference note, far cheaper than transcription.
    """

    FILE = "melody.npz"

    def __init__(self, ngram_notes: int = 5) -> None:
        self.ngram_notes = ngram_notes
        self.onsets: dict[int, np.ndarray] = {}
        self.pitches: dict[int, np.ndarray] = {}
        self.keys: dict[int, np.ndarray] = {}
        self._table: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._background: tuple[np.ndarray, np.ndarray, int] | None = None

    @classmethod
    def load(cls, directory: Path) -> MelodyIndex:
        idx = cls()
        path = directory / cls.FILE
        if path.exists():
            with np.load(path) as data:
                if "ngram_notes" in data.files:
                    idx.ngram_notes = int(data["ngram_notes"])
                for num, arrays in load_per_asset(data).items():
                    idx._add(num, arrays["onset"], arrays["pitch"])
        return idx

    def add(self, asset_num: int, fingerprint: Fingerprint) -> int:
        if asset_num in self.onsets:
            self.remove([asset_num])
        return self._add(asset_num, fingerprint["onset"], fingerprint["pitch"])

    def _add(self, asset_num: int, onset: np.ndarray, pitch: np.ndarray) -> int:
        onset = np.asarray(onset, np.float32)
        pitch = np.asarray(pitch, np.int16)
        self.onsets[asset_num], self.pitches[asset_num] = onset, pitch
        self.keys[asset_num] = ngram_keys(onset, pitch, self.ngram_notes)
        self._table = self._background = None
        return len(self.keys[asset_num])

    def remove(self, asset_nums: Iterable[int]) -> int:
        removed = 0
        for num in asset_nums:
            keys = self.keys.pop(num, None)
            self.onsets.pop(num, None)
            self.pitches.pop(num, None)
            if keys is not None:
                removed += len(keys)
                self._table = self._background = None
        return removed

    def asset_nums(self) -> set[int]:
        return set(self.onsets)

    def __len__(self) -> int:
        return sum(len(k) for k in self.keys.values())

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        save_per_asset(
            directory / self.FILE,
            {num: {"onset": o, "pitch": self.pitches[num]} for num, o in self.onsets.items()},
            {"ngram_notes": np.array(self.ngram_notes)},
        )

    def background(self) -> tuple[np.ndarray, np.ndarray, int]:
        """How much each step says, from the catalog's own melodies: bits of an interval
        given the previous interval, ``[previous, interval]``, the same for rhythm ratios,
        and the number of steps indexed.

        Conditioning on the previous step matters: in an even or a repeated rhythm the next
        ratio is no news, and a scale run announces its next step. Counts are mixed with the
        marginal, itself mixed with a prior, so a small catalog still gives sane figures."""
        if self._background is None:
            ni, nr = len(_INTERVAL_VALUES), len(_RATIO_VALUES)
            ints, rats = np.zeros((ni, ni)), np.zeros((nr, nr))
            total = 0
            for num, onset in self.onsets.items():
                steps, ratios = transitions(onset, self.pitches[num])
                s, r = steps + _INTERVAL_CLIP, ratios + _RATIO_CLIP
                np.add.at(ints, (s[:-1], s[1:]), 1.0)
                np.add.at(rats, (r[1:-1], r[2:]), 1.0)
                total += len(steps)
            self._background = (_bits(ints, _INTERVAL_PRIOR), _bits(rats, _RATIO_PRIOR), total)
        return self._background

    def table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(sorted keys, asset number, note row) of every indexed n-gram."""
        if self._table is None:
            nums = sorted(self.keys)
            keys = [self.keys[a] for a in nums]
            all_keys = np.concatenate(keys) if keys else np.zeros(0, np.uint64)
            assets = np.concatenate(
                [np.full(len(k), a, np.int64) for a, k in zip(nums, keys, strict=True)]
                or [np.zeros(0, np.int64)]
            )
            rows = np.concatenate([np.arange(len(k)) for k in keys] or [np.zeros(0, np.int64)])
            order = np.argsort(all_keys, kind="stable")
            self._table = (all_keys[order], assets[order], rows[order].astype(np.int64))
        return self._table

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pairs (query row, asset, reference row) for every indexed copy of each key;
        keys held more than :data:`_MAX_POSTINGS` times are skipped."""
        table, assets, rows = self.table()
        lo = np.searchsorted(table, keys, side="left")
        hi = np.searchsorted(table, keys, side="right")
        counts = hi - lo
        counts[counts > _MAX_POSTINGS] = 0
        q = np.repeat(np.arange(len(keys), dtype=np.int64), counts)
        starts = np.repeat(lo, counts)
        within = np.arange(len(q)) - np.repeat(np.cumsum(counts) - counts, counts)
        pos = starts + within
        return q, assets[pos], rows[pos]


@dataclass(frozen=True)
class _Chain:
    q: np.ndarray
    r: np.ndarray


def longest_chains(q: np.ndarray, r: np.ndarray, max_chains: int) -> list[_Chain]:
    """Chains of (query row, reference row) pairs, both rising, each step keeping the
    diagonal ``r - q`` within one and skipping at most :data:`_MAX_GAP` query rows;
    the longest first, pairs used once."""
    order = np.lexsort((r, q))
    q, r = q[order], r[order]
    free = np.ones(len(q), bool)
    chains: list[_Chain] = []
    while len(chains) < max_chains and free.any():
        best = np.zeros(len(q), np.int64)
        back = np.full(len(q), -1, np.int64)
        for b in range(len(q)):
            if not free[b]:
                continue
            best[b] = 1
            a = b - 1
            while a >= 0 and q[a] >= q[b] - _MAX_GAP - 1:
                if free[a] and q[a] < q[b] and r[a] < r[b]:
                    drift = (r[b] - r[a]) - (q[b] - q[a])
                    if abs(drift) <= 1 and best[a] + 1 > best[b]:
                        best[b], back[b] = best[a] + 1, a
                a -= 1
        end = int(np.argmax(best))
        if best[end] == 0:
            break
        path = []
        while end >= 0:
            path.append(end)
            end = int(back[end])
        path.reverse()
        free[path] = False
        chains.append(_Chain(q[path], r[path]))
    return chains


class BasicPitchMelodySignal(Signal):
    """Re-played theme music (see the module docs): a lead, capped under the high tier."""

    version = 1
    asset_kinds = frozenset({AssetKind.AUDIO, AssetKind.VIDEO})
    index_type = MelodyIndex
    needs_audio = True
    visual = False

    def model_path(self) -> Path | None:
        return self.settings.melody.model_path or default_model_path()

    def unavailable(self) -> str | None:
        if importlib.util.find_spec("onnxruntime") is None:
            return "onnxruntime is not installed"
        path = self.model_path()
        if path is None:
            return "the basic-pitch model is missing: pip install --no-deps basic-pitch==0.4.0"
        if not path.is_file():
            return f"the basic-pitch model {path} does not exist"
        return None

    def config_key(self) -> str:
        s = self.settings.melody
        return (
            f"{self.name}-v{self.version}-on{s.onset_threshold:g}-fr{s.frame_threshold:g}"
            f"-min{s.min_note_s:g}"
        )

    def new_index(self) -> SignalIndex:
        return MelodyIndex(self.settings.melody.ngram_notes)

    def load_index(self, directory: Path) -> SignalIndex:
        idx = MelodyIndex.load(directory)
        if idx.ngram_notes != self.settings.melody.ngram_notes:
            fresh = MelodyIndex(self.settings.melody.ngram_notes)
            for num in idx.asset_nums():
                fresh._add(num, idx.onsets[num], idx.pitches[num])
            idx = fresh
        return idx

    # Fingerprints ------------------------------------------------------------------------------

    def transcribe(self, audio: np.ndarray, sample_rate: int) -> Notes:
        """Every note basic-pitch hears in mono ``audio`` (before the skyline)."""
        s = self.settings.melody
        path = self.model_path()
        if path is None:
            raise InputError("melody: the basic-pitch model is missing")
        note, onset = posteriorgrams(audio, sample_rate, path, s.threads, self.settings.device)
        return extract_notes(note, onset, s.onset_threshold, s.frame_threshold, s.min_note_s)

    def fingerprint(self, decoded: Decoded, role: Role) -> Fingerprint:
        """The melody's notes: ``onset``/``end`` (s), ``pitch`` (MIDI), ``strength``; empty
        (not an error) for no sound, silence or no notes."""
        empty: Fingerprint = {
            "onset": np.zeros(0, np.float32),
            "end": np.zeros(0, np.float32),
            "pitch": np.zeros(0, np.int16),
            "strength": np.zeros(0, np.float32),
        }
        audio = decoded.audio
        if audio is None or audio.size == 0:
            return empty
        name = Path(decoded.media.path).name or "media"
        if decoded.sample_rate is None or decoded.sample_rate <= 0:
            raise InputError(f"{name}: audio without a sample rate")
        if audio.ndim != 1:
            raise InputError(f"{name}: expected mono audio, got shape {audio.shape}")
        if not np.all(np.isfinite(audio)):
            raise InputError(f"{name}: audio has non-finite samples")
        if float(np.max(np.abs(audio))) < _QUIET_PEAK:
            return empty
        melody = skyline(self.transcribe(audio, decoded.sample_rate))
        return {
            "onset": melody.onset,
            "end": melody.end,
            "pitch": melody.pitch,
            "strength": melody.strength,
        }

    # Search ------------------------------------------------------------------------------------

    def search(
        self, index: SignalIndex, fingerprint: Fingerprint, query_duration: float
    ) -> list[SignalHit]:
        assert isinstance(index, MelodyIndex)
        n = index.ngram_notes
        onset = np.asarray(fingerprint["onset"], np.float64)
        pitch = np.asarray(fingerprint["pitch"], np.int64)
        end = np.asarray(fingerprint.get("end", onset), np.float64)
        keys = ngram_keys(onset, pitch, n)
        if not len(keys) or not len(index):
            return []
        q, assets, r = index.lookup(keys)
        steps = transitions(onset, pitch)
        hits: list[SignalHit] = []
        min_run = self.settings.melody.min_run
        for a in np.unique(assets):
            mine = assets == a
            if int(mine.sum()) < min_run:
                continue
            for chain in longest_chains(q[mine], r[mine], _CHAINS_PER_ASSET):
                if len(chain.q) < min_run:
                    break
                hit = self._hit(index, int(a), chain, onset, end, pitch, steps, query_duration)
                if hit is not None:
                    hits.append(hit)
        return hits

    def _hit(
        self,
        index: MelodyIndex,
        asset: int,
        chain: _Chain,
        onset: np.ndarray,
        end: np.ndarray,
        pitch: np.ndarray,
        steps: tuple[np.ndarray, np.ndarray],
        query_duration: float,
    ) -> SignalHit | None:
        """A chain as a hit, or ``None`` when its onsets do not keep one tempo or it is not
        :meth:`surprise` enough to be more than chance."""
        n = index.ngram_notes
        ref_onset = index.onsets[asset].astype(np.float64)
        ref_pitch = index.pitches[asset].astype(np.int64)
        # Every note of every n-gram in the chain, aligned.
        qi = (chain.q[:, None] + np.arange(n)[None]).reshape(-1)
        ri = (chain.r[:, None] + np.arange(n)[None]).reshape(-1)
        pairs = np.unique(np.stack([qi, ri], axis=1), axis=0)
        tq, tr = onset[pairs[:, 0]], ref_onset[pairs[:, 1]]
        if np.ptp(tq) <= 0:
            return None
        slope, intercept = np.polyfit(tq, tr, 1)
        if not _MIN_SLOPE <= slope <= _MAX_SLOPE:
            return None
        residual = float(np.median(np.abs(tr - (slope * tq + intercept))))
        if residual > _MAX_RESIDUAL_S:
            return None
        bits = self.surprise(index, chain, steps)
        if bits < self.settings.melody.min_surprise_bits:
            return None
        q0, q1 = float(tq.min()), float(end[pairs[:, 0]].max())
        if query_duration > 0:
            q1 = min(q1, query_duration)
        r0 = float(tr.min())
        r1 = float(slope * q1 + intercept)
        mid = len(pairs) // 2
        shift = int(np.median(ref_pitch[pairs[:, 1]] - pitch[pairs[:, 0]]))
        span = int(chain.q[-1] - chain.q[0]) + 1
        notes = len(np.unique(pairs[:, 0]))
        return SignalHit(
            asset_num=asset,
            query_start=round(q0, 3),
            query_end=round(max(q1, q0), 3),
            ref_start=round(max(r0, 0.0), 3),
            ref_end=round(max(r1, r0), 3),
            distance=float(2.0**-bits),
            frames=len(chain.q),
            density=len(chain.q) / span,
            query_time=round(float(tq[mid]), 3),
            ref_time=round(float(tr[mid]), 3),
            query_frame=-1,
            slope=round(float(slope), 4),
            note=(
                f"melody: {notes} notes agree, transposed {-shift:+d} semitones, "
                f"tempo {slope:.2f}x ({bits:.0f} bits above chance)"
            ),
        )

    @staticmethod
    def surprise(index: MelodyIndex, chain: _Chain, steps: tuple[np.ndarray, np.ndarray]) -> float:
        """Bits by which a chain beats chance: what its agreeing steps say (each interval
        and rhythm ratio costs ``-log2`` of how common it is in the catalog's melodies), less
        ``log2`` of the alignments chance got to try (query steps x catalog steps) and of
        the choices each skip or drift had (``log2(3 * skip)``). Scale runs in an even
        rhythm say little per note and need many more notes to count than a theme with
        leaps and dotted rhythms."""
        int_bits, rat_bits, total = index.background()
        intervals, ratios = steps
        n = index.ngram_notes
        covered = np.zeros(len(intervals) + n, bool)
        for i in chain.q:
            covered[i : i + n - 1] = True
        covered = covered[: len(intervals)]
        s, r = intervals + _INTERVAL_CLIP, ratios + _RATIO_CLIP
        # The first step of each agreeing stretch has no agreed context: the previous
        # step's most common successor stands in (the fewest bits it could say).
        after = np.zeros(len(s), bool)
        after[1:] = covered[1:] & covered[:-1]
        first = covered & ~after
        said = float(int_bits[s[:-1][after[1:]], s[1:][after[1:]]].sum())
        said += float(int_bits.min(axis=0)[s[first]].sum())
        paced = np.zeros(len(r), bool)
        paced[2:] = after[2:] & after[1:-1]
        said += float(rat_bits[r[1:-1][paced[2:]], r[2:][paced[2:]]].sum())
        dq, dr = np.diff(chain.q), np.diff(chain.r)
        loose = (dq > 1) | (dr != dq)
        freedoms = float(np.log2(3.0 * dq[loose]).sum())
        tries = math.log2(max(1, len(intervals)) * max(1, total))
        return said - tries - freedoms

    # Score -------------------------------------------------------------------------------------

    def cap(self) -> float:
        """The most this signal can say alone: ``max_score``, kept under the high tier."""
        return min(self.settings.melody.max_score, self.settings.high_threshold - 0.01)

    def score(self, hits: Sequence[SignalHit], query_duration: float) -> float:
        """``cap * (1 - exp(-B / 12))``, ``B`` the bits above chance of the hits (a hit's
        ``distance`` is ``2 ** -bits``, the chance of so good an agreement), counting hits
        that mostly cover the same query stretch (one theme in two assets of a title) once.

        A lead (see the module docs): never more than :meth:`cap`; 10 bits (the least a
        hit has by default) give 0.34 of 0.6, medium (0.45) needs 17 bits."""
        counted: list[tuple[float, float]] = []
        bits = 0.0
        for h in sorted(hits, key=lambda h: h.distance):
            half = 0.5 * (h.query_end - h.query_start)
            if any(min(h.query_end, b) - max(h.query_start, a) > half for a, b in counted):
                continue
            bits += -math.log2(max(h.distance, 1e-300))
            counted.append((h.query_start, h.query_end))
        if bits <= 0:
            return 0.0
        return round(self.cap() * (1.0 - math.exp(-bits / _TAU_BITS)), 4)
