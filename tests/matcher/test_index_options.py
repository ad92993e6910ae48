"""``matcher.index``: the exact catalog indexes give what brute force gives; the approximate
ones (FAISS IVF) keep the pairs within the match threshold, add, remove, save and load, and a
small catalog stays exact.

Synthetic data stands in for frames. Uniformly random hashes or vectors have no
neighbourhoods for an inverted file to use (every list is as near as any other), while
reference frames come in shots of near-identical frames, so the data here does too: shots
of about 64 hashes (16 frames of 4 crops) or 32 descriptors around a random base.
Near-duplicates are planted at chosen distances from indexed entries, on both sides of the
threshold. benchmarks/index_search.py measures the same at a million entries.
"""

from __future__ import annotations

import logging
from pathlib import Path

import faiss
import numpy as np
import pytest

from matcher.catalog import Catalog
from matcher.signals.base import APPROXIMATE_MIN_ENTRIES, ivf_lists
from matcher.signals.copy import PdqIndex
from matcher.signals.descriptor import DescriptorIndex
from reelwatch.settings import MatcherSettings, load_settings

MAX_DISTANCE = MatcherSettings().copy_max_distance
MIN_SIMILARITY = MatcherSettings().descriptor.min_similarity
NEIGHBOURS = MatcherSettings().descriptor.neighbours
DIM = 512
ENTRIES = 20_000
PER_ASSET = 1000


# Synthetic references -------------------------------------------------------------------------


def _owners(rng: np.random.Generator, n: int, shot: int) -> np.ndarray:
    sizes = rng.geometric(1 / shot, size=n)
    return np.repeat(np.arange(n), sizes)[:n]


def shot_hashes(rng: np.random.Generator, n: int) -> np.ndarray:
    """Packed 256-bit hashes: shots of ~64 around a random base, 4-12% of bits flipped."""
    owner = _owners(rng, n, 64)
    bases = rng.integers(0, 2, (owner[-1] + 1, 256), dtype=np.uint8)
    flip_rate = rng.uniform(0.04, 0.12, owner[-1] + 1)
    flips = rng.random((n, 256)) < flip_rate[owner, None]
    return np.packbits(bases[owner] ^ flips, axis=1)


def near_hashes(rng: np.random.Generator, hashes: np.ndarray, flips: np.ndarray) -> np.ndarray:
    """Each hash with ``flips[i]`` of its bits flipped."""
    bits = np.unpackbits(hashes, axis=1)
    for row, count in zip(bits, flips.tolist(), strict=True):
        row[rng.choice(256, count, replace=False)] ^= 1
    return np.packbits(bits, axis=1)


def shot_vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    """Unit float16 vectors: shots of ~32 at cosine 0.8-0.95 from a random base."""
    owner = _owners(rng, n, 32)
    bases = rng.standard_normal((owner[-1] + 1, DIM)).astype(np.float32)
    bases /= np.linalg.norm(bases, axis=1, keepdims=True)
    cos = rng.uniform(0.8, 0.95, owner[-1] + 1)
    noise = rng.standard_normal((n, DIM)).astype(np.float32)
    v = bases[owner] + noise * np.sqrt((1 / cos**2 - 1) / DIM)[owner, None].astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v.astype(np.float16)


def near_vectors(rng: np.random.Generator, vectors: np.ndarray, cos: np.ndarray) -> np.ndarray:
    """Unit vectors at cosine ``cos[i]`` from ``vectors[i]``."""
    v = vectors.astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    u = rng.standard_normal(v.shape).astype(np.float32)
    u -= (u * v).sum(axis=1, keepdims=True) * v
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    c = cos.astype(np.float32)[:, None]
    out: np.ndarray = c * v + np.sqrt(1 - c**2) * u
    return out


def fill(index: PdqIndex | DescriptorIndex, data: np.ndarray, first_asset: int = 0) -> None:
    """Index ``data`` as assets of :data:`PER_ASSET` rows (asset numbers from ``first_asset``)."""
    key = "hashes" if isinstance(index, PdqIndex) else "descriptors"
    for k, start in enumerate(range(0, len(data), PER_ASSET)):
        rows = data[start : start + PER_ASSET]
        times = np.arange(len(rows), dtype=np.float32) / 4
        index.add(first_asset + k, {key: rows, "times": times})


