"""The embedding signal: image-encoder (CLIP or SigLIP) embeddings of sampled frames.

PDQ finds copies of the *pixels*; it is blind to a scene re-made: an AI re-creation of a set,
a costume or a shot, a re-staged cosplay, a heavy filter. Those stay near the original in a
semantic embedding space. Each sampled frame is embedded by the configured checkpoint
(``EmbeddingSettings.model``: a local folder or a cached hub id, never downloaded; the signal
is off while unset), the vectors are L2-normalised so inner product is cosine, references go
into a flat FAISS inner-product index, and a query's frames that come within
``EmbeddingSettings.min_similarity`` of reference frames are aligned in time with
:func:`~matcher.signals.align.align` exactly like the copy signal's, so one lucky frame never
makes a match: a segment takes ``min_segment_frames`` query frames on one time line.

Queries also embed the sharp content box of letterboxed frames (a 9:16 re-upload over a
blurred copy of itself), as the copy signal does; references embed full frames.

Models run on the GPU in fp16 when there is one (``device: auto``), batched
(``batch_size``) under ``torch.inference_mode``; see :mod:`matcher.models`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from matcher import accel
from matcher.decode import Decoded
from matcher.models import load_image_encoder, model_digest, resolve_model_dir
from matcher.signals.align import index_segments, segment_score
from matcher.signals.base import (
    Fingerprint,
    Role,
    Signal,
    SignalHit,
    SignalIndex,
    VectorIndex,
)
from matcher.signals.copy import content_box
from reelwatch.errors import InputError
from reelwatch.models import AssetKind

MAX_PAIRS_PER_FRAME = 256
"""Reference frames kept per query frame (the most similar): a long static reference shot
can match every query frame hundreds of times, and alignment needs only the best few."""
FULL, CONTENT_BOX = 0, 2
"""Variant codes: the whole frame, the sharp box inside a letterboxed query frame."""
NO_MODEL = (
    "no image model set: point REELWATCH_MATCHER__EMBEDDING__MODEL at a local CLIP/SigLIP "
    "folder or a hub id already in the Hugging Face cache (e.g. openai/clip-vit-base-patch32)"
)


class EmbeddingIndex(VectorIndex):
    """Frame embeddings (see :class:`~matcher.signals.base.VectorIndex`): exact search, like
    the copy signal's, since re-creations are far-but-true matches."""

    FILE = "embedding.npz"
    KEY = "embeddings"

    def range_search(
        self, vectors: np.ndarray, min_similarity: float, device: str = "cpu"
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Indexed frames with cosine >= ``min_similarity`` to each query vector, at most
        :data:`MAX_PAIRS_PER_FRAME` (the closest) per query row, searched on ``device`` (a
        ``matcher.device``; see :func:`matcher.accel.search_index`).

        Returns (query row, faiss id, similarity) arrays, one entry per pair.
        """
        if self.index is None or not len(vectors) or not len(self):
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
        q = np.ascontiguousarray(vectors, dtype=np.float32)
        # FAISS keeps inner products strictly above the radius.
        found = accel.search_index(self.index, device)
        lims, sims, ids = found.range_search(q, float(min_similarity) - 1e-6)
        counts = np.diff(np.asarray(lims, dtype=np.int64)).astype(np.int64)
        rows = np.repeat(np.arange(len(q), dtype=np.int64), counts)
        ids, sims = ids.astype(np.int64), sims.astype(np.float32)
        if counts.size and counts.max() > MAX_PAIRS_PER_FRAME:
            order = np.lexsort((-sims, rows))
            rows, ids, sims = rows[order], ids[order], sims[order]
            starts = np.repeat(np.asarray(lims[:-1], dtype=np.int64), counts)
            keep = np.arange(rows.size) - starts < MAX_PAIRS_PER_FRAME
            rows, ids, sims = rows[keep], ids[keep], sims[keep]
        return rows, ids, sims


class ClipEmbeddingSignal(Signal):
    """Scenes re-made or heavily restyled, found by image-encoder embeddings (module docs)."""

    version = 1
    asset_kinds = frozenset({AssetKind.VIDEO, AssetKind.IMAGE})
    index_type = EmbeddingIndex
    visual = True

    # Model -------------------------------------------------------------------------------------

    def _model_dir(self) -> Path:
        model = self.settings.embedding.model
        if not model:
            raise InputError(NO_MODEL)
        return resolve_model_dir(model)

    def unavailable(self) -> str | None:
        try:
            self._model_dir()
            device = accel.torch_device(self.settings.embedding.device, self.settings.device)
            if device not in ("auto", "cpu"):
                from matcher.models import resolve_device

                resolve_device(device)
        except InputError as e:
            return str(e)
        return None

    def config_key(self) -> str:
        """Includes the model and a digest of its files: embeddings of two models live in
        different spaces, so a new model rebuilds indexes and caches instead of mixing."""
        model = self.settings.embedding.model or "none"
        try:
            digest = model_digest(self._model_dir())
        except (InputError, OSError):
            digest = "missing"
        return f"{self.name}-v{self.version}-{model}-{digest}"

    # Fingerprints ------------------------------------------------------------------------------

    def fingerprint(self, decoded: Decoded, role: Role) -> Fingerprint:
        """One unit vector per sampled frame (plus the content box of letterboxed query
        frames), with its time and frame number."""
        s = self.settings.embedding
        device = accel.torch_device(s.device, self.settings.device)
        encoder = load_image_encoder(str(self._model_dir()), device)
        images: list[np.ndarray] = []
        times: list[float] = []
        frames: list[int] = []
        variants: list[int] = []
        for i, frame in enumerate(decoded.frames):
            regions = [(FULL, frame)]
            if role == "query":
                box = content_box(frame)
                if box is not None:
                    x0, y0, x1, y1 = box
                    regions.append((CONTENT_BOX, frame[y0:y1, x0:x1]))
            for code, image in regions:
                images.append(image)
                times.append(float(decoded.times[i]))
                frames.append(i)
                variants.append(code)
        return {
            "embeddings": encoder.encode(images, s.batch_size),
            "times": np.array(times, np.float32),
            "frames": np.array(frames, np.int32),
            "variants": np.array(variants, np.uint8),
        }

    # Search ------------------------------------------------------------------------------------

    def search(
        self, index: SignalIndex, fingerprint: Fingerprint, query_duration: float
    ) -> list[SignalHit]:
        """Time-aligned segments of frames within ``min_similarity`` of a reference's.

        ``distance`` of a hit is the mean ``1 - cosine`` of its aligned frames.
        """
        assert isinstance(index, EmbeddingIndex)
        if "embeddings" not in fingerprint:
            return []
        s = self.settings
        rows, ids, sims = index.range_search(
            fingerprint["embeddings"], s.embedding.min_similarity, s.device
        )
        distances = 1.0 - sims.astype(np.float64)
        return index_segments(
            index, fingerprint, (rows, ids, distances), s, query_duration, describe=_describe
        )

    # Scoring -----------------------------------------------------------------------------------

    def score(self, hits: Sequence[SignalHit], query_duration: float) -> float:
        """Evidence in [0, 1] from how long, how much of the query, and how closely it matched.

        The same shape as the copy signal's score
        (:func:`~matcher.signals.align.segment_score`: length, coverage, density) with this
        closeness:

        * mean cosine of aligned frames. Full credit in the top 30% of the band
          above ``min_similarity`` (0.97 for the default 0.9, where re-encoded copies sit),
          falling quadratically to 0 at the threshold.
        """
        floor = self.settings.embedding.min_similarity
        full = floor + 0.7 * (1.0 - floor)

        def closeness(mean_d: float) -> float:
            excess = min(1.0, max(0.0, (full - (1.0 - mean_d)) / max(1e-6, full - floor)))
            return 1.0 - excess * excess

        return segment_score(hits, query_duration, 1.0 / self.settings.sample_fps, closeness)


def _describe(dist: np.ndarray, still: bool) -> str:
    what = "look like the still" if still else "look alike"
    return f"{dist.size} frames {what} (mean cos {1.0 - float(dist.mean()):.2f})"
