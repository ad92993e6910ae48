"""Where the learned models and the FAISS searches run: every device decision in one place.

``MatcherSettings.device`` (``REELWATCH_MATCHER__DEVICE``) says where:

* ``auto`` (the default): each part below uses CUDA when it can on this machine, else the CPU;
* ``cpu``: everything on the CPU, and nothing is probed;
* ``cuda`` or ``cuda:N``: the (N-th) GPU. It is a promise: when onnxruntime has no
  ``CUDAExecutionProvider``, faiss no GPU or torch no CUDA device, using the setting raises
  an :class:`~reelwatch.errors.InputError` that names every missing piece.

=========  ====================================================  =================================
part       what runs there                                       on CUDA when
=========  ====================================================  =================================
onnx       SSCD (descriptor), basic-pitch (melody), RapidOCR     onnxruntime-gpu is installed
           (ocr; on GPU 0 only, RapidOCR cannot pick another)    (``CUDAExecutionProvider``)
torch      MiniLM (text), CLIP/SigLIP (embedding), in fp16       torch sees a CUDA device
faiss      searches of the copy (PDQ), descriptor and            a faiss GPU build sees a GPU
           embedding indexes, through :func:`gpu_index`
opencv     YuNet face detection (``DNN_TARGET_CUDA_FP16``)       OpenCV was built with CUDA (no
                                                                 PyPI wheel is)
dlib       face landmarks and descriptors                        dlib was built with CUDA (it then
                                                                 uses it whatever the setting)
=========  ====================================================  =================================

OpenCV and dlib are reported (:func:`describe`) but never required: ``cuda`` does not fail
for them. ``text.device`` and ``embedding.device`` left at ``auto`` follow ``matcher.device``
(:func:`torch_device`).

On a machine without CUDA, ``auto`` and ``cpu`` give exactly what the code gave before this
module: the same providers, sessions and FAISS calls, so the same bytes. On a GPU the
results agree with the CPU's within the tolerances that ``tests/matcher/test_gpu_parity.py``
checks (SSCD cosine >= 0.995 per frame, face descriptors within 0.02, MiniLM cosine >= 0.999,
the same OCR text, the same FAISS ids, match scores within 0.02).

FAISS on a GPU has no range search, and the catalog indexes sit in IDMap wrappers that its
cloner does not move as such, so :class:`GpuSearch` moves the flat index inside (float ones
stored in fp16), maps positions back to ids itself, and answers range searches with
:func:`faiss.contrib.exhaustive_search.range_search_gpu` (k-NN on the GPU, the CPU index for
the queries whose ``k``-th neighbour is still inside the radius), in the CPU's order. The
copy is made once per process and index version (:func:`gpu_index`).
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import threading
import weakref
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from reelwatch.errors import InputError

log = logging.getLogger(__name__)

CUDA_EP = "CUDAExecutionProvider"
CPU_EP = "CPUExecutionProvider"
GPU_RANGE_K = 1024
"""Neighbours per query the GPU returns when it stands in for a range search; queries whose
last one is still inside the radius are searched again on the CPU, so nothing is lost."""
GPU_MAX_K = 2048
"""The largest ``k`` FAISS GPU indexes search; larger searches stay on the CPU."""
_MOVE_BLOCK = 65536
"""Vectors decoded and sent to the GPU at a time when a float16 index is moved."""
_STAMP_TAIL = 256
"""Last entries whose codes go into an index's stamp (a re-added asset lands at the end)."""
_STAMP_IDS = 65536
"""Ids sampled (evenly) into an index's stamp: a removal shifts every id after it."""


# Settings --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Device:
    """A parsed ``matcher.device``: ``auto``, ``cpu``, or ``cuda`` with its ordinal."""

    kind: Literal["auto", "cpu", "cuda"]
    ordinal: int = 0

    @property
    def name(self) -> str:
        return f"cuda:{self.ordinal}" if self.kind == "cuda" else self.kind


