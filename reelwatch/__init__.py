"""reelwatch: find social videos that reuse a studio's IP, with evidence."""

from __future__ import annotations

__version__ = "0.1.0"
