"""What an upload is and how big it will be once decoded, from headers only.

Type detection is the shared content sniffer (``models.media.sniff``): never the file name or the
client's Content-Type. The caps are checked from container/image headers before any pixel is
decoded, so a decompression bomb or a ten-hour video is refused at ingest, not in a worker.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import BinaryIO

from models.media.sniff import SNIFF_BYTES, MediaKind, MediaType, sniff

__all__ = ["SNIFF_BYTES", "HEAD_BYTES", "Sniffed", "VideoInfo", "sniff_head", "photo_size", "video_info"]

#: Bytes of an upload kept in memory for sniffing and photo header probing. Image headers sit near
#: the start; an EXIF block can push a JPEG's frame header past 64 KiB, hence the margin.
HEAD_BYTES = 512 * 1024

_PIL_FORMATS = {
    MediaType.JPEG: "JPEG",
    MediaType.PNG: "PNG",
    MediaType.WEBP: "WEBP",
    MediaType.TIFF: "TIFF",
    MediaType.HEIC: "HEIF",
    MediaType.HEIF: "HEIF",
    MediaType.AVIF: "AVIF",
}


@dataclass(frozen=True)
class Sniffed:
    media_type: MediaType

    @property
    def kind(self) -> str:
        return str(self.media_type.kind)

    @property
    def mime(self) -> str:
        return self.media_type.mime

    @property
    def supported(self) -> bool:
        return self.media_type.kind is not MediaKind.UNSUPPORTED


def sniff_head(head: bytes) -> Sniffed:
    return Sniffed(sniff(head))


class ProbeError(Exception):
    """The header could not be read (corrupt or truncated input)."""


def photo_size(src: bytes | BinaryIO, media_type: MediaType) -> tuple[int, int, int] | None:
    """(width, height, frames) from the image header, without decoding pixels.

    Returns None when ``src`` is a prefix too short to hold the header; raises ProbeError when the
    header is corrupt."""
    from PIL import Image, UnidentifiedImageError

    fmt = _PIL_FORMATS.get(media_type)
    if fmt is None:
        raise ProbeError("not a photo format")
    if fmt in ("HEIF", "AVIF"):
        try:
            import pillow_heif

            pillow_heif.register_heif_opener()
        except ImportError as exc:
            raise ProbeError("HEIC/HEIF photos are not supported on this server") from exc
    fh = io.BytesIO(src) if isinstance(src, bytes) else src
    try:
        with Image.open(fh, formats=[fmt]) as im:
            width, height = im.size
            frames = int(getattr(im, "n_frames", 1) or 1)
    except Image.DecompressionBombError:
        return (1 << 30, 1 << 30, 1)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        if isinstance(src, bytes):
            return None  # maybe only the prefix was too short: the caller retries on the whole object
        raise ProbeError("corrupt image header") from exc
    return width, height, frames


@dataclass(frozen=True)
class VideoInfo:
    duration_s: float | None
    width: int
    height: int


def video_info(fh: BinaryIO) -> VideoInfo:
    """Duration and frame size from the container header (moov/EBML/RIFF index): PyAV seeks in
    ``fh``, which may be a range-reading view of an object in S3."""
    import av

    try:
        with av.open(fh, mode="r") as container:
            if not container.streams.video:
                raise ProbeError("no video stream")
            stream = container.streams.video[0]
            duration: float | None = None
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                duration = container.duration / 1_000_000
            ctx = stream.codec_context
            return VideoInfo(duration, int(ctx.width or 0), int(ctx.height or 0))
    except ProbeError:
        raise
    except Exception as exc:  # PyAV raises a zoo of FFmpeg errors for bad input
        raise ProbeError("unreadable video container") from exc