def parse_device(name: str) -> Device:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (any case); ``InputError`` otherwise."""
    text = name.strip().lower()
    if text in ("auto", "cpu"):
        return Device(text)  # type: ignore[arg-type]
    if text == "cuda":
        return Device("cuda", 0)
    if text.startswith("cuda:") and text[5:].isdigit():
        return Device("cuda", int(text[5:]))
    raise InputError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N")


# What this machine has (each probed once per process, and only when asked) ------------------


@functools.cache
def onnx_cuda_missing() -> str | None:
    """Why onnxruntime cannot run on CUDA here, or ``None`` when it can."""
    try:
        import onnxruntime as ort
    except ImportError:
        return "onnxruntime is not installed"
    if CUDA_EP in ort.get_available_providers():
        return None
    return f"onnxruntime has no {CUDA_EP}"


@functools.cache
def faiss_gpus() -> int:
    """GPUs the installed faiss can use: ``faiss.get_num_gpus()`` of a GPU build, else 0."""
    try:
        import faiss
    except ImportError:
        return 0
    count = getattr(faiss, "get_num_gpus", None)
    try:
        return int(count()) if count is not None else 0
    except RuntimeError:
        return 0


@functools.cache
def torch_cuda_devices() -> int:
    """CUDA devices torch sees. A ``+cpu`` build is known by its version, without importing
    torch (seconds), so a CPU machine answers at once."""
    try:
        if importlib.metadata.version("torch").endswith("+cpu"):
            return 0
    except importlib.metadata.PackageNotFoundError:
        return 0
    import torch

    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0


@functools.cache
def opencv_cuda_devices() -> int:
    """CUDA devices OpenCV's DNN module can use (0 for every PyPI wheel)."""
    try:
        import cv2

        return max(0, int(cv2.cuda.getCudaEnabledDeviceCount()))
    except (ImportError, AttributeError):
        return 0
    except Exception:  # cv2.error: a driver that does not answer
        return 0


@functools.cache
def dlib_uses_cuda() -> bool:
    """Whether dlib was built with CUDA (``dlib.DLIB_USE_CUDA``): it then runs its face
    descriptor on the GPU by itself."""
    try:
        import dlib
    except ImportError:
        return False
    return bool(getattr(dlib, "DLIB_USE_CUDA", False))


def cuda_missing(ordinal: int = 0) -> list[str]:
    """Why each of the parts ``cuda`` promises (onnx, faiss, torch) cannot use GPU
    ``ordinal``; empty when all can."""
    missing = []
    onnx = onnx_cuda_missing()
    if onnx:
        missing.append(onnx)
    gpus = faiss_gpus()
    if gpus <= ordinal:
        missing.append(f"faiss has {gpus} GPUs" if gpus == 0 else f"faiss has no GPU {ordinal}")
    devices = torch_cuda_devices()
    if devices <= ordinal:
        missing.append(
            "torch sees no CUDA device" if devices == 0 else f"torch has no cuda:{ordinal}"
        )
    return missing


def cuda_available() -> bool:
    """Whether any part (onnx, faiss, torch) can use CUDA here."""
    return onnx_cuda_missing() is None or faiss_gpus() > 0 or torch_cuda_devices() > 0


def require(device: Device) -> None:
    """``InputError`` naming every missing piece when ``device`` is ``cuda`` and one is."""
    if device.kind != "cuda":
        return
    missing = cuda_missing(device.ordinal)
    if missing:
        raise InputError(
            f"matcher.device is {device.name} but {', '.join(missing)}: install the GPU "
            "builds (onnxruntime-gpu and faiss-gpu from the [gpu] extra, a CUDA torch) or "
            "set matcher.device to auto or cpu"
        )


# ONNX models -----------------------------------------------------------------------------------


def onnx_device(device: str) -> str:
    """Where the ONNX models run for a ``matcher.device``: ``cpu`` or ``cuda:N``."""
    d = parse_device(device)
    if d.kind == "cpu":
        return "cpu"
    require(d)
    return f"cuda:{d.ordinal}" if onnx_cuda_missing() is None else "cpu"


def onnx_providers(device: str) -> list[Any]:
    """onnxruntime ``providers`` for a ``matcher.device``: the CUDA provider on the chosen GPU
    first when it runs there (the CPU one after it, for the operators CUDA lacks), else only
    the CPU provider."""
    placed = onnx_device(device)
    if placed == "cpu":
        return [CPU_EP]
    return [(CUDA_EP, {"device_id": int(placed.split(":")[1])}), CPU_EP]


