"""Photo decoding and clean encoding.

Reading: the content is sniffed (never the extension), only the decoder for that format is
allowed, the header's dimensions are checked against ``max_pixels`` before any pixel is decoded,
the whole image is then decoded (so truncated files and polyglots fail here), the EXIF orientation
is applied (faces upright for the detector), colours are converted to sRGB and transparency is
flattened onto white (what a viewer shows is what we mask: pixels hidden under alpha=0 are not
kept).

Writing: a fresh ``Image.fromarray`` is saved with no ``info`` and no extra arguments, so no EXIF,
GPS, ICC, XMP, JPEG comment or PNG text chunk can reach the output.
"""

from __future__ import annotations

import io
import os
import tempfile
import threading
from pathlib import Path
from struct import error as struct_error  # some Pillow plugins leak it on garbage headers
from typing import IO, Final

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from .errors import MediaError
from .sniff import MediaKind, MediaType, sniff

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "PHOTO_OUTPUT_FORMATS",
    "output_format_for",
    "read_photo",
    "write_photo",
    "encode_photo",
]

#: Default decoded-size cap (50 MP: above any phone/DSLR photo, far below a decompression bomb).
DEFAULT_MAX_PIXELS: Final = 50_000_000

#: Formats :func:`write_photo` produces.
PHOTO_OUTPUT_FORMATS: Final = ("JPEG", "PNG", "WEBP")

# Pillow plugin allowed to open each sniffed type; nothing else is tried.
_PIL_FORMATS: Final = {
    MediaType.JPEG: "JPEG",
    MediaType.PNG: "PNG",
    MediaType.WEBP: "WEBP",
    MediaType.TIFF: "TIFF",
    MediaType.HEIC: "HEIF",
    MediaType.HEIF: "HEIF",
    MediaType.AVIF: "AVIF",
}

_ALPHA_MODES: Final = {"RGBA", "RGBa", "LA", "La", "PA"}
_HIGH_DEPTH_MODES: Final = {"I", "I;16", "I;16L", "I;16B", "I;16N", "F"}

_heif_lock = threading.Lock()
_heif_state: dict[str, bool] = {}


def _heif_available() -> bool:
    """Register pillow-heif once; HEIC/HEIF is refused if it is not installed."""
    with _heif_lock:
        if "ok" not in _heif_state:
            try:
                import pillow_heif

                pillow_heif.register_heif_opener()
                _heif_state["ok"] = True
            except ImportError:
                _heif_state["ok"] = False
        return _heif_state["ok"]


def output_format_for(media_type: MediaType) -> str:
    """Output format for a masked photo: same as the input where we can write it, else JPEG/PNG."""
    if media_type is MediaType.PNG or media_type is MediaType.TIFF:
        return "PNG"  # lossless in, lossless out
    if media_type is MediaType.WEBP:
        return "WEBP"
    return "JPEG"


