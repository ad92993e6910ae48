"""The ocr signal: words burned into the frames (captions, title cards, watermarks) against
each title's card.

Re-uploads carry the title's name drawn on the picture, where no caption rule can read it.
This signal reads keyframes with RapidOCR (PaddleOCR's PP-OCRv4 detector and Chinese+English
recogniser as ONNX models inside the ``rapidocr-onnxruntime`` wheel, run offline by
onnxruntime) and looks for the same evidence the ``text`` signal finds in captions, with the
same weights, so a name on screen means what a caption naming the title means:

* **the frame names the title**: a name or alias read in a line, tolerant of OCR errors (a
  similarity ratio of at least ``OcrSettings.min_similarity`` between the compacted name and a
  run of whole OCR'd words of the same length, give or take a letter per
  :data:`LENGTH_SLACK`). OCR often drops the space between words ("STARFALLSTATION") but
  rarely splits a word, so a window may hold fewer words than the name, never more; and it
  misreads letters far more often than it adds one, so "Stars fall" (read "Starsfall" when
  the space is lost) does not name "Starfall". Names of up to
  :data:`SHORT_NAME` letters need an exact whole-word match. Where two titles' names read the
  same words, the closer reading wins;
* **a word hides a name**: a name of at least ``MIN_HIDDEN_NAME`` letters inside a longer
  word or on-screen hashtag (``#STARFALLS2``, or words OCR ran together);
* **a title hashtag** is on screen.

Which frames are read (:func:`ocr_frames`): the first, the first after each scene cut
(``Decoded.cuts``), at most one every ``OcrSettings.every_s`` seconds in long shots, and the
last. Where
the words change between two read frames, the frames between them are bisected, so a
caption's first and last sampled times are found exactly at a few extra reads per change.
The frames are decoded at 512 px on the longer side, where a 20-30 px caption of a 720p video
is 8-12 px high: too small for the detector, so frames are enlarged ``OcrSettings.upscale``
times (cubic) before OCR.

The query side is read from the media (:attr:`reads_media`) and cached with the media's other
fingerprints; the catalog indexes each title's card with :meth:`fingerprint_text`.
"""

from __future__ import annotations

import importlib.util
import itertools
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from functools import lru_cache
from typing import Any

import numpy as np

from matcher import accel
from matcher.decode import Decoded
from matcher.signals.base import (
    Fingerprint,
    Role,
    Signal,
    SignalHit,
    SignalIndex,
    TextInput,
)
from matcher.signals.text import (
    MIN_HIDDEN_NAME,
    MIN_NAME,
    NAME_IN_CAPTION,
    NAME_IN_HASHTAG,
    SCORE_CAP,
    TITLE_HASHTAG,
    TitleCards,
    clean_label,
    compact,
    normalise_words,
)

SHORT_NAME = 4
"""Names of up to this many letters ("Up", "Cars") need an exact whole-word match: one OCR
error away from them lie countless ordinary words."""
LENGTH_SLACK = 12
"""A reading may be one letter longer or shorter than a name per this many letters of it
(names under 12 letters must be read at their length)."""
MAX_LINE_CHARS = 200
"""Characters of one OCR'd line that are read (a frame of prose is not a caption)."""
MIN_COMPARED = 3
"""Letters a line needs to count when deciding whether the words changed between two read
frames (and the frames between them are bisected)."""
MIN_LINE_SCORE = 0.5
"""Recogniser confidence below which RapidOCR drops a line (its own default)."""
GATE_BOX_SCORE = 0.3
"""Detector box score from which a frame at its decoded size is worth reading enlarged."""
BAND_MIN_MARGIN = 4
"""Decoded pixels at least above and below a text box in the band read enlarged."""
BAND_SHARE = 0.5
"""Bands of text covering less than this share of a frame's height are read alone."""
MAX_READ_SIDE = 1024
"""Frames are enlarged before reading up to this longer side: a 512 px video frame twice, a
photo decoded at full size not at all."""

_HASHTAG = re.compile(r"#([^\s#]+)")


def _strings(values: Iterable[str]) -> np.ndarray:
    items = list(values)
    return np.array(items, dtype=str) if items else np.zeros(0, "<U1")


