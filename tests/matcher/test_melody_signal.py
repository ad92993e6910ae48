"""The melody signal: basic-pitch transcription, interval/rhythm n-grams, chain search.

A theme of 20 notes is synthesised here (additive tones with envelopes), written as AAC and
decoded by the real decoder; re-plays of it in another key, tempo and timbre, and under an
accompaniment with drums, must be found at the medium tier with the right times, and tunes
that share only its rhythm or nothing, speech and noise must not reach medium. The model is
the real basic-pitch ONNX file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from matcher.decode import Decoded, decode
from matcher.signals.base import SignalHit
from matcher.signals.melody import (
    FRAME_S,
    BasicPitchMelodySignal,
    MelodyIndex,
    default_model_path,
    ngram_keys,
    posteriorgrams,
)
from reelwatch.demo import audio as demo_audio
from reelwatch.settings import MatcherSettings, MelodySettings
from tests.matcher.signal_contract import ContractCase, SignalContract, media_case

RATE = 16000
BEAT_S = 0.3
THEME = [
    (67, 1.0), (67, 0.5), (69, 0.5), (71, 1.0), (67, 1.0), (72, 1.5), (71, 0.5), (69, 1.0),
    (67, 0.5), (64, 0.5), (62, 1.0), (64, 0.5), (67, 0.5), (69, 1.0), (71, 0.5), (72, 0.5),
    (74, 2.0), (72, 0.5), (71, 0.5), (69, 1.0),
]  # fmt: skip
"""(MIDI pitch, beats): the studio's theme."""
TIMBRES = {
    "warm": ([(1, 1.0), (2, 0.5), (3, 0.3), (4, 0.15)], 3.0, 0.0),
    "square": ([(k, 1.0 / k) for k in range(1, 12, 2)], 1.0, 0.0),
    "piano": ([(k, 0.9**k) for k in range(1, 9)], 4.5, 0.0005),
}
"""Partials (harmonic, amplitude), decay per second, inharmonicity (piano strings stretch
their upper partials sharp)."""


def tones(
    notes: list[tuple[int, float]],
    beat_s: float,
    timbre: str = "warm",
    transpose: int = 0,
    gain: float = 0.3,
) -> np.ndarray:
    """Mono float32 at :data:`RATE`: each note an additive tone with attack, decay and
    release, one after the other; 1 s of silence after the last."""
    partials, decay, stretch = TIMBRES[timbre]
    total = sum(d for _, d in notes) * beat_s
    out = np.zeros(round(total * RATE) + RATE)
    norm = sum(a for _, a in partials)
    pos = 0.0
    for midi, beats in notes:
        f = 440.0 * 2 ** ((midi + transpose - 69) / 12)
        n = round(beats * beat_s * RATE)
        t = np.arange(n) / RATE
        env = np.minimum(1, t / 0.01) * np.exp(-decay * t) * np.minimum(1, (n - t * RATE) / 320)
        wave = sum(
            a * np.sin(2 * np.pi * k * f * (1 + stretch * k * k) * t)
            for k, a in partials
            if k * f < RATE / 2
        )
        i = round(pos * RATE)
        out[i : i + n] += gain * env * wave / norm
        pos += beats * beat_s
    return out.astype(np.float32)


def tune(seed: int, n: int, rhythm: list[float] | None = None) -> list[tuple[int, float]]:
    """A seeded stepwise tune in C major (the theme's scale and range), with ``rhythm``
    repeated or a random one."""
    rng = np.random.default_rng(seed)
    scale = [p for p in range(60, 77) if p % 12 in (0, 2, 4, 5, 7, 9, 11)]
    i = int(rng.integers(len(scale)))
    out = []
    for k in range(n):
        i = int(np.clip(i + rng.choice([-3, -2, -1, -1, 0, 1, 1, 2, 3]), 0, len(scale) - 1))
        beats = rhythm[k % len(rhythm)] if rhythm else float(rng.choice([0.5, 0.5, 1, 1, 1.5, 2]))
        out.append((scale[i], beats))
    return out


