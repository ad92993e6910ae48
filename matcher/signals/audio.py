"""Audio matching: spectral-peak landmarks, a speed search on the query side, and a strict
verification of each alignment.

Many re-uploads keep a title's sound and change everything else: a trailer's music under
someone's own footage, a scene's audio under a reaction cam with a voice on top (as loud as
the music, or louder), a clip sped up by 1.25 with its pitch (resampled, as re-encodes
without ``atempo`` do), a song turned down and re-encoded small. The picture signals see
nothing there; the soundtrack does.

The method follows the published landmark designs, written from the papers: Wang 2003, "An
Industrial-Strength Audio Search Algorithm" (the Shazam constellation map and peak-pair
hashes), and Six & Leman's Panako (2014, 2021), which matches after speed and pitch changes
by working in log-frequency, where a resampling factor ``s`` multiplies every time by
``1/s`` and shifts every log-frequency by ``log2 s``.

Fingerprint
    The mono soundtrack (``Decoded.audio``, 16 kHz) becomes a magnitude spectrogram (1024-point
    Hann windows every 16 ms, :data:`HOP_S`) between :data:`F_MIN` and :data:`F_MAX`. Its
    *peaks* are local maxima of the log magnitude that stand out from their surroundings;
    each band of :data:`BANDS` keeps its :data:`PEAKS_PER_BAND` most prominent peaks per
    second, so a voice that owns the speech band still leaves the bass, the upper
    harmonics and the cymbals their own peaks. A peak is (time, frequency in Hz, refined
    between bins); that constellation is the fingerprint. Silence and near-silence
    (:data:`_FLOOR_DB` under full scale) have no peaks and can never match.

Index
    Each reference peak is paired with its next :data:`FANOUT` peaks within
    :data:`DT_MAX_S` and 1.5 octaves, and each pair is hashed as (anchor frequency,
    frequency ratio, time difference), quantised in log-frequency (:data:`LOG_BINS` per
    octave) and 32 ms. Hashes live in one sorted ``uint32`` array with the asset and anchor
    time of each (:class:`LandmarkIndex`), so a lookup is a binary search. Adding an asset
    adds a sorted run; runs are merged when they grow many; removing an asset masks it.
    Only the peaks are saved (one ``.npz``, written atomically); hashes are rebuilt on load.

Search
    The query's peaks are hashed at each speed of a geometric grid (``1/(1 +
    max_speed_change)`` to ``1 + max_speed_change`` in steps of ``speed_step``): a query
    sped up by ``s`` has its times multiplied and frequencies divided by ``s`` before it is
    hashed, which costs no new spectrogram. Every hash that meets a reference votes for
    (asset, speed, time offset); offsets with at least ``min_votes`` consistent votes are
    candidates (the consistent-offset histogram of Wang 2003).

Verification
    A candidate is refined by fitting ``ref_time = offset + slope * query_time`` to its
    voting landmarks (the slope is the speed), then judged on all peaks, not just the hashed
    pairs: the share of the query's peaks that land on a reference peak (within 16 ms and a
    quarter semitone) over the best :data:`WINDOW_S` seconds, compared with the same query
    against the same reference at :data:`NULL_OFFSETS` other offsets at the same speed. The
    alignment passes when it stands ``min_significance`` robust standard deviations above
    those, *and* its excess agreement (over the chance level) reaches
    ``min_peak_agreement``. Music that only resembles the reference (same instruments, key
    and tempo, other notes) agrees at some lucky offset about as well as at any other, so it
    stays within the crowd; a copy's peaks fall on the reference's one after another. The
    matched stretch is where matched peaks keep coming above chance, second after second.

Score
    Matched query seconds weighted by how much of the query's sound is the reference's
    (excess peak agreement), through a saturating curve: see :meth:`LandmarkAudioSignal.score`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from matcher.decode import Decoded, resample_audio
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

RATE = 16000
"""Sample rate the spectrogram is computed at (audio at another rate is resampled)."""
N_FFT = 1024
HOP = 256
HOP_S = HOP / RATE
"""Seconds between spectrogram frames: 16 ms."""
F_MIN = 80.0
F_MAX = 7000.0
"""Band of the peaks: under 80 Hz is rumble, over 7 kHz low-bitrate encoders cut."""
BANDS = 6
"""Log-spaced bands between :data:`F_MIN` and :data:`F_MAX`, each with its own peak quota."""
PEAKS_PER_BAND = 5
"""Reference peaks kept per band and second (the most prominent): up to 30 a second."""
QUERY_PEAKS_PER_BAND = 12
"""Query peaks kept per band and second: more, because a voice on top takes the most
prominent places in its bands and the music's peaks survive further down the ranking."""
_NEIGHBOUR_T = 4
_NEIGHBOUR_F = 4
"""A peak is the largest value within +-4 frames (64 ms) and +-4 bins (62 Hz)."""
_MIN_PROMINENCE_DB = 6.0
"""How far a peak must stand above the mean of its surroundings (+-16 frames, +-12 bins)."""
_FLOOR_DB = -70.0
"""Peaks quieter than this (dB of full scale, on peak-normalised audio) are silence."""

