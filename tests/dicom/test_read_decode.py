"""Reading and decoding: every shared file, hostile inputs, PHI-free error messages."""

from __future__ import annotations

import struct
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from dicom_helpers import PHI_STRINGS, shared, write_vl_photo

from services.dicom import DicomError, ReadLimits, inspect, iter_rgb_frames, pixel_info, read_dicom


def _dicom_entries(manifest: dict) -> list[dict]:
    return [d for d in manifest["dicom"]]


def test_every_shared_file_decodes_to_manifest_geometry(manifest: dict) -> None:
    seen = 0
    for entry in _dicom_entries(manifest):
        path = shared(entry["path"])
        ds = read_dicom(path)
        if entry["frames"] == 0:
            with pytest.raises(DicomError, match="no image"):
                pixel_info(ds)
            continue
        frames = list(iter_rgb_frames(ds))
        assert len(frames) == entry["frames"], entry["path"]
        for f in frames:
            assert f.shape == (entry["rows"], entry["columns"], 3), entry["path"]
            assert f.dtype == np.uint8
        assert max(int(f.max()) for f in frames) > 0, entry["path"]  # not blank
        seen += 1
    assert seen == 8


def test_palette_face_without_preamble_is_rgb_640x480() -> None:
    path = shared("dicom", "ot_pal8_face.dcm")
    layout = inspect(path)
    assert not layout.has_preamble and not layout.has_file_meta
    assert layout.inferred and layout.transfer_syntax_uid == "1.2.840.10008.1.2"
    (frame,) = list(iter_rgb_frames(read_dicom(path)))
    assert frame.shape == (480, 640, 3)
    # Palette expanded to real colour (the photo is not grey).
    assert np.abs(frame[..., 0].astype(int) - frame[..., 2].astype(int)).mean() > 5


def test_multiframe_ybr_jpeg_is_converted_to_rgb() -> None:
    ds = read_dicom(shared("dicom", "us_multiframe_ybr.dcm"))
    info = pixel_info(ds)
    assert info.number_of_frames == 30 and info.source_lossy and "ISO_10918_1" in info.lossy_methods
    assert info.fps and abs(info.fps - 30) < 0.1


def test_rtplan_without_pixels_is_a_clear_error() -> None:
    ds = read_dicom(shared("dicom", "rtplan_no_pixels.dcm"))
    with pytest.raises(DicomError, match="no image"):
        pixel_info(ds)


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"hello",
        b"hello world, this is a PNG pretending" * 10,
        bytes(300),
        b"\x89PNG\r\n\x1a\n" + bytes(200),
    ],
)
def test_garbage_is_rejected(blob: bytes) -> None:
    with pytest.raises(DicomError):
        read_dicom(blob)


def _element(tag: int, vr: bytes, value: bytes) -> bytes:
    g, e = tag >> 16, tag & 0xFFFF
    if vr in (b"OB", b"OW", b"SQ", b"UN", b"UT"):
        return struct.pack("<HH2sHI", g, e, vr, 0, len(value)) + value
    return struct.pack("<HH2sH", g, e, vr, len(value)) + value


def _part10(body: bytes) -> bytes:
    ts = b"1.2.840.10008.1.2.1\x00"
    meta = _element(0x00020010, b"UI", ts)
    meta = _element(0x00020000, b"UL", struct.pack("<I", len(meta))) + meta
    return b"\x00" * 128 + b"DICM" + meta + body


def test_4gb_length_field_fails_fast_without_allocating(tmp_path: Path) -> None:
    body = _element(0x00080016, b"UI", b"1.2.840.10008.5.1.4.1.1.7\x00")
    # Pixel Data claiming 0xFFFFFFF0 bytes (~4 GB) with 16 bytes actually present.
    body += struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, 0xFFFFFFF0) + bytes(16)
    path = tmp_path / "huge.dcm"
    path.write_bytes(_part10(body))
    tracemalloc.start()
    t0 = time.perf_counter()
    with pytest.raises(DicomError, match="declares 4294967280 bytes"):
        read_dicom(path)
    elapsed = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert elapsed < 0.5
    assert peak < 5 * 1024**2


def test_4gb_length_inside_a_sequence_item_fails_fast() -> None:
    item = struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFF00) + bytes(8)
    body = _element(0x00080016, b"UI", b"1.2.840.10008.5.1.4.1.1.7\x00")
    body += struct.pack("<HH2sHI", 0x0008, 0x1140, b"SQ", 0, 0xFFFFFFFF) + item
    with pytest.raises(DicomError, match="sequence item declares"):
        read_dicom(_part10(body))


def test_deflate_bomb_is_bounded(tmp_path: Path) -> None:
    import zlib

    inner = _element(0x00080016, b"UI", b"1.2.840.10008.5.1.4.1.1.7\x00")
    inner += _element(0x00091010, b"OB", bytes(4_000_000))
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    deflated = comp.compress(inner) + comp.flush()
    ts = b"1.2.840.10008.1.2.1.99"
    meta = _element(0x00020010, b"UI", ts)
    meta = _element(0x00020000, b"UL", struct.pack("<I", len(meta))) + meta
    blob = b"\x00" * 128 + b"DICM" + meta + deflated
    assert len(blob) < 20_000
    with pytest.raises(DicomError, match="inflates beyond"):
        read_dicom(blob, ReadLimits(max_inflated_bytes=1_000_000))


def test_error_messages_carry_no_phi(tmp_path: Path) -> None:
    rgb = np.zeros((8, 8, 3), np.uint8)
    path = tmp_path / "Doe^Jane_MRN-0012345.dcm"
    write_vl_photo(path, rgb)
    data = bytearray(path.read_bytes())
    cut = bytes(data[: len(data) - 40])  # truncated pixel data
    truncated = tmp_path / "Doe^Jane_MRN-0012345_cut.dcm"
    truncated.write_bytes(cut)
    with pytest.raises(DicomError) as err:
        read_dicom(truncated)
    message = str(err.value)
    for phi in [*PHI_STRINGS, truncated.name, str(tmp_path)]:
        assert phi not in message
