"""Device decisions (matcher/accel.py) as a machine without CUDA makes them, and the GPU copy
of FAISS indexes searched through a CPU copy standing in for the device one.

Every expectation that depends on the machine is written for both kinds: where a part has
CUDA, the test asserts what CUDA gives instead (tests/matcher/test_gpu_parity.py then
compares the numbers).
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont
from skimage import data as skdata

from matcher import accel
from matcher.decode import Decoded, decode
from matcher.signals.base import TextInput
from matcher.signals.copy import PdqCopySignal, PdqIndex
from matcher.signals.descriptor import DescriptorIndex, SscdDescriptorSignal, describe
from matcher.signals.face import DlibFaceSignal
from matcher.signals.melody import BasicPitchMelodySignal
from matcher.signals.ocr import RapidOcrSignal, load_ocr
from matcher.signals.text import MiniLmTextSignal
from reelwatch.demo import media
from reelwatch.errors import InputError
from reelwatch.settings import MatcherSettings, load_settings

ONNX_CUDA = accel.onnx_cuda_missing() is None
ALL_CUDA = not accel.cuda_missing()


# Settings ---------------------------------------------------------------------------------------


def test_device_settings_parse_and_a_typo_is_an_input_error() -> None:
    assert accel.parse_device("auto") == accel.Device("auto")
    assert accel.parse_device(" CPU ") == accel.Device("cpu")
    assert accel.parse_device("cuda").name == "cuda:0"
    assert accel.parse_device("cuda:3") == accel.Device("cuda", 3)
    for bad in ("gpu", "cuda:", "cuda:x", ""):
        with pytest.raises(InputError, match="use auto, cpu, cuda or cuda:N"):
            accel.parse_device(bad)


def test_the_setting_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load_settings(home=tmp_path).matcher.device == "auto"
    monkeypatch.setenv("REELWATCH_MATCHER__DEVICE", "cpu")
    assert load_settings(home=tmp_path).matcher.device == "cpu"


# ONNX models ------------------------------------------------------------------------------------


def test_cpu_runs_onnx_models_on_the_cpu_provider_only() -> None:
    assert accel.onnx_providers("cpu") == ["CPUExecutionProvider"]
    assert accel.onnx_device("cpu") == "cpu"
    assert not accel.ocr_on_cuda("cpu")


def test_auto_uses_the_cuda_provider_only_where_onnxruntime_has_it() -> None:
    if ONNX_CUDA:
        assert accel.onnx_providers("auto") == [
            ("CUDAExecutionProvider", {"device_id": 0}),
            "CPUExecutionProvider",
        ]
        assert accel.ocr_on_cuda("auto")
    else:
        assert accel.onnx_providers("auto") == ["CPUExecutionProvider"]
        assert accel.onnx_device("auto") == "cpu"
        assert not accel.ocr_on_cuda("auto")


def test_sessions_run_where_the_providers_say() -> None:
    import onnxruntime as ort

    from matcher.signals.descriptor import model_file
    from reelwatch.settings import DescriptorSettings

    path = model_file(DescriptorSettings())
    session = accel.inference_session(path, ort.SessionOptions(), "cpu")
    assert session.get_providers() == ["CPUExecutionProvider"]
    auto = accel.inference_session(path, ort.SessionOptions(), "auto")
    assert auto.get_providers()[0] == (
        "CUDAExecutionProvider" if ONNX_CUDA else "CPUExecutionProvider"
    )


def test_cuda_without_cuda_is_an_input_error_naming_what_is_missing() -> None:
    if ALL_CUDA:
        pytest.skip("onnxruntime, faiss and torch all have CUDA here: nothing is missing")
    missing = accel.cuda_missing()
    for use in (
        lambda: accel.onnx_providers("cuda"),
        lambda: accel.faiss_gpu("cuda"),
        lambda: accel.torch_device("auto", "cuda:0"),
    ):
        with pytest.raises(InputError) as err:
            use()
        message = str(err.value)
        assert message.startswith("matcher.device is cuda:0 but ")
        for reason in missing:
            assert reason in message
        assert "set matcher.device to auto or cpu" in message
    if not ONNX_CUDA:
        assert "onnxruntime has no CUDAExecutionProvider" in missing
    if accel.faiss_gpus() == 0:
        assert "faiss has 0 GPUs" in missing
    if accel.torch_cuda_devices() == 0:
        assert "torch sees no CUDA device" in missing


def test_the_report_line_says_where_the_matcher_runs() -> None:
    assert accel.describe("cpu").startswith("device: cpu (matcher.device is cpu")
    line = accel.describe("auto")
    if not accel.cuda_available():
        assert line == f"device: cpu (no CUDA: {', '.join(accel.cuda_missing())})"
        assert "onnxruntime has no CUDAExecutionProvider" in line
        assert accel.describe("cuda:1").startswith("device: cuda:1 asked for, but ")
    else:
        assert line.startswith("device: auto (onnx ")


def test_ocr_cuda_flags_reach_rapidocrs_sessions() -> None:
    """The keyword names RapidOCR reads (a misspelt one would be ignored without a word);
    without CUDA it warns and runs on the CPU, which is what this machine checks."""
    engine = load_ocr(1, 64, True)
    assert engine.text_det.infer.cfg_use_cuda is True
    assert engine.text_rec.session.cfg_use_cuda is True
    plain = load_ocr(1, 64)
    assert not plain.text_det.infer.cfg_use_cuda and not plain.text_rec.session.cfg_use_cuda


# torch models -----------------------------------------------------------------------------------


def test_torch_models_follow_matcher_device_unless_set_themselves() -> None:
    assert accel.torch_device("auto", "cpu") == "cpu"
    assert accel.torch_device("auto", "auto") == "auto"
    assert accel.torch_device("cpu", "auto") == "cpu"
    assert accel.torch_device("cuda:1", "cpu") == "cuda:1"
    if ALL_CUDA:
        assert accel.torch_device("auto", "cuda") == "cuda:0"


# FAISS ------------------------------------------------------------------------------------------


def _device_stand_in(flat: Any) -> Any:
    """A CPU copy in place of the device copy: the flat index with positions as labels,
    float vectors decoded as the GPU mover decodes them."""
    if isinstance(flat, faiss.IndexBinaryFlat):
        return faiss.clone_binary_index(flat)
    out = faiss.IndexFlat(flat.d, flat.metric_type)
    out.add(flat.reconstruct_n(0, flat.ntotal))
    return out


def _pdq_index(rng: np.random.Generator) -> tuple[PdqIndex, np.ndarray]:
    """Hashes of 3 assets: 40 base hashes each seen 10 times with a few bits flipped, so
    queries have dozens of neighbours within the copy signal's distance."""
    base = rng.integers(0, 256, (40, 32), dtype=np.uint8)
    idx = PdqIndex()
    for asset in (1, 2, 7):
        hashes = base[rng.integers(0, 40, 400)].copy()
        flips = rng.random(hashes.shape) < 0.02
        hashes ^= (flips * rng.integers(1, 256, hashes.shape)).astype(np.uint8)
        idx.add(asset, {"hashes": hashes, "times": np.arange(400, dtype=np.float32) / 4})
    idx.remove([2])  # ids no longer follow positions
    return idx, base


