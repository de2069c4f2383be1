"""Spot checks of the profile table against the standard's text, and re-encoded transfer syntaxes."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_helpers import shared
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless

from services.dicom import iter_rgb_frames, profile_table, read_dicom

TABLE = Path(__file__).resolve().parents[2] / "services" / "dicom" / "ps3_15_basic_profile.csv"

# (tag, basic, rtn_patient_characteristics, rtn_long_full_dates) as printed in PS3.15 Table E.1-1.
KNOWN = [
    ("(0010,0010)", "Z", "", ""),  # Patient's Name
    ("(0010,0020)", "Z/D", "", ""),  # Patient ID (Z/D since 2023)
    ("(0010,0030)", "Z", "", ""),  # Patient's Birth Date
    ("(0010,0040)", "Z", "K", ""),  # Patient's Sex
    ("(0010,1010)", "X", "K", ""),  # Patient's Age
    ("(0008,0020)", "Z", "", "K"),  # Study Date
    ("(0008,0018)", "U", "", ""),  # SOP Instance UID
    ("(0020,000D)", "U", "", ""),  # Study Instance UID
    ("(0008,0080)", "X/Z/D", "", ""),  # Institution Name
    ("(0016,004D)", "X", "", ""),  # Camera Owner Name
    ("(0016,0051)", "X", "", ""),  # Lens Serial Number
    ("(0016,0072)", "X", "", ""),  # GPS Latitude
    ("(0088,0200)", "X", "", ""),  # Icon Image Sequence
    ("(0070,0001)", "D", "", ""),  # Graphic Annotation Sequence
    ("(60XX,3000)", "X", "", ""),  # Overlay Data
    ("(50XX,XXXX)", "X", "", ""),  # Curve Data
    ("(GGGG,EEEE)", "X", "", ""),  # Private attributes
]


def test_table_spot_checks() -> None:
    with TABLE.open(newline="") as fh:
        rows = {r["tag"]: r for r in csv.DictReader(fh)}
    assert len(rows) > 600
    for tag, basic, chars, full in KNOWN:
        r = rows[tag]
        assert (r["basic"], r["rtn_patient_characteristics"], r["rtn_long_full_dates"]) == (
            basic,
            chars,
            full,
        ), tag
    assert {r["basic"] for r in rows.values()} <= {"D", "Z", "X", "U", "Z/D", "X/Z", "X/D", "X/Z/D", "X/Z/U*"}
    assert all(r["source"] for r in rows.values())
    assert len(profile_table()) == len(rows) - 4  # wildcard rows are group rules


@pytest.mark.parametrize("ts", [RLELossless, JPEGLSLossless, JPEG2000Lossless], ids=["rle", "jpegls", "j2k"])
def test_lossless_transfer_syntaxes_decode_identically(ts: str, tmp_path: Path) -> None:
    native = read_dicom(shared("dicom", "ct_small.dcm"))
    expected = list(iter_rgb_frames(native))
    ds = pydicom.dcmread(shared("dicom", "ct_small.dcm"))
    ds.compress(ts)
    path = tmp_path / "c.dcm"
    ds.save_as(path)
    got = list(iter_rgb_frames(read_dicom(path)))
    assert len(got) == 1
    np.testing.assert_array_equal(got[0], expected[0])


def test_rle_multiframe_rgb(tmp_path: Path) -> None:
    ds = pydicom.dcmread(shared("dicom", "us_rgb_big_endian.dcm"))
    arr = ds.pixel_array
    ds2 = pydicom.Dataset()
    ds2.update(ds)
    ds2.file_meta = ds.file_meta
    ds2.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    ds2.NumberOfFrames = 3
    ds2.PixelData = np.stack([arr, 255 - arr, arr]).tobytes()
    ds2.compress(RLELossless)
    path = tmp_path / "rle.dcm"
    ds2.save_as(path)
    frames = list(iter_rgb_frames(read_dicom(path)))
    assert len(frames) == 3
    np.testing.assert_array_equal(frames[1], 255 - arr)