# OCR ---------------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def load_ocr(threads: int, side: int, cuda: bool = False, gate: bool = False) -> Any:
    """One RapidOCR engine per process, shape and device: ``threads`` onnxruntime threads,
    detection at ``side`` pixels on the longer side (frames are given at that size, so it
    never resizes them again), no angle classifier (burned-in text is upright; it costs a
    recogniser-sized pass per line for nothing), detector and recogniser on CUDA (GPU 0)
    when ``cuda`` (see :func:`matcher.accel.ocr_on_cuda`). ``gate=True`` is the engine of
    :func:`has_text`: its detector keeps boxes down to :data:`GATE_BOX_SCORE`."""
    from rapidocr_onnxruntime import RapidOCR

    on_gpu = {"det_use_cuda": True, "rec_use_cuda": True} if cuda else {}
    return RapidOCR(
        intra_op_num_threads=threads,
        inter_op_num_threads=1,
        use_cls=False,
        det_limit_type="max",
        det_limit_side_len=side,
        det_box_thresh=GATE_BOX_SCORE if gate else 0.5,
        text_score=MIN_LINE_SCORE,
        **on_gpu,
    )


def text_bands(frame: np.ndarray, threads: int, cuda: bool = False) -> list[tuple[int, int]]:
    """Rows of ``frame`` (as decoded: no enlarging, no recognition) where the detector finds
    text, as merged ``(top, bottom)`` bands with a margin of half a line; empty when it finds
    none. A quarter of the pixels of a read at twice the size, so a frame without words
    costs a fraction of a read; with the lower box score it finds the captions the enlarged
    read finds, down to letters 8 px high (tests/matcher/test_ocr_signal.py)."""
    bgr = np.ascontiguousarray(frame[..., ::-1])
    engine = load_ocr(threads, max(bgr.shape[:2]), cuda, gate=True)
    boxes, _ = engine(bgr, use_det=True, use_cls=False, use_rec=False)
    if boxes is None or not len(boxes):
        return []
    h = frame.shape[0]
    spans: list[tuple[int, int]] = []
    for quad in np.asarray(boxes, np.float32).reshape(-1, 4, 2):
        top, bottom = float(quad[:, 1].min()), float(quad[:, 1].max())
        pad = max(BAND_MIN_MARGIN, (bottom - top) / 2)
        spans.append((max(0, math.floor(top - pad)), min(h, math.ceil(bottom + pad))))
    bands: list[tuple[int, int]] = []
    for top, bottom in sorted(spans):
        if bands and top <= bands[-1][1]:
            bands[-1] = (bands[-1][0], max(bands[-1][1], bottom))
        else:
            bands.append((top, bottom))
    return bands


def read_frame(
    frame: np.ndarray, upscale: float, threads: int, device: str = "auto"
) -> list[tuple[str, float]]:
    """Lines of text in an RGB frame with the recogniser's confidence, top to bottom, read
    on ``device`` (a ``matcher.device``).

    Frames are enlarged by up to ``upscale``, never past :data:`MAX_READ_SIDE` (a photo
    decoded at full size is read as it is). A frame is enlarged only where
    :func:`text_bands` finds text at its decoded size: not read at all when it finds none,
    and only those bands (full width, so the detector splits their lines at full size) when
    they cover under :data:`BAND_SHARE` of the frame."""
    import cv2

    h, w = frame.shape[:2]
    upscale = min(upscale, MAX_READ_SIDE / max(1, h, w))
    cuda = accel.ocr_on_cuda(device)
    parts = [frame]
    if upscale > 1.0:
        bands = text_bands(frame, threads, cuda)
        if not bands:
            return []
        size = (round(w * upscale), round(h * upscale))
        frame = cv2.resize(frame, size, interpolation=cv2.INTER_CUBIC)
        parts = [frame]
        if sum(b - a for a, b in bands) < BAND_SHARE * h:
            parts = [frame[round(a * upscale) : round(b * upscale)] for a, b in bands]
    engine = load_ocr(threads, max(frame.shape[:2]), cuda)
    lines: list[tuple[str, float]] = []
    for part in parts:
        # RapidOCR takes OpenCV's BGR order.
        result, _ = engine(np.ascontiguousarray(part[..., ::-1]))
        lines.extend((str(text)[:MAX_LINE_CHARS], float(score)) for _, text, score in result or [])
    return lines


def ocr_frames(decoded: Decoded, every_s: float) -> list[int]:
    """Indexes of the keyframes to read: the first, the first after each scene cut, in long
    shots one every ``every_s`` seconds, and the last (so words still on screen at the end
    are bisected up to where they began)."""
    picked: list[int] = []
    last = -math.inf
    cuts = decoded.cuts
    for i, t in enumerate(decoded.times.tolist()):
        cut = cuts is not None and i < len(cuts) and bool(cuts[i])
        if not picked or cut or t - last >= every_s - 1e-6:
            picked.append(i)
            last = t
    if picked and picked[-1] != len(decoded.times) - 1:
        picked.append(len(decoded.times) - 1)
    return picked


