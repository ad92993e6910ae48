"""Audio matching: Chromaprint fingerprints, a FAISS index of sub-fingerprints, offset search.

Many re-uploads keep a title's sound and change everything else: a trailer's music under
someone's own footage, a scene's audio under a reaction cam with a voice on top, a song
turned down and re-encoded small. The picture signals see nothing there; the soundtrack does.

Fingerprint
    The decoded mono soundtrack (``Decoded.audio``, so the media is decoded once for every
    signal) goes through Chromaprint's default algorithm via pyacoustid's ctypes module. It
    yields one 32-bit *item* per 1365 samples at 11025 Hz (:data:`HOP_S`, 0.1238 s, checked by
    the tests), each summarising :data:`ITEM_SPAN_S` (2.7 s) of chroma. The audio is peak
    normalised first (volume changes then cost nothing), and items over near-silence are
    flagged ``loud=False``: silence fingerprints the same everywhere and must never match.

Index
    Items are too fragile to look up exactly: a voice-over at speech level flips a quarter
    of the bits and no 32-bit item survives intact. So candidates come from *sub-fingerprints*
    of :data:`BLOCK` consecutive items (256 bits, about 1 s) in a flat FAISS binary index,
    searched by Hamming distance; references index every :data:`REF_STRIDE`-th block, queries
    search every block, so any alignment puts some query blocks exactly on indexed ones.

Search
    Each (reference block, query block) pair near enough votes for an offset (reference item
    minus query item). The best-voted offsets of each asset are verified on the raw items:
    the bit error rate over the aligned items (best window of about 8 s) must stay under
    ``max_bit_error`` *and* stand out from the same reference at other offsets by
    ``min_significance`` robust standard deviations. The second test is what keeps unrelated
    music out: tunes in one key share chroma and can reach 0.3 bit error by chance, but only
    at one lucky offset among many similar ones, while a true copy sits in a deep, narrow
    valley. Matched stretches are where the smoothed per-item error stays under the bound;
    a query that reuses several parts of a reference yields one hit per part.

Score
    Matched query seconds weighted by how clean the match is (bit error), through a
    saturating curve: ten seconds under a voice-over (bit error near 0.28) reach the high tier,
    a few seconds at the bound stay low. See :meth:`ChromaprintAudioSignal.score`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import ModuleType

import faiss
import numpy as np

from matcher.decode import Decoded
from matcher.signals.base import (
    ASSET_SHIFT,
    Fingerprint,
    Role,
    Signal,
    SignalHit,
    SignalIndex,
    entry_ids,
    split_ids,
    write_npz,
)
from reelwatch.errors import InputError
from reelwatch.models import AssetKind

CHROMAPRINT_RATE = 11025
"""Chromaprint resamples everything to this rate before its 4096-sample frames."""
HOP_S = 1365 / CHROMAPRINT_RATE
"""Seconds between consecutive items (frames overlap by two thirds): 0.1238 s."""
ITEM_SPAN_S = (4096 + 19 * 1365) / CHROMAPRINT_RATE
"""Audio one item summarises: 20 frames (a 5-frame chroma smoothing, then 16-frame filters),
2.72 s; measured: n seconds of audio give ``(n - ITEM_SPAN_S) / HOP_S + 1`` items."""
ITEM_BITS = 32
BLOCK = 8
"""Items per sub-fingerprint: 256 bits, the unit of candidate lookup."""
BLOCK_BYTES = BLOCK * ITEM_BITS // 8
REF_STRIDE = 2
"""References index every second block; queries search every block."""
_QUIET_RMS = 10 ** (-55 / 20)
"""Items whose audio stays below -55 dBFS RMS are silence (not fingerprinted content)."""
_FEED_SAMPLES = 1 << 20

# Search constants (behaviour the settings do not need to expose).
_KNN = 32
"""Nearest indexed blocks per query block; repeated music makes a few near-copies each."""
_MAX_ASSETS = 32
"""Assets verified per query, best voted first."""
_MIN_VOTES = 1.5
"""Weighted votes an offset needs (one exact block is 1): a lone block proves nothing."""
_OFFSETS_PER_ASSET = 4
"""Distinct offsets tried per asset (one hit per reused part of a reference)."""
_WINDOW = 64
"""Items (about 8 s of hops, 10 s of audio) over which a candidate's bit error is judged."""
_SMOOTH = 16
"""Items (2 s) of the moving average that delimits matched stretches."""
_STRETCH_SLACK = 0.05
"""Once an offset has passed as a whole, its stretch extends over items up to this much
above ``max_bit_error`` (2 s averages): a loud word should not cut a match in two."""
_NULL_OFFSETS = 256
"""Other offsets of the same reference sampled to judge how much a match stands out."""
_DISTINCT = 8
"""Voted offsets closer than this (1 s) are one candidate."""
_NULL_EXCLUDE = 22
"""Offsets this close to a candidate share its audio (an item spans 22 hops): not "other"."""
_FLANK = (4, 5, 6)
"""Offsets (in items, 0.5 to 0.75 s) either side of a match where its valley is measured."""
_SURE_BER = 0.2
"""A bit error this low over :data:`_SURE_WINDOW` items needs no significance test: the
lowest chance level measured between unrelated tunes over 5 s or more was 0.27. (Against a
short reference the other offsets are few and spread wide, and would sink a clean copy.)"""
_SURE_WINDOW = 32
_PRIOR_NULL = (0.45, 0.035)
"""Bit error of unrelated music (median, spread) used when a reference is too short to
sample other offsets; measured on the demo's tunes, which share scales and timbre."""
_TAU_S = 3.0
"""Score saturation: evidence (clean matched seconds) giving 1 - 1/e."""


@functools.lru_cache(maxsize=1)
def _chromaprint() -> ModuleType:
    """pyacoustid's ctypes binding, loaded once (it dlopens libchromaprint)."""
    import chromaprint

    return chromaprint


def chromaprint_items(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Chromaprint's raw 32-bit items of mono ``audio`` (float in [-1, 1]).

    Peak-normalised before the 16-bit conversion, so quiet copies keep their precision.
    Audio too short for one item (about 2.7 s) gives no items.
    """
    cp = _chromaprint()
    a = np.asarray(audio, np.float32).reshape(-1)
    peak = float(np.max(np.abs(a))) if a.size else 0.0
    if peak <= 0.0:
        return np.zeros(0, np.uint32)
    pcm = np.round(a * (0.9 * 32767.0 / peak)).astype("<i2")
    fpr = cp.Fingerprinter()
    try:
        fpr.start(int(sample_rate), 1)
        for i in range(0, pcm.size, _FEED_SAMPLES):
            fpr.feed(pcm[i : i + _FEED_SAMPLES].tobytes())
        raw = fpr.finish()
        if not raw:
            return np.zeros(0, np.uint32)
        items, _algorithm = cp.decode_fingerprint(raw)
    except cp.FingerprintError:
        raise InputError(f"chromaprint could not fingerprint audio at {sample_rate} Hz") from None
    return np.asarray(items, dtype=np.uint32)


def loud_items(audio: np.ndarray, sample_rate: int, n_items: int) -> np.ndarray:
    """Which of ``n_items`` items cover audio above :data:`_QUIET_RMS` (not silence)."""
    a = np.asarray(audio, np.float64).reshape(-1)
    if n_items == 0 or a.size == 0:
        return np.zeros(n_items, bool)
    energy = np.concatenate([[0.0], np.cumsum(a * a)])
    start = np.round(np.arange(n_items) * HOP_S * sample_rate).astype(np.int64)
    end = np.minimum(start + round(ITEM_SPAN_S * sample_rate), a.size)
    start = np.minimum(start, a.size - 1)
    rms = np.sqrt((energy[end] - energy[start]) / np.maximum(end - start, 1))
    return rms > _QUIET_RMS


_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], np.uint8)


def bit_errors(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Differing bits between aligned uint32 items of ``a`` and ``b`` (same shape)."""
    x = np.bitwise_xor(np.asarray(a, np.uint32), np.asarray(b, np.uint32))
    return _POPCOUNT[x.view(np.uint8)].reshape(*x.shape, 4).sum(axis=-1)


def sub_fingerprints(
    items: np.ndarray, loud: np.ndarray, stride: int
) -> tuple[np.ndarray, np.ndarray]:
    """(first item, 32-byte code) of every ``stride``-th run of :data:`BLOCK` loud items.

    A code's Hamming distance to another is the total bit error of the eight item pairs.
    """
    n = len(items) - BLOCK + 1
    if n <= 0:
        return np.zeros(0, np.int64), np.zeros((0, BLOCK_BYTES), np.uint8)
    starts = np.arange(0, n, stride, dtype=np.int64)
    quiet = np.lib.stride_tricks.sliding_window_view(~np.asarray(loud, bool), BLOCK)
    starts = starts[~quiet[starts].any(axis=1)]
    windows = np.lib.stride_tricks.sliding_window_view(np.asarray(items, "<u4"), BLOCK)
    codes = np.ascontiguousarray(windows[starts]).view(np.uint8).reshape(-1, BLOCK_BYTES)
    return starts, codes


def offset_bit_errors(
    query: np.ndarray, q_loud: np.ndarray, ref: np.ndarray, r_loud: np.ndarray, offset: int
) -> np.ndarray:
    """Per query item, the share of differing bits against reference item ``i + offset``;
    NaN where the reference has no such item or either item is silence."""
    nq = len(query)
    out = np.full(nq, np.nan)
    lo, hi = max(0, -offset), min(nq, len(ref) - offset)
    if hi <= lo:
        return out
    q = slice(lo, hi)
    r = slice(lo + offset, hi + offset)
    err = bit_errors(query[q], ref[r]) / ITEM_BITS
    ok = q_loud[q] & r_loud[r]
    out[q] = np.where(ok, err, np.nan)
    return out


def windowed_ber(errors: np.ndarray, window: int) -> tuple[float, int]:
    """Lowest mean error over ``window`` consecutive items (at least 3/4 of them valid),
    and where that window starts; ``(inf, -1)`` when no window qualifies."""
    n = len(errors)
    w = min(window, n)
    if w == 0:
        return math.inf, -1
    valid = ~np.isnan(errors)
    s = np.concatenate([[0.0], np.cumsum(np.where(valid, errors, 0.0))])
    c = np.concatenate([[0], np.cumsum(valid)])
    sums, counts = s[w:] - s[:-w], c[w:] - c[:-w]
    ok = counts >= max(1, math.ceil(0.75 * w))
    if not ok.any():
        return math.inf, -1
    means = np.where(ok, sums / np.maximum(counts, 1), math.inf)
    k = int(np.argmin(means))
    return float(means[k]), k


def _moving_nanmean(x: np.ndarray, width: int) -> np.ndarray:
    valid = ~np.isnan(x)
    kernel = np.ones(width)
    sums = np.convolve(np.where(valid, x, 0.0), kernel, mode="same")
    counts = np.convolve(valid.astype(np.float64), kernel, mode="same")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts >= width / 4, sums / counts, np.nan)