def _vectors(rng: np.random.Generator, n: int, d: int = 64) -> np.ndarray:
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _descriptor_index(rng: np.random.Generator) -> DescriptorIndex:
    idx = DescriptorIndex()
    for asset in (3, 4):
        idx.add(
            asset, {"descriptors": _vectors(rng, 300), "times": np.arange(300, dtype=np.float32)}
        )
    return idx


def test_searches_stay_on_the_cpu_index_without_a_gpu() -> None:
    idx, _ = _pdq_index(np.random.default_rng(1))
    assert accel.search_index(idx.index, "cpu") is idx.index
    if accel.faiss_gpus() == 0:
        assert accel.search_index(idx.index, "auto") is idx.index
        assert accel.gpu_index(idx.index) is idx.index
        assert accel.gpu_index(idx.index, 0) is idx.index  # the reason is logged once, kept


def test_gpu_copy_range_search_returns_what_the_cpu_index_does() -> None:
    """Same entries, order and dtypes, including queries with more neighbours than the
    k-NN stand-in returns (they are searched again on the CPU index)."""
    rng = np.random.default_rng(2)
    idx, base = _pdq_index(rng)
    copy = accel.gpu_index(idx.index, to_device=_device_stand_in)
    assert isinstance(copy, accel.GpuSearch)
    queries = np.concatenate([base[:10], rng.integers(0, 256, (5, 32), dtype=np.uint8)])
    for k in (accel.GPU_RANGE_K, 7):
        copy.range_k = k
        want = idx.index.range_search(queries, 32)
        got = copy.range_search(queries, 32)
        assert len(want[2]) > 10 * 7, "some queries must overflow the small k"
        for a, b in zip(want, got, strict=True):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)

    vectors = DescriptorIndex()
    vectors.add(5, {"descriptors": _vectors(rng, 500, 16), "times": np.zeros(500, np.float32)})
    fcopy = accel.gpu_index(vectors.index, to_device=_device_stand_in)
    fcopy.range_k = 5
    q = _vectors(rng, 20, 16)
    for a, b in zip(vectors.index.range_search(q, 0.2), fcopy.range_search(q, 0.2), strict=True):
        np.testing.assert_array_equal(a, b)