def read_photo(source: str | os.PathLike[str] | bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode a photo to an upright ``(H, W, 3)`` RGB ``uint8`` array.

    Raises :class:`MediaError` for anything that is not a fully decodable single-image JPEG, PNG,
    WebP, HEIC/HEIF, AVIF or TIFF within ``max_pixels``.
    """
    data = _read_source(source)
    media_type = sniff(data)
    if media_type.kind is not MediaKind.PHOTO:
        raise MediaError(f"not a supported photo format ({media_type.mime})")
    if media_type in (MediaType.HEIC, MediaType.HEIF) and not _heif_available():
        raise MediaError("HEIC/HEIF photos are not supported on this server")
    try:
        with Image.open(io.BytesIO(data), formats=[_PIL_FORMATS[media_type]]) as im:
            _check_header(im, max_pixels)
            im.load()
            rgb = _to_upright_rgb(im)
    except MediaError:
        raise
    except Image.DecompressionBombError as exc:
        raise MediaError("image dimensions exceed the pixel limit") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, struct_error) as exc:
        raise MediaError(f"corrupt or truncated {media_type.label} image") from exc
    except (MemoryError, RuntimeError) as exc:  # pillow-heif/libheif report bad data as RuntimeError
        raise MediaError(f"{media_type.label} image could not be decoded") from exc
    return rgb


def _read_source(source: str | os.PathLike[str] | bytes) -> bytes:
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source)
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        # errno text only: the path must not appear in the message.
        raise MediaError(f"photo could not be read ({exc.strerror or 'I/O error'})") from None


def _check_header(im: Image.Image, max_pixels: int) -> None:
    """Reject by declared size before decoding; also refuse animations and multi-page files."""
    width, height = im.size
    if width <= 0 or height <= 0:
        raise MediaError("image has no pixels")
    if width * height > max_pixels:
        raise MediaError(f"image dimensions {width}x{height} exceed the pixel limit")
    # Extra images in a JPEG (MPO: HDR gain maps, depth, stereo) or HEIC are derived from the
    # primary one, which is what viewers show: we decode that one. Elsewhere more frames mean an
    # animation or several pages, which we refuse rather than silently mask only the first.
    if im.format not in ("MPO", "JPEG", "HEIF") and getattr(im, "n_frames", 1) > 1:
        raise MediaError("animated or multi-page images are not supported")


def _to_upright_rgb(im: Image.Image) -> np.ndarray:
    try:
        upright = ImageOps.exif_transpose(im)
    except (ValueError, OSError, SyntaxError, KeyError, TypeError):
        upright = im  # unreadable EXIF: keep stored orientation rather than refuse the photo
    icc = im.info.get("icc_profile")

    alpha: np.ndarray | None = None
    if upright.mode in _ALPHA_MODES or (upright.mode == "P" and "transparency" in upright.info):
        rgba = upright.convert("RGBA")
        alpha = np.asarray(rgba.getchannel("A"), dtype=np.float32) / 255.0
        upright = rgba.convert("RGB")
    elif upright.mode in _HIGH_DEPTH_MODES:
        upright = Image.fromarray(_high_depth_to_u8(upright))
    elif upright.mode in ("1", "P"):
        upright = upright.convert("RGB")

    rgb_image = _to_srgb(upright, icc)
    rgb = np.array(rgb_image, dtype=np.uint8)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[:, :, None], 3, axis=2)
    if alpha is not None:
        # Flatten onto white: transparent pixels may hide image content a viewer never shows.
        flat = rgb.astype(np.float32) * alpha[:, :, None] + 255.0 * (1.0 - alpha[:, :, None])
        rgb = np.clip(flat + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(rgb)


def _high_depth_to_u8(im: Image.Image) -> np.ndarray:
    """16-bit / 32-bit / float greyscale to 8 bits by range, not by clipping (which saturates)."""
    arr = np.asarray(im)
    if arr.dtype.kind == "f":
        arr = np.nan_to_num(arr.astype(np.float64))
        lo, hi = float(arr.min()), float(arr.max())
        scaled = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        return np.clip(scaled + 0.5, 0, 255).astype(np.uint8)
    arr = arr.astype(np.int64)
    lo, hi = int(arr.min()), int(arr.max())
    if im.mode == "I" and (lo < 0 or hi > 0xFFFF):  # genuinely 32-bit data: stretch its range
        return ((arr - lo) * 255 // max(hi - lo, 1)).astype(np.uint8)
    if im.mode == "I" and hi <= 0xFF:  # 8-bit values held in a 32-bit mode
        return arr.astype(np.uint8)
    return (arr >> 8).astype(np.uint8)  # 16-bit samples


_SRGB: Final = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _to_srgb(im: Image.Image, icc: bytes | None) -> Image.Image:
    """Convert to sRGB through the embedded profile (e.g. Display P3 on phones), else plainly."""
    if icc and im.mode in ("RGB", "CMYK", "L"):
        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(im, src, _SRGB, outputMode="RGB")
            if converted is not None:
                return converted
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            pass  # a broken profile is ignored: colours slightly off beats refusing the photo
    return im if im.mode == "RGB" else im.convert("RGB")


def _normalise_format(fmt: str) -> str:
    name = fmt.strip().upper().lstrip(".")
    name = {"JPG": "JPEG", "JPE": "JPEG"}.get(name, name)
    if name not in PHOTO_OUTPUT_FORMATS:
        raise ValueError(f"unsupported output format {fmt!r}; use one of {PHOTO_OUTPUT_FORMATS}")
    return name


def _fresh_image(rgb: np.ndarray) -> Image.Image:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError("expected an (H, W, 3) uint8 RGB array")
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError("empty image")
    im = Image.fromarray(np.ascontiguousarray(rgb))
    assert im.mode == "RGB" and not im.info  # nothing but pixels
    return im


def encode_photo(rgb: np.ndarray, format: str = "JPEG", *, quality: int = 92) -> bytes:
    """Encode pixels only (see module docstring) and return the file bytes."""
    buf = io.BytesIO()
    _save(rgb, buf, _normalise_format(format), quality)
    return buf.getvalue()


def write_photo(
    rgb: np.ndarray,
    dest: str | os.PathLike[str] | IO[bytes],
    format: str = "JPEG",
    *,
    quality: int = 92,
) -> None:
    """Write pixels only to a path (atomically: temp file + rename) or a binary file object."""
    fmt = _normalise_format(format)
    if not isinstance(dest, str | os.PathLike):
        _save(rgb, dest, fmt, quality)
        return
    target = Path(dest)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            _save(rgb, fh, fmt, quality)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _save(rgb: np.ndarray, fh: IO[bytes], fmt: str, quality: int) -> None:
    im = _fresh_image(rgb)
    if fmt == "JPEG":
        im.save(fh, "JPEG", quality=quality, optimize=True)
    elif fmt == "PNG":
        im.save(fh, "PNG", optimize=False, compress_level=6)
    else:
        im.save(fh, "WEBP", quality=quality, method=4)
