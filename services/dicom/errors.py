"""The one exception type of the DICOM path.

``reason`` is shown to hospital clients and written to logs, so it is built only from fixed text and
numbers we computed (sizes, counts, tags): never from values read out of the file (patient names, IDs,
UIDs, descriptions) and never from the file name.
"""

from __future__ import annotations


class DicomError(Exception):
    """A DICOM input that cannot be processed. ``reason`` never contains PHI."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