def _runs(mask: np.ndarray, max_gap: int) -> list[tuple[int, int]]:
    """[start, end) item ranges of True, bridging gaps of up to ``max_gap`` items."""
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(idx) > max_gap + 1)
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks, [idx.size - 1]])
    return [(int(idx[a]), int(idx[b]) + 1) for a, b in zip(starts, ends, strict=True)]


class ChromaprintIndex(SignalIndex):
    """Reference items per asset, and their sub-fingerprints in a flat FAISS binary index.

    Flat (exact) search, as for the copy signal: binary scans run at memory speed, and
    approximate indexes lose the far-but-true blocks that a voice-over produces. Only the
    items are persisted (one ``.npz``, replaced atomically); the FAISS index is rebuilt from
    them on load, which costs a copy of the codes and keeps the two from ever disagreeing.
    """

    FILE = "audio.npz"

    def __init__(self) -> None:
        self.index: faiss.IndexBinary = faiss.IndexBinaryIDMap2(
            faiss.IndexBinaryFlat(BLOCK * ITEM_BITS)
        )
        self.items: dict[int, np.ndarray] = {}
        self.loud: dict[int, np.ndarray] = {}
        self._starts: dict[int, np.ndarray] = {}

    @classmethod
    def load(cls, directory: Path) -> ChromaprintIndex:
        idx = cls()
        path = directory / cls.FILE
        if path.exists():
            with np.load(path) as data:
                for key in data.files:
                    if key.endswith("_items"):
                        num = int(key[1:].removesuffix("_items"))
                        idx._add(num, data[key], data[f"a{num}_loud"])
        return idx

    def add(self, asset_num: int, fingerprint: Fingerprint) -> int:
        if asset_num in self.items:
            self.remove([asset_num])
        return self._add(asset_num, fingerprint["items"], fingerprint["loud"])

    def _add(self, asset_num: int, items: np.ndarray, loud: np.ndarray) -> int:
        items = np.asarray(items, np.uint32)
        loud = np.asarray(loud, bool)
        if len(items) >= 1 << ASSET_SHIFT:
            raise InputError(f"asset {asset_num}: audio too long to index ({len(items)} items)")
        starts, codes = sub_fingerprints(items, loud, REF_STRIDE)
        if len(starts):
            ids = entry_ids(asset_num, starts)
            self.index.add_with_ids(codes, ids)
        self.items[asset_num], self.loud[asset_num] = items, loud
        self._starts[asset_num] = starts
        return len(starts)

    def remove(self, asset_nums: Iterable[int]) -> int:
        removed = 0
        for num in asset_nums:
            starts = self._starts.pop(num, None)
            self.items.pop(num, None)
            self.loud.pop(num, None)
            if starts is None or not len(starts):
                continue
            ids = entry_ids(num, starts)
            removed += int(self.index.remove_ids(faiss.IDSelectorBatch(ids)))
        return removed

    def asset_nums(self) -> set[int]:
        return set(self.items)

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {}
        for num, items in self.items.items():
            arrays[f"a{num}_items"] = items
            arrays[f"a{num}_loud"] = self.loud[num]
        write_npz(directory / self.FILE, arrays)

    def knn(self, codes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The ``k`` nearest indexed blocks of each code: (code row, id, Hamming distance)."""
        if not len(codes) or not len(self):
            empty = np.zeros(0, np.int64)
            return empty, empty, empty
        k = min(k, len(self))
        dist, ids = self.index.search(np.ascontiguousarray(codes, dtype=np.uint8), k)
        rows = np.repeat(np.arange(len(codes), dtype=np.int64), k)
        ids, dist = ids.reshape(-1).astype(np.int64), dist.reshape(-1).astype(np.int64)
        keep = ids >= 0
        return rows[keep], ids[keep], dist[keep]


class ChromaprintAudioSignal(Signal):
    """Reused soundtracks (see the module docs for how)."""

    version = 1
    asset_kinds = frozenset({AssetKind.AUDIO, AssetKind.VIDEO})
    index_type = ChromaprintIndex
    needs_audio = True
    visual = False

    def unavailable(self) -> str | None:
        try:
            _chromaprint()
        except ImportError as exc:
            return f"chromaprint is not available ({exc}); install libchromaprint1"
        return None

    # Fingerprints ------------------------------------------------------------------------------

    def fingerprint(self, decoded: Decoded, role: Role) -> Fingerprint:
        """Items, their times and loudness; empty (not an error) for no sound or silence."""
        empty: Fingerprint = {
            "items": np.zeros(0, np.uint32),
            "times": np.zeros(0, np.float32),
            "loud": np.zeros(0, bool),
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
        loud_any = float(np.max(np.abs(audio))) > _QUIET_RMS
        items = chromaprint_items(audio, decoded.sample_rate) if loud_any else empty["items"]
        loud = loud_items(audio, decoded.sample_rate, len(items))
        if not loud.any():
            return empty
        return {
            "items": items,
            "times": (np.arange(len(items)) * HOP_S).astype(np.float32),
            "loud": loud,
        }

    # Search ------------------------------------------------------------------------------------

    def _min_items(self) -> int:
        """Items a match needs: ``min_match_s`` of audio, counted as item starts."""
        return max(BLOCK, math.ceil((self.settings.audio.min_match_s - ITEM_SPAN_S) / HOP_S) + 1)

    def search(
        self, index: SignalIndex, fingerprint: Fingerprint, query_duration: float
    ) -> list[SignalHit]:
        assert isinstance(index, ChromaprintIndex)
        items = np.asarray(fingerprint["items"], np.uint32)
        loud = np.asarray(fingerprint["loud"], bool)
        if len(items) < BLOCK or not len(index):
            return []
        starts, codes = sub_fingerprints(items, loud, 1)
        rows, ids, dist = index.knn(codes, _KNN)
        radius = self.settings.audio.lookup_max_bit_error * BLOCK * ITEM_BITS
        near = dist <= radius
        rows, ids = rows[near], ids[near]
        if not len(rows):
            return []
        assets, entry_rows = split_ids(ids)
        offsets = entry_rows - starts[rows]
        # Near blocks vote more: repetitive music puts every block of a short reference
        # within reach, but only the true alignment brings many of them really close.
        weights = 1.0 - dist[near] / (radius + 1.0)
        candidates = self._candidates(assets, offsets, weights)
        hits: list[SignalHit] = []
        for asset, offs in candidates:
            hits.extend(self._verify(index, asset, offs, items, loud, query_duration))
        return hits

    def _candidates(
        self, assets: np.ndarray, offsets: np.ndarray, weights: np.ndarray
    ) -> list[tuple[int, list[int]]]:
        """Best-voted assets, each with its best distinct offsets (votes pooled over +-1
        item: references index every second block, and a copy's items fall between the
        reference's)."""
        out: list[tuple[int, list[int], float]] = []
        for a in np.unique(assets):
            mine = assets == a
            offs, inverse = np.unique(offsets[mine], return_inverse=True)
            counts = np.bincount(inverse, weights=weights[mine])
            pooled = counts.copy()
            for d in (-1, 1):
                j = np.minimum(np.searchsorted(offs, offs + d), len(offs) - 1)
                pooled += np.where(offs[j] == offs + d, counts[j], 0.0)
            order = np.argsort(-pooled, kind="stable")
            chosen: list[int] = []
            for i in order:
                if pooled[i] < _MIN_VOTES or len(chosen) >= _OFFSETS_PER_ASSET:
                    break
                if all(abs(int(offs[i]) - c) > _DISTINCT for c in chosen):
                    chosen.append(int(offs[i]))
            if chosen:
                out.append((int(a), chosen, float(pooled[order[0]])))
        out.sort(key=lambda t: (-t[2], t[0]))
        return [(a, offs) for a, offs, _ in out[:_MAX_ASSETS]]

    def _verify(
        self,
        index: ChromaprintIndex,
        asset: int,
        offsets: list[int],
        items: np.ndarray,
        loud: np.ndarray,
        query_duration: float,
    ) -> list[SignalHit]:
        """Hits of one asset: each voted offset refined, tested, and cut into stretches."""
        s = self.settings.audio
        ref, r_loud = index.items[asset], index.loud[asset]
        q_loud = loud.copy()
        window = min(_WINDOW, len(items))
        hits: list[SignalHit] = []
        for voted in offsets:
            ber, offset = self._refine(voted, items, q_loud, ref, r_loud, window)
            if ber > s.max_bit_error:
                continue
            flanks = [
                windowed_ber(offset_bit_errors(items, q_loud, ref, r_loud, offset + d), window)[0]
                for d in (*_FLANK, *(-f for f in _FLANK))
            ]
            finite = [f for f in flanks if math.isfinite(f)]
            valley = float(np.mean(finite)) - ber if finite else 0.0
            if valley < s.min_valley:
                continue
            z = self._significance(ber, offset, items, q_loud, ref, r_loud, window)
            sure = ber <= _SURE_BER and window >= _SURE_WINDOW
            if z < s.min_significance and not sure:
                continue
            errors = offset_bit_errors(items, q_loud, ref, r_loud, offset)
            for a, b in self._stretches(errors):
                hits.append(self._hit(asset, offset, errors, a, b, z, len(ref), query_duration))
                q_loud[a:b] = False  # later offsets explain other parts of the query
        return hits

    @staticmethod
    def _refine(
        voted: int,
        items: np.ndarray,
        loud: np.ndarray,
        ref: np.ndarray,
        r_loud: np.ndarray,
        window: int,
    ) -> tuple[float, int]:
        """The bottom of the bit error valley near a voted offset: (windowed error, offset).

        Votes land within an item or two of the truth; walking downhill from the best of
        +-2 finds the exact alignment even when repetitive music blurred the votes."""

        def ber(o: int) -> float:
            return windowed_ber(offset_bit_errors(items, loud, ref, r_loud, o), window)[0]

        cache = {o: ber(o) for o in range(voted - 2, voted + 3)}
        offset = min(cache, key=lambda o: (cache[o], abs(o - voted)))
        for _ in range(_DISTINCT):
            for o in (offset - 1, offset + 1):
                if o not in cache:
                    cache[o] = ber(o)
            step = min((offset - 1, offset + 1), key=lambda o: cache[o])
            if cache[step] >= cache[offset]:
                break
            offset = step
        return cache[offset], offset

    def _significance(
        self,
        ber: float,
        offset: int,
        items: np.ndarray,
        loud: np.ndarray,
        ref: np.ndarray,
        r_loud: np.ndarray,
        window: int,
    ) -> float:
        """How many robust standard deviations ``ber`` sits below the same query's windowed
        bit error against this reference at other offsets (its own "unrelated" level)."""
        lo, hi = -(len(items) - window // 2), len(ref) - window // 2
        others = np.arange(lo, hi + 1)
        others = others[np.abs(others - offset) > _NULL_EXCLUDE]
        if len(others) > _NULL_OFFSETS:
            others = others[np.linspace(0, len(others) - 1, _NULL_OFFSETS).round().astype(int)]
        null = np.array(
            [
                windowed_ber(offset_bit_errors(items, loud, ref, r_loud, int(o)), window)[0]
                for o in others
            ]
        )
        null = null[np.isfinite(null)]
        centre, spread = _PRIOR_NULL
        if len(null) >= 16:
            centre = float(np.median(null))
            spread = max(0.01, 1.4826 * float(np.median(np.abs(null - centre))))
        return (centre - ber) / spread

    def _stretches(self, errors: np.ndarray) -> list[tuple[int, int]]:
        """[start, end) query items where the smoothed error stays under the bound."""
        smooth = _moving_nanmean(errors, _SMOOTH)
        bound = self.settings.audio.max_bit_error + _STRETCH_SLACK
        good = ~np.isnan(smooth) & (smooth <= bound) & ~np.isnan(errors)
        min_items = self._min_items()
        runs = [(a, b) for a, b in _runs(good, max_gap=_SMOOTH) if b - a >= min_items]
        return [(a, b) for a, b in runs if float(np.nanmean(errors[a:b])) <= bound]

    def _hit(
        self,
        asset: int,
        offset: int,
        errors: np.ndarray,
        a: int,
        b: int,
        z: float,
        ref_items: int,
        query_duration: float,
    ) -> SignalHit:
        part = errors[a:b]
        valid = ~np.isnan(part)
        ber = float(np.nanmean(part))
        q_end_cap = query_duration if query_duration > 0 else math.inf
        q0 = a * HOP_S
        q1 = min((b - 1) * HOP_S + ITEM_SPAN_S, q_end_cap)
        ref_len = (ref_items - 1) * HOP_S + ITEM_SPAN_S
        shift = offset * HOP_S
        smooth = _moving_nanmean(errors, _SMOOTH)[a:b]
        best = a + int(np.nanargmin(np.where(valid, smooth, np.nan)))
        return SignalHit(
            asset_num=asset,
            query_start=round(q0, 3),
            query_end=round(max(q1, q0), 3),
            ref_start=round(min(max(q0 + shift, 0.0), ref_len), 3),
            ref_end=round(min(max(q1 + shift, 0.0), ref_len), 3),
            distance=round(ber, 4),
            frames=int(valid.sum()),
            density=float(valid.mean()),
            query_time=round(best * HOP_S, 3),
            ref_time=round((best + offset) * HOP_S, 3),
            query_frame=-1,
            note=f"audio offset {shift:+.1f} s (bit error {ber:.2f}, {z:.0f} sd from chance)",
        )

    # Score -------------------------------------------------------------------------------------

    @staticmethod
    def strength(ber: float) -> float:
        """How clean a match is, in [0, 1]: 1 up to 0.25 bit error (re-encodes, volume
        changes, a quiet voice), 0.75 at 0.30 and 0.5 at 0.35 (speech as loud as the music).

        Hits only exist once an offset passed the significance and valley tests, so even a
        noisy one is real evidence; the bit error says how much of the sound is the title's.
        """
        return min(1.0, max(0.0, (0.45 - ber) / 0.2))

    def score(self, hits: Sequence[SignalHit], query_duration: float) -> float:
        """``1 - exp(-E / 3 s)``, E the query seconds matched, each weighted by the
        :meth:`strength` of the cleanest hit covering it.

        Calibration (measured on generated media): 10 s excerpts of a soundtrack at 60%
        under espeak-ng talking score 0.96 with the voice 3 dB under the music (bit error
        0.17-0.26) and 0.88-0.95 with it as loud as the music (0.27-0.32); clean or
        re-encoded excerpts about 0.96; 3 s at the ``max_bit_error`` bound 0.39 (under the
        medium tier), 3 s clean 0.63. Unrelated audio makes no hits at all (0).
        """
        covered: list[tuple[float, float]] = []
        evidence = 0.0
        for h in sorted(hits, key=lambda h: h.distance):
            new = _uncovered(h.query_start, h.query_end, covered)
            evidence += self.strength(h.distance) * new
            covered.append((h.query_start, h.query_end))
        return round(1.0 - math.exp(-evidence / _TAU_S), 4)


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
