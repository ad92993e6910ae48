"""Registry checks; the contract itself is ``signal_contract.SignalContract``, which each
signal's test module subclasses."""

from __future__ import annotations

import importlib
from pathlib import Path

from matcher.signals import SIGNALS, signal_class
from matcher.signals.base import _name_from_class
from tests.matcher.signal_contract import SignalContract


def test_signal_names_derive_from_class_names() -> None:
    assert signal_class("copy").__name__ == "PdqCopySignal"
    assert signal_class("descriptor").__name__ == "SscdDescriptorSignal"
    assert signal_class("ocr").__name__ == "RapidOcrSignal"
    assert _name_from_class("LandmarkAudioSignal") == "audio"
    assert _name_from_class("DlibFaceSignal") == "face"
    assert _name_from_class("MiniLmTextSignal") == "text"
    assert _name_from_class("BasicPitchMelodySignal") == "melody"


def test_every_registered_signal_runs_the_contract() -> None:
    for path in sorted(Path(__file__).parent.glob("test_*.py")):
        importlib.import_module(f"tests.matcher.{path.stem}")
    covered = set()
    for sub in SignalContract.__subclasses__():
        case_fixture = sub.__dict__.get("case")
        assert case_fixture is not None, f"{sub.__name__} must provide the case fixture"
        covered.add(sub.__module__.rsplit(".", 1)[-1].removeprefix("test_").removesuffix("_signal"))
    assert {s.name for s in SIGNALS} <= covered
