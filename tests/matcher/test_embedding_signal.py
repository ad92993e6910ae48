"""The embedding signal, run through a real (tiny, randomly initialised) CLIP checkpoint.

No pretrained image model may be downloaded here, so the tests build a 2-layer CLIP with
32-pixel inputs, seeded, save it with ``save_pretrained`` beside its image processor config
and load it the way a real checkpoint is loaded (``EmbeddingSettings.model`` -> folder).

What random weights can honestly show: the plumbing (preprocessing equal to transformers'
own processors, batching, normalisation, the index, alignment, persistence) and that
*identical* frames give identical embeddings, so a re-encoded excerpt finds its reference
with the right times. They cannot show that re-creations land near originals; random
features are all close together (unrelated demo frames sit at cosine 0.93-0.99), so the
test settings raise ``min_similarity`` to 0.999.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from matcher.decode import Decoded, decode
from matcher.models import Preprocess, load_image_encoder
from matcher.signals.embedding import (
    MAX_PAIRS_PER_FRAME,
    ClipEmbeddingSignal,
    EmbeddingIndex,
)
from reelwatch.demo import media
from reelwatch.demo.content import DemoContent
from reelwatch.settings import MatcherSettings
from tests.matcher.signal_contract import ContractCase, SignalContract, media_case

TEST_MIN_SIMILARITY = 0.999


def _save_tiny_clip(folder: Path, seed: int) -> Path:
    import torch
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel

    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config={
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_attention_heads": 4,
            "num_hidden_layers": 2,
            "vocab_size": 99,
            "max_position_embeddings": 16,
            "bos_token_id": 0,
            "eos_token_id": 1,
            "pad_token_id": 1,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_attention_heads": 4,
            "num_hidden_layers": 2,
            "image_size": 32,
            "patch_size": 8,
        },
        projection_dim=16,
    )
    CLIPModel(config).save_pretrained(folder)
    CLIPImageProcessorPil(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    ).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _save_tiny_clip(tmp_path_factory.mktemp("tiny-clip"), seed=0)


def tiny_settings(model: Path, device: str = "cpu") -> MatcherSettings:
    m = MatcherSettings()
    m.embedding.model = str(model)
    m.embedding.device = device
    m.embedding.min_similarity = TEST_MIN_SIMILARITY
    return m


@pytest.fixture(scope="module")
def signal(tiny_clip: Path) -> ClipEmbeddingSignal:
    return ClipEmbeddingSignal(tiny_settings(tiny_clip))


# Availability and configuration ------------------------------------------------------------------


def test_off_until_a_model_is_set(tmp_path: Path) -> None:
    reason = ClipEmbeddingSignal(MatcherSettings()).unavailable()
    assert reason and "REELWATCH_MATCHER__EMBEDDING__MODEL" in reason
    m = MatcherSettings()
    m.embedding.model = str(tmp_path / "missing")
    assert "does not exist" in (ClipEmbeddingSignal(m).unavailable() or "")
    m.embedding.model = "openai/not-a-cached-checkpoint"
    assert "not in the local Hugging Face cache" in (ClipEmbeddingSignal(m).unavailable() or "")


def test_cuda_asked_for_without_one_is_reported(tiny_clip: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    reason = ClipEmbeddingSignal(tiny_settings(tiny_clip, device="cuda")).unavailable()
    assert reason and "no CUDA device" in reason


def test_config_key_names_the_model(tiny_clip: Path, tmp_path: Path) -> None:
    other = _save_tiny_clip(tmp_path / "other", seed=1)
    a = ClipEmbeddingSignal(tiny_settings(tiny_clip))
    b = ClipEmbeddingSignal(tiny_settings(other))
    assert a.unavailable() is None
    assert str(tiny_clip) in a.config_key()
    assert a.config_key() != b.config_key()


# Preprocessing and encoding ----------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(48, 64, 3), (90, 40, 3), (37, 91, 3), (360, 640, 3)])
@pytest.mark.parametrize("kind", ["clip", "siglip"])
def test_preprocessing_equals_transformers_processors(
    tmp_path: Path, shape: tuple[int, int, int], kind: str
) -> None:
    from transformers import CLIPImageProcessorPil, SiglipImageProcessorPil

    processor = (
        CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
        if kind == "clip"
        else SiglipImageProcessorPil(size={"height": 32, "width": 32})
    )
    processor.save_pretrained(tmp_path)
    img = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    want = processor(images=[img], return_tensors="np")["pixel_values"][0]
    got = Preprocess.from_folder(tmp_path, 32)(img)
    assert got.shape == want.shape == (3, 32, 32)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_identical_frames_identical_embeddings_and_batching_changes_nothing(
    tiny_clip: Path, demo: DemoContent
) -> None:
    clip = media.read_clip(demo.titles[0].references[0], 0.0, 3.0)
    frames = np.stack(clip.frames[::6])
    encoder = load_image_encoder(str(tiny_clip), "cpu")
    assert load_image_encoder(str(tiny_clip), "cpu") is encoder, "loaded once per process"
    batched = encoder.encode(frames, batch_size=32)
    one_by_one = encoder.encode(frames, batch_size=1)
    odd = encoder.encode(frames, batch_size=5)
    assert batched.shape == (len(frames), 16) and batched.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)
    np.testing.assert_allclose(batched, odd, atol=1e-5)
    twice = encoder.encode(np.stack([frames[3], frames[0], frames[3]]))
    np.testing.assert_allclose(twice[0], twice[2], atol=1e-6)
    # Different pictures are different vectors, however close random features sit.
    assert float(batched[0] @ batched[-1]) < 0.9999
    assert encoder.encode(np.zeros((0, 8, 8, 3), np.uint8)).shape == (0, 16)


def test_siglip_checkpoints_load_the_same_way(tmp_path: Path) -> None:
    import torch
    from transformers import SiglipConfig, SiglipImageProcessorPil, SiglipModel

    torch.manual_seed(0)
    small = {"hidden_size": 32, "intermediate_size": 37, "num_attention_heads": 4}
    config = SiglipConfig(
        text_config={**small, "num_hidden_layers": 2, "vocab_size": 99},
        vision_config={**small, "num_hidden_layers": 2, "image_size": 32, "patch_size": 8},
    )
    SiglipModel(config).save_pretrained(tmp_path)
    SiglipImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(tmp_path)
    sig = ClipEmbeddingSignal(tiny_settings(tmp_path))
    assert sig.unavailable() is None
    frames = np.random.default_rng(1).integers(0, 256, (3, 40, 60, 3), dtype=np.uint8)
    out = load_image_encoder(str(tmp_path), "cpu").encode(frames)
    assert out.shape == (3, 32)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


# Index ------------------------------------------------------------------------------------------


def _unit(rng: np.random.Generator, n: int, d: int = 16) -> np.ndarray:
    v = rng.normal(size=(n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_range_search_agrees_with_brute_force(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    index = EmbeddingIndex()
    per_asset = {1: _unit(rng, 60), 2: _unit(rng, 90), 3: _unit(rng, 40)}
    for a, v in per_asset.items():
        assert index.add(a, {"embeddings": v, "times": np.arange(len(v), dtype=np.float32)}) == len(
            v
        )
    assert index.remove([3]) == 40
    del per_asset[3]
    index.save(tmp_path)
    loaded = EmbeddingIndex.load(tmp_path)
    assert len(loaded) == 150 and loaded.asset_nums() == {1, 2}
    # Queries near some indexed vectors, plus random ones.
    queries = np.concatenate([per_asset[1][:5], per_asset[2][10:15], _unit(rng, 10)])
    queries = queries + rng.normal(scale=0.05, size=queries.shape).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    rows, ids, sims = loaded.range_search(queries, 0.5)
    assets, times = loaded.decode_ids(ids)
    got = sorted(zip(rows.tolist(), assets.tolist(), times.tolist(), strict=True))
    all_v = np.concatenate([per_asset[1], per_asset[2]])
    all_a = np.repeat([1, 2], [60, 90])
    all_t = np.concatenate([np.arange(60), np.arange(90)]).astype(float)
    brute = queries @ all_v.T
    qi, hi = np.nonzero(brute >= 0.5)
    want = sorted(zip(qi.tolist(), all_a[hi].tolist(), all_t[hi].tolist(), strict=True))
    assert got == want
    assert len(want) >= 10  # real hits, not an empty agreement
    np.testing.assert_allclose(np.sort(sims), np.sort(brute[qi, hi]), atol=1e-5)


def test_range_search_keeps_the_closest_pairs_of_a_crowded_frame() -> None:
    rng = np.random.default_rng(3)
    base = _unit(rng, 1)
    crowd = base + rng.normal(scale=0.01, size=(600, 16)).astype(np.float32)
    crowd /= np.linalg.norm(crowd, axis=1, keepdims=True)
    index = EmbeddingIndex()
    index.add(1, {"embeddings": crowd, "times": np.arange(600, dtype=np.float32)})
    rows, _, sims = index.range_search(np.concatenate([base, base]), 0.5)
    assert rows.tolist() == [0] * MAX_PAIRS_PER_FRAME + [1] * MAX_PAIRS_PER_FRAME
    brute = np.sort(crowd @ base[0])[::-1][:MAX_PAIRS_PER_FRAME]
    np.testing.assert_allclose(np.sort(sims[:MAX_PAIRS_PER_FRAME])[::-1], brute, atol=1e-5)


def test_empty_index_persists(tmp_path: Path) -> None:
    EmbeddingIndex().save(tmp_path)
    loaded = EmbeddingIndex.load(tmp_path)
    assert len(loaded) == 0 and loaded.asset_nums() == set()
    assert loaded.range_search(_unit(np.random.default_rng(0), 2), 0.5)[0].size == 0


# Search -----------------------------------------------------------------------------------------


def _fingerprint(sig: ClipEmbeddingSignal, path: Path, role: str) -> tuple[dict, float]:
    m = sig.settings
    fps = m.reference_sample_fps if role == "reference" else m.sample_fps
    decoded = decode(path, fps, m.max_frames, max_side=m.decode_max_side)
    return sig.fingerprint(decoded, role), decoded.duration  # type: ignore[arg-type]


def test_an_excerpt_finds_its_reference_at_the_right_times(
    signal: ClipEmbeddingSignal, demo: DemoContent, tmp_path: Path
) -> None:
    ref = demo.titles[0].references[0]
    index = signal.new_index()
    fp, _ = _fingerprint(signal, ref, "reference")
    assert fp["embeddings"].shape == (len(fp["times"]), 16)
    index.add(7, fp)
    index.add(8, _fingerprint(signal, demo.titles[1].references[0], "reference")[0])
    post = media.transform_file(ref, tmp_path / "q.mp4", start=5, duration=6)
    q, duration = _fingerprint(signal, post, "query")
    hits = signal.search(index, q, duration)
    assert {h.asset_num for h in hits} == {7}
    h = max(hits, key=lambda h: h.query_end - h.query_start)
    assert h.query_start == pytest.approx(0.0, abs=1.0)
    assert h.query_end == pytest.approx(6.0, abs=1.0)
    assert h.ref_start == pytest.approx(5.0, abs=1.0)
    assert h.ref_end == pytest.approx(11.0, abs=1.0)
    assert h.slope == pytest.approx(1.0, abs=0.1)
    assert h.distance <= 1.0 - TEST_MIN_SIMILARITY
    assert 0 <= h.query_frame < len(np.unique(q["frames"]))
    assert "frames look alike" in h.note
    assert signal.score(hits, duration) >= 0.75


def test_a_letterboxed_reupload_is_found_through_its_content_box(
    signal: ClipEmbeddingSignal, demo: DemoContent, tmp_path: Path
) -> None:
    ref = demo.titles[1].references[0]
    index = signal.new_index()
    index.add(3, _fingerprint(signal, ref, "reference")[0])
    post = media.transform_file(
        ref, tmp_path / "boxed.mp4", [media.letterbox_vertical], start=2, duration=8
    )
    q, duration = _fingerprint(signal, post, "query")
    assert 2 in q["variants"].tolist(), "letterboxed frames embed their content box"
    hits = signal.search(index, q, duration)
    assert hits and {h.asset_num for h in hits} == {3}
    assert hits[0].ref_start == pytest.approx(2.0, abs=1.0)


def test_a_still_reference_is_found_in_frames_that_show_it(
    signal: ClipEmbeddingSignal, demo: DemoContent, tmp_path: Path
) -> None:
    from PIL import Image

    shown = decode(demo.titles[2].references[0], 2.0, 600, max_side=512).frames[2]
    still = tmp_path / "still.png"
    Image.fromarray(shown).save(still)
    index = signal.new_index()
    index.add(5, _fingerprint(signal, still, "reference")[0])
    # A query that cuts to the still for two seconds (4 frames) between other footage.
    other = decode(demo.titles[1].references[0], 2.0, 600, max_side=512)
    frames = np.concatenate([other.frames[:4], np.stack([shown] * 4), other.frames[4:8]])
    query = Decoded(media=other.media, frames=frames, times=np.arange(12) * 0.5)
    hits = signal.search(index, signal.fingerprint(query, "query"), 6.0)
    assert len(hits) == 1
    h = hits[0]
    assert (h.asset_num, h.slope, h.ref_start, h.ref_end) == (5, 0.0, 0.0, 0.0)
    assert (h.query_start, h.query_end) == (2.0, 4.0)
    assert 4 <= h.query_frame < 8


@pytest.mark.gpu
def test_cuda_fp16_agrees_with_cpu_fp32(tiny_clip: Path, demo: DemoContent) -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device: the fp16 GPU path cannot run on this machine")
    frames = np.stack(media.read_clip(demo.titles[0].references[0], 0.0, 4.0).frames[::8])
    cpu = load_image_encoder(str(tiny_clip), "cpu")
    gpu = load_image_encoder(str(tiny_clip), "auto")
    assert gpu.device.startswith("cuda") and gpu.dtype == torch.float16
    a, b = cpu.encode(frames), gpu.encode(frames, batch_size=4)
    assert np.all(np.sum(a * b, axis=1) > 0.99)


# Contract ---------------------------------------------------------------------------------------


class TestEmbeddingContract(SignalContract):
    @pytest.fixture(scope="class")
    @classmethod
    def case(cls, demo: DemoContent, tiny_clip: Path) -> ContractCase:
        ref = demo.titles[2].references[0]
        return media_case(
            ClipEmbeddingSignal(tiny_settings(tiny_clip)),
            reference=ref,
            other=demo.titles[1].references[0],
            query=ref,
            unrelated=demo.unrelated[0].path,
        )