def inference_session(path: str | Path, options: Any, device: str) -> Any:
    """An ``onnxruntime.InferenceSession`` of ``path`` placed by :func:`onnx_providers`.

    onnxruntime falls back to the CPU by itself when the CUDA provider cannot start (no
    driver, a cuDNN it does not know): that is logged under ``auto``, and an ``InputError``
    under ``cuda``, which promised the GPU."""
    import onnxruntime as ort

    providers = onnx_providers(device)
    session = ort.InferenceSession(str(path), options, providers=providers)
    if providers[0] != CPU_EP and session.get_providers()[0] != CUDA_EP:
        reason = f"onnxruntime could not start {CUDA_EP} for {Path(path).name}"
        if parse_device(device).kind == "cuda":
            raise InputError(f"{reason} (see onnxruntime's log); set matcher.device to auto")
        log.warning("%s: it runs on the CPU", reason)
    return session


def ocr_on_cuda(device: str) -> bool:
    """Whether RapidOCR runs its ONNX models on CUDA: only on GPU 0, the one it knows."""
    return onnx_device(device) == "cuda:0"


# torch models ----------------------------------------------------------------------------------


def torch_device(own: str, device: str) -> str:
    """The torch device setting of a model: its own (``text.device``, ``embedding.device``)
    unless that is left at ``auto``, then ``matcher.device``
    (:func:`matcher.models.resolve_device` turns it into a device and dtype)."""
    mine = parse_device(own)
    if mine.kind != "auto":
        return mine.name
    d = parse_device(device)
    require(d)
    return d.name


# OpenCV ----------------------------------------------------------------------------------------


def opencv_cuda(device: str) -> int | None:
    """The CUDA device OpenCV's DNN (YuNet) runs on, or ``None`` for the CPU."""
    d = parse_device(device)
    if d.kind == "cpu" or opencv_cuda_devices() <= d.ordinal:
        return None
    return d.ordinal


# FAISS -----------------------------------------------------------------------------------------


def faiss_gpu(device: str) -> int | None:
    """The GPU that FAISS searches run on for a ``matcher.device``, or ``None`` for the CPU."""
    d = parse_device(device)
    if d.kind == "cpu":
        return None
    require(d)
    return d.ordinal if faiss_gpus() > d.ordinal else None


def search_index(index: Any, device: str) -> Any:
    """What to search: ``index`` itself, or its GPU copy (:func:`gpu_index`) when
    ``device`` puts FAISS searches on a GPU. Call sites use it in place of the index:
    ``search_index(self.index, device).search(x, k)``."""
    gpu = faiss_gpu(device)
    return index if gpu is None else gpu_index(index, gpu)


def _flat_part(index: Any) -> tuple[Any, np.ndarray | None]:
    """(the flat index inside ``index``, the ids of its rows or ``None`` for positions).

    ``ValueError`` for an index that is not flat underneath: only exhaustive indexes are
    moved (an approximate one has its own GPU form to choose, not this module's)."""
    import faiss

    ids = None
    inner = index
    if isinstance(index, faiss.IndexBinaryIDMap):
        inner = faiss.downcast_IndexBinary(index.index)
    elif isinstance(index, faiss.IndexIDMap):
        inner = faiss.downcast_index(index.index)
    if inner is not index:
        ids = faiss.rev_swig_ptr(index.id_map.data(), index.id_map.size()).copy()
    flat = isinstance(inner, faiss.IndexFlat | faiss.IndexBinaryFlat) or (
        isinstance(inner, faiss.IndexScalarQuantizer)
        and inner.sq.qtype == faiss.ScalarQuantizer.QT_fp16
    )
    if not flat:
        raise ValueError(f"{type(inner).__name__} is not a flat index; only flat ones move")
    return inner, ids


