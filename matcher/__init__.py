"""matcher: decode media once, fingerprint it, and score it against the IP catalog.

No network I/O and no storage of matches here: workers/ feeds files in, triage/ lands the
:class:`~matcher.engine.MatchReport` that comes out.
"""
