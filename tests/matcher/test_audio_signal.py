"""The audio signal: Chromaprint items, a FAISS sub-fingerprint index and offset search.

Every test media file is generated here (reelwatch.demo.media / reelwatch.demo.audio) and goes
through the real encoders, the real decoder and libchromaprint.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

from matcher.decode import Decoded, decode
from matcher.signals.audio import (
    HOP_S,
    ITEM_SPAN_S,
    REF_STRIDE,
    ChromaprintAudioSignal,
    ChromaprintIndex,
    bit_errors,
    chromaprint_items,
    offset_bit_errors,
    sub_fingerprints,
)
from matcher.signals.base import SignalHit
from reelwatch.demo import audio as demo_audio
from reelwatch.demo import media
from reelwatch.demo.content import DemoContent
from reelwatch.errors import InputError
from reelwatch.settings import MatcherSettings
from tests.matcher.signal_contract import ContractCase, SignalContract, media_case

LONG_SONG = 501
"""Seeds of the test songs: far from the demo's melody seeds (11-31, 101-105), since a song
built on the same seed really does reuse that melody."""
SHORT_SONG = 502
OTHER_SONG = 611


def decode_audio(path: Path) -> Decoded:
    m = MatcherSettings()
    return decode(path, m.sample_fps, m.max_frames, with_audio=True, audio_rate=m.audio_rate)


@dataclass
class Library:
    signal: ChromaprintAudioSignal
    index: ChromaprintIndex
    long_song: np.ndarray
    """Soundtrack of asset 1: a 90 s reference video."""
    short_song: np.ndarray
    """Asset 2: a 60 s audio-only reference."""
    backdrop: media.Clip
    """10 s of unrelated video (its own melody) to lay soundtracks under."""
    root: Path

    def query(self, path: Path) -> tuple[list[SignalHit], float]:
        d = decode_audio(path)
        return self.signal.search(self.index, self.signal.fingerprint(d, "query"), d.duration), (
            d.duration
        )


@pytest.fixture(scope="module")
def library(demo: DemoContent, tmp_path_factory: pytest.TempPathFactory) -> Library:
    root = tmp_path_factory.mktemp("audio")
    sig = ChromaprintAudioSignal(MatcherSettings())
    long_song = demo_audio.song(90, LONG_SONG)
    still = np.full((90, 160, 3), 40, np.uint8)
    ref_video = media.write_clip(
        media.Clip((still,) * 180, 2.0, long_song), root / "long-reference.mp4"
    )
    short_song = demo_audio.song(60, SHORT_SONG)
    ref_audio = demo_audio.write_audio(short_song, root / "score.m4a")
    index = sig.new_index()
    for num, path in enumerate(
        [ref_video, ref_audio, *(r for t in demo.titles for r in t.references)]
    ):
        assert index.add(num + 1, sig.fingerprint(decode_audio(path), "reference")) > 0
    bg = media.make_reference_clip(
        ["camera"], root / "backdrop.mp4", seconds_per_photo=10.0, size=(320, 180), seed=901
    )
    return Library(sig, index, long_song, short_song, media.read_clip(bg), root)


@pytest.fixture(scope="module")
def voice() -> np.ndarray:
    """10 s of continuous espeak-ng talking (mono, the clips' rate)."""
    return demo_audio.voice_over(10.0, seed=3)


# Chromaprint itself --------------------------------------------------------------------------


def test_items_are_spaced_by_chromaprints_hop() -> None:
    # The hop is measured, not assumed: an excerpt cut 12.3 s into a song must align with the
    # song's items 12.3 s / HOP_S in, and 60 s of audio must give (60 - span) / hop items.
    rate = 16000
    song = demo_audio.song(60, 503, rate).mean(axis=0)
    full = chromaprint_items(song, rate)
    part = chromaprint_items(song[round(12.3 * rate) : round(22.3 * rate)], rate)
    assert abs(len(full) - ((60 - ITEM_SPAN_S) / HOP_S + 1)) <= 1
    errors = [
        bit_errors(full[o : o + len(part)], part).mean() for o in range(len(full) - len(part))
    ]
    best = int(np.argmin(errors))
    assert abs(best * HOP_S - 12.3) <= HOP_S
    assert errors[best] / 32 < 0.1
    assert abs(HOP_S - 0.1238) < 1e-4


# What the signal must find -----------------------------------------------------------------


def test_soundtrack_under_unrelated_video_with_speech_is_found_from_a_10s_excerpt(
    library: Library, voice: np.ndarray
) -> None:
    """DONE WHEN: a reference soundtrack under unrelated video, at 60% volume with speech on
    top, is found from a 10 s excerpt, with the matched offset right (within 1 s)."""
    post = demo_audio.with_soundtrack(
        library.backdrop, library.long_song, volume=0.6, voice=voice, voice_volume=0.7, start=37.3
    )
    hits, duration = library.query(media.write_clip(post, library.root / "voice-over.mp4"))
    assert hits and {h.asset_num for h in hits} == {1}
    best = min(hits, key=lambda h: h.distance)
    assert best.ref_start - best.query_start == pytest.approx(37.3, abs=1.0)
    assert best.query_start == pytest.approx(0.0, abs=1.0)
    assert best.query_end >= 8.0
    assert best.distance <= library.signal.settings.audio.max_bit_error
    assert best.query_frame == -1
    assert best.note.startswith("audio offset +37.")
    assert library.signal.score(hits, duration) >= 0.75


def test_low_bitrate_reencode_with_volume_change_is_found(library: Library) -> None:
    rate = media.SAMPLE_RATE
    excerpt = 0.25 * library.short_song[:, 20 * rate : 30 * rate]
    path = demo_audio.write_audio(excerpt, library.root / "small.m4a", bitrate=24_000, mono=True)
    hits, duration = library.query(path)
    assert [h.asset_num for h in hits] == [2]
    assert hits[0].ref_start - hits[0].query_start == pytest.approx(20.0, abs=1.0)
    assert hits[0].distance < 0.15
    assert library.signal.score(hits, duration) >= 0.9


def test_two_reused_parts_of_a_reference_make_two_hits(library: Library) -> None:
    rate = media.SAMPLE_RATE
    song = library.short_song
    medley = np.concatenate([song[:, 10 * rate : 20 * rate], song[:, 40 * rate : 50 * rate]], 1)
    hits, duration = library.query(demo_audio.write_audio(medley, library.root / "medley.m4a"))
    assert {h.asset_num for h in hits} == {2}
    shifts = sorted(round(h.ref_start - h.query_start) for h in hits)
    assert shifts == [10, 30]
    assert library.signal.score(hits, duration) >= 0.9


def test_unrelated_audio_is_not_matched(
    library: Library, demo: DemoContent, voice: np.ndarray
) -> None:
    sig, index = library.signal, library.index
    other = demo_audio.write_audio(demo_audio.song(10, OTHER_SONG), library.root / "other.m4a")
    talk = demo_audio.write_audio(voice, library.root / "talk.m4a")
    for path in [other, talk, *(p.path for p in demo.unrelated)]:
        d = decode_audio(path)
        fp = sig.fingerprint(d, "query")
        assert len(fp["items"]) > 40, path.name
        hits = sig.search(index, fp, d.duration)
        assert hits == [], (path.name, hits)
        # Against every reference, at every offset, about half the bits differ.
        for num in index.asset_nums():
            ref, r_loud = index.items[num], index.loud[num]
            bers = [
                np.nanmean(offset_bit_errors(fp["items"], fp["loud"], ref, r_loud, o))
                for o in range(0, len(ref) - len(fp["items"]) // 2)
            ]
            assert 0.38 <= float(np.mean(bers)) <= 0.55, (path.name, num)


def test_silent_and_soundless_videos_give_no_hits(library: Library) -> None:
    sig = library.signal
    muted = media.write_clip(demo_audio.silent(library.backdrop), library.root / "muted.mp4")
    no_track = demo_audio.write_video_only(library.backdrop, library.root / "no-audio.mp4")
    for path in (muted, no_track):
        d = decode_audio(path)
        assert (d.audio is None) == (path == no_track)
        fp = sig.fingerprint(d, "query")
        assert {k: len(v) for k, v in fp.items()} == {"items": 0, "times": 0, "loud": 0}
        assert sig.search(library.index, fp, d.duration) == []
        assert sig.score([], d.duration) == 0.0


def test_bad_audio_is_an_input_error(library: Library) -> None:
    d = decode_audio(library.root / "backdrop.mp4")
    assert d.audio is not None
    sig = library.signal
    with pytest.raises(InputError, match="non-finite"):
        sig.fingerprint(replace(d, audio=np.full_like(d.audio, np.nan)), "query")
    with pytest.raises(InputError, match="mono"):
        sig.fingerprint(replace(d, audio=np.stack([d.audio, d.audio])), "query")
    with pytest.raises(InputError, match="sample rate"):
        sig.fingerprint(replace(d, sample_rate=None), "query")
    # Too short for one item: nothing to match, not an error.
    short = replace(d, audio=d.audio[: d.sample_rate or 0])
    assert len(sig.fingerprint(short, "query")["items"]) == 0


# Index ---------------------------------------------------------------------------------------


def _brute_force_knn(
    index: ChromaprintIndex, codes: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Hamming distances and ids of the k nearest stored blocks, with plain numpy."""
    stored, ids = [], []
    for num in sorted(index.asset_nums()):
        starts, c = sub_fingerprints(index.items[num], index.loud[num], REF_STRIDE)
        stored.append(c)
        ids.append((np.int64(num) << 24) + starts)
    all_codes, all_ids = np.concatenate(stored), np.concatenate(ids)
    dist = np.unpackbits(codes[:, None, :] ^ all_codes[None, :, :], axis=2).sum(axis=2)
    order = np.argsort(dist, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(dist, order, axis=1), all_ids[order]


def test_faiss_lookup_agrees_with_brute_force(library: Library, voice: np.ndarray) -> None:
    post = demo_audio.with_soundtrack(
        library.backdrop, library.short_song, volume=0.6, voice=voice, voice_volume=0.7, start=5
    )
    d = decode_audio(media.write_clip(post, library.root / "lookup.mp4"))
    fp = library.signal.fingerprint(d, "query")
    _, codes = sub_fingerprints(fp["items"], fp["loud"], 1)
    k = 16
    rows, ids, dist = library.index.knn(codes, k)
    want_dist, want_ids = _brute_force_knn(library.index, codes, k)
    assert np.array_equal(dist.reshape(-1, k), want_dist)
    # Ties may come back in another order; strictly nearer blocks must be the same blocks.
    for r in range(len(codes)):
        kth = want_dist[r, -1]
        got = set(ids.reshape(-1, k)[r][dist.reshape(-1, k)[r] < kth].tolist())
        assert got == set(want_ids[r][want_dist[r] < kth].tolist())
    assert rows.tolist() == np.repeat(np.arange(len(codes)), k).tolist()


def test_index_save_load_round_trip(library: Library, tmp_path: Path) -> None:
    sig, index = library.signal, library.index
    index.save(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [ChromaprintIndex.FILE]
    loaded = sig.load_index(tmp_path)
    assert len(loaded) == len(index) and loaded.asset_nums() == index.asset_nums()
    for num in index.asset_nums():
        assert np.array_equal(loaded.items[num], index.items[num])
        assert np.array_equal(loaded.loud[num], index.loud[num])
    rate = media.SAMPLE_RATE
    q = decode_audio(
        demo_audio.write_audio(library.short_song[:, 30 * rate : 40 * rate], tmp_path / "q.m4a")
    )
    fp = sig.fingerprint(q, "query")
    assert sig.search(loaded, fp, q.duration) == sig.search(index, fp, q.duration) != []
    # Incremental: removing one asset keeps the others, and the saved file follows.
    assert loaded.remove([2]) > 0
    assert sig.search(loaded, fp, q.duration) == []
    loaded.save(tmp_path / "again")
    assert sig.load_index(tmp_path / "again").asset_nums() == index.asset_nums() - {2}
    assert len(sig.load_index(tmp_path / "missing")) == 0


# Score ---------------------------------------------------------------------------------------


def _hit(seconds: float, ber: float, start: float = 0.0) -> SignalHit:
    return SignalHit(1, start, start + seconds, 5.0, 5.0 + seconds, ber, 60, 1.0, 1.0, 6.0, -1)


def test_score_grows_with_matched_seconds_and_cleanliness() -> None:
    sig = ChromaprintAudioSignal(MatcherSettings())
    assert sig.score([], 10.0) == 0.0
    assert sig.score([_hit(9.5, 0.05)], 10.0) >= 0.95
    assert sig.score([_hit(9.5, 0.35)], 10.0) >= 0.75  # speech as loud as the music
    assert sig.score([_hit(3.0, 0.35)], 10.0) < MatcherSettings().medium_threshold
    assert sig.score([_hit(5.0, 0.2)], 10) < sig.score([_hit(9.0, 0.2)], 10)
    assert sig.score([_hit(9.0, 0.3)], 10) < sig.score([_hit(9.0, 0.1)], 10)
    # Overlapping hits do not count the same seconds twice.
    twice = sig.score([_hit(4.0, 0.2), _hit(4.0, 0.2, start=1.0)], 10)
    assert twice == sig.score([_hit(5.0, 0.2)], 10)


# Demo audio helpers --------------------------------------------------------------------------


def test_speech_is_real_audio_and_bad_requests_say_why(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    said = demo_audio.speech("-v is not an option here", 16000)
    assert said.dtype == np.float32 and said.ndim == 1
    assert 0.5 < len(said) / 16000 < 5.0 and float(np.abs(said).max()) > 0.1
    with pytest.raises(InputError, match="no text"):
        demo_audio.speech("   ")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(InputError, match="espeak-ng is not installed"):
        demo_audio.speech("hello")


def test_with_soundtrack_replaces_the_sound_at_a_volume(library: Library) -> None:
    clip = library.backdrop
    rate = clip.sample_rate
    out = demo_audio.with_soundtrack(clip, library.long_song, volume=0.5, start=2.0)
    assert out.audio.shape == clip.audio.shape and out.frames is clip.frames
    want = 0.5 * library.long_song[:, 2 * rate : 2 * rate + clip.audio.shape[1]]
    assert np.allclose(out.audio, want, atol=1e-6)


# Contract ------------------------------------------------------------------------------------


class TestAudioContract(SignalContract):
    @pytest.fixture(scope="class")
    @classmethod
    def case(cls, demo: DemoContent) -> ContractCase:
        title = demo.titles[0]
        query = next(
            p.path
            for p in demo.copies
            if p.expected_title == title.name and p.transform == "letterbox+text"
        )
        return media_case(
            ChromaprintAudioSignal(MatcherSettings()),
            reference=title.references[0],
            other=demo.titles[2].references[0],
            query=query,
            unrelated=demo.unrelated[0].path,
        )
