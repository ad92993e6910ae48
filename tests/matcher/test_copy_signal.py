from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from matcher.decode import decode
from matcher.signals.align import align
from matcher.signals.copy import (
    HASH_BYTES,
    PdqCopySignal,
    PdqIndex,
    content_box,
    pdq,
    pdq_with_mirror,
)
from reelwatch.demo import media
from reelwatch.demo.content import DemoContent
from reelwatch.settings import MatcherSettings
from tests.matcher.signal_contract import ContractCase, SignalContract, media_case


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Brute-force pairwise Hamming distances between packed hashes ``a (n, 32)``, ``b (m, 32)``."""
    x = np.bitwise_xor(a[:, None, :], b[None, :, :])
    return np.unpackbits(x, axis=2).sum(axis=2)


def _random_hashes(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 256, (n, HASH_BYTES), dtype=np.uint8)


def _near(rng: np.random.Generator, h: np.ndarray, flips: int) -> np.ndarray:
    bits = np.unpackbits(h)
    idx = rng.choice(bits.size, flips, replace=False)
    bits[idx] ^= 1
    return np.packbits(bits)


def test_faiss_index_agrees_with_brute_force_hamming() -> None:
    rng = np.random.default_rng(0)
    index = PdqIndex()
    stored = {}
    for asset in (3, 9, 12):
        hashes = _random_hashes(rng, 200)
        index.add(asset, {"hashes": hashes, "times": np.arange(200, dtype=np.float32) / 4})
        stored[asset] = hashes
    # Queries near some stored hashes, plus random ones.
    queries = np.stack(
        [_near(rng, stored[9][i], flips=i) for i in range(0, 100, 5)]
        + list(_random_hashes(rng, 10))
    )
    all_hashes = np.concatenate([stored[a] for a in (3, 9, 12)])
    all_assets = np.repeat([3, 9, 12], 200)
    all_times = np.tile(np.arange(200) / 4, 3)
    brute = hamming(queries, all_hashes)

    rows, ids, dist = index.range_search(queries, 60)
    assets, times = index.decode_ids(ids)
    got = sorted(zip(rows.tolist(), assets.tolist(), times.tolist(), dist.tolist(), strict=True))
    qi, hi = np.nonzero(brute <= 60)
    want = sorted(
        zip(
            qi.tolist(),
            all_assets[hi].tolist(),
            all_times[hi].tolist(),
            brute[qi, hi].tolist(),
            strict=True,
        )
    )
    assert got == want
    assert len(want) >= 10  # the test must exercise real hits


def test_index_remove_save_load(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    index = PdqIndex()
    a, b = _random_hashes(rng, 50), _random_hashes(rng, 70)
    index.add(1, {"hashes": a, "times": np.zeros(50, np.float32)})
    index.add(2, {"hashes": b, "times": np.ones(70, np.float32)})
    assert len(index) == 120
    assert index.remove([1]) == 50
    assert len(index) == 70 and index.asset_nums() == {2}
    index.save(tmp_path)
    loaded = PdqIndex.load(tmp_path)
    assert len(loaded) == 70 and loaded.asset_nums() == {2}
    rows, ids, dist = loaded.range_search(b[:3], 0)
    assert rows.tolist() == [0, 1, 2] and dist.tolist() == [0, 0, 0]
    assert loaded.decode_ids(ids)[0].tolist() == [2, 2, 2]


def test_content_box_finds_the_picture_inside_a_blurred_9_16_frame(
    demo: DemoContent,
) -> None:
    clip = media.read_clip(demo.titles[1].references[0], 2.0, 0.5)
    boxed = media.letterbox_vertical(clip).frames[0]
    box = content_box(boxed)
    assert box is not None
    x0, y0, x1, y1 = box
    assert (x0, x1) == (0, 360)
    assert abs(y0 - (640 - 202) // 2) <= 6 and abs(y1 - (640 + 202) // 2) <= 6
    assert content_box(clip.frames[0]) is None


def test_mirror_hash_comes_free_with_the_query() -> None:
    img = media.load_photo("astronaut")
    h, hm, quality = pdq_with_mirror(img)
    flipped, _ = pdq(np.ascontiguousarray(img[:, ::-1]))
    assert quality >= 50
    assert int(hamming(h[None], pdq(img)[0][None])[0, 0]) == 0
    # The dihedral mirror is near the hash of the flipped image, far from the original's.
    assert int(hamming(hm[None], flipped[None])[0, 0]) <= 16
    assert int(hamming(h[None], flipped[None])[0, 0]) >= 64


@pytest.mark.parametrize("slope,offset", [(1.0, 4.0), (1.25, 2.0), (0.8, 10.0)])
def test_align_recovers_speed_and_offset_among_noise(slope: float, offset: float) -> None:
    rng = np.random.default_rng(3)
    q_frames = np.arange(20)
    q = q_frames * 0.5
    true_r = slope * q + offset + rng.normal(0, 0.1, q.size)
    # Each query frame also matches a few neighbouring reference frames (slow camera moves)
    # and some random ones (collisions).
    qs = np.concatenate([q, q, q, rng.choice(q, 15)])
    rs = np.concatenate([true_r, true_r + 0.25, true_r - 0.25, rng.uniform(0, 30, 15)])
    qi = np.concatenate([q_frames, q_frames, q_frames, rng.choice(q_frames, 15)])
    dist = np.concatenate([np.full(60, 20.0), np.full(15, 70.0)])
    runs = align(qs, rs, qi, dist, tol=1.0, max_gap=3.0, min_frames=3)
    assert runs
    best = runs[0]
    assert best.line.slope == pytest.approx(slope, rel=0.05)
    assert best.line.offset == pytest.approx(offset, abs=0.6)
    assert best.pairs.size >= 18


def test_random_collisions_make_no_segment() -> None:
    rng = np.random.default_rng(4)
    q = rng.choice(np.arange(20) * 0.5, 12)
    qi = (q * 2).astype(int)
    r = rng.uniform(0, 60, 12)
    runs = align(q, r, qi, np.full(12, 75.0), tol=1.0, max_gap=3.0, min_frames=3)
    assert all(run.pairs.size < 4 for run in runs)


def test_signal_matches_an_excerpt_of_its_reference(demo: DemoContent, tmp_path: Path) -> None:
    sig = PdqCopySignal(MatcherSettings())
    ref_path = demo.titles[0].references[0]
    index = sig.new_index()
    index.add(7, sig.fingerprint(decode(ref_path, 4.0, 600), "reference"))
    post = media.transform_file(
        ref_path, tmp_path / "q.mp4", [media.mirror, media.letterbox_vertical], start=5, duration=6
    )
    q = decode(post, 2.0, 600)
    hits = sig.search(index, sig.fingerprint(q, "query"), q.duration)
    assert len(hits) == 1
    h = hits[0]
    assert h.asset_num == 7
    assert h.query_start == pytest.approx(0.0, abs=1.0)
    assert h.query_end == pytest.approx(6.0, abs=1.0)
    assert h.ref_start == pytest.approx(5.0, abs=1.0)
    assert h.ref_end == pytest.approx(11.0, abs=1.0)
    assert h.distance < 40
    assert sig.score(hits, q.duration) >= 0.75


class TestCopyContract(SignalContract):
    @pytest.fixture(scope="class")
    @classmethod
    def case(cls, demo: DemoContent) -> ContractCase:
        ref = demo.titles[2].references[0]
        return media_case(
            PdqCopySignal(MatcherSettings()),
            reference=ref,
            other=demo.titles[1].references[0],
            query=ref,
            unrelated=demo.unrelated[0].path,
        )
