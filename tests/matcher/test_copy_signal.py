from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from matcher.decode import decode
from matcher.signals.align import Line, align, unit_speed
from matcher.signals.base import Fingerprint
from matcher.signals.copy import (
    HASH_BYTES,
    PIP,
    PdqCopySignal,
    PdqIndex,
    content_box,
    pdq,
    pdq_with_mirror,
    pip_windows,
    without_overlays,
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


# Robustness: one indexed catalog of every demo reference, one source excerpt, many edits ----

EXCERPT_START, EXCERPT_S = 4.0, 8.0
"""The excerpt of the first demo reference every edit below starts from (a hard cut at 6 s)."""


@dataclass(frozen=True)
class Edit:
    transforms: list[Callable[[media.Clip], media.Clip]]
    speed: float = 1.0
    crf: int = 23


@pytest.fixture(scope="module")
def catalog(demo: DemoContent) -> tuple[PdqCopySignal, PdqIndex]:
    """Every demo reference indexed once (asset numbers 0..3; the first is the source)."""
    sig = PdqCopySignal(MatcherSettings())
    index = sig.new_index()
    refs = [r for t in demo.titles for r in t.references]
    fps = sig.settings.reference_sample_fps
    for num, ref in enumerate(refs):
        index.add(num, sig.fingerprint(decode(ref, fps, 600, keyframes=True), "reference"))
    return sig, index


@pytest.fixture(scope="module")
def source(demo: DemoContent) -> media.Clip:
    return media.read_clip(demo.titles[0].references[0], EXCERPT_START, EXCERPT_S)


def _query(sig: PdqCopySignal, path: Path) -> tuple[Fingerprint, float]:
    q = decode(path, sig.settings.sample_fps, 600, keyframes=True)
    return sig.fingerprint(q, "query"), q.duration


EDITS = {
    "crop": Edit([partial(media.crop, fraction=0.8)]),
    "mirror": Edit([media.mirror]),
    "letterbox-9:16": Edit([media.letterbox_vertical]),
    "text+emoji": Edit(
        [partial(media.overlay_text, text="S2 LEAK?? full ep"), media.overlay_stickers]
    ),
    "pip-over-photo": Edit([partial(media.picture_in_picture, background="coffee", scale=0.45)]),
    "pip-9:16-over-video": Edit([]),  # background clip filled in by the test (a demo post)
    "speed-1.25": Edit([partial(media.change_speed, factor=1.25)], speed=1.25),
    "speed-0.8": Edit([partial(media.change_speed, factor=0.8)], speed=0.8),
    "fps-24-to-30-blended": Edit([partial(media.change_fps, fps=30, blend=True)]),
    "fps-24-to-15": Edit([partial(media.change_fps, fps=15)]),
    "heavy-reencode-240px-crf44": Edit([media.heavy_reencode], crf=44),
    "combination": Edit(
        [
            media.mirror,
            partial(media.crop, fraction=0.85),
            partial(media.change_fps, fps=30),
            media.letterbox_vertical,
            partial(media.overlay_text, text="part 2"),
            partial(media.recompress, crf=32),
        ]
    ),
}


@pytest.mark.parametrize("name", list(EDITS))
def test_edited_excerpt_is_found_with_its_times(
    name: str,
    catalog: tuple[PdqCopySignal, PdqIndex],
    source: media.Clip,
    demo: DemoContent,
    tmp_path: Path,
) -> None:
    sig, index = catalog
    edit = EDITS[name]
    transforms = list(edit.transforms)
    if name == "pip-9:16-over-video":
        reaction = media.read_clip(demo.unrelated[1].path)
        transforms = [
            partial(
                media.picture_in_picture,
                background=reaction,
                scale=0.4,
                position="bottom-left",
                size=(360, 640),
            )
        ]
    clip = source
    for t in transforms:
        clip = t(clip)
    fp, duration = _query(sig, media.write_clip(clip, tmp_path / "q.mp4", crf=edit.crf))
    hits = sig.search(index, fp, duration)
    assert hits, name
    assert {h.asset_num for h in hits} == {0}
    best = max(hits, key=lambda h: h.query_end - h.query_start)
    want_q = EXCERPT_S / edit.speed
    assert best.query_start == pytest.approx(0.0, abs=1.0)
    assert best.query_end == pytest.approx(want_q, abs=1.0)
    assert best.ref_start == pytest.approx(EXCERPT_START, abs=1.0)
    assert best.ref_end == pytest.approx(EXCERPT_START + EXCERPT_S, abs=1.0)
    assert sig.score(hits, duration) >= 0.75
    if name.startswith("pip"):
        assert PIP in set(fp["variants"].tolist())  # found through a detected window


def test_unrelated_demo_posts_find_nothing(
    catalog: tuple[PdqCopySignal, PdqIndex], demo: DemoContent
) -> None:
    sig, index = catalog
    assert len(demo.unrelated) >= 5
    for post in demo.unrelated:
        fp, duration = _query(sig, post.path)
        hits = sig.search(index, fp, duration)
        assert hits == [], post.transform
        assert sig.score(hits, duration) == 0.0


def test_pip_window_is_found_where_it_was_put(source: media.Clip) -> None:
    clip = media.excerpt(source, 0.0, 4.0)
    pip = media.picture_in_picture(clip, "coffee", scale=0.5, position="bottom-left")
    # 640x360 canvas: a 320x180 window, 26 px (4% of 640) from the left and bottom edges.
    want = (26, 360 - 26 - 180, 26 + 320, 360 - 26)
    frames = np.stack(pip.frames[:: round(pip.fps / 2)])
    found = pip_windows(frames)
    assert found
    assert all(abs(a - b) <= 4 for a, b in zip(found[0], want, strict=True)), found
    # The plain footage has no window (hard cut and camera moves included).
    assert pip_windows(np.stack(clip.frames[:: round(clip.fps / 2)])) == []


def test_overlay_cleaning_brings_hashes_back(source: media.Clip) -> None:
    """The cleaned variant is an extra hash: what counts is the closer of the two per frame."""
    clip = media.excerpt(source, 2.0, 6.0)  # the rocket: dark, few features, easily swamped
    covered = media.overlay_stickers(media.overlay_text(clip, "S2 LEAK?? full ep"))

    def dist(a: np.ndarray, b: np.ndarray) -> int:
        return int(hamming(pdq(a)[0][None], pdq(b)[0][None])[0, 0])

    raw, best = [], []
    for plain, frame in list(zip(clip.frames, covered.frames, strict=True))[::12]:
        clean = without_overlays(frame)
        assert clean is not None
        raw.append(dist(frame, plain))
        best.append(min(raw[-1], dist(clean, plain)))
    assert np.mean(best) <= np.mean(raw) - 10, (raw, best)
    # A frame full of saturated colour (the orange spacesuit) is content, not overlay.
    assert without_overlays(source.frames[0]) is None


def test_unit_speed_wins_only_near_normal_speed() -> None:
    q = np.arange(16) * 0.5
    drift = 4.25 + q * 0.9 + np.tile([0.1, -0.1], 8)  # noisy closest frames of a 1x copy
    assert unit_speed(Line(0.9, 4.25), q, drift, 1.0).slope == 1.0
    fast = 4.0 + 1.25 * q
    assert unit_speed(Line(1.25, 4.0), q, fast, 1.0).slope == 1.25


def test_new_transforms_keep_time_and_size(source: media.Clip) -> None:
    fps30 = media.change_fps(source, 30, blend=True)
    assert fps30.fps == 30 and fps30.duration == pytest.approx(source.duration, abs=0.05)
    assert fps30.audio.shape[1] == pytest.approx(source.audio.shape[1], abs=2)
    pip = media.picture_in_picture(source, "coffee", size=(360, 640))
    assert pip.size == (360, 640) and len(pip.frames) == len(source.frames)
    small = media.heavy_reencode(source)
    assert small.size == (240, 134) and small.fps == 15


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
