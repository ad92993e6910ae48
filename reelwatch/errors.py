"""The error hierarchy every stage raises.

``InputError`` is the user's problem (a missing file, a file that is not a video, an unknown
hashtag, an empty catalog): the CLI prints its message on one line and exits non-zero, the
pipeline records it on the post and does not retry. ``TransientError`` is worth retrying (a
platform answering 429, a store or mail server that is briefly away). ``PermanentError`` is a
fault that retrying cannot fix; it is recorded on the post. Anything else is a bug and gets a
traceback.
"""

from __future__ import annotations


class ReelwatchError(Exception):
    """Base of every error reelwatch raises on purpose."""


class InputError(ReelwatchError):
    """Bad input from the user or a platform: report it in one line, never retry."""


class TransientError(ReelwatchError):
    """A fault that may pass: retry with backoff."""


class PermanentError(ReelwatchError):
    """A fault that retrying cannot fix: record it and move on."""
