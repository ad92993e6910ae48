"""Every registered signal runs these: add a signal to SIGNALS and it is tested here."""

from __future__ import annotations

from pathlib import Path

import pytest

from matcher.decode import decode
from matcher.signals import SIGNALS, Signal, signal_class
from matcher.signals.base import _name_from_class
from reelwatch.demo.content import DemoContent
from reelwatch.settings import MatcherSettings


def test_registry_names_are_unique_and_derived_from_class_names() -> None:
    names = [s.name for s in SIGNALS]
    assert len(names) == len(set(names))
    assert signal_class("copy").__name__ == "PdqCopySignal"
    assert _name_from_class("ChromaprintAudioSignal") == "audio"
    assert _name_from_class("FaceSignal") == "face"


@pytest.mark.parametrize("cls", SIGNALS, ids=lambda c: c.name)
def test_a_reference_finds_itself(cls: type[Signal], demo: DemoContent, tmp_path: Path) -> None:
    signal = cls(MatcherSettings())
    ref = demo.titles[2].references[0]
    other = demo.titles[1].references[0]
    index = signal.new_index()
    index.add(1, signal.fingerprint(decode(ref, 4.0, 600), "reference"))
    index.add(2, signal.fingerprint(decode(other, 4.0, 600), "reference"))
    index.save(tmp_path)
    index = signal.load_index(tmp_path)
    q = decode(ref, 2.0, 600)
    hits = signal.search(index, signal.fingerprint(q, "query"), q.duration)
    assert {h.asset_num for h in hits} == {1}
    assert signal.score(hits, q.duration) >= 0.9
    assert signal.score([], q.duration) == 0.0
    for h in hits:
        assert h.ref_start == pytest.approx(h.query_start, abs=1.0)
    assert len(index) > 0
    assert index.remove([1]) > 0
    assert signal.search(index, signal.fingerprint(q, "query"), q.duration) == []
