"""Sniffing decides the route from content, never from the file name."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from media_builders import build_mp4
from PIL import Image

from models.media import SNIFF_BYTES, MediaKind, MediaType, sniff

PIL_TO_TYPE = {"JPEG": MediaType.JPEG, "PNG": MediaType.PNG, "WEBP": MediaType.WEBP}


def head(path: Path) -> bytes:
    with path.open("rb") as fh:
        return fh.read(SNIFF_BYTES)


def test_every_shared_photo_is_sniffed_as_what_it_really_is(shared: Path, manifest: dict[str, Any]) -> None:
    for entry in manifest["photos"] + manifest["group_photos"]:
        path = shared / entry["path"]
        with Image.open(path) as im:
            expected = PIL_TO_TYPE[str(im.format)]
        found = sniff(head(path))
        assert found is expected, entry["path"]
        assert found.kind is MediaKind.PHOTO


def test_webp_data_named_jpg_is_webp(shared: Path) -> None:
    found = sniff(head(shared / "faces" / "scarlett_johansson" / "3.jpg"))
    assert found is MediaType.WEBP
    assert found.mime == "image/webp"


def test_every_shared_video_is_mp4_video(shared: Path, manifest: dict[str, Any]) -> None:
    assert len(manifest["videos"]) == 10
    for entry in manifest["videos"]:
        found = sniff(head(shared / entry["path"]))
        assert found is MediaType.MP4, entry["path"]
        assert (found.kind, found.mime) == (MediaKind.VIDEO, "video/mp4")


def test_every_shared_dicom_is_dicom(shared: Path, manifest: dict[str, Any]) -> None:
    for entry in manifest["dicom"]:
        found = sniff(head(shared / entry["path"]))
        assert found is MediaType.DICOM, entry["path"]
        assert (found.kind, found.mime) == (MediaKind.DICOM, "application/dicom")


def test_dicom_without_preamble_is_dicom(shared: Path, manifest: dict[str, Any]) -> None:
    bare = [e for e in manifest["dicom"] if not e["has_preamble"]]
    assert bare, "the shared set has a DICOM file without preamble"
    for entry in bare:
        data = head(shared / entry["path"])
        assert data[128:132] != b"DICM"
        assert sniff(data) is MediaType.DICOM


def test_dicom_whose_preamble_is_a_tiff_header_is_dicom(shared: Path) -> None:
    data = head(shared / "dicom" / "ct_small.dcm")
    assert data[:4] == b"II*\x00"  # dual-personality DICOM/TIFF
    assert sniff(data) is MediaType.DICOM


def test_binary_starting_like_group_0008_is_not_dicom() -> None:
    rng = np.random.default_rng(1)
    data = b"\x08\x00" + rng.integers(0, 256, 2000, dtype=np.uint8).tobytes()
    assert sniff(data) is not MediaType.DICOM


def _zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a.txt", "hello")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", MediaType.EMPTY),
        (b"<!DOCTYPE html><html><body>hi</body></html>", MediaType.HTML),
        (b"\xef\xbb\xbf  <html><script>alert(1)</script>", MediaType.HTML),
        (_zip_bytes(), MediaType.ZIP),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", MediaType.PDF),
        (b"Patient: John Doe\nDOB: 1970-01-01\n", MediaType.TEXT),
        (b"GIF89a\x01\x00\x01\x00\x80\x00\x00", MediaType.GIF),
        (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>', MediaType.SVG),
        (b"\x00\x01\x02\x03\xfe\xff" * 50, MediaType.UNKNOWN),
    ],
    ids=["empty", "html", "html-bom", "zip", "pdf", "text", "gif", "svg", "binary"],
)
def test_non_media_is_unsupported(data: bytes, expected: MediaType) -> None:
    found = sniff(data)
    assert found is expected
    assert found.kind is MediaKind.UNSUPPORTED
    assert not found.supported


def test_only_the_first_chunk_is_needed(shared: Path, manifest: dict[str, Any]) -> None:
    paths = [manifest["photos"][0]["path"], manifest["videos"][0]["path"], manifest["dicom"][0]["path"]]
    for rel in paths:
        whole = (shared / rel).read_bytes()
        assert sniff(whole[:SNIFF_BYTES]) is sniff(whole)


def test_heic_is_photo(face_rgb: np.ndarray) -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.register_heif_opener()
    buf = io.BytesIO()
    Image.fromarray(face_rgb).save(buf, "HEIF")
    found = sniff(buf.getvalue())
    assert found in (MediaType.HEIC, MediaType.HEIF)
    assert found.kind is MediaKind.PHOTO


def test_tiff_is_photo(face_rgb: np.ndarray) -> None:
    buf = io.BytesIO()
    Image.fromarray(face_rgb).save(buf, "TIFF")
    assert sniff(buf.getvalue()) is MediaType.TIFF


@pytest.mark.parametrize(
    ("fmt", "codec", "expected"),
    [
        ("mov", "libx264", MediaType.MOV),
        ("avi", "mpeg4", MediaType.AVI),
        ("matroska", "libx264", MediaType.MKV),
        ("webm", "libvpx-vp9", MediaType.WEBM),
    ],
)
def test_other_video_containers_are_video(
    tmp_path: Path, face_rgb: np.ndarray, fmt: str, codec: str, expected: MediaType
) -> None:
    path = build_mp4(tmp_path / "clip.bin", [face_rgb] * 3, container_format=fmt, codec=codec)
    found = sniff(head(path))
    assert found is expected
    assert found.kind is MediaKind.VIDEO


def test_image_signature_in_front_of_html_still_sniffs_as_image() -> None:
    # Sniffing is a routing hint only; the decoder rejects this (see test_media_photo).
    assert sniff(b"\x89PNG\r\n\x1a\n<html><script>x</script></html>") is MediaType.PNG
