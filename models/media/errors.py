"""The one exception type for bad media input.

Messages may be shown to an HTTP client, so they describe the problem only: never a file name,
a path or anything read from the file (PHI rule). Programming errors (wrong array shape, bad
arguments) raise ordinary ``ValueError``/``TypeError`` instead.
"""

from __future__ import annotations


class MediaError(Exception):
    """Input media that cannot be accepted: unsupported, corrupt, truncated or over a limit."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason
