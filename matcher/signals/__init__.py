"""Signal plugins and their registry: one explicit tuple, checked for unique names.

To add a signal, see :mod:`matcher.signals.base`. Signal modules import heavy libraries
(dlib, OpenCV, onnxruntime, transformers) inside their methods, so importing the registry is
cheap.
"""

from __future__ import annotations

from matcher.signals.audio import LandmarkAudioSignal
from matcher.signals.base import Signal, SignalHit, SignalIndex, TextInput
from matcher.signals.copy import PdqCopySignal
from matcher.signals.descriptor import SscdDescriptorSignal
from matcher.signals.embedding import ClipEmbeddingSignal
from matcher.signals.face import DlibFaceSignal
from matcher.signals.melody import BasicPitchMelodySignal
from matcher.signals.ocr import RapidOcrSignal
from matcher.signals.text import MiniLmTextSignal
from reelwatch.registry import index_by_name, lookup

SIGNALS: tuple[type[Signal], ...] = (
    PdqCopySignal,
    SscdDescriptorSignal,
    DlibFaceSignal,
    LandmarkAudioSignal,
    MiniLmTextSignal,
    RapidOcrSignal,
    ClipEmbeddingSignal,
    BasicPitchMelodySignal,
)
_BY_NAME = index_by_name("signal", SIGNALS, lambda s: s.name)


def signal_class(name: str) -> type[Signal]:
    """The registered signal called ``name`` (``InputError`` if none)."""
    return lookup("signal", _BY_NAME, name)


__all__ = [
    "SIGNALS",
    "BasicPitchMelodySignal",
    "ClipEmbeddingSignal",
    "DlibFaceSignal",
    "LandmarkAudioSignal",
    "MiniLmTextSignal",
    "PdqCopySignal",
    "Signal",
    "SignalHit",
    "SignalIndex",
    "SscdDescriptorSignal",
    "TextInput",
    "signal_class",
]