FANOUT = 10
"""Pairs per reference anchor peak: its next peaks in time."""
QUERY_FANOUT = 30
"""Pairs per query anchor peak: more, since the query holds more peaks a second
(:data:`QUERY_PEAKS_PER_BAND`, and a voice on top puts its own between the music's)."""
DT_MIN_S = 0.032
DT_MAX_S = 1.28
"""Time span of a peak pair."""
_MAX_PAIR_OCTAVES = 1.5
LOG_BINS = 24
"""Hash resolution in log-frequency: bins per octave (a quarter tone)."""
_DT_UNIT_S = 0.032
_N_F1 = 256
_N_DF = 2 * round(_MAX_PAIR_OCTAVES * LOG_BINS) + 1
_N_DT = round(DT_MAX_S / _DT_UNIT_S) + 2

# Search and verification constants (behaviour the settings do not need to expose).
_OFFSET_BIN_S = 0.032
"""Width of a bin of the consistent-offset histogram."""
_MAX_CANDIDATES = 24
"""Candidates (asset, speed, offset) verified per query, best voted first."""
_PER_ASSET = 6
"""Distinct alignments tried per asset (one hit per reused part of a reference)."""
_MATCH_DT = 1
"""Peak agreement tolerance: +-1 frame (16 ms) ..."""
_MATCH_CELL_HZ = RATE / N_FFT / 2
_MATCH_DF = 1
"""... and +-1 cell of half a spectrogram bin (8 Hz) once the query is at the reference's
speed: peaks are refined between bins, and a looser tolerance lets the dense peaks of a
cymbal or a drum roll agree with any other."""
WINDOW_S = 8
"""Seconds over which a candidate's peak agreement is judged (its best stretch)."""
_NULL_SPAN_S = 20.0
"""The chance level comes from every other offset (each 16 ms) within this many seconds of
the candidate, at its speed: dense, so that the offsets where a similar tune's beats and
chords happen to line up are among them."""
_NULL_PEAKS = 600
"""Query peaks (evenly picked) used for the chance level of a long query."""
_NULL_EXCLUDE_S = 1.0
_NULL_QUANTILE = 0.99
"""The "lucky alignment" level: the 99th percentile of the other offsets (a few offsets
may be true ones too: a chorus that repeats, a loop)."""
_MIN_LUCK = 0.01
_REFINE_PEAKS = 800
"""Query peaks (evenly picked) that steer the coarse steps of the alignment refinement."""
_MAX_GAP_S = 2
"""Seconds without matched peaks (a loud word) that a matched stretch bridges."""
_TAU_S = 3.0
"""Score saturation: evidence (fully matched seconds) giving 1 - 1/e."""
_FULL_EXCESS = 0.15
"""Excess peak agreement that counts as fully matched sound (a clean copy reaches 0.4 to
0.8; one under a voice as loud as the music about 0.1, 4 dB louder about 0.08)."""


# Peaks -----------------------------------------------------------------------------------------


def _sliding_max(x: np.ndarray, radius: int, axis: int) -> np.ndarray:
    """Maximum over ``[i - radius, i + radius]`` along ``axis`` (edges padded with -inf)."""
    pad = [(0, 0)] * x.ndim
    pad[axis] = (radius, radius)
    padded = np.pad(x, pad, constant_values=-np.inf)
    n = x.shape[axis]
    out = padded.take(np.arange(0, n), axis=axis)
    for k in range(1, 2 * radius + 1):
        np.maximum(out, padded.take(np.arange(k, k + n), axis=axis), out=out)
    return out