def index_stamp(index: Any) -> tuple[int, int, int]:
    """A cheap version of an index's content: its size, a sample of its ids (a removal
    shifts every id after it) and the codes of its last entries (an asset re-added with as
    many rows lands there). Changes when the catalog adds, removes or replaces an asset."""
    import faiss

    n = int(index.ntotal)
    ids_crc = codes_crc = 0
    if isinstance(index, faiss.IndexIDMap | faiss.IndexBinaryIDMap):
        ids = faiss.rev_swig_ptr(index.id_map.data(), index.id_map.size())
        step = max(1, len(ids) // _STAMP_IDS)
        ids_crc = zlib.crc32(np.ascontiguousarray(ids[::step]).tobytes())
        ids_crc = zlib.crc32(np.ascontiguousarray(ids[-_STAMP_TAIL:]).tobytes(), ids_crc)
    if n:
        try:
            inner, _ = _flat_part(index)
            tail = inner.reconstruct_n(max(0, n - _STAMP_TAIL), min(n, _STAMP_TAIL))
            codes_crc = zlib.crc32(np.ascontiguousarray(tail).tobytes())
        except (ValueError, RuntimeError):
            pass
    return n, ids_crc, codes_crc


_gpu_search_lock = threading.Lock()
"""FAISS GPU indexes, and the resources they share, are not safe to use from two threads at
once (in-process runs download in a background thread): GPU searches go one at a time."""


class GpuSearch:
    """A device copy of a flat FAISS index, searched like the CPU index it was made from.

    ``search`` and ``range_search`` take and return what the CPU index's do (ids mapped
    through its IDMap, range results in the CPU's order: by query, then by position in the
    index), so call sites cannot tell them apart except by speed and float16 rounding.
    ``to_device`` makes the device copy of the flat part; :func:`gpu_index` passes the GPU
    mover, and anything with FAISS's ``search`` (positions as labels) can stand in for it.
    """

    def __init__(self, index: Any, to_device: Callable[[Any], Any]) -> None:
        import faiss

        self._cpu = weakref.ref(index)  # never a strong one: gpu_index's cache is keyed by it
        self.flat, self.ids = _flat_part(index)
        self.device = to_device(self.flat)
        self.binary = isinstance(self.flat, faiss.IndexBinaryFlat)
        self.ntotal = int(index.ntotal)
        self.d = int(index.d)
        self.metric_type = index.metric_type
        self.range_k = GPU_RANGE_K

    def _labels(self, positions: np.ndarray) -> np.ndarray:
        if self.ids is None:
            return positions
        out = np.full(positions.shape, -1, np.int64)
        found = positions >= 0
        out[found] = self.ids[positions[found]]
        return out

    def search(self, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest entries of each row of ``x``: (distances, ids), as FAISS."""
        cpu = self._cpu()
        if k > GPU_MAX_K and cpu is not None:
            result: tuple[np.ndarray, np.ndarray] = cpu.search(x, k)
            return result
        with _gpu_search_lock:
            distances, positions = self.device.search(x, k)
        return distances, self._labels(positions)

    def range_search(self, x: np.ndarray, radius: float) -> tuple[np.ndarray, ...]:
        """Every entry within ``radius`` of each row of ``x``: (lims, distances, ids), as the
        CPU index's ``range_search`` returns them (same entries, same order, same dtypes)."""
        from faiss.contrib.exhaustive_search import range_search_gpu

        with _gpu_search_lock:
            lims, distances, positions = range_search_gpu(
                x, radius, self.device, self.flat, gpu_k=self.range_k
            )
        lims = np.asarray(lims, np.int64)
        rows = np.repeat(np.arange(len(x), dtype=np.int64), np.diff(lims))
        order = np.lexsort((positions, rows))
        distances = distances[order].astype(np.float32)
        return lims.astype(np.uint64), distances, self._labels(positions[order])


@functools.cache
def _gpu_resources(gpu: int) -> Any:
    """One ``StandardGpuResources`` (streams, cuBLAS handle, scratch memory) per GPU."""
    import faiss

    return faiss.StandardGpuResources()


def _to_gpu(flat: Any, gpu: int) -> Any:
    """The GPU copy of a flat index: ``GpuIndexBinaryFlat`` for binary codes, a
    ``GpuIndexFlat`` storing float16 for float vectors (the fp16 scalar quantizer's
    vectors are float16 already, so they move exactly)."""
    import faiss

    res = _gpu_resources(gpu)
    if isinstance(flat, faiss.IndexBinaryFlat):
        return faiss.index_binary_cpu_to_gpu(res, gpu, flat)
    if isinstance(flat, faiss.IndexFlat):
        options = faiss.GpuClonerOptions()
        options.useFloat16 = True
        return faiss.index_cpu_to_gpu(res, gpu, flat, options)
    config = faiss.GpuIndexFlatConfig()
    config.device = gpu
    config.useFloat16 = True
    out = faiss.GpuIndexFlat(res, flat.d, flat.metric_type, config)
    for start in range(0, flat.ntotal, _MOVE_BLOCK):
        out.add(flat.reconstruct_n(start, min(_MOVE_BLOCK, flat.ntotal - start)))
    return out


_copies: weakref.WeakKeyDictionary[
    Any, tuple[tuple[int, tuple[int, int, int]], GpuSearch | None]
] = weakref.WeakKeyDictionary()
"""Each index's GPU copy (``None``: it stays on the CPU) and the stamp it was made at."""
_copies_lock = threading.Lock()


def gpu_index(index: Any, gpu: int = 0, *, to_device: Callable[[Any], Any] | None = None) -> Any:
    """A :class:`GpuSearch` copy of ``index`` on GPU ``gpu``, or ``index`` itself (with the
    reason logged once) when it cannot move: no GPU build or device, not a flat index, GPU
    memory full.

    Kept per index object and :func:`index_stamp`, so it is moved once per process and
    version, not per post; a changed index is moved again and the old copy freed.
    ``to_device`` replaces the GPU mover (tests on machines without one pass a CPU copy)."""
    stamp = (gpu, index_stamp(index))
    with _copies_lock:
        held = _copies.get(index)
        if held is not None and held[0] == stamp:
            return index if held[1] is None else held[1]
        copy: GpuSearch | None = None
        if to_device is None and faiss_gpus() <= gpu:
            reason = f"faiss has {faiss_gpus()} GPUs"
        else:
            try:
                mover = to_device or functools.partial(_to_gpu, gpu=gpu)
                copy = GpuSearch(index, mover)
                reason = ""
            except (ValueError, RuntimeError, MemoryError) as exc:
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        if reason:
            log.warning("FAISS %s searches stay on the CPU: %s", type(index).__name__, reason)
        _copies[index] = (stamp, copy)
        return index if copy is None else copy


# Report ----------------------------------------------------------------------------------------


def placement(device: str) -> dict[str, str]:
    """Where each part runs for a ``matcher.device`` (``InputError`` as :func:`require`)."""
    d = parse_device(device)
    torch_part = "cpu"
    if d.kind != "cpu":
        require(d)
        if torch_cuda_devices() > d.ordinal:
            torch_part = f"cuda:{d.ordinal} fp16"
    gpu = faiss_gpu(device)
    yunet = opencv_cuda(device)
    return {
        "onnx": onnx_device(device),
        "torch": torch_part,
        "faiss": "cpu" if gpu is None else f"gpu {gpu}",
        "yunet": "cpu" if yunet is None else f"cuda:{yunet} fp16",
        "dlib": "cuda" if dlib_uses_cuda() else "cpu",
    }


def describe(device: str) -> str:
    """One line saying where the matcher runs, for ``reelwatch catalog list``:
    ``device: cpu (no CUDA: onnxruntime has no CUDAExecutionProvider ...)``."""
    d = parse_device(device)
    missing = cuda_missing(d.ordinal) if d.kind == "cuda" else []
    if missing:
        return f"device: {d.name} asked for, but {', '.join(missing)}"
    where = placement(device)
    if d.kind == "cpu":
        dlib = "; dlib is built with CUDA and uses it anyway" if where["dlib"] == "cuda" else ""
        return f"device: cpu (matcher.device is cpu{dlib})"
    if all(v == "cpu" for v in where.values()):
        return f"device: cpu (no CUDA: {', '.join(cuda_missing(d.ordinal))})"
    parts = ", ".join(f"{name} {value}" for name, value in where.items())
    return f"device: {d.name if d.kind == 'cuda' else 'auto'} ({parts})"
