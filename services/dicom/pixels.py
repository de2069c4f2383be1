"""Pixel data in and out: every common DICOM encoding -> RGB uint8 frames -> DICOM pixel data.

Why RGB uint8 everywhere: the masking model works on display images. Monochrome data is windowed to
8-bit display values (the masked output is a derived display image, not a measurement), palette
colour is expanded through its LUT, YBR is converted, and encapsulated MPEG video is decoded with
PyAV. Decoding is frame by frame (generators), so a long cine loop never sits in memory twice.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from io import BytesIO

import av
import numpy as np
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_fragments
from pydicom.pixels import apply_color_lut, apply_modality_lut, iter_pixels

from .errors import DicomError

MPEG2_TS = {"1.2.840.10008.1.2.4.100", "1.2.840.10008.1.2.4.101"}
AVC_TS = {
    "1.2.840.10008.1.2.4.102",
    "1.2.840.10008.1.2.4.103",
    "1.2.840.10008.1.2.4.104",
    "1.2.840.10008.1.2.4.105",
    "1.2.840.10008.1.2.4.106",
}
HEVC_TS = {"1.2.840.10008.1.2.4.107", "1.2.840.10008.1.2.4.108"}
VIDEO_TS = MPEG2_TS | AVC_TS | HEVC_TS
AVC_HP41_TS = "1.2.840.10008.1.2.4.102"  # MPEG-4 AVC/H.264 High Profile / Level 4.1: what we write

# Transfer syntax -> Lossy Image Compression Method (0028,2114) defined term, for lossy-capable ones.
_LOSSY_METHOD = {
    "1.2.840.10008.1.2.4.50": "ISO_10918_1",
    "1.2.840.10008.1.2.4.51": "ISO_10918_1",
    "1.2.840.10008.1.2.4.81": "ISO_14495_1",
    "1.2.840.10008.1.2.4.91": "ISO_15444_1",
    "1.2.840.10008.1.2.4.93": "ISO_15444_2",
    "1.2.840.10008.1.2.4.203": "ISO_15444_15",
    **{ts: "ISO_13818_2" for ts in MPEG2_TS},
    **{ts: "ISO_14496_10" for ts in AVC_TS},
    **{ts: "ISO_23008_2" for ts in HEVC_TS},
}
# Lossy-capable syntaxes whose lossless use is possible: trust (0028,2110) "00" for these only.
_MAYBE_LOSSLESS = {"1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.93", "1.2.840.10008.1.2.4.203"}
MAX_FRAME_PIXELS = 2**28  # 16k x 16k


@dataclass(frozen=True)
class PixelInfo:
    """What the pixel module says, plus what we derived for masking and bookkeeping."""

    rows: int
    columns: int
    number_of_frames: int
    samples_per_pixel: int
    photometric: str
    transfer_syntax_uid: str
    is_video_stream: bool  # encapsulated MPEG-2 / H.264 / HEVC
    fps: float | None
    source_lossy: bool
    lossy_methods: tuple[str, ...] = field(default=())
    lossy_ratios: tuple[str, ...] = field(default=())


def frame_rate(ds: Dataset) -> float | None:
    """Frames per second from Cine Rate, Recommended Display Frame Rate or Frame Time (ms)."""
    for kw in ("CineRate", "RecommendedDisplayFrameRate"):
        v = ds.get(kw)
        if v not in (None, "") and float(v) > 0:
            return float(v)
    ft = ds.get("FrameTime")
    if ft not in (None, "") and float(ft) > 0:
        return 1000.0 / float(ft)
    return None


def pixel_info(ds: Dataset) -> PixelInfo:
    """Describe the image in ``ds``; ``DicomError("no image ...")`` when there is none to mask."""
    if "PixelData" not in ds:
        if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
            raise DicomError("no image: float pixel data is not supported")
        raise DicomError("no image: the object has no pixel data")
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        spp = int(ds.get("SamplesPerPixel", 1))
        frames = int(ds.get("NumberOfFrames", 1) or 1)
    except (AttributeError, TypeError, ValueError) as exc:
        raise DicomError("no image: the image pixel module is incomplete") from exc
    if rows <= 0 or cols <= 0 or frames <= 0 or spp not in (1, 3):
        raise DicomError("no image: invalid image dimensions")
    if rows * cols > MAX_FRAME_PIXELS:
        raise DicomError("image frame exceeds the size limit")
    ts = str(ds.file_meta.get("TransferSyntaxUID", ""))
    methods = [str(m) for m in _multi(ds.get("LossyImageCompressionMethod"))]
    ratios = [str(r) for r in _multi(ds.get("LossyImageCompressionRatio"))]
    declared = str(ds.get("LossyImageCompression", "")).strip()
    lossy_ts = ts in _LOSSY_METHOD and not (ts in _MAYBE_LOSSLESS and declared == "00")
    if ts == "1.2.840.10008.1.2.4.50" or ts == "1.2.840.10008.1.2.4.51":
        lossy_ts = True
    lossy = declared == "01" or lossy_ts
    if lossy_ts and _LOSSY_METHOD[ts] not in methods:
        methods.append(_LOSSY_METHOD[ts])
    return PixelInfo(
        rows=rows,
        columns=cols,
        number_of_frames=frames,
        samples_per_pixel=spp,
        photometric=str(ds.get("PhotometricInterpretation", "")).strip(),
        transfer_syntax_uid=ts,
        is_video_stream=ts in VIDEO_TS,
        fps=frame_rate(ds),
        source_lossy=lossy,
        lossy_methods=tuple(methods),
        lossy_ratios=tuple(ratios),
    )


def _multi(value: object) -> list[object]:
    if value is None or value == "":
        return []
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return list(value)  # type: ignore[call-overload]
    return [value]


def iter_rgb_frames(ds: Dataset, info: PixelInfo | None = None) -> Iterator[np.ndarray]:
    """Yield each frame of ``ds`` as an (rows, columns, 3) uint8 RGB array, in order."""
    info = info or pixel_info(ds)
    if info.is_video_stream:
        yield from _iter_video(ds, info)
        return
    try:
        frames = iter_pixels(ds, as_rgb=True)
        for frame in frames:
            yield _to_rgb8(frame, ds, info)
    except DicomError:
        raise
    except (NotImplementedError, RuntimeError) as exc:
        raise DicomError(
            f"pixel data cannot be decoded (transfer syntax {info.transfer_syntax_uid})"
        ) from exc
    except Exception as exc:  # decoder plugins raise assorted types on corrupt data
        raise DicomError("pixel data is corrupt or inconsistent with the image pixel module") from exc


def _to_rgb8(frame: np.ndarray, ds: Dataset, info: PixelInfo) -> np.ndarray:
    pi = info.photometric
    if pi == "PALETTE COLOR":
        rgb = apply_color_lut(frame, ds)
        if rgb.dtype != np.uint8:
            bits = int(ds.RedPaletteColorLookupTableDescriptor[2])
            rgb = (rgb.astype(np.uint32) >> max(bits - 8, 0)).astype(np.uint8)
        return np.ascontiguousarray(rgb)
    if frame.ndim == 3 and frame.shape[-1] == 3:
        if frame.dtype == np.uint8:
            return np.ascontiguousarray(frame)
        stored = int(ds.get("BitsStored", 8 * frame.dtype.itemsize))
        return (np.clip(frame.astype(np.int64), 0, None) >> max(stored - 8, 0)).clip(0, 255).astype(np.uint8)
    if pi not in ("MONOCHROME1", "MONOCHROME2"):
        raise DicomError("unsupported photometric interpretation")
    gray = _window_to_8bit(frame, ds)
    if pi == "MONOCHROME1":
        gray = 255 - gray
    return np.ascontiguousarray(np.repeat(gray[..., None], 3, axis=2))


def _window_to_8bit(frame: np.ndarray, ds: Dataset) -> np.ndarray:
    """Modality LUT, then the first VOI window if the file has one, else the frame's min..max."""
    values = np.asarray(apply_modality_lut(frame, ds), dtype=np.float64)
    center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if center not in (None, "") and width not in (None, ""):
        c = float(_multi(center)[0])  # type: ignore[arg-type]
        w = max(float(_multi(width)[0]), 1.0)  # type: ignore[arg-type]
        scaled = ((values - (c - 0.5)) / max(w - 1.0, 1.0) + 0.5) * 255.0
    else:
        lo, hi = float(values.min()), float(values.max())
        scaled = (values - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(values)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _video_stream(ds: Dataset) -> bytes:
    return b"".join(generate_fragments(ds.PixelData))


def _iter_video(ds: Dataset, info: PixelInfo) -> Iterator[np.ndarray]:
    fmt = (
        "h264"
        if info.transfer_syntax_uid in AVC_TS
        else ("hevc" if info.transfer_syntax_uid in HEVC_TS else "mpegvideo")
    )
    try:
        stream = _video_stream(ds)
        with av.open(BytesIO(stream), mode="r", format=fmt) as container:
            for frame in container.decode(video=0):
                rgb = frame.to_ndarray(format="rgb24")
                if rgb.shape[:2] != (info.rows, info.columns):
                    raise DicomError("video stream size does not match the image pixel module")
                yield rgb
    except DicomError:
        raise
    except Exception as exc:
        raise DicomError("encapsulated video stream cannot be decoded") from exc


# ---------------------------------------------------------------------------------------------- output


def native_rgb_pixel_data(
    frames: Iterable[np.ndarray], rows: int, columns: int, max_bytes: int
) -> tuple[bytes, int]:
    """Concatenate RGB uint8 frames as native (uncompressed) Pixel Data; returns (bytes, frame count)."""
    out = bytearray()
    n = 0
    for frame in frames:
        _check_frame(frame, rows, columns)
        out += frame.tobytes()
        n += 1
        if len(out) > max_bytes:
            raise DicomError("masked pixel data exceeds the size limit")
    if len(out) % 2:
        out += b"\x00"
    return bytes(out), n


def _check_frame(frame: np.ndarray, rows: int, columns: int) -> None:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.shape != (rows, columns, 3):
        raise DicomError("masking returned a frame of the wrong shape or type")


def h264_encodable(rows: int, columns: int, fps: float | None) -> bool:
    """Whether we can write MPEG-4 AVC/H.264 High Profile / Level 4.1 (<= 1920x1080, 4:2:0, <= 60 fps)."""
    return rows % 2 == 0 and columns % 2 == 0 and rows <= 1080 and columns <= 1920 and (fps or 25.0) <= 60.0


def encode_h264(
    frames: Iterable[np.ndarray], rows: int, columns: int, fps: float, *, crf: int = 18, preset: str = "fast"
) -> tuple[bytes, int]:
    """Encode RGB frames as an H.264 Annex B elementary stream (what DICOM encapsulates, PS3.5 8.2.8).

    High profile, level 4.1, yuv420p, every frame kept (no frame dropping, constant frame rate)."""
    rate = Fraction(fps).limit_denominator(1001)
    buf = BytesIO()
    n = 0
    with av.open(buf, mode="w", format="h264") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height = columns, rows
        stream.pix_fmt = "yuv420p"
        stream.options = {"profile": "high", "level": "4.1", "crf": str(crf), "preset": preset}
        for frame in frames:
            _check_frame(frame, rows, columns)
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf.pts = n
            container.mux(stream.encode(vf))
            n += 1
        container.mux(stream.encode(None))
    return buf.getvalue(), n


def encapsulate_stream(stream: bytes, fragment_bytes: int = 1 << 22) -> bytes:
    """Encapsulate a video elementary stream: empty Basic Offset Table, stream split into fragments."""
    if len(stream) % 2:
        stream += b"\x00"  # a trailing zero byte is harmless in an Annex B stream
    n = max(1, math.ceil(len(stream) / fragment_bytes))
    return bytes(encapsulate([stream], fragments_per_frame=n, has_bot=False))