def _box_mean(x: np.ndarray, rt: int, rf: int) -> np.ndarray:
    """Mean over a (2 rt + 1) x (2 rf + 1) box around each cell (shrunk at the edges)."""
    c = np.pad(x, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    n, m = x.shape
    i0 = np.clip(np.arange(n) - rt, 0, n)
    i1 = np.clip(np.arange(n) + rt + 1, 0, n)
    j0 = np.clip(np.arange(m) - rf, 0, m)
    j1 = np.clip(np.arange(m) + rf + 1, 0, m)
    s = c[i1][:, j1] - c[i0][:, j1] - c[i1][:, j0] + c[i0][:, j0]
    area = (i1 - i0)[:, None] * (j1 - j0)[None, :]
    return s / area


def spectral_peaks(
    audio: np.ndarray, sample_rate: int, per_band: int = PEAKS_PER_BAND
) -> tuple[np.ndarray, np.ndarray]:
    """The constellation of mono ``audio``: (times in s, frequencies in Hz), time-ordered,
    ``per_band`` peaks per band and second at most.

    Audio is peak-normalised first (volume costs nothing); too short for one window, or
    silent, gives no peaks.
    """
    a = np.asarray(audio, np.float32).reshape(-1)
    if sample_rate != RATE and a.size:
        a = resample_audio(a, sample_rate, RATE)
    empty = np.zeros(0, np.float32), np.zeros(0, np.float32)
    peak = float(np.max(np.abs(a))) if a.size else 0.0
    if a.size < N_FFT or peak <= 0.0:
        return empty
    a = a / peak
    frames = np.lib.stride_tricks.sliding_window_view(a, N_FFT)[::HOP]
    k0, k1 = math.floor(F_MIN * N_FFT / RATE), math.ceil(F_MAX * N_FFT / RATE)
    spec = np.abs(np.fft.rfft(frames * np.hanning(N_FFT).astype(np.float32), axis=1))
    db = 20.0 * np.log10(spec[:, k0 - 1 : k1 + 2] * (2.0 / N_FFT) + 1e-9).astype(np.float32)
    core = db[:, 1:-1]
    local = _sliding_max(_sliding_max(core, _NEIGHBOUR_F, 1), _NEIGHBOUR_T, 0)
    prominence = core - _box_mean(core, 16, 12)
    t_idx, f_idx = np.nonzero(
        (core == local) & (core > _FLOOR_DB) & (prominence > _MIN_PROMINENCE_DB)
    )
    if not len(t_idx):
        return empty
    # Parabolic refinement between bins of the log magnitude.
    alpha, beta, gamma = db[t_idx, f_idx], db[t_idx, f_idx + 1], db[t_idx, f_idx + 2]
    denom = alpha - 2 * beta + gamma
    shift = np.where(denom < 0, 0.5 * (alpha - gamma) / np.where(denom < 0, denom, 1), 0.0)
    freq = (k0 + f_idx + np.clip(shift, -0.5, 0.5)) * RATE / N_FFT
    times = t_idx * HOP_S
    band = np.clip(
        (np.log2(freq / F_MIN) / math.log2(F_MAX / F_MIN) * BANDS).astype(int), 0, BANDS - 1
    )
    group = band * (int(times.max()) + 2) + times.astype(int)
    order = np.lexsort((-prominence[t_idx, f_idx], group))
    g = group[order]
    first = np.searchsorted(g, g, side="left")
    keep = order[np.arange(len(g)) - first < per_band]
    keep = keep[np.lexsort((freq[keep], times[keep]))]
    return times[keep].astype(np.float32), freq[keep].astype(np.float32)


# Landmarks -------------------------------------------------------------------------------------


def peak_pairs(times: np.ndarray, fanout: int, dt_min: float, dt_max: float) -> np.ndarray:
    """(anchor, target) indexes: each peak with its next ``fanout`` peaks that come
    ``dt_min`` to ``dt_max`` seconds later (time-ordered ``times``)."""
    n = len(times)
    if n < 2:
        return np.zeros((0, 2), np.int64)
    reach = int((np.searchsorted(times, times + dt_max, side="right") - np.arange(n)).max())
    width = max(1, min(n - 1, reach))
    i = np.arange(n)[:, None]
    j = i + np.arange(1, width + 1)[None, :]
    valid = j < n
    jj = np.minimum(j, n - 1)
    dt = times[jj] - times[i]
    valid &= (dt >= dt_min) & (dt <= dt_max)
    rank = np.cumsum(valid, axis=1)
    valid &= rank <= fanout
    a, b = np.nonzero(valid)
    return np.stack([a, jj[a, b]], axis=1).astype(np.int64)


def landmark_hashes(
    t1: np.ndarray, f1: np.ndarray, t2: np.ndarray, f2: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(hash, keep) of peak pairs: anchor log-frequency, log-frequency ratio and time
    difference, quantised; ``keep`` is False for pairs outside the hashed ranges."""
    lf1 = np.log2(np.maximum(f1, 1.0) / F_MIN) * LOG_BINS
    df = np.round(np.log2(np.maximum(f2, 1.0) / np.maximum(f1, 1.0)) * LOG_BINS)
    dt = np.round((t2 - t1) / _DT_UNIT_S)
    half = (_N_DF - 1) // 2
    keep = (lf1 >= 0) & (lf1 < _N_F1) & (np.abs(df) <= half) & (dt >= 1) & (dt < _N_DT)
    h = np.floor(lf1).clip(0, _N_F1 - 1).astype(np.int64) * _N_DF + (df + half).astype(np.int64)
    h = h * _N_DT + dt.clip(0, _N_DT - 1).astype(np.int64)
    return h.astype(np.uint32), keep


def reference_landmarks(times: np.ndarray, freqs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(hash, anchor time) of a reference constellation."""
    pairs = peak_pairs(times, FANOUT, DT_MIN_S, DT_MAX_S)
    a, b = pairs[:, 0], pairs[:, 1]
    hashes, keep = landmark_hashes(times[a], freqs[a], times[b], freqs[b])
    return hashes[keep], times[a][keep].astype(np.float32)


def speed_grid(max_change: float, step: float) -> np.ndarray:
    """Speeds tried on the query: geometric from ``1/(1 + max_change)`` to ``1 + max_change``
    with 1 exactly on the grid."""
    if max_change <= 0 or step <= 0:
        return np.ones(1)
    k = math.floor(math.log(1 + max_change) / math.log(1 + step) + 1e-9)
    grid = (1 + step) ** np.arange(-k, k + 1, dtype=np.float64)
    ends = np.array([1 / (1 + max_change), 1 + max_change])
    return np.unique(np.round(np.concatenate([grid, ends]), 6))


# Index -----------------------------------------------------------------------------------------


class LandmarkIndex(SignalIndex):
    """Reference constellations per asset and their landmark hashes, sorted for lookup.

    Runs of sorted hashes are kept side by side: adding an asset adds one run (nothing else
    is rebuilt) and runs are merged once there are more than :attr:`MAX_RUNS`. Removing an
    asset forgets its peaks at once and its hashes at the next merge (lookups skip them).
    """

    FILE = "audio.npz"
    MAX_RUNS = 8

    def __init__(self) -> None:
        self.times: dict[int, np.ndarray] = {}
        self.freqs: dict[int, np.ndarray] = {}
        self._counts: dict[int, int] = {}
        self._runs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        """(sorted hashes, asset numbers, anchor times) per run."""

    @classmethod
    def load(cls, directory: Path) -> LandmarkIndex:
        idx = cls()
        path = directory / cls.FILE
        if path.exists():
            with np.load(path) as data:
                for num, arrays in load_per_asset(data).items():
                    idx._add(num, arrays["t"], arrays["f"])
            idx._merge()
        return idx

    def add(self, asset_num: int, fingerprint: Fingerprint) -> int:
        if asset_num in self.times:
            self.remove([asset_num])
        return self._add(asset_num, fingerprint["peak_t"], fingerprint["peak_f"])

    def _add(self, asset_num: int, times: np.ndarray, freqs: np.ndarray) -> int:
        times = np.asarray(times, np.float32)
        freqs = np.asarray(freqs, np.float32)
        hashes, anchors = reference_landmarks(times, freqs)
        order = np.argsort(hashes, kind="stable")
        assets = np.full(len(hashes), asset_num, np.int32)
        self._runs.append((hashes[order], assets, anchors[order]))
        self.times[asset_num], self.freqs[asset_num] = times, freqs
        self._counts[asset_num] = len(hashes)
        if len(self._runs) > self.MAX_RUNS:
            self._merge()
        return len(hashes)

    def _merge(self) -> None:
        """One run of the live assets' hashes."""
        if len(self._runs) <= 1 and all(np.isin(r[1], list(self.times)).all() for r in self._runs):
            return
        h = np.concatenate([r[0] for r in self._runs]) if self._runs else np.zeros(0, np.uint32)
        a = np.concatenate([r[1] for r in self._runs]) if self._runs else np.zeros(0, np.int32)
        t = np.concatenate([r[2] for r in self._runs]) if self._runs else np.zeros(0, np.float32)
        live = np.isin(a, np.fromiter(self.times, np.int32, len(self.times)))
        h, a, t = h[live], a[live], t[live]
        order = np.argsort(h, kind="stable")
        self._runs = [(h[order], a[order], t[order])] if len(h) else []

    def remove(self, asset_nums: Iterable[int]) -> int:
        removed = 0
        for num in asset_nums:
            self.times.pop(num, None)
            self.freqs.pop(num, None)
            removed += self._counts.pop(num, 0)
        return removed

    def asset_nums(self) -> set[int]:
        return set(self.times)

    def __len__(self) -> int:
        return sum(self._counts.values())

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        save_per_asset(
            directory / self.FILE,
            {num: {"t": t, "f": self.freqs[num]} for num, t in self.times.items()},
        )

    def lookup(self, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every indexed landmark with one of ``hashes``: (row in ``hashes``, asset, anchor
        time), live assets only."""
        rows, assets, times = [], [], []
        live = np.fromiter(self.times, np.int32, len(self.times))
        order = np.argsort(hashes, kind="stable")
        hashes = hashes[order]
        for run_h, run_a, run_t in self._runs:
            lo = np.searchsorted(run_h, hashes, side="left")
            hi = np.searchsorted(run_h, hashes, side="right")
            n = hi - lo
            if not n.sum():
                continue
            r = np.repeat(order, n)
            pos = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n) + np.repeat(lo, n)
            a = run_a[pos]
            ok = np.isin(a, live)
            rows.append(r[ok])
            assets.append(a[ok])
            times.append(run_t[pos][ok])
        if not rows:
            return np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32)
        return np.concatenate(rows), np.concatenate(assets), np.concatenate(times)


# The signal ------------------------------------------------------------------------------------


class _Grid:
    """Reference peaks rasterised for fast agreement tests: frame x log-frequency bins,
    dilated by the match tolerance, over frames ``[f0, f0 + n)``."""

    def __init__(self, times: np.ndarray, freqs: np.ndarray, f0: int, n: int) -> None:
        self.f0, self.n = f0, n
        self.nb = int(F_MAX * 1.4 / _MATCH_CELL_HZ) + 2
        grid = np.zeros((n + 2 * _MATCH_DT, self.nb + 2 * _MATCH_DF), bool)
        fr = np.round(times / HOP_S).astype(np.int64) - f0
        fb = _log_bin(freqs)
        ok = (fr >= 0) & (fr < n) & (fb >= 0) & (fb < self.nb)
        for dt in range(2 * _MATCH_DT + 1):
            for df in range(2 * _MATCH_DF + 1):
                grid[fr[ok] + dt, fb[ok] + df] = True
        self.grid = grid[_MATCH_DT : _MATCH_DT + n, _MATCH_DF : _MATCH_DF + self.nb]

    def hits(self, frames: np.ndarray, bins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(matched, inside) for reference positions (any shape)."""
        fr, bins = np.broadcast_arrays(frames - self.f0, bins)
        inside = (fr >= 0) & (fr < self.n) & (bins >= 0) & (bins < self.nb)
        matched = np.zeros(frames.shape, bool)
        matched[inside] = self.grid[fr[inside], bins[inside]]
        return matched, inside


def _log_bin(freqs: np.ndarray) -> np.ndarray:
    return np.round(freqs / _MATCH_CELL_HZ).astype(np.int64)


class LandmarkAudioSignal(Signal):
    """Reused soundtracks, also under speech and at another speed (see the module docs)."""

    version = 2
    asset_kinds = frozenset({AssetKind.AUDIO, AssetKind.VIDEO})
    index_type = LandmarkIndex
    needs_audio = True
    visual = False

    # Fingerprints ------------------------------------------------------------------------------

    def fingerprint(self, decoded: Decoded, role: Role) -> Fingerprint:
        """The constellation (peak times and frequencies); empty, not an error, for no sound
        or silence."""
        audio = decoded.audio
        if audio is None or audio.size == 0:
            return {"peak_t": np.zeros(0, np.float32), "peak_f": np.zeros(0, np.float32)}
        name = Path(decoded.media.path).name or "media"
        if decoded.sample_rate is None or decoded.sample_rate <= 0:
            raise InputError(f"{name}: audio without a sample rate")
        if audio.ndim != 1:
            raise InputError(f"{name}: expected mono audio, got shape {audio.shape}")
        if not np.all(np.isfinite(audio)):
            raise InputError(f"{name}: audio has non-finite samples")
        per_band = PEAKS_PER_BAND if role == "reference" else QUERY_PEAKS_PER_BAND
        times, freqs = spectral_peaks(audio, decoded.sample_rate, per_band)
        return {"peak_t": times, "peak_f": freqs}

    # Search ------------------------------------------------------------------------------------

    def search(
        self, index: SignalIndex, fingerprint: Fingerprint, query_duration: float
    ) -> list[SignalHit]:
        assert isinstance(index, LandmarkIndex)
        qt = np.asarray(fingerprint["peak_t"], np.float64)
        qf = np.asarray(fingerprint["peak_f"], np.float64)
        if len(qt) < 2 or not len(index):
            return []
        candidates = self._candidates(index, qt, qf)
        hits: list[SignalHit] = []
        explained = np.zeros(len(qt), bool)
        tried: dict[int, int] = {}
        for asset, speed, offset in candidates:
            if tried.get(asset, 0) >= _PER_ASSET:
                continue
            tried[asset] = tried.get(asset, 0) + 1
            hit = self._verify(index, asset, speed, offset, qt, qf, explained, query_duration)
            if hit is not None:
                hits.append(hit)
        return hits

    def _candidates(
        self, index: LandmarkIndex, qt: np.ndarray, qf: np.ndarray
    ) -> list[tuple[int, float, float]]:
        """(asset, speed, offset) by votes: the query hashed at every speed of the grid,
        each indexed landmark it meets voting for ``ref_time - speed * query_time``."""
        s = self.settings.audio
        speeds = speed_grid(s.max_speed_change, s.speed_step)
        smin, smax = float(speeds.min()), float(speeds.max())
        pairs = peak_pairs(qt, QUERY_FANOUT, DT_MIN_S / smax, DT_MAX_S / smin)
        a, b = pairs[:, 0], pairs[:, 1]
        keys, votes_t, assets_all = [], [], []
        for k, speed in enumerate(speeds):
            hashes, keep = landmark_hashes(
                qt[a] * speed, qf[a] / speed, qt[b] * speed, qf[b] / speed
            )
            rows_in = np.flatnonzero(keep)
            rows, assets, rtimes = index.lookup(hashes[rows_in])
            if not len(rows):
                continue
            offs = rtimes - speed * qt[a[rows_in[rows]]]
            bins = np.round(offs / _OFFSET_BIN_S).astype(np.int64)
            keys.append((assets.astype(np.int64) << 40) | (np.int64(k) << 32) | (bins + (1 << 31)))
            votes_t.append(offs)
            assets_all.append(assets)
        if not keys:
            return []
        key = np.concatenate(keys)
        uniq, counts = np.unique(key, return_counts=True)
        # Pool each bin with its neighbours (an offset on a bin edge splits its votes).
        pooled = counts.copy()
        for d in (-1, 1):
            j = np.clip(np.searchsorted(uniq, uniq + d), 0, len(uniq) - 1)
            pooled += np.where(uniq[j] == uniq + d, counts[j], 0)
        good = np.flatnonzero(pooled >= s.min_votes)
        good = good[np.argsort(-pooled[good], kind="stable")]
        out: list[tuple[int, float, float]] = []
        seen: list[tuple[int, float, float]] = []
        mid = float(qt[-1] + qt[0]) / 2
        for i in good:
            u = int(uniq[i])
            asset, k = u >> 40, (u >> 32) & 0xFF
            offset = ((u & 0xFFFFFFFF) - (1 << 31)) * _OFFSET_BIN_S
            speed = float(speeds[k])
            at_mid = offset + speed * mid
            if any(
                sa == asset and abs(sm - at_mid) < 1.0 and abs(math.log(ss / speed)) < 0.05
                for sa, ss, sm in seen
            ):
                continue
            seen.append((asset, speed, at_mid))
            out.append((asset, speed, offset))
            if len(out) >= _MAX_CANDIDATES:
                break
        return out

    def _verify(
        self,
        index: LandmarkIndex,
        asset: int,
        speed: float,
        offset: float,
        qt: np.ndarray,
        qf: np.ndarray,
        explained: np.ndarray,
        query_duration: float,
    ) -> SignalHit | None:
        """The candidate refined, tested against chance, and cut to its matched stretch."""
        s = self.settings.audio
        rt, rf = index.times[asset], index.freqs[asset]
        ref_len = float(rt[-1]) if len(rt) else 0.0
        q_span = float(qt[-1]) * speed * 1.05
        lo = math.floor((offset - _NULL_SPAN_S - 3) / HOP_S)
        hi = math.ceil((offset + q_span + _NULL_SPAN_S + 3) / HOP_S)
        grid = _Grid(rt, rf, lo, hi - lo)
        slope, offset = self._refine(grid, qt, qf, speed, offset)
        qbins = _log_bin(qf / slope)
        qframes = np.round(qt * slope / HOP_S).astype(np.int64)
        off_frames = np.round(offset / HOP_S).astype(np.int64)
        matched, inside = grid.hits(qframes + off_frames, qbins)
        inside &= ~explained
        matched &= inside
        seconds = np.floor(qt).astype(np.int64)
        n_sec = int(seconds[-1]) + 1
        win = min(WINDOW_S, n_sec)
        frac = float(_best_window(matched[None], inside[None], seconds, n_sec, win)[0])
        if not math.isfinite(frac) or frac < s.min_peak_agreement:
            return None
        # Chance level: the same query at every other offset near this one, same speed.
        span = round(_NULL_SPAN_S / HOP_S)
        others = np.arange(off_frames - span, off_frames + span + 1, 2, dtype=np.int64)
        others = others[np.abs(others - off_frames) > _NULL_EXCLUDE_S / HOP_S]
        pick = np.flatnonzero(~explained)
        if len(pick) > _NULL_PEAKS:
            pick = pick[np.linspace(0, len(pick) - 1, _NULL_PEAKS).round().astype(int)]
        n_m, n_in = grid.hits(qframes[pick][None, :] + others[:, None], qbins[pick][None, :])
        n_in &= ~explained[pick][None, :]
        n_m &= n_in
        base = float(n_m.sum() / max(1, n_in.sum()))
        null_frac = _best_window(n_m, n_in, seconds[pick], n_sec, win)
        null_frac = null_frac[np.isfinite(null_frac)]
        if len(null_frac) < 16:
            return None
        centre = float(np.median(null_frac))
        luck = max(_MIN_LUCK, float(np.quantile(null_frac, _NULL_QUANTILE)) - centre)
        z = (frac - centre) / luck
        excess = (frac - base) / max(1e-6, 1 - base)
        if z < s.min_significance or excess < s.min_peak_agreement:
            return None
        stretch = self._stretch(matched, inside, qt, base, max(centre + luck, frac / 4))
        if stretch is None:
            return None
        a, b = stretch
        sel = (qt >= a) & (qt < b) & inside
        m_frac = float(matched[sel].sum() / max(1, sel.sum()))
        m_excess = max(0.0, (m_frac - base) / max(1e-6, 1 - base))
        explained |= (qt >= a) & (qt < b)
        q0, q1 = a, min(b, query_duration) if query_duration > 0 else b
        r0 = min(max(offset + slope * q0, 0.0), ref_len)
        r1 = min(max(offset + slope * q1, 0.0), ref_len)
        mt = qt[sel & matched]
        best_q = float(np.median(mt)) if len(mt) else (q0 + q1) / 2
        return SignalHit(
            asset_num=asset,
            query_start=round(q0, 3),
            query_end=round(max(q1, q0), 3),
            ref_start=round(r0, 3),
            ref_end=round(max(r1, r0), 3),
            distance=round(1.0 - m_excess, 4),
            frames=int(matched[sel].sum()),
            density=round(m_frac, 4),
            query_time=round(best_q, 3),
            ref_time=round(offset + slope * best_q, 3),
            query_frame=-1,
            slope=round(slope, 4),
            note=(
                f"audio offset {offset:+.1f} s at speed {slope:.2f} "
                f"({m_frac:.0%} of peaks aligned, chance {base:.0%}, {z:.1f}x luck)"
            ),
        )

    @staticmethod
    def _refine(
        grid: _Grid, qt: np.ndarray, qf: np.ndarray, speed: float, offset: float
    ) -> tuple[float, float]:
        """(slope, offset) that put most query peaks on reference peaks near the candidate:
        a coarse-to-fine search of speed (turning about the query's middle) and offset over
        the agreement count, on a subset of the peaks until the last step."""
        span = float(qt[-1]) if len(qt) else 0.0
        sub = np.linspace(0, len(qt) - 1, min(len(qt), _REFINE_PEAKS)).round().astype(int)

        def count(sl: float, off: float, rows: np.ndarray) -> int:
            fr = np.round((qt[rows] * sl + off) / HOP_S).astype(np.int64)
            m, _ = grid.hits(fr, _log_bin(qf[rows] / sl))
            return int(m.sum())

        best = (count(speed, offset, sub), speed, offset)
        levels = ((0.005, 2 * HOP_S, 6, 3), (0.001, HOP_S, 5, 2), (0.0002, HOP_S, 5, 1))
        for i, (rel_step, off_step, s_reach, o_reach) in enumerate(levels):
            if i and span * rel_step < HOP_S / 4:
                break
            rows = sub if i < len(levels) - 1 else np.arange(len(qt))
            _, sp0, of0 = best
            best = (count(sp0, of0, rows), sp0, of0)
            centre = of0 + sp0 * span / 2
            for si in range(-s_reach, s_reach + 1):
                sl = sp0 * (1 + si * rel_step)
                for oj in range(-o_reach, o_reach + 1):
                    off = centre - sl * span / 2 + oj * off_step
                    c = count(sl, off, rows)
                    if c > best[0]:
                        best = (c, sl, off)
        return best[1], best[2]

    def _stretch(
        self, matched: np.ndarray, inside: np.ndarray, qt: np.ndarray, base: float, lucky: float
    ) -> tuple[float, float] | None:
        """[start, end) seconds of the query where matched peaks keep coming above chance:
        above ``base`` (the average share of peaks matched by chance) and ``lucky`` (the
        share reached at the luckiest 1% of other offsets, or a quarter of the candidate's
        own best share when higher: where a reused part ends, the next part's beats may
        still line up by luck)."""
        sec = np.floor(qt).astype(np.int64)
        n = int(sec[-1]) + 1
        m = np.bincount(sec, weights=matched.astype(float), minlength=n)
        v = np.bincount(sec, weights=inside.astype(float), minlength=n)
        expected = base * v
        # A second counts when it beats both the average chance and the lucky alignments.
        good = m >= np.maximum(3.0, np.maximum(expected + 3 * np.sqrt(expected) + 1, lucky * v))
        idx = np.flatnonzero(good)
        if not len(idx):
            return None
        breaks = np.flatnonzero(np.diff(idx) > _MAX_GAP_S + 1)
        starts = np.concatenate([[0], breaks + 1])
        ends = np.concatenate([breaks, [len(idx) - 1]])
        runs = [(int(idx[a]), int(idx[b]) + 1) for a, b in zip(starts, ends, strict=True)]
        a, b = max(runs, key=lambda r: m[r[0] : r[1]].sum() - expected[r[0] : r[1]].sum())
        # Once the copy stands, its ends need less: neighbouring seconds whose matched peaks
        # beat the average chance (a voice-over drowning the music there) belong to it.
        weak = m >= np.maximum(2.0, expected + np.sqrt(expected) + 1)
        while a > 0 and weak[a - 1]:
            a -= 1
        while b < n and weak[b]:
            b += 1
        # Tighten to the first and last matched peaks inside the run.
        sel = matched & (qt >= a) & (qt < b)
        t0, t1 = float(qt[sel].min()), float(qt[sel].max()) + HOP_S
        if t1 - t0 < self.settings.audio.min_match_s:
            return None
        return t0, t1

    # Score -------------------------------------------------------------------------------------

    @staticmethod
    def strength(distance: float) -> float:
        """How much of the sound is the reference's, in [0, 1], from a hit's distance
        (1 - excess peak agreement): full from :data:`_FULL_EXCESS` excess up."""
        return min(1.0, max(0.0, (1.0 - distance) / _FULL_EXCESS))

    def score(self, hits: Sequence[SignalHit], query_duration: float) -> float:
        """``1 - exp(-E / 3 s)``, E the query seconds matched, each weighted by the
        :meth:`strength` of the strongest hit covering it (calibration: module docs)."""
        covered: list[tuple[float, float]] = []
        evidence = 0.0
        for h in sorted(hits, key=lambda h: h.distance):
            new = _uncovered(h.query_start, h.query_end, covered)
            evidence += self.strength(h.distance) * new
            covered.append((h.query_start, h.query_end))
        return round(1.0 - math.exp(-evidence / _TAU_S), 4)


def _best_window(
    matched: np.ndarray, inside: np.ndarray, seconds: np.ndarray, n_sec: int, win: int
) -> np.ndarray:
    """Per row, the best matched share over ``win`` consecutive seconds holding at least
    a third of the peaks such a window holds on average (NaN when none does)."""
    rows = matched.shape[0]
    flat = (np.arange(rows)[:, None] * n_sec + seconds[None, :]).reshape(-1)
    m = np.bincount(flat, weights=matched.reshape(-1).astype(float), minlength=rows * n_sec)
    v = np.bincount(flat, weights=inside.reshape(-1).astype(float), minlength=rows * n_sec)
    m, v = m.reshape(rows, n_sec), v.reshape(rows, n_sec)
    cm = np.pad(np.cumsum(m, axis=1), ((0, 0), (1, 0)))
    cv = np.pad(np.cumsum(v, axis=1), ((0, 0), (1, 0)))
    wm, wv = cm[:, win:] - cm[:, :-win], cv[:, win:] - cv[:, :-win]
    total = np.bincount(seconds, minlength=n_sec).astype(float)
    need = max(8.0, np.convolve(total, np.ones(win), "valid").mean() / 3)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(wv >= need, wm / wv, -np.inf)
    best = frac.max(axis=1)
    return np.where(np.isfinite(best), best, np.nan)


def _uncovered(a: float, b: float, covered: Sequence[tuple[float, float]]) -> float:
    """Seconds of [a, b) outside every interval of ``covered``."""
    pieces = [(a, b)]
    for c0, c1 in covered:
        nxt: list[tuple[float, float]] = []
        for p0, p1 in pieces:
            if c1 <= p0 or c0 >= p1:
                nxt.append((p0, p1))
                continue
            if p0 < c0:
                nxt.append((p0, c0))
            if c1 < p1:
                nxt.append((c1, p1))
        pieces = nxt
    return sum(p1 - p0 for p0, p1 in pieces)
