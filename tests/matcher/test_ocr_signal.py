"""The ocr signal: RapidOCR on keyframes of real clips and stills, names found in OCR'd lines.

Clips are the project's own (Ken Burns pans over scikit-image photos, written with
reelwatch.demo.media) with captions burned in by its ``overlay_text`` step; stills are photos
with text drawn by PIL. OCR runs for real (the PP-OCRv4 ONNX models in the wheel, offline).
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from matcher.catalog import Catalog
from matcher.decode import Decoded, decode
from matcher.engine import Matcher
from matcher.signals.base import Fingerprint, SignalHit
from matcher.signals.ocr import OcrIndex, RapidOcrSignal, ocr_frames, read_frame, text_bands
from matcher.signals.text import NAME_IN_CAPTION, SCORE_CAP, TITLE_HASHTAG
from reelwatch.demo import media
from reelwatch.settings import MatcherSettings, load_settings
from tests.matcher.signal_contract import ContractCase, SignalContract, card

STARFALL = card("Starfall Station", ("Starfall",), ("starfallstation",), "")
ROASTERY = card("The Roastery", ("Roastery",), ("theroastery",), "")
UP = card("Up", (), ("pixarup",), "")
NAME_SCORE = SCORE_CAP * NAME_IN_CAPTION
"""A name on screen scores what a caption naming the title does (0.35)."""


@pytest.fixture(scope="module")
def signal() -> RapidOcrSignal:
    return RapidOcrSignal(MatcherSettings())


@pytest.fixture(scope="module")
def index(signal: RapidOcrSignal) -> OcrIndex:
    idx = signal.new_index()
    for num, c in enumerate((STARFALL, ROASTERY, UP), start=1):
        idx.add(num, signal.fingerprint_text(c))
    assert isinstance(idx, OcrIndex)
    return idx


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """8 s clips (a cut at 4 s) with: STARFALL STATION from 3 s to 6 s; The Roastery all
    along; unrelated words; nothing."""
    out = tmp_path_factory.mktemp("ocr-clips")
    base = media.make_reference_clip(
        ["astronaut", "coffee"],
        out / "base.mp4",
        seconds_per_photo=4,
        size=(640, 360),
        fps=12,
        seed=9,
    )
    clip = media.read_clip(base)

    def between(c: media.Clip, text: str, t0: float, t1: float, **kw: str) -> media.Clip:
        i0, i1 = round(t0 * c.fps), round(t1 * c.fps)
        mid = media.overlay_text(media.excerpt(c, t0, t1 - t0), text, stickers=0, **kw)
        return replace(c, frames=c.frames[:i0] + mid.frames + c.frames[i1:])

    return {
        "starfall": media.write_clip(
            between(clip, "STARFALL STATION", 3.0, 6.0, position="bottom"), out / "sf.mp4"
        ),
        "roastery": media.write_clip(media.overlay_text(clip, "The Roastery"), out / "ro.mp4"),
        "unrelated": media.write_clip(
            between(
                between(clip, "weekend vibes", 0.0, 4.0),
                "Stars fall on Alabama",
                4.0,
                8.0,
                position="middle",
            ),
            out / "un.mp4",
        ),
        "plain": base,
    }


def decoded(path: Path, settings: MatcherSettings) -> Decoded:
    """Decoded as the fingerprint step decodes queries (2 fps, 512 px, scene keyframes)."""
    return decode(
        path,
        settings.sample_fps,
        settings.max_frames,
        max_side=settings.decode_max_side,
        keyframes=True,
    )


@pytest.fixture(scope="module")
def prints(signal: RapidOcrSignal, clips: dict[str, Path]) -> dict[str, Fingerprint]:
    return {k: signal.fingerprint(decoded(p, signal.settings), "query") for k, p in clips.items()}


def by_title(hits: list[SignalHit]) -> dict[int, list[SignalHit]]:
    out: dict[int, list[SignalHit]] = {}
    for h in hits:
        out.setdefault(h.asset_num, []).append(h)
    return out


# Reading clips -----------------------------------------------------------------------------------


def test_burned_in_name_hits_its_title_with_the_time_it_is_on_screen(
    signal: RapidOcrSignal, index: OcrIndex, prints: dict[str, Fingerprint]
) -> None:
    hits = by_title(signal.search(index, prints["starfall"], 8.0))
    assert set(hits) == {1}
    named = [h for h in hits[1] if h.density == NAME_IN_CAPTION]
    assert len(named) == 1
    h = named[0]
    assert abs(h.query_start - 3.0) <= 1.0 and abs(h.query_end - 6.0) <= 1.0
    assert h.query_start <= h.query_time <= h.query_end
    times = prints["starfall"]["times"][prints["starfall"]["frames"] == h.query_frame]
    assert times.tolist() == [pytest.approx(h.query_time, abs=1e-3)]
    assert "Starfall Station" in h.note and h.ref_start == h.ref_end == 0.0
    assert signal.score(hits[1], 8.0) == pytest.approx(NAME_SCORE)


def test_a_caption_of_another_title_hits_that_title(
    signal: RapidOcrSignal, index: OcrIndex, prints: dict[str, Fingerprint]
) -> None:
    hits = by_title(signal.search(index, prints["roastery"], 8.0))
    assert set(hits) == {2}
    assert min(h.query_start for h in hits[2]) == 0.0
    assert max(h.query_end for h in hits[2]) >= 7.0


def test_unrelated_words_and_plain_frames_hit_nothing(
    signal: RapidOcrSignal, index: OcrIndex, prints: dict[str, Fingerprint]
) -> None:
    read = " ".join(prints["unrelated"]["lines"].tolist()).lower()
    assert "vibes" in read and "alabama" in read, "the words were read, and named no title"
    for key in ("unrelated", "plain"):
        hits = signal.search(index, prints[key], 8.0)
        assert hits == [] and signal.score(hits, 8.0) == 0.0


def test_keyframes_are_the_first_the_cuts_and_one_every_few_seconds(
    signal: RapidOcrSignal, clips: dict[str, Path], prints: dict[str, Fingerprint]
) -> None:
    d = decoded(clips["plain"], signal.settings)
    assert d.cuts is not None and d.cuts.any()
    picked = ocr_frames(d, 3.0)
    assert picked[0] == 0
    assert set(np.flatnonzero(d.cuts).tolist()) <= set(picked)
    assert all(b > a for a, b in itertools.pairwise(picked))
    # Read frames are keyframes plus the bisection where words change: far fewer than all.
    assert len(prints["plain"]["frames"]) < len(d.frames) / 2
    assert len(prints["starfall"]["frames"]) < len(d.frames)


# Stills and lines -----------------------------------------------------------------------------


def still(text: str, px: int, tmp_path: Path) -> Path:
    img = Image.fromarray(media.load_photo("chelsea")).resize((1280, 720))
    draw = ImageDraw.Draw(img)
    draw.text(
        (200, 600),
        text,
        font=ImageFont.load_default(size=px),
        fill="yellow",
        stroke_width=2,
        stroke_fill="black",
    )
    path = tmp_path / "still.png"
    img.save(path)
    return path


def test_a_still_is_read_as_one_frame(
    signal: RapidOcrSignal, index: OcrIndex, tmp_path: Path
) -> None:
    # 30 px in a 720p picture, 12 px after the 512 px decode: read thanks to the upscale.
    d = decoded(still("Starfall Station: out now", 30, tmp_path), signal.settings)
    fp = signal.fingerprint(d, "query")
    assert fp["frames"].tolist() == [0] and fp["times"].tolist() == [0.0]
    hits = signal.search(index, fp, 0.0)
    assert {h.asset_num for h in hits} == {1}
    assert all(h.query_frame == 0 and h.query_start == h.query_end == 0.0 for h in hits)
    assert signal.score(hits, 0.0) == pytest.approx(NAME_SCORE)


def search_lines(signal: RapidOcrSignal, index: OcrIndex, *lines: str) -> set[int]:
    fp = {
        "frames": np.array([0], np.int32),
        "times": np.array([0.0], np.float32),
        "lines": np.array(lines, dtype=str),
        "line_frame": np.zeros(len(lines), np.int32),
        "line_score": np.ones(len(lines), np.float32),
    }
    return {h.asset_num for h in signal.search(index, fp, 0.0)}


@pytest.mark.parametrize(
    ("lines", "titles"),
    [
        (("STARFALLSTATION",), {1}),  # OCR dropped the space
        (("STARFAIL STATION",), {1}),  # one misread letter
        (("watch Starfall now",), {1}),
        (("Stars fall on Alabama",), set()),  # two words where the alias is one
        (("Starsfall on Alabama",), set()),  # the same, the space lost: a letter too many
        (("STARFIELD STATION 2",), set()),  # a near miss of the name
        (("Starfallen",), {1}),  # hides the alias: the weaker kind, see below
        (("UP NEXT: Up",), {3}),
        (("upstairs", "cups"), set()),  # a short name needs a whole word
        (("Roastery vibes", "STARFALL STATION"), {1, 2}),
        (("weekend vibes",), set()),
    ],
)
def test_names_are_found_in_ocr_lines_despite_ocr_errors(
    signal: RapidOcrSignal, index: OcrIndex, lines: tuple[str, ...], titles: set[int]
) -> None:
    assert search_lines(signal, index, *lines) == titles


def test_a_title_hashtag_on_screen_is_the_weakest_lead(
    signal: RapidOcrSignal, index: OcrIndex
) -> None:
    fp = {
        "frames": np.array([0], np.int32),
        "times": np.array([0.0], np.float32),
        "lines": np.array(["follow #StarfallStation"], dtype=str),
        "line_frame": np.zeros(1, np.int32),
        "line_score": np.ones(1, np.float32),
    }
    hits = signal.search(index, fp, 0.0)
    assert {h.asset_num for h in hits} == {1}
    assert signal.score(hits, 0.0) == pytest.approx(SCORE_CAP * TITLE_HASHTAG)


def test_a_name_hidden_in_a_longer_word_is_the_weaker_lead(
    signal: RapidOcrSignal, index: OcrIndex
) -> None:
    fp = {
        "frames": np.array([0], np.int32),
        "times": np.array([0.0], np.float32),
        "lines": np.array(["Starfallen"], dtype=str),
        "line_frame": np.zeros(1, np.int32),
        "line_score": np.ones(1, np.float32),
    }
    hits = signal.search(index, fp, 0.0)
    assert 0.0 < signal.score(hits, 0.0) < NAME_SCORE


def test_index_round_trip_and_unavailable(
    signal: RapidOcrSignal, index: OcrIndex, tmp_path: Path
) -> None:
    index.save(tmp_path)
    loaded = signal.load_index(tmp_path)
    assert isinstance(loaded, OcrIndex) and loaded.asset_nums() == {1, 2, 3}
    assert loaded.labels[1].tolist() == ["Starfall Station", "Starfall"]
    assert signal.unavailable() is None
    assert signal.name == "ocr" and signal.reads_media and signal.references == "titles"


# End to end --------------------------------------------------------------------------------------


def test_match_file_shows_the_ocr_segment_with_its_times(
    tmp_path: Path, clips: dict[str, Path]
) -> None:
    settings = load_settings(home=tmp_path)
    settings.matcher.signals = ["ocr"]
    settings.ensure_home()
    catalog = Catalog(settings)
    catalog.add_title("Starfall Station", aliases=["Starfall"], hashtags=["starfallstation"])
    catalog.add_title("The Roastery", aliases=["Roastery"], hashtags=["theroastery"])
    report = Matcher(settings, catalog).match_file(clips["starfall"])
    assert [m.title for m in report.matches] == ["Starfall Station"]
    m = report.matches[0]
    assert m.signals == {"ocr": pytest.approx(NAME_SCORE)}
    seg = next(s for s in m.segments if s.signal == "ocr" and "names" in s.note)
    assert abs(seg.query_start - 3.0) <= 1.0 and abs(seg.query_end - 6.0) <= 1.0
    assert seg.ref_asset == "title:starfall-station"
    # Its evidence is the post's frame where the name reads best, inside the segment.
    [frame] = seg.evidence
    assert Path(frame).name.startswith("q-") and (settings.home / frame).is_file()
    assert seg.query_start <= int(Path(frame).stem.split("-")[1]) / 1000 <= seg.query_end
    assert Matcher(settings, catalog).match_file(clips["unrelated"]).matches == []


# Contract ---------------------------------------------------------------------------------------


class TestOcrContract(SignalContract):
    @pytest.fixture(scope="class")
    @classmethod
    def case(cls, tmp_path_factory: pytest.TempPathFactory) -> ContractCase:
        s = RapidOcrSignal(MatcherSettings())
        out = tmp_path_factory.mktemp("ocr-contract")
        base = media.read_clip(
            media.make_reference_clip(
                ["rocket"], out / "b.mp4", seconds_per_photo=4, size=(640, 360), fps=12, seed=4
            )
        )
        query = media.write_clip(media.overlay_text(base, "Starfall Station"), out / "q.mp4")
        other = media.write_clip(media.overlay_text(base, "my new lens test"), out / "u.mp4")
        return ContractCase(
            signal=s,
            reference=s.fingerprint_text(STARFALL),
            other=s.fingerprint_text(ROASTERY),
            query=s.fingerprint(decoded(query, s.settings), "query"),
            unrelated=s.fingerprint(decoded(other, s.settings), "query"),
            query_duration=4.0,
            # A name on screen is a lead like a caption naming the title (0.35): words alone
            # are capped at 0.5 by design, see RapidOcrSignal.score.
            strong=NAME_SCORE,
        )


@pytest.mark.parametrize("px", [20, 30])
def test_the_text_gate_passes_small_captions_and_skips_plain_frames(
    signal: RapidOcrSignal, tmp_path: Path, px: int
) -> None:
    # 20 px letters in a 720p picture are 8 px high at the 512 px decode: the gate at that
    # size must still see them, or the enlarged read would never run.
    o = signal.settings.ocr
    frame = decode(still("Starfall Station", px, tmp_path), 2.0, 10, still_max_side=512).frames[0]
    assert max(frame.shape[:2]) == 512
    assert text_bands(frame, o.threads)
    # Read enlarged (at 8 px the reader may take an f for a t; the ocr signal's similarity
    # rules are for that).
    assert "station" in " ".join(t.lower() for t, _ in read_frame(frame, o.upscale, o.threads))
    plain = np.asarray(Image.fromarray(media.load_photo("chelsea")).resize((512, 288)))
    assert text_bands(plain, o.threads) == []
    assert read_frame(plain, o.upscale, o.threads) == []