def _thin(picked: list[int], budget: int) -> list[int]:
    """At most ``budget`` of ``picked``, evenly spread, first and last kept."""
    if len(picked) <= budget:
        return picked
    keep = np.unique(np.linspace(0, len(picked) - 1, budget).round().astype(int))
    return [picked[k] for k in keep.tolist()]


def _words(lines: list[tuple[str, float]]) -> str:
    """A frame's words for telling whether they changed: lines of under
    :data:`MIN_COMPARED` letters (stray detections in textures: 'O', '公') left out."""
    kept = (c for c in (compact(t) for t, _ in lines) if len(c) >= MIN_COMPARED)
    return " ".join(kept)


def _same_words(a: list[tuple[str, float]], b: list[tuple[str, float]], ratio: float) -> bool:
    ca, cb = _words(a), _words(b)
    return ca == cb or SequenceMatcher(None, ca, cb).ratio() >= ratio


# Finding names in lines --------------------------------------------------------------------


@dataclass(frozen=True)
class _Found:
    weight: float
    reason: str
    similarity: float
    span: tuple[int, int]
    """Word positions in the line (overlapping readings of two titles compete)."""


def _tokens(line: str) -> tuple[list[str], set[int]]:
    """Normalised words of a line and the positions of those that were hashtags (kept
    whole: ``#Star_Fall`` is the one word ``starfall``)."""
    tokens: list[str] = []
    tags: set[int] = set()
    for raw in line.split():
        if _HASHTAG.fullmatch(raw) and (tag := compact(raw)):
            tags.add(len(tokens))
            tokens.append(tag)
        else:
            tokens.extend(normalise_words(raw, MAX_LINE_CHARS).split())
    return tokens, tags


def _ratio(a: str, b: str) -> float:
    m = SequenceMatcher(None, a, b, autojunk=False)
    if m.real_quick_ratio() < 0.5 or m.quick_ratio() < 0.5:
        return 0.0
    return m.ratio()


def _name_in(
    name: str, tokens: list[str], tags: set[int], min_ratio: float
) -> tuple[float, tuple[int, int], bool] | None:
    """Best reading of ``name`` (normalised words) in the line: (similarity, word span,
    hidden inside a longer word), or ``None``."""
    target = name.replace(" ", "")
    n_words = name.count(" ") + 1
    best: tuple[float, tuple[int, int], bool] | None = None
    # OCR misreads letters (I for l, 0 for O) far more often than it adds or drops one:
    # "Starsfall" is another word, not a misread "Starfall".
    slack = len(target) // LENGTH_SLACK
    if len(target) <= SHORT_NAME:
        words = name.split()
        for i in range(len(tokens) - n_words + 1):
            if tokens[i : i + n_words] == words and not tags & set(range(i, i + n_words)):
                return 1.0, (i, i + n_words), False
        return None
    for i in range(len(tokens)):
        window = ""
        for j in range(i, min(len(tokens), i + n_words)):
            if j in tags:
                break
            window += tokens[j]
            if len(window) > len(target) + slack:
                break
            if len(window) < len(target) - slack:
                continue
            r = 1.0 if window == target else _ratio(target, window)
            if r >= min_ratio and (best is None or r > best[0]):
                best = (r, (i, j + 1), False)
    if best is None and len(target) >= MIN_HIDDEN_NAME:
        for i, tok in enumerate(tokens):
            if i not in tags and len(tok) > len(target) and target in tok:
                return 1.0, (i, i + 1), True
    return best


