"""Photo decoding (upright, RGB, validated, bounded) and pixels-only encoding."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from media_builders import (
    jpeg_declaring,
    jpeg_marker_segments,
    jpeg_with_everything,
    marker_image,
    png_bomb,
    png_chunks,
    srgb_icc_bytes,
    swapped_primaries_icc,
)
from PIL import Image, ImageFile, PngImagePlugin

from models.media import MediaError, encode_photo, output_format_for, read_photo, sniff, write_photo
from models.media.sniff import MediaType

RED = np.array([255, 0, 0])


def is_red(px: np.ndarray) -> bool:
    return bool(np.abs(px.astype(int) - RED).max() < 40)


def png_bytes(im: Image.Image, **params: Any) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG", **params)
    return buf.getvalue()


# ------------------------------------------------------------------------------------ reading


def test_all_shared_photos_decode_to_rgb_at_manifest_size(shared: Path, manifest: dict[str, Any]) -> None:
    for entry in manifest["photos"] + manifest["group_photos"]:
        rgb = read_photo(shared / entry["path"])
        assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
        assert rgb.shape[:2] == (entry["height"], entry["width"]), entry["path"]


def test_webp_named_jpg_decodes(shared: Path) -> None:
    rgb = read_photo(shared / "faces" / "scarlett_johansson" / "3.jpg")
    assert rgb.shape[2] == 3


def test_exif_orientation_is_applied() -> None:
    stored = marker_image(120, 80)  # red block top-left of a landscape picture
    data = jpeg_with_everything(stored, orientation=6)  # 6: display rotated 90 degrees clockwise
    rgb = read_photo(data)
    assert rgb.shape == (120, 80, 3)
    assert is_red(rgb[5, -5])  # top-left went to top-right
    assert not is_red(rgb[5, 5])


def test_embedded_colour_profile_is_converted_to_srgb() -> None:
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 255
    rgb = read_photo(png_bytes(Image.fromarray(red), icc_profile=swapped_primaries_icc()))
    r, g, b = (int(v) for v in rgb[4, 4])
    assert g > 200 and r < 80 and b < 80  # the profile says this pixel is green


def test_jpeg_with_secondary_images_decodes_the_primary_one() -> None:
    primary = Image.fromarray(marker_image(120, 80))
    gain_map = Image.fromarray(np.full((20, 30, 3), 200, np.uint8))
    buf = io.BytesIO()
    primary.save(buf, "MPO", save_all=True, append_images=[gain_map])  # as phones write HDR JPEGs
    rgb = read_photo(buf.getvalue())
    assert rgb.shape == (80, 120, 3) and is_red(rgb[5, 5])


def test_cmyk_jpeg_becomes_rgb() -> None:
    buf = io.BytesIO()
    Image.fromarray(marker_image()).convert("CMYK").save(buf, "JPEG", quality=95)
    rgb = read_photo(buf.getvalue())
    assert rgb.shape == (80, 120, 3) and is_red(rgb[5, 5])


def test_bytes_and_path_give_the_same_pixels(tmp_path: Path) -> None:
    data = jpeg_with_everything(marker_image())
    (tmp_path / "p.jpg").write_bytes(data)
    assert np.array_equal(read_photo(data), read_photo(tmp_path / "p.jpg"))


def test_rgba_is_flattened_on_white_not_on_hidden_pixels() -> None:
    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[..., 0] = 255  # red everywhere...
    rgba[:, :5, 3] = 255  # ...but only the left half is visible
    rgb = read_photo(png_bytes(Image.fromarray(rgba)))
    assert is_red(rgb[0, 0])
    assert (rgb[:, 5:] == 255).all()  # the invisible red is not revealed


def test_palette_png_with_transparency_becomes_rgb() -> None:
    im = Image.fromarray(marker_image()).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    im.info["transparency"] = 0
    rgb = read_photo(png_bytes(im, transparency=0))
    assert rgb.shape == (80, 120, 3)


def test_16bit_png_is_scaled_not_saturated() -> None:
    gray16 = np.full((8, 8), 0x8000, np.uint16)
    rgb = read_photo(png_bytes(Image.fromarray(gray16)))
    assert rgb.shape == (8, 8, 3)
    assert 120 <= int(rgb.mean()) <= 136


def test_grayscale_becomes_three_equal_channels() -> None:
    gray = np.tile(np.arange(64, dtype=np.uint8), (16, 1))
    rgb = read_photo(png_bytes(Image.fromarray(gray)))
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
    assert np.array_equal(rgb[..., 0], gray)


def test_avif_decodes(face_rgb: np.ndarray) -> None:
    buf = io.BytesIO()
    Image.fromarray(face_rgb).save(buf, "AVIF", quality=90)
    assert sniff(buf.getvalue()) is MediaType.AVIF
    rgb = read_photo(buf.getvalue())
    assert np.abs(rgb.astype(int) - face_rgb).mean() < 8


def test_heic_decodes(face_rgb: np.ndarray) -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.register_heif_opener()
    buf = io.BytesIO()
    Image.fromarray(face_rgb).save(buf, "HEIF", quality=90)
    rgb = read_photo(buf.getvalue())
    assert rgb.shape == face_rgb.shape
    assert np.abs(rgb.astype(int) - face_rgb).mean() < 8


def test_tiff_is_accepted(face_rgb: np.ndarray) -> None:
    buf = io.BytesIO()
    Image.fromarray(face_rgb).save(buf, "TIFF")
    assert np.array_equal(read_photo(buf.getvalue()), face_rgb)


def test_multi_page_tiff_is_rejected(face_rgb: np.ndarray) -> None:
    buf = io.BytesIO()
    first = Image.fromarray(face_rgb)
    first.save(buf, "TIFF", save_all=True, append_images=[first])
    with pytest.raises(MediaError, match="multi-page"):
        read_photo(buf.getvalue())


def test_animated_webp_is_rejected(face_rgb: np.ndarray) -> None:
    buf = io.BytesIO()
    first = Image.fromarray(face_rgb)
    first.save(buf, "WEBP", save_all=True, append_images=[Image.fromarray(255 - face_rgb)])
    with pytest.raises(MediaError, match="animated"):
        read_photo(buf.getvalue())


@pytest.mark.parametrize(
    "data",
    [b"GIF89a\x01\x00\x01\x00\x80\x00\x00", b"<html></html>", b"", b"%PDF-1.4\n"],
    ids=["gif", "html", "empty", "pdf"],
)
def test_non_photos_are_rejected(data: bytes) -> None:
    with pytest.raises(MediaError, match="not a supported photo format"):
        read_photo(data)


# ------------------------------------------------------------------------- bombs and bad input


def test_png_bomb_is_rejected_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_decoding(self: ImageFile.ImageFile) -> None:
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    bomb = png_bomb(100_000, 100_000)
    assert len(bomb) < 200
    with pytest.raises(MediaError, match="pixel limit"):
        read_photo(bomb)


def test_jpeg_header_claiming_huge_dimensions_is_rejected_before_decoding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # JPEG SOF stores 16-bit dimensions, so 65535 x 65535 (4.3 gigapixels) is the most it can claim.
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("pixels were decoded"))
    with pytest.raises(MediaError, match="pixel limit"):
        read_photo(jpeg_declaring(65535, 65535))


def test_image_over_max_pixels_but_under_pillow_limit_is_rejected() -> None:
    with pytest.raises(MediaError, match="pixel limit"):
        read_photo(png_bomb(5000, 5000), max_pixels=10_000_000)


def test_truncated_jpeg_is_rejected(face_rgb: np.ndarray) -> None:
    data = encode_photo(face_rgb, "JPEG")
    with pytest.raises(MediaError, match="corrupt or truncated"):
        read_photo(data[: len(data) // 2])


def test_truncated_png_is_rejected(face_rgb: np.ndarray) -> None:
    data = encode_photo(face_rgb, "PNG")
    with pytest.raises(MediaError, match="corrupt or truncated"):
        read_photo(data[: len(data) // 2])


def test_corrupted_photos_either_decode_or_raise_media_error(face_rgb: np.ndarray) -> None:
    seeds = [encode_photo(face_rgb, fmt) for fmt in ("JPEG", "PNG", "WEBP")]
    seeds.append(jpeg_with_everything(face_rgb))
    rng = np.random.default_rng(3)
    refused = 0
    for i in range(300):
        data = bytearray(seeds[i % len(seeds)])
        if i % 2:
            data = data[: int(rng.integers(1, len(data)))]
        else:
            for pos in rng.integers(0, len(data), size=int(rng.integers(1, 10))):
                data[int(pos)] = int(rng.integers(0, 256))
        try:
            assert read_photo(bytes(data)).dtype == np.uint8
        except MediaError:
            refused += 1
    assert refused > 100


def test_png_signature_in_front_of_html_is_rejected() -> None:
    polyglot = b"\x89PNG\r\n\x1a\n<html><body><script>alert(1)</script></body></html>" + b" " * 100
    with pytest.raises(MediaError):
        read_photo(polyglot)


def test_jpeg_signature_in_front_of_zip_is_rejected() -> None:
    polyglot = b"\xff\xd8\xff\xe0" + b"PK\x03\x04" + b"\x00" * 200
    with pytest.raises(MediaError):
        read_photo(polyglot)


def test_zip_appended_to_a_valid_jpeg_does_not_reach_the_output(face_rgb: np.ndarray) -> None:
    data = encode_photo(face_rgb, "JPEG") + b"PK\x03\x04SECRET-ZIP-PAYLOAD" + b"\x00" * 64
    out = encode_photo(read_photo(data), "JPEG")
    assert b"PK\x03\x04" not in out and b"SECRET-ZIP-PAYLOAD" not in out


def test_error_messages_never_contain_the_file_name(tmp_path: Path) -> None:
    folder = tmp_path / "MRN-12345"
    folder.mkdir()
    cases = {"Doe_John_1970.jpg": b"<html>phi</html>", "Roe_Jane.png": png_bomb(100_000, 100_000)}
    for name, data in cases.items():
        (folder / name).write_bytes(data)
        with pytest.raises(MediaError) as err:
            read_photo(folder / name)
        assert name not in str(err.value) and "MRN-12345" not in str(err.value)
    with pytest.raises(MediaError) as err:
        read_photo(folder / "Missing_Patient.jpg")
    assert "Missing_Patient" not in str(err.value) and "MRN-12345" not in str(err.value)


# ------------------------------------------------------------------------------------ writing


def test_jpeg_output_carries_no_exif_gps_icc_xmp_or_comment() -> None:
    data = jpeg_with_everything(marker_image(), orientation=6)
    for secret in (b"SECRETMAKE", b"PATIENT-COMMENT-SECRET", b"DR-XMP-SECRET", b"ICC_PROFILE"):
        assert secret in data  # the input really carries it
    out = encode_photo(read_photo(data), "JPEG")
    for secret in (b"Exif", b"SECRETMAKE", b"SECRETMODEL", b"PATIENT", b"DR-XMP-SECRET", b"ICC_PROFILE"):
        assert secret not in out
    assert b"http://ns.adobe.com/xap" not in out
    assert 0xFE not in jpeg_marker_segments(out)  # no COM segment
    assert set(jpeg_marker_segments(out)) <= {0xE0, 0xDB, 0xC0, 0xC4, 0xDA}  # APP0/JFIF + codec tables
    with Image.open(io.BytesIO(out)) as im:
        assert not im.getexif()
        for key in ("exif", "icc_profile", "comment", "xmp", "XML:com.adobe.xmp"):
            assert key not in im.info


def test_written_jpeg_keeps_the_upright_orientation() -> None:
    rgb = read_photo(jpeg_with_everything(marker_image(120, 80), orientation=6))
    back = read_photo(encode_photo(rgb, "JPEG"))
    assert back.shape == (120, 80, 3)
    assert is_red(back[5, -5])


def test_png_output_has_no_text_exif_or_icc_chunks() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "PATIENT-TEXT")
    info.add_itxt("Comment", "PATIENT-ITXT", lang="en", tkey="Kommentar")
    info.add_text("Description", "PATIENT-ZTXT" * 20, zip=True)
    exif = Image.Exif()
    exif[0x010F] = "PATIENT-EXIF"
    data = png_bytes(Image.fromarray(marker_image()), pnginfo=info, icc_profile=srgb_icc_bytes(), exif=exif)
    assert {b"tEXt", b"iTXt", b"zTXt", b"iCCP", b"eXIf"} <= set(png_chunks(data))
    out = encode_photo(read_photo(data), "PNG")
    assert set(png_chunks(out)) == {b"IHDR", b"IDAT", b"IEND"}
    assert b"PATIENT" not in out


def test_png_round_trip_is_lossless(face_rgb: np.ndarray) -> None:
    assert np.array_equal(read_photo(encode_photo(face_rgb, "PNG")), face_rgb)


def test_webp_output_has_no_metadata_chunks(face_rgb: np.ndarray) -> None:
    out = encode_photo(face_rgb, "WEBP")
    assert sniff(out) is MediaType.WEBP
    for chunk in (b"EXIF", b"XMP ", b"ICCP"):
        assert chunk not in out


def test_write_photo_writes_a_file_atomically(tmp_path: Path, face_rgb: np.ndarray) -> None:
    target = tmp_path / "out.jpg"
    write_photo(face_rgb, target, "jpg")
    assert sniff(target.read_bytes()) is MediaType.JPEG
    assert [p.name for p in tmp_path.iterdir()] == ["out.jpg"]  # no temp file left


def test_write_photo_rejects_non_rgb_arrays(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_photo(np.zeros((4, 4), np.uint8), tmp_path / "x.png", "PNG")
    with pytest.raises(ValueError):
        write_photo(np.zeros((4, 4, 3), np.float32), tmp_path / "x.png", "PNG")
    with pytest.raises(ValueError):
        write_photo(np.zeros((4, 4, 3), np.uint8), tmp_path / "x.gif", "GIF")


def test_output_format_follows_the_input_where_possible() -> None:
    assert output_format_for(MediaType.JPEG) == "JPEG"
    assert output_format_for(MediaType.PNG) == "PNG"
    assert output_format_for(MediaType.WEBP) == "WEBP"
    assert output_format_for(MediaType.HEIC) == "JPEG"
    assert output_format_for(MediaType.TIFF) == "PNG"
