"""mask_dicom on PHI-laden VL Photographic objects: table-driven de-identification, codes, IOD."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_helpers import PHI_STRINGS, VL_PHOTO, invert, load_photo, shared, write_vl_photo
from pydicom.dataset import Dataset

from services.dicom import (
    DeidKeys,
    DeidOptions,
    InMemoryUidMapper,
    check_iod,
    iter_rgb_frames,
    mask_dicom,
    read_dicom,
)
from services.dicom.validation import validate_iod_file

# Standard attributes the source carried outside this IOD's modules (Standard Extended SOP Class, PS3.4
# B.1.3): Frame of Reference UID (kept, remapped, to keep instances linked) and Ethnic Group (kept
# under Retain Patient Characteristics; highdicom's PS3.3 extract lists it in no module of this IOD).
EXTENDED_OK = {"General: (0020,0052) TagUnexpected", "General: (0010,2160) TagUnexpected"}
TABLE = Path(__file__).resolve().parents[2] / "services" / "dicom" / "ps3_15_basic_profile.csv"
KEYS = DeidKeys.derive(b"test-master-key-0123456789abcdef", "record-42")
COMBOS = [
    DeidOptions(),
    DeidOptions(retain_longitudinal="full"),
    DeidOptions(retain_longitudinal="shifted", retain_patient_characteristics=True),
    DeidOptions(retain_patient_characteristics=True, patient_name="empty"),
]


def _table_rows() -> list[dict[str, str]]:
    """Independent re-read of the profile table (plain csv, no library code)."""
    with TABLE.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _kept_by_option(row: dict[str, str], o: DeidOptions) -> str | None:
    if o.retain_longitudinal == "full" and row["rtn_long_full_dates"] == "K":
        return "K"
    if o.retain_longitudinal == "shifted" and row["rtn_long_modified_dates"] == "C":
        return "C"
    if o.retain_patient_characteristics and row["rtn_patient_characteristics"] == "K":
        return "K"
    return None


def _walk(ds: Dataset, path: tuple = ()) -> dict[tuple, object]:
    out: dict[tuple, object] = {}
    for elem in ds:
        key = (*path, int(elem.tag))
        if elem.VR == "SQ":
            for i, item in enumerate(elem.value or []):
                out.update(_walk(item, (*key, i)))
            out[key] = "SQ"
        else:
            out[key] = elem.value
    return out


@pytest.fixture(scope="module")
def vl_source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    rgb = load_photo("barack_obama/1.jpg")
    path = tmp_path_factory.mktemp("vl") / "in.dcm"
    write_vl_photo(path, rgb)
    return path, rgb


@pytest.mark.parametrize("options", COMBOS, ids=["basic", "full-dates", "shifted+chars", "chars+empty-name"])
def test_profile_table_drives_the_output(
    vl_source: tuple[Path, np.ndarray], tmp_path: Path, options: DeidOptions
) -> None:
    src_path, rgb = vl_source
    out_path = tmp_path / "out.dcm"
    result = mask_dicom(
        src_path, out_path, mask_frames=invert, options=options, keys=KEYS, uid_map=InMemoryUidMapper(b"k1")
    )
    src = pydicom.dcmread(src_path)
    out = pydicom.dcmread(out_path)
    src_elems, out_elems = _walk(src), _walk(out)
    checked = 0
    for row in _table_rows():
        tag_text = row["tag"].strip("()").replace(",", "")
        if not all(c in "0123456789ABCDEF" for c in tag_text):
            continue
        tag = int(tag_text, 16)
        for key, original in src_elems.items():
            if key[-1] != tag or original in (None, "", b""):
                continue
            kept = _kept_by_option(row, options)
            new = out_elems.get(key)
            if kept == "K":
                assert new == original, row["name"]
                continue
            if kept == "C" and src[tag].VR in ("DA", "DT"):
                assert new != original, row["name"]  # shifted
                continue
            if kept == "C":
                continue  # times are kept when dates are shifted
            checked += 1
            assert new is None or new in ("", b"") or new == "SQ" or new != original, (
                f"{row['name']} survived with its original value"
            )
    assert checked >= 30
    # Wildcard rows: private attributes, overlays (60xx), curves (50xx) are gone.
    assert not [e for e in out.iterall() if e.tag.is_private]
    assert not [e for e in out if 0x5000 <= e.tag.group <= 0x50FF or 0x6000 <= e.tag.group <= 0x60FF]
    raw = out_path.read_bytes().decode("latin-1")
    for phi in PHI_STRINGS:
        assert phi not in raw, phi
    # Fixed attributes.
    assert out.PatientID == KEYS.pseudonym() and out.PatientID != src.PatientID
    assert out.PatientName == (KEYS.pseudonym() if options.patient_name == "pseudonym" else "")
    assert out.PatientIdentityRemoved == "YES"
    assert out.RecognizableVisualFeatures == "NO"
    assert out.BurnedInAnnotation == "YES"  # masking is not claimed to remove burned-in text
    for kw in ("GPSLatitude", "GPSLongitude", "CameraOwnerName", "LensSerialNumber", "IconImageSequence"):
        assert kw not in out
    assert "SourceApplicationEntityTitle" not in out.file_meta
    expected = ["113100", "113102"]
    expected += {"none": [], "full": ["113106"], "shifted": ["113107"]}[options.retain_longitudinal]
    expected += ["113108"] if options.retain_patient_characteristics else []
    assert [i.CodeValue for i in out.DeidentificationMethodCodeSequence] == expected
    assert all(i.CodingSchemeDesignator == "DCM" for i in out.DeidentificationMethodCodeSequence)
    assert list(result.method_codes) == expected
    assert (
        out.LongitudinalTemporalInformationModified
        == {"none": "REMOVED", "full": "UNMODIFIED", "shifted": "MODIFIED"}[options.retain_longitudinal]
    )
    if options.retain_patient_characteristics:
        assert out.PatientSex == "F" and out.PatientAge == "044Y"
    else:
        assert out.get("PatientSex", "") == "" and "PatientAge" not in out
    # Same SOP class, pixel module for RGB 8-bit, pixels are exactly the transform of the input.
    assert out.SOPClassUID == VL_PHOTO and out.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert (out.PhotometricInterpretation, out.SamplesPerPixel, out.PlanarConfiguration) == ("RGB", 3, 0)
    assert (out.BitsAllocated, out.BitsStored, out.HighBit, out.PixelRepresentation) == (8, 8, 7, 0)
    (frame,) = list(iter_rgb_frames(read_dicom(out_path)))
    np.testing.assert_array_equal(frame, 255 - rgb)
    assert out.ImageType[0] == "DERIVED" and out.LossyImageCompression == "00"
    assert check_iod(out) == []
    assert [p for p in validate_iod_file(out_path) if p not in EXTENDED_OK] == []


def test_frames_synthetic_claims_clean_pixel_data(vl_source: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    out_path = tmp_path / "o.dcm"
    result = mask_dicom(
        vl_source[0],
        out_path,
        mask_frames=invert,
        options=DeidOptions(),
        keys=KEYS,
        uid_map=InMemoryUidMapper(b"k"),
        frames_synthetic=True,
    )
    out = pydicom.dcmread(out_path)
    assert out.BurnedInAnnotation == "NO"
    assert [i.CodeValue for i in out.DeidentificationMethodCodeSequence] == ["113100", "113101", "113102"]
    assert result.method_codes == ("113100", "113101", "113102")


def test_date_shift_is_keyed_per_record(vl_source: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    opts = DeidOptions(retain_longitudinal="shifted")
    dates = []
    for i, keys in enumerate([KEYS, KEYS, DeidKeys.derive(b"test-master-key-0123456789abcdef", "record-43")]):
        p = tmp_path / f"{i}.dcm"
        mask_dicom(
            vl_source[0], p, mask_frames=invert, options=opts, keys=keys, uid_map=InMemoryUidMapper(b"k")
        )
        ds = pydicom.dcmread(p)
        assert ds.StudyTime == "101010"
        dates.append((ds.StudyDate, ds.ContentDate))
    assert dates[0] == dates[1] and dates[0] != dates[2]
    assert dates[0][0] < "20240305"


def test_shared_face_and_lossy_input_bookkeeping(tmp_path: Path) -> None:
    out_path = tmp_path / "face.dcm"
    r = mask_dicom(
        shared("dicom", "ot_pal8_face.dcm"),
        out_path,
        mask_frames=invert,
        options=DeidOptions(),
        keys=KEYS,
        uid_map=InMemoryUidMapper(b"k"),
    )
    out = pydicom.dcmread(out_path)
    assert (r.rows, r.columns, r.frames) == (480, 640, 1)
    assert "RedPaletteColorLookupTableData" not in out and out.PhotometricInterpretation == "RGB"
    assert validate_iod_file(out_path) == []
    us = tmp_path / "us.dcm"
    r = mask_dicom(
        shared("dicom", "us_multiframe_ybr.dcm"),
        us,
        mask_frames=invert,
        options=DeidOptions(),
        keys=KEYS,
        uid_map=InMemoryUidMapper(b"k"),
    )
    out = pydicom.dcmread(us)
    assert r.frames == 30 and out.NumberOfFrames == 30 and r.lossy
    assert out.LossyImageCompression == "01" and "ISO_10918_1" in out.LossyImageCompressionMethod
    assert validate_iod_file(us) == []


def test_monochrome_iod_becomes_secondary_capture(tmp_path: Path) -> None:
    out_path = tmp_path / "ct.dcm"
    r = mask_dicom(
        shared("dicom", "ct_small.dcm"),
        out_path,
        mask_frames=invert,
        options=DeidOptions(),
        keys=KEYS,
        uid_map=InMemoryUidMapper(b"k"),
    )
    assert r.sop_class_changed and r.sop_class_uid == "1.2.840.10008.5.1.4.1.1.7"
    assert validate_iod_file(out_path) == []
    assert check_iod(pydicom.dcmread(out_path)) == []