def band(notes: list[tuple[int, float]], beat_s: float, transpose: int = 0) -> np.ndarray:
    """An accompaniment for ``notes``: a chord (C, F, G, Am) and a bass note every bar, a
    kick every other beat, hi-hats on the off-beats."""
    rng = np.random.default_rng(5)
    beats = int(sum(d for _, d in notes))
    out = np.zeros(round(beats * beat_s * RATE) + RATE, np.float32)
    chords = [[48, 52, 55], [53, 57, 60], [55, 59, 62], [45, 48, 52]]
    for bar in range(0, beats, 4):
        chord = chords[(bar // 4) % 4]
        i = round(bar * beat_s * RATE)
        for pitch, gain in [(p, 0.1) for p in chord] + [(chord[0] - 12, 0.2)]:
            v = tones([(pitch, 4)], beat_s, transpose=transpose, gain=gain)
            m = min(len(v), len(out) - i)
            out[i : i + m] += v[:m]
    t = np.arange(round(0.15 * RATE)) / RATE
    kick = 0.5 * np.sin(2 * np.pi * (50 + 80 * np.exp(-30 * t)) * t) * np.exp(-20 * t)
    th = np.arange(round(0.05 * RATE)) / RATE
    hat = np.diff(0.15 * rng.standard_normal(len(th)) * np.exp(-80 * th), prepend=0.0)
    hits = [(kick, float(b)) for b in range(0, beats, 2)] + [(hat, b + 0.5) for b in range(beats)]
    for sound, at in hits:
        i = round(at * beat_s * RATE)
        m = max(0, min(len(sound), len(out) - i))
        out[i : i + m] += sound[:m]
    return out


INTRO = tune(7, 24)
REF_THEME_AT = sum(d for _, d in INTRO) * BEAT_S + 1.0
"""Where the theme starts in the reference (after the intro and its 1 s tail)."""
LEAD_IN = tune(21, 6)
LEAD_IN_BEAT_S = 0.4


def query_audio(
    transpose: int = 0,
    tempo: float = 1.0,
    timbre: str = "warm",
    accompanied: bool = False,
    notes: list[tuple[int, float]] = THEME,
) -> tuple[np.ndarray, float]:
    """Something else first (a few piano notes), then ``notes`` re-played; and where they
    start."""
    lead = tones(LEAD_IN, LEAD_IN_BEAT_S, "piano", gain=0.2)
    played = tones(notes, BEAT_S / tempo, timbre, transpose)
    if accompanied:
        backing = band(notes, BEAT_S / tempo, transpose)
        m = min(len(backing), len(played))
        played = played[:m] + backing[:m]
    return np.concatenate([lead, played]), len(lead) / RATE


def write(audio: np.ndarray, path: Path) -> Path:
    return demo_audio.write_audio(audio, path, sample_rate=RATE, bitrate=96_000, mono=True)


def decode_audio(path: Path) -> Decoded:
    m = MatcherSettings()
    return decode(path, m.sample_fps, m.max_frames, with_audio=True, audio_rate=m.audio_rate)


@dataclass
class Library:
    signal: BasicPitchMelodySignal
    index: MelodyIndex
    root: Path

    def query(self, audio: np.ndarray, name: str) -> tuple[list[SignalHit], float]:
        d = decode_audio(write(audio, self.root / f"{name}.m4a"))
        fp = self.signal.fingerprint(d, "query")
        return self.signal.search(self.index, fp, d.duration), d.duration


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Library:
    root = tmp_path_factory.mktemp("melody")
    signal = BasicPitchMelodySignal(MatcherSettings())
    reference = np.concatenate(
        [tones(INTRO, BEAT_S), tones(THEME, BEAT_S), tones(tune(8, 30), BEAT_S)]
    )
    other = tones(tune(9, 60), 0.35)
    index = signal.new_index()
    for num, (audio, name) in enumerate([(reference, "theme"), (other, "other")], start=1):
        fp = signal.fingerprint(decode_audio(write(audio, root / f"{name}.m4a")), "reference")
        assert index.add(num, fp) > 0
    return Library(signal, index, root)


# The model, as this module reads it -------------------------------------------------------


def test_model_is_found_and_its_frames_tile_the_timeline() -> None:
    # A4 (MIDI 69) from 5.3 s to 6.3 s: its window boundary crossings (every 1.65 s) must
    # neither shift nor repeat it, and bin 0 must be MIDI 21.
    path = default_model_path()
    assert path is not None and path.name == "nmp.onnx"
    seconds = 9.0
    a4 = np.zeros(round(seconds * RATE), np.float32)
    t = np.arange(RATE) / RATE
    a4[round(5.3 * RATE) : round(6.3 * RATE)] = 0.4 * np.sin(2 * np.pi * 440 * t)
    note, onset = posteriorgrams(a4, RATE, path)
    assert len(note) == len(onset) == int(np.ceil(seconds * 22050 / 256))
    frame, pitch_bin = np.unravel_index(np.argmax(onset), onset.shape)
    assert pitch_bin + 21 == 69
    assert abs(frame * FRAME_S - 5.3) <= 2 * FRAME_S
    sounding = np.flatnonzero(note[:, 69 - 21] > 0.3) * FRAME_S
    assert sounding.min() == pytest.approx(5.3, abs=0.05)
    assert sounding.max() == pytest.approx(6.3, abs=0.1)


def test_accompaniment_and_drums_leave_the_theme_as_the_melody(library: Library) -> None:
    audio, start = query_audio(accompanied=True)
    d = decode_audio(write(audio, library.root / "band.m4a"))
    melody = library.signal.fingerprint(d, "query")
    theme = melody["onset"] >= start - 0.05
    assert melody["pitch"][theme].tolist() == [p for p, _ in THEME]
    beats = np.cumsum([0.0] + [b for _, b in THEME[:-1]]) * BEAT_S + start
    assert np.abs(melody["onset"][theme] - beats).max() < 0.05


def test_keys_ignore_key_and_tempo() -> None:
    onset = np.cumsum([0.0] + [b for _, b in THEME[:-1]]) * BEAT_S
    pitch = np.array([p for p, _ in THEME])
    keys = ngram_keys(onset, pitch, 5)
    assert len(keys) == len(THEME) - 4
    assert (ngram_keys(onset * 1.25 + 3.0, pitch - 5, 5) == keys).all()
    other_rhythm = np.cumsum([0.0] + [0.5] * (len(THEME) - 1)) * BEAT_S
    assert not np.isin(ngram_keys(other_rhythm, pitch, 5), keys).any()


# What the signal must find -----------------------------------------------------------------

REPLAYS = {
    "up 3 semitones": {"transpose": 3},
    "down 5 semitones": {"transpose": -5},
    "0.8x tempo": {"tempo": 0.8},
    "1.25x tempo": {"tempo": 1.25},
    "square wave": {"timbre": "square"},
    "piano": {"timbre": "piano"},
    "under a band with drums": {"accompanied": True},
    "all at once": {"transpose": 3, "tempo": 1.25, "timbre": "piano", "accompanied": True},
}


@pytest.mark.parametrize("name", list(REPLAYS))
def test_a_replayed_theme_is_a_medium_lead_at_the_right_time(library: Library, name: str) -> None:
    kw = REPLAYS[name]
    audio, start = query_audio(**kw)  # type: ignore[arg-type]
    hits, duration = library.query(audio, name.replace(" ", "-"))
    s = library.signal
    score = s.score(hits, duration)
    assert {h.asset_num for h in hits} == {1}, name
    assert s.settings.medium_threshold <= score <= s.cap() < s.settings.high_threshold
    best = min(hits, key=lambda h: h.distance)
    tempo = float(kw.get("tempo", 1.0))
    assert best.slope == pytest.approx(tempo, rel=0.05)
    # The query's theme start, carried along the hit's tempo line, lands on the reference's.
    mapped = best.ref_start + (start - best.query_start) * best.slope
    assert mapped == pytest.approx(REF_THEME_AT, abs=1.0)
    assert best.query_start == pytest.approx(start, abs=1.0)
    assert best.query_end <= duration
    assert f"transposed {int(kw.get('transpose', 0)):+d} semitones" in best.note
    assert f"tempo {tempo:.2f}x" in best.note
    assert best.query_frame == -1


DISTRACTORS = {
    "same rhythm, other intervals": lambda: query_audio(
        notes=tune(31, len(THEME), [b for _, b in THEME])
    )[0],
    "same rhythm, other intervals, under a band": lambda: query_audio(
        notes=tune(32, len(THEME), [b for _, b in THEME]), accompanied=True
    )[0],
    "other intervals and rhythm": lambda: query_audio(notes=tune(33, 40))[0],
    "speech": lambda: demo_audio.voice_over(10.0, RATE, seed=3),
    "noise": lambda: (0.1 * np.random.default_rng(0).standard_normal(10 * RATE)).astype(np.float32),
}


@pytest.mark.parametrize("name", list(DISTRACTORS))
def test_distractors_stay_under_medium(library: Library, name: str) -> None:
    hits, duration = library.query(DISTRACTORS[name](), name.replace(" ", "-").replace(",", ""))
    score = library.signal.score(hits, duration)
    assert score < library.signal.settings.medium_threshold, (name, hits)


# A lead, never proof ------------------------------------------------------------------------


def test_the_melody_alone_never_reaches_high(library: Library) -> None:
    audio, _ = query_audio(transpose=2)
    hits, duration = library.query(audio, "lead")
    s = library.signal
    assert s.score(hits * 4, duration) <= s.cap() < s.settings.high_threshold
    greedy = BasicPitchMelodySignal(
        MatcherSettings(melody=MelodySettings(max_score=0.95), high_threshold=0.8)
    )
    assert greedy.score(hits, duration) < 0.8


def test_unavailable_names_a_missing_model(tmp_path: Path) -> None:
    assert BasicPitchMelodySignal(MatcherSettings()).unavailable() is None
    missing = MatcherSettings(melody=MelodySettings(model_path=tmp_path / "nmp.onnx"))
    reason = BasicPitchMelodySignal(missing).unavailable()
    assert reason is not None and "does not exist" in reason


class TestMelodyContract(SignalContract):
    @pytest.fixture(scope="class")
    @classmethod
    def case(cls, tmp_path_factory: pytest.TempPathFactory) -> ContractCase:
        root = tmp_path_factory.mktemp("melody-contract")
        reference = np.concatenate([tones(INTRO, BEAT_S), tones(THEME, BEAT_S)])
        query, _ = query_audio(transpose=-2, tempo=0.9, timbre="square")
        return media_case(
            BasicPitchMelodySignal(MatcherSettings()),
            reference=write(reference, root / "theme.m4a"),
            other=write(tones(tune(9, 40), 0.35), root / "other.m4a"),
            query=write(query, root / "replay.m4a"),
            unrelated=write(query_audio(notes=tune(33, 40))[0], root / "unrelated.m4a"),
            strong=MatcherSettings().medium_threshold,
        )
