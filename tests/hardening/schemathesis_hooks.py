"""Schemathesis hooks (loaded through SCHEMATHESIS_HOOKS by test_fuzz_api.py): teach the fuzzer
the STOW-RS body, a PS3.18 ``multipart/related; type="application/dicom"`` of DICOM parts, which
schemathesis cannot generate from a schema. Parts are a real (tiny) DICOM instance, a DICOM
preamble with garbage after it, or arbitrary bytes, in any mix and number; the boundary travels in
the Content-Type header as the standard requires."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import schemathesis
from hypothesis import strategies as st
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

STOW_MEDIA_TYPE = 'multipart/related; type="application/dicom"'
BOUNDARY = "dmask-fuzz-7f3a"


def _tiny_instance() -> bytes:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.77.1.4"  # VL Photographic Image
    ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID = (generate_uid() for _ in range(3))
    ds.PatientName, ds.PatientID = "Fuzz^Patient", "FUZZ-1"
    ds.Rows = ds.Columns = 16
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.full((16, 16, 3), 128, np.uint8).tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.preamble = b"\0" * 128
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


TINY = _tiny_instance()
parts = st.one_of(
    st.just(TINY),
    st.binary(max_size=512).map(lambda tail: b"\0" * 128 + b"DICM" + tail),
    st.binary(max_size=512).map(lambda cut: TINY[: len(TINY) // 2] + cut),
    st.binary(max_size=256),
)


def _multipart(payloads: list[bytes]) -> bytes:
    out = b"".join(
        b"--" + BOUNDARY.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + p + b"\r\n"
        for p in payloads
    )
    return out + b"--" + BOUNDARY.encode() + b"--\r\n"


schemathesis.openapi.media_type(STOW_MEDIA_TYPE, st.lists(parts, max_size=4).map(_multipart))


@schemathesis.hook
def before_call(ctx: schemathesis.HookContext, case: Any, kwargs: dict[str, Any]) -> None:
    if case.media_type == STOW_MEDIA_TYPE:
        headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "content-type"}
        case.headers = {**headers, "Content-Type": f'{STOW_MEDIA_TYPE}; boundary="{BOUNDARY}"'}