def _find(lines: Sequence[str], index: OcrIndex, min_ratio: float) -> dict[int, list[_Found]]:
    """Evidence per title in one frame's lines."""
    out: dict[int, list[_Found]] = {}
    for line in lines:
        tokens, tags = _tokens(line)
        if not tokens:
            continue
        per_title: dict[int, list[_Found]] = {}
        for title in index.asset_nums():
            found: list[_Found] = []
            labels = index.labels[title].tolist()
            for name, label in zip(index.names[title].tolist(), labels, strict=True):
                hit = _name_in(str(name), tokens, tags, min_ratio)
                if hit is None:
                    continue
                sim, span, hidden = hit
                word = " ".join(tokens[span[0] : span[1]])
                if hidden:
                    found.append(_Found(NAME_IN_HASHTAG, f"'{word}' hides '{label}'", sim, span))
                else:
                    found.append(_Found(NAME_IN_CAPTION, f"names '{label}'", sim, span))
            title_tags = [str(t) for t in index.hashtags[title].tolist()]
            for pos in sorted(tags):
                tag = tokens[pos]
                if any(
                    tag == t or (len(t) > 6 and _ratio(t, tag) >= min_ratio) for t in title_tags
                ):
                    found.append(_Found(TITLE_HASHTAG, f"hashtag #{tag}", 1.0, (pos, pos + 1)))
                    continue
                for name, label in zip(index.names[title].tolist(), labels, strict=True):
                    c = str(name).replace(" ", "")
                    if len(c) >= MIN_HIDDEN_NAME and c in tag:
                        found.append(
                            _Found(NAME_IN_HASHTAG, f"#{tag} hides '{label}'", 1.0, (pos, pos + 1))
                        )
                        break
            named = [f.span for f in found if f.weight == NAME_IN_CAPTION]
            found = [
                f
                for f in found
                if f.weight == NAME_IN_CAPTION
                or not any(a < f.span[1] and f.span[0] < b for a, b in named)
            ]
            if found:
                per_title[title] = found
        # Where two titles read the same words, the closer reading names them.
        for title, found in per_title.items():
            kept = [
                f
                for f in found
                if not any(
                    g.similarity > f.similarity and g.span[0] < f.span[1] and f.span[0] < g.span[1]
                    for other, theirs in per_title.items()
                    if other != title
                    for g in theirs
                )
            ]
            if kept:
                out.setdefault(title, []).extend(kept)
    return out


# Index -------------------------------------------------------------------------------------


class OcrIndex(TitleCards):
    """Title cards as the rules read them (:class:`~matcher.signals.text.TitleCards`)."""

    FILE = "ocr.npz"


# Signal ------------------------------------------------------------------------------------


class RapidOcrSignal(Signal):
    """Title names, aliases and hashtags burned into keyframes (see the module docs)."""

    name = "ocr"
    version = 3
    references = "titles"
    reads_media = True
    visual = True
    index_type = OcrIndex

    def unavailable(self) -> str | None:
        for module in ("onnxruntime", "cv2", "rapidocr_onnxruntime"):
            if importlib.util.find_spec(module) is None:
                return f"{module} is not installed (pip install rapidocr-onnxruntime==1.4.4)"
        return None

    def config_key(self) -> str:
        o = self.settings.ocr
        return f"{self.name}-v{self.version}-x{o.upscale:g}-every{o.every_s:g}-max{o.max_frames}"

    def fingerprint(self, decoded: Decoded, role: Role) -> Fingerprint:
        """Lines read on the keyframes: ``lines`` with ``line_frame`` (index into
        ``decoded.frames``) and ``line_score`` (recogniser confidence); ``frames`` and
        ``times`` list every frame read, with or without text, so a caption's stretch ends
        where a read frame lacks it."""
        o = self.settings.ocr
        n = len(decoded.frames)
        budget = max(1, o.max_frames)
        read: dict[int, list[tuple[str, float]]] = {}

        def ocr(i: int) -> list[tuple[str, float]]:
            if i not in read:
                read[i] = read_frame(decoded.frames[i], o.upscale, o.threads, self.settings.device)
            return read[i]

        todo = _thin(ocr_frames(decoded, o.every_s), budget) if n else []
        for i in todo:
            ocr(i)
        # Bisect between read frames whose words differ, while the budget lasts.
        stack = list(itertools.pairwise(todo))
        limit = len(read) + max(1, budget // 2)
        while stack and len(read) < limit:
            a, b = stack.pop()
            if b - a < 2 or _same_words(read[a], read[b], o.min_similarity):
                continue
            m = (a + b) // 2
            ocr(m)
            stack.extend([(m, b), (a, m)])
        frames = sorted(read)
        rows = [(i, text, score) for i in frames for text, score in read[i]]
        return {
            "frames": np.array(frames, np.int32),
            "times": decoded.times[frames].astype(np.float32)
            if frames
            else np.zeros(0, np.float32),
            "lines": _strings(text for _, text, _ in rows),
            "line_frame": np.array([i for i, _, _ in rows], np.int32),
            "line_score": np.array([s for _, _, s in rows], np.float32),
        }

    def fingerprint_text(self, text: TextInput) -> Fingerprint:
        """A title card's names (normalised words), display names and compact hashtags."""
        names = [(normalise_words(str(n), 200), clean_label(str(n))) for n in text.names]
        names = [(n, lab) for n, lab in names if len(n.replace(" ", "")) >= MIN_NAME]
        names = list(dict.fromkeys(names))
        tags = list(dict.fromkeys(t for t in (compact(str(h)) for h in text.hashtags) if t))
        return {
            "names": _strings(n for n, _ in names),
            "labels": _strings(lab for _, lab in names),
            "hashtags": _strings(tags),
        }

    def search(
        self, index: SignalIndex, fingerprint: Fingerprint, query_duration: float
    ) -> list[SignalHit]:
        """Hits per title and kind of evidence, one per stretch of read frames that show it.

        ``query_start``/``query_end`` are the first and last read times where the words are
        on screen, ``query_frame``/``query_time`` the read frame where they read best,
        ``distance`` is 1 minus that reading's similarity, ``frames`` the read frames in the
        stretch, ``density`` the kind's weight (what :meth:`score` reads) and ``note`` says
        what was read.
        """
        assert isinstance(index, OcrIndex)
        if not len(index) or "lines" not in fingerprint or not fingerprint["lines"].size:
            return []
        frames = fingerprint["frames"].tolist()
        times = fingerprint["times"].tolist()
        lines = fingerprint["lines"].tolist()
        owners = fingerprint["line_frame"].tolist()
        scores = fingerprint["line_score"].tolist()
        min_ratio = self.settings.ocr.min_similarity
        # (title, weight) -> position in `frames` -> (similarity, line score, reasons, text)
        seen: dict[tuple[int, float], dict[int, tuple[float, float, set[str], str]]] = {}
        for pos, frame in enumerate(frames):
            mine = [
                (str(t), s) for t, f, s in zip(lines, owners, scores, strict=True) if f == frame
            ]
            if not mine:
                continue
            for title, found in _find([t for t, _ in mine], index, min_ratio).items():
                quality = max(s for _, s in mine)
                for f in found:
                    slot = seen.setdefault((title, f.weight), {})
                    sim, q, reasons, shown = slot.get(pos, (0.0, 0.0, set(), ""))
                    reasons.add(f.reason)
                    text = " / ".join(clean_label(t) for t, _ in mine)
                    slot[pos] = (max(sim, f.similarity), max(q, quality), reasons, shown or text)
        hits: list[SignalHit] = []
        for (title, weight), per_pos in seen.items():
            for stretch in _stretches(sorted(per_pos)):
                best = max(stretch, key=lambda p: (per_pos[p][0], per_pos[p][1]))
                sim, _, _, shown = per_pos[best]
                why = sorted(set().union(*(per_pos[p][2] for p in stretch)))
                t0, t1 = times[stretch[0]], times[stretch[-1]]
                hits.append(
                    SignalHit(
                        asset_num=title,
                        query_start=round(float(t0), 3),
                        query_end=round(float(t1), 3),
                        ref_start=0.0,
                        ref_end=0.0,
                        distance=round(1.0 - sim, 4),
                        frames=len(stretch),
                        density=weight,
                        query_time=round(float(times[best]), 3),
                        ref_time=0.0,
                        query_frame=int(frames[best]),
                        slope=0.0,
                        note=f"on screen {t0:.1f}-{t1:.1f} s: '{shown}' " + "; ".join(why),
                    )
                )
        hits.sort(key=lambda h: (h.asset_num, h.query_start, -h.density))
        return hits

    def score(self, hits: Sequence[SignalHit], query_duration: float) -> float:
        """``SCORE_CAP`` (0.5) times the noisy-OR of the kinds of evidence seen, each kind
        counted once however often it shows: the ``text`` signal's weights, so a name on
        screen scores 0.35 as a caption naming the title does, a title hashtag 0.15, and
        a name with a title hashtag 0.4. A watermark repeated over the clip is one piece of
        evidence, not many; frames without any title's words give no hit (0)."""
        kinds = {min(1.0, max(0.0, h.density)) for h in hits}
        if not kinds:
            return 0.0
        return round(SCORE_CAP * (1.0 - math.prod(1.0 - w for w in kinds)), 4)


def _stretches(positions: list[int]) -> list[list[int]]:
    """Runs of consecutive positions (read frames with no read frame between them lacking
    the evidence)."""
    runs: list[list[int]] = []
    for p in positions:
        if runs and p == runs[-1][-1] + 1:
            runs[-1].append(p)
        else:
            runs.append([p])
    return runs