def row_ids(n: int, first_asset: int = 0) -> np.ndarray:
    """FAISS ids of rows ``0..n`` as :func:`fill` indexes them."""
    rows = np.arange(n, dtype=np.int64)
    return ((first_asset + rows // PER_ASSET) << 24) + rows % PER_ASSET


# Brute force ----------------------------------------------------------------------------------


def brute_pairs(queries: np.ndarray, hashes: np.ndarray, ids: np.ndarray) -> set[tuple]:
    """(query row, id, distance) of every indexed hash within the threshold (numpy)."""
    table = np.array([bin(i).count("1") for i in range(256)], np.int64)
    out: set[tuple] = set()
    for q, h in enumerate(queries):
        dist = table[np.bitwise_xor(hashes, h)].sum(axis=1)
        for i in np.flatnonzero(dist <= MAX_DISTANCE).tolist():
            out.add((q, int(ids[i]), int(dist[i])))
    return out


def found_pairs(index: PdqIndex, queries: np.ndarray) -> set[tuple]:
    rows, ids, dist = index.range_search(queries, MAX_DISTANCE)
    return set(zip(rows.tolist(), ids.tolist(), dist.tolist(), strict=True))


def assert_brute_force_neighbours(
    index: DescriptorIndex, queries: np.ndarray, vectors: np.ndarray, ids: np.ndarray
) -> None:
    """``index.nearest`` gives each query's ``NEIGHBOURS`` most similar vectors, as numpy
    finds them, up to floating-point ties at the last place (two vectors of one shot can be
    equally similar to 1e-6, and float sums in another order pick either)."""
    sims = queries @ vectors.astype(np.float32).T
    kth = -np.partition(-sims, NEIGHBOURS - 1, axis=1)[:, NEIGHBOURS - 1]
    rows, got, got_sims = index.nearest(queries, NEIGHBOURS)
    where = {int(i): p for p, i in enumerate(ids.tolist())}
    pos = np.array([where[i] for i in got.tolist()])
    assert np.bincount(rows, minlength=len(queries)).tolist() == [NEIGHBOURS] * len(queries)
    assert np.allclose(got_sims, sims[rows, pos], atol=1e-5)
    assert (sims[rows, pos] >= kth[rows] - 1e-5).all()
    q, i = np.nonzero(sims > kth[:, None] + 1e-5)
    must = set(zip(q.tolist(), ids[i].tolist(), strict=True))
    assert must <= set(zip(rows.tolist(), got.tolist(), strict=True))


def nearest_pairs(index: DescriptorIndex, queries: np.ndarray, threshold: float = -1.0) -> set:
    rows, ids, sims = index.nearest(queries, NEIGHBOURS)
    keep = sims >= threshold
    return set(zip(rows[keep].tolist(), ids[keep].tolist(), strict=True))


def recall(truth: set, found: set) -> float:
    return len(truth & found) / len(truth)


# Fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hashes() -> tuple[np.ndarray, np.ndarray]:
    """Indexed hashes and queries planted 0-100 bits from 400 of them."""
    rng = np.random.default_rng(0)
    data = shot_hashes(rng, ENTRIES)
    picked = rng.choice(ENTRIES, 400, replace=False)
    return data, near_hashes(rng, data[picked], rng.integers(0, 101, 400))


@pytest.fixture(scope="module")
def vectors() -> tuple[np.ndarray, np.ndarray]:
    """Indexed descriptors and queries planted at cosine 0.2-0.95 from 300 of them."""
    rng = np.random.default_rng(1)
    data = shot_vectors(rng, ENTRIES)
    picked = rng.choice(ENTRIES, 300, replace=False)
    return data, near_vectors(rng, data[picked], rng.uniform(0.2, 0.95, 300))


@pytest.fixture(scope="module")
def approximate_pdq(hashes: tuple[np.ndarray, np.ndarray]) -> PdqIndex:
    index = PdqIndex()
    fill(index, hashes[0])
    assert index.settle("approximate")
    return index


@pytest.fixture(scope="module")
def approximate_descriptors(vectors: tuple[np.ndarray, np.ndarray]) -> DescriptorIndex:
    index = DescriptorIndex()
    fill(index, vectors[0])
    assert index.settle("approximate")
    return index


# Exact: what brute force gives ----------------------------------------------------------------


def test_exact_pdq_index_returns_the_brute_force_pairs(
    hashes: tuple[np.ndarray, np.ndarray],
) -> None:
    data, queries = hashes
    index = PdqIndex()
    fill(index, data)
    assert not index.settle("exact")  # the default leaves today's index as it is
    assert index.kind() == "exact" and isinstance(index.index, faiss.IndexBinaryIDMap2)
    want = brute_pairs(queries, data, row_ids(len(data)))
    assert found_pairs(index, queries) == want
    planted = {q for q, _, d in want if d > 60}
    assert len(want) > 1000 and len(planted) > 20  # pairs up to the threshold are there


def test_exact_descriptor_index_returns_the_brute_force_neighbours(
    vectors: tuple[np.ndarray, np.ndarray],
) -> None:
    data, queries = vectors
    index = DescriptorIndex()
    fill(index, data)
    assert not index.settle("exact")
    assert index.kind() == "exact" and isinstance(index.index, faiss.IndexIDMap2)
    assert_brute_force_neighbours(index, queries, data, row_ids(len(data)))


# Approximate: recall at the threshold ---------------------------------------------------------


def test_approximate_pdq_index_keeps_the_pairs_within_the_threshold(
    hashes: tuple[np.ndarray, np.ndarray], approximate_pdq: PdqIndex
) -> None:
    data, queries = hashes
    index = approximate_pdq
    assert index.kind() == "approximate" and isinstance(index.index, faiss.IndexBinaryIVF)
    assert index.lists() == ENTRIES // PdqIndex.PER_LIST and index.index.nprobe == PdqIndex.PROBES
    want = brute_pairs(queries, data, row_ids(len(data)))
    got = found_pairs(index, queries)
    assert got <= want  # distances are exact; only pairs in unvisited lists are missed
    assert recall(want, got) >= 0.95
    far = {p for p in want if p[2] > 60}
    assert recall(far, got) >= 0.85  # the hard end is not left out wholesale


def test_approximate_descriptor_index_keeps_the_neighbours_above_the_threshold(
    vectors: tuple[np.ndarray, np.ndarray], approximate_descriptors: DescriptorIndex
) -> None:
    data, queries = vectors
    index = approximate_descriptors
    assert index.kind() == "approximate" and index.lists() == ivf_lists(ENTRIES)
    assert isinstance(index.index, faiss.IndexIVFScalarQuantizer)
    exact = DescriptorIndex()
    fill(exact, data)
    want = nearest_pairs(exact, queries, MIN_SIMILARITY)
    assert len(want) > 1000
    assert recall(want, nearest_pairs(index, queries)) >= 0.95


# Approximate: the index keeps working as the catalog changes ----------------------------------


def test_approximate_pdq_index_adds_removes_saves_and_loads(
    tmp_path: Path, hashes: tuple[np.ndarray, np.ndarray]
) -> None:
    data, queries = hashes
    index = PdqIndex()
    fill(index, data)
    index.settle("approximate")
    added = near_hashes(np.random.default_rng(5), queries[:50], np.full(50, 3))
    assert index.add(999, {"hashes": added, "times": np.zeros(50, np.float32)}) == 50
    rows, ids, _ = index.range_search(queries[:50], 3)
    assert {(r, i) for r, i in zip(rows.tolist(), ids.tolist(), strict=True)} >= {
        (r, (999 << 24) + r) for r in range(50)
    }
    assert index.remove([999, 3]) == 50 + PER_ASSET
    assert len(index) == ENTRIES - PER_ASSET and 3 not in index.asset_nums()
    found = found_pairs(index, queries)
    assert not {i for _, i, _ in found} & set(row_ids(ENTRIES)[3000:4000].tolist())
    assert all(i >> 24 != 999 for _, i, _ in found)

    index.save(tmp_path)
    loaded = PdqIndex.load(tmp_path)
    assert loaded.kind() == "approximate" and loaded.index.nprobe == PdqIndex.PROBES
    assert len(loaded) == len(index) and loaded.asset_nums() == index.asset_nums()
    assert found_pairs(loaded, queries) == found

    assert loaded.settle("exact") and loaded.kind() == "exact"
    kept = np.ones(ENTRIES, bool)
    kept[3000:4000] = False
    assert found_pairs(loaded, queries) == brute_pairs(queries, data[kept], row_ids(ENTRIES)[kept])


def test_approximate_descriptor_index_adds_removes_saves_and_loads(
    tmp_path: Path, vectors: tuple[np.ndarray, np.ndarray]
) -> None:
    data, queries = vectors
    index = DescriptorIndex()
    fill(index, data)
    index.settle("approximate")
    added = queries[:20].astype(np.float16)
    index.add(999, {"descriptors": added, "times": np.zeros(20, np.float32)})
    _, ids, sims = index.nearest(queries[:20], 1)
    assert ids.tolist() == [(999 << 24) + r for r in range(20)]
    assert np.allclose(sims, 1.0, atol=1e-3)
    # entries reconstruct by id (the descriptor signal re-scores aligned frames with them)
    stored = index.index.reconstruct_batch(row_ids(ENTRIES)[[5, 7000]])
    assert np.allclose(stored, data[[5, 7000]].astype(np.float32), atol=1e-6)

    assert index.remove([999, 2]) == 20 + PER_ASSET
    assert len(index) == ENTRIES - PER_ASSET
    found = nearest_pairs(index, queries)
    assert all(i >> 24 not in (2, 999) for _, i in found)

    index.save(tmp_path)
    loaded = DescriptorIndex.load(tmp_path)
    assert loaded.kind() == "approximate" and loaded.index.nprobe == DescriptorIndex.PROBES
    assert nearest_pairs(loaded, queries) == found

    assert loaded.settle("exact") and loaded.kind() == "exact"
    loaded.save(tmp_path)
    loaded = DescriptorIndex.load(tmp_path)  # streamed back from the .npz, exact
    assert isinstance(loaded.index, faiss.IndexIDMap2) and len(loaded) == ENTRIES - PER_ASSET
    kept = np.ones(ENTRIES, bool)
    kept[2000:3000] = False
    assert_brute_force_neighbours(loaded, queries, data[kept], row_ids(ENTRIES)[kept])


def test_an_empty_descriptor_index_saves_and_loads(tmp_path: Path) -> None:
    DescriptorIndex().save(tmp_path)
    loaded = DescriptorIndex.load(tmp_path)
    assert loaded.index is None and len(loaded) == 0 and loaded.kind() == "exact"


def test_an_approximate_index_is_trained_again_when_it_has_outgrown_its_lists(
    hashes: tuple[np.ndarray, np.ndarray],
) -> None:
    data = hashes[0]
    index = PdqIndex()
    fill(index, data[:APPROXIMATE_MIN_ENTRIES])
    assert index.settle("approximate")
    small = index.lists()
    assert small == index.list_count(APPROXIMATE_MIN_ENTRIES)
    fill(index, data[APPROXIMATE_MIN_ENTRIES:8000], first_asset=100)
    assert not index.settle("approximate") and index.lists() == small  # grown, not outgrown
    fill(index, data[8000:], first_asset=200)
    assert index.settle("approximate")
    assert index.lists() == index.list_count(ENTRIES) >= 4 * small
    assert len(index) == ENTRIES


# A small catalog stays exact ------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["copy", "descriptor"])
def test_a_small_index_stays_exact_when_approximate_is_asked_for(
    kind: str,
    hashes: tuple[np.ndarray, np.ndarray],
    vectors: tuple[np.ndarray, np.ndarray],
) -> None:
    small = APPROXIMATE_MIN_ENTRIES - PER_ASSET // 2
    index = PdqIndex() if kind == "copy" else DescriptorIndex()
    data, queries = hashes if kind == "copy" else vectors
    fill(index, data[:small])
    assert index.target_kind("approximate") == "exact"
    assert not index.settle("approximate") and index.kind() == "exact"
    if isinstance(index, PdqIndex):
        assert found_pairs(index, queries) == brute_pairs(queries, data[:small], row_ids(small))
    else:
        assert_brute_force_neighbours(index, queries, data[:small], row_ids(small))


# The catalog ----------------------------------------------------------------------------------


def test_catalog_serves_an_index_of_the_other_kind_with_a_warning_until_rebuilt(
    tmp_path: Path, hashes: tuple[np.ndarray, np.ndarray], caplog: pytest.LogCaptureFixture
) -> None:
    """An approximate copy index found by a catalog set to exact: searched as it is, with a
    warning naming ``reelwatch catalog build``; a build re-makes it exact."""
    settings = load_settings(home=tmp_path)
    settings.matcher.signals = ["copy"]
    settings.ensure_home()
    catalog = Catalog(settings)
    saved = PdqIndex()
    fill(saved, hashes[0][:8000])
    saved.settle("approximate")
    saved.save(catalog.index_dir)

    with caplog.at_level(logging.WARNING, logger="matcher.catalog"):
        served = catalog.index("copy")
    assert isinstance(served, PdqIndex) and served.kind() == "approximate"
    assert len(served) == 8000
    assert any(
        "copy index is approximate" in r.message and "reelwatch catalog build" in r.message
        for r in caplog.records
    )
    catalog.build()  # no assets: an empty index, exact as the setting says
    rebuilt = catalog.index("copy")
    assert rebuilt.kind() == "exact" and len(rebuilt) == 0
    assert PdqIndex.load(catalog.index_dir).kind() == "exact"


def test_catalog_saves_indexes_as_the_setting_asks(
    tmp_path: Path, hashes: tuple[np.ndarray, np.ndarray]
) -> None:
    """With ``matcher.index = "approximate"`` an exact index the catalog holds is trained
    when the catalog next saves its indexes (here: a title removed), and loads back so."""
    settings = load_settings(home=tmp_path)
    settings.matcher.signals = ["copy"]
    settings.matcher.index = "approximate"
    settings.ensure_home()
    catalog = Catalog(settings)
    saved = PdqIndex()
    fill(saved, hashes[0][:8000])
    saved.save(catalog.index_dir)
    assert catalog.index("copy").kind() == "exact"

    catalog.remove_title(catalog.add_title("Index Types").id)
    served = catalog.index("copy")
    assert served.kind() == "approximate" and len(served) == 8000
    assert PdqIndex.load(catalog.index_dir).kind() == "approximate"


def test_the_exact_descriptor_search_gives_what_faiss_gives(
    vectors: tuple[np.ndarray, np.ndarray],
) -> None:
    """The CPU's matrix-product search of the exact index (``exact_nearest``) and FAISS's own
    scan of the same float16 vectors find the same neighbours, best first."""
    from matcher.signals.descriptor import EXACT_CHUNK, exact_nearest

    data, queries = vectors
    index = DescriptorIndex()
    fill(index, data)
    stored = index.stored_vectors()
    assert stored is not None and len(data) > EXACT_CHUNK // 4
    want_sims, want_ids = index.index.search(queries, NEIGHBOURS)
    where = {int(i): p for p, i in enumerate(row_ids(len(data)).tolist())}
    for chunk in (EXACT_CHUNK, 1000):  # one chunk, and merging across many
        import matcher.signals.descriptor as descriptor

        old, descriptor.EXACT_CHUNK = descriptor.EXACT_CHUNK, chunk
        try:
            sims, ids = exact_nearest(queries, *stored, NEIGHBOURS)
        finally:
            descriptor.EXACT_CHUNK = old
        assert np.allclose(sims, want_sims, atol=1e-5)
        assert (np.diff(sims, axis=1) <= 0).all()
        for q in range(len(queries)):
            # Sets differ only by ties at the last place (float sums in another order).
            differ = set(ids[q].tolist()) ^ set(want_ids[q].tolist())
            tied = data[[where[i] for i in differ]].astype(np.float32) @ queries[q]
            assert np.allclose(tied, sims[q, -1], atol=1e-5)
    # Fewer stored than asked for: the rest is -1, as FAISS marks it.
    few = exact_nearest(queries[:2], stored[0][:3], stored[1][:3], 5)
    assert (few[1][:, 3:] == -1).all() and (few[1][:, :3] >= 0).all()