def test_gpu_copy_knn_search_maps_positions_back_to_ids() -> None:
    rng = np.random.default_rng(3)
    idx = _descriptor_index(rng)
    copy = accel.gpu_index(idx.index, to_device=_device_stand_in)
    q = _vectors(rng, 12)
    want_d, want_i = idx.index.search(q, 9)
    got_d, got_i = copy.search(q, 9)
    np.testing.assert_array_equal(want_i, got_i)
    np.testing.assert_allclose(want_d, got_d, atol=1e-6)
    assert set(np.unique(got_i) >> 24) <= {3, 4}


def test_an_index_is_moved_once_per_version_and_not_kept_alive() -> None:
    rng = np.random.default_rng(4)
    idx = _descriptor_index(rng)
    first = accel.gpu_index(idx.index, to_device=_device_stand_in)
    assert accel.gpu_index(idx.index, to_device=_device_stand_in) is first
    stamp = accel.index_stamp(idx.index)
    idx.add(9, {"descriptors": _vectors(rng, 5), "times": np.zeros(5, np.float32)})
    assert accel.index_stamp(idx.index) != stamp
    second = accel.gpu_index(idx.index, to_device=_device_stand_in)
    assert second is not first and second.ntotal == first.ntotal + 5
    # The last asset re-added with as many rows (same ids, new vectors) is a new version too.
    stamp = accel.index_stamp(idx.index)
    idx.add(9, {"descriptors": _vectors(rng, 5), "times": np.zeros(5, np.float32)})
    assert accel.index_stamp(idx.index) != stamp
    assert accel.gpu_index(idx.index, to_device=_device_stand_in) is not second
    held = len(accel._copies)
    del idx, first, second
    gc.collect()
    assert len(accel._copies) == held - 1


def test_only_flat_indexes_move() -> None:
    quantizer = faiss.IndexFlatIP(8)
    ivf = faiss.IndexIVFFlat(quantizer, 8, 2, faiss.METRIC_INNER_PRODUCT)
    x = _vectors(np.random.default_rng(5), 50, 8)
    ivf.train(x)
    ivf.add(x)
    assert accel.gpu_index(ivf, to_device=_device_stand_in) is ivf


# The signals: identical results with device cpu and auto here ----------------------------------


@pytest.fixture(scope="module")
def decoded(tmp_path_factory: pytest.TempPathFactory) -> Decoded:
    """4 s of the project's own clip (a person's face, a caption) with its soundtrack."""
    out = tmp_path_factory.mktemp("accel")
    path = media.make_reference_clip(
        [skdata.astronaut(), "coffee"], out / "base.mp4", seconds_per_photo=2, fps=12, seed=3
    )
    clip = media.overlay_text(media.read_clip(path), "STARFALL STATION")
    media.write_clip(clip, out / "captioned.mp4")
    return decode(out / "captioned.mp4", 2.0, 40, with_audio=True, keyframes=True)


