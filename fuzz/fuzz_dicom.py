"""Coverage-guided fuzz target (atheris/libFuzzer) for the DICOM reader: ``services.dicom.inspect_bytes``
and ``read_dicom``.

Untrusted DICOM from hospital systems goes through these two before anything else. The contract:
any input either yields a data set with a SOP Class UID or raises ``DicomError`` (whose reason is
shown to the client); no other exception, no hang, no unbounded allocation (``-rss_limit_mb``).
Run it bounded, as CI does (tests/hardening/test_fuzz_targets.py):

    .venv/bin/python fuzz/fuzz_dicom.py -max_total_time=30 -rss_limit_mb=2048 SEED_DIR
"""

from __future__ import annotations

import contextlib
import sys

import atheris

with atheris.instrument_imports(include=["services.dicom", "pydicom"]):
    from services.dicom import DicomError, ReadLimits, inspect_bytes, read_dicom

#: Small limits keep single inputs fast; the checks are the same at any size.
LIMITS = ReadLimits(max_file_bytes=8 << 20, max_inflated_bytes=32 << 20, max_elements=200_000)


def test_one_input(data: bytes) -> None:
    with contextlib.suppress(DicomError):
        inspect_bytes(data, LIMITS)
    try:
        ds = read_dicom(data, LIMITS)
    except DicomError as exc:
        if not isinstance(exc.reason, str) or not exc.reason:
            raise AssertionError("DicomError without a reason") from exc
        return
    if "SOPClassUID" not in ds:
        raise AssertionError("read_dicom returned a data set without a SOP Class UID")


def main(argv: list[str]) -> None:
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
