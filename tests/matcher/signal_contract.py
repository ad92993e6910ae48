"""The shared test base every signal passes.

Each signal's test module subclasses :class:`SignalContract` (``class TestCopyContract``)
and provides the ``case`` fixture: fingerprints of two reference items, a copy of the first,
and something unrelated, made the way that signal sees the world (frames, a soundtrack, a
face, a caption). ``test_signal_contract.py`` checks that every registered signal has one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from matcher.decode import decode
from matcher.signals.base import Fingerprint, Signal, TextInput


@dataclass
class ContractCase:
    signal: Signal
    reference: Fingerprint
    """Indexed as item 1; ``query`` copies it."""
    other: Fingerprint
    """Indexed as item 2; unrelated to ``query``."""
    query: Fingerprint
    unrelated: Fingerprint
    """A query that must find nothing strong."""
    query_duration: float
    strong: float = 0.9
    """Score the copy must reach."""


def decode_for(signal: Signal, path: Path, fps: float) -> object:
    """Decode ``path`` the way the fingerprint step does for this signal."""
    m = signal.settings
    return decode(
        path,
        fps,
        m.max_frames,
        max_side=m.decode_max_side,
        with_audio=signal.needs_audio,
        audio_rate=m.audio_rate,
    )


def media_case(
    signal: Signal, reference: Path, other: Path, query: Path, unrelated: Path, **kw: float
) -> ContractCase:
    """A case from four media files (references decoded at the reference rate)."""
    m = signal.settings

    def fp(path: Path, role: str, fps: float) -> Fingerprint:
        return signal.fingerprint(decode_for(signal, path, fps), role)  # type: ignore[arg-type]

    q = decode_for(signal, query, m.sample_fps)
    return ContractCase(
        signal=signal,
        reference=fp(reference, "reference", m.reference_sample_fps),
        other=fp(other, "reference", m.reference_sample_fps),
        query=signal.fingerprint(q, "query"),  # type: ignore[arg-type]
        unrelated=fp(unrelated, "query", m.sample_fps),
        query_duration=q.duration,  # type: ignore[attr-defined]
        **kw,
    )


def card(name: str, aliases: tuple[str, ...], hashtags: tuple[str, ...], text: str) -> TextInput:
    return TextInput(text=text, hashtags=hashtags, names=(name, *aliases))


class SignalContract:
    """Tests every signal passes; subclasses provide the ``case`` fixture."""

    @pytest.fixture
    def case(self) -> ContractCase:
        raise NotImplementedError

    def test_fingerprints_are_plain_arrays(self, case: ContractCase) -> None:
        # Fingerprints are cached as .npz: no pickled objects allowed.
        for fp in (case.reference, case.query):
            assert fp, "a fingerprint needs at least one array"
            for name, arr in fp.items():
                assert isinstance(arr, np.ndarray), name
                assert arr.dtype != object, name

    def test_a_copy_finds_its_reference_only(self, case: ContractCase, tmp_path: Path) -> None:
        s = case.signal
        index = s.new_index()
        assert index.add(1, case.reference) > 0
        assert index.add(2, case.other) > 0
        assert index.asset_nums() == {1, 2}
        index.save(tmp_path)
        index = s.load_index(tmp_path)
        hits = s.search(index, case.query, case.query_duration)
        assert {h.asset_num for h in hits} == {1}
        assert s.score(hits, case.query_duration) >= case.strong
        assert s.score([], case.query_duration) == 0.0
        for h in hits:
            assert 0.0 <= s.score([h], case.query_duration) <= 1.0
            assert h.query_start <= h.query_end

    def test_unrelated_media_finds_nothing_strong(self, case: ContractCase) -> None:
        s = case.signal
        index = s.new_index()
        index.add(1, case.reference)
        index.add(2, case.other)
        hits = s.search(index, case.unrelated, case.query_duration)
        assert s.score(hits, case.query_duration) < s.settings.medium_threshold

    def test_removing_an_item_removes_its_hits(self, case: ContractCase, tmp_path: Path) -> None:
        s = case.signal
        index = s.new_index()
        index.add(1, case.reference)
        index.add(2, case.other)
        n = len(index)
        assert index.remove([1]) > 0
        assert len(index) < n
        assert index.asset_nums() == {2}
        assert s.search(index, case.query, case.query_duration) == []
        index.save(tmp_path)
        assert s.load_index(tmp_path).asset_nums() == {2}

    def test_empty_index_finds_nothing(self, case: ContractCase, tmp_path: Path) -> None:
        s = case.signal
        assert s.search(s.load_index(tmp_path / "none"), case.query, case.query_duration) == []

    def test_config_key_names_the_signal_and_version(self, case: ContractCase) -> None:
        key = case.signal.config_key()
        assert key.startswith(f"{case.signal.name}-v{case.signal.version}")