def _same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype == b[key].dtype, key
        assert a[key].tobytes() == b[key].tobytes(), key


@pytest.mark.skipif(ONNX_CUDA or accel.faiss_gpus() > 0, reason="auto is the GPU here")
@pytest.mark.parametrize(
    "signal_class",
    [SscdDescriptorSignal, DlibFaceSignal, BasicPitchMelodySignal, RapidOcrSignal, PdqCopySignal],
)
def test_auto_fingerprints_and_searches_as_cpu_does_without_cuda(
    signal_class: type, decoded: Decoded
) -> None:
    cpu = signal_class(MatcherSettings(device="cpu"))
    auto = signal_class(MatcherSettings(device="auto"))
    if cpu.unavailable():
        pytest.skip(cpu.unavailable())
    fp_cpu, fp_auto = cpu.fingerprint(decoded, "query"), auto.fingerprint(decoded, "query")
    _same(fp_cpu, fp_auto)
    if signal_class is RapidOcrSignal:
        assert any("STARFALL" in str(line).upper() for line in fp_cpu["lines"])
    if signal_class is DlibFaceSignal:
        assert len(fp_cpu["descriptors"]) >= 1, "the astronaut's face"
    index = cpu.new_index()
    if cpu.references == "titles":
        card = TextInput(hashtags=("starfallstation",), names=("Starfall Station",))
        index.add(1, cpu.fingerprint_text(card))
    else:
        index.add(1, cpu.fingerprint(decoded, "reference"))
    hits = cpu.search(index, fp_cpu, decoded.duration)
    assert hits, "the clip matches itself"
    assert auto.search(index, fp_auto, decoded.duration) == hits


def test_auto_embeds_text_as_cpu_does_without_cuda() -> None:
    if accel.torch_cuda_devices():
        pytest.skip("auto is the GPU here")
    card = TextInput(text="Starfall Station, the space opera", names=("Starfall Station",))
    cpu = MiniLmTextSignal(MatcherSettings(device="cpu"))
    auto = MiniLmTextSignal(MatcherSettings(device="auto"))
    if cpu.unavailable():
        pytest.skip(cpu.unavailable())
    _same(cpu.fingerprint_text(card), auto.fingerprint_text(card))


def test_sscd_batches_give_the_descriptors_of_single_images() -> None:
    """describe() batches frames (``batch_size``); a batch must not change a descriptor."""
    from reelwatch.settings import DescriptorSettings

    images = [
        np.asarray(skdata.astronaut()),
        np.asarray(skdata.coffee()),
        np.asarray(skdata.chelsea()),
    ]
    text = Image.new("RGB", (320, 180), (10, 10, 10))
    ImageDraw.Draw(text).text((20, 80), "THE END", font=ImageFont.load_default(size=30))
    images.append(np.asarray(text))
    one = describe(images, DescriptorSettings(batch_size=1), "cpu")
    many = describe(images, DescriptorSettings(batch_size=4), "auto")
    np.testing.assert_allclose(np.sum(one * many, axis=1), 1.0, atol=1e-5)


def test_the_cpu_and_gpu_extras_never_install_two_builds_of_one_module() -> None:
    """faiss-cpu/faiss-gpu and onnxruntime/onnxruntime-gpu each provide one module: a CPU
    build installed beside the GPU one hides its CUDA provider or its GPUs."""
    import re
    import tomllib

    root = Path(__file__).resolve().parents[2]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]

    def names(requirements: list[str]) -> set[str]:
        return {re.split(r"[<>=!~\[ ;]", r, maxsplit=1)[0].lower() for r in requirements}

    cpu_builds, gpu_builds = {"faiss-cpu", "onnxruntime"}, {"faiss-gpu", "onnxruntime-gpu"}
    extras = {name: names(reqs) for name, reqs in project["optional-dependencies"].items()}
    assert not names(project["dependencies"]) & (cpu_builds | gpu_builds)
    assert cpu_builds <= extras["cpu"] and not extras["cpu"] & gpu_builds
    assert gpu_builds <= extras["gpu"] and not extras["gpu"] & cpu_builds
    assert '".[cpu,dev]"' in (root / "Makefile").read_text()
