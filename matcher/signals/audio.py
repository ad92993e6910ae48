"""The audio signal (being written)."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

from matcher.decode import Decoded
from matcher.signals.base import Fingerprint, Role, Signal, SignalIndex


class ChromaprintAudioSignal(Signal):
    def unavailable(self) -> str | None:
        return "not built yet"

    def fingerprint(self, decoded: Decoded, role: Role) -> Fingerprint:
        raise NotImplementedError

    def new_index(self) -> NoReturn:
        raise NotImplementedError

    def load_index(self, directory: Path) -> SignalIndex:
        raise NotImplementedError

    def search(self, index: SignalIndex, fingerprint: Fingerprint, query_duration: float) -> NoReturn:
        raise NotImplementedError

    def score(self, hits: object, query_duration: float) -> float:
        raise NotImplementedError
