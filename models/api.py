"""Public API of the masking model: what workers, the DICOM path and the CLI call.

``mask_file`` masks one photo or video file; :class:`DigitalMask` (re-exported) is the loaded model
with a frame-level API for callers doing their own I/O. Load the model once per process:
:func:`get_model` caches it per (device, batch size).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from models.media import (
    SNIFF_BYTES,
    MediaError,
    MediaKind,
    VideoWriter,
    iter_frames,
    output_format_for,
    probe_video,
    read_photo,
    sniff,
    write_photo,
)
from models.media.photo import DEFAULT_MAX_PIXELS
from models.media.video import DEFAULT_MAX_DURATION_S
from models.pipeline import DigitalMask

MODEL_VERSION = "dmask-0.1.0"

__all__ = ["MODEL_VERSION", "DigitalMask", "MaskResult", "MaskingError", "get_model", "mask_file"]


class MaskingError(Exception):
    """An input that cannot be masked (undecodable, too large, every frame failed). ``reason`` is safe
    to show to a client: it never contains PHI (no file names, no record IDs)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class MaskResult:
    kind: Literal["photo", "video"]
    output_path: Path
    metrics: dict[str, Any]  # JSON-serialisable eye metrics (schema: models/README.md)
    frames_total: int
    frames_blanked: int  # frames written blank because a face could not be masked safely
    model_version: str = MODEL_VERSION
    extra: dict[str, Any] = field(default_factory=dict)


@lru_cache(maxsize=4)
def get_model(device: str = "cpu", batch_size: int = 8) -> DigitalMask:
    """The model for this process, loaded on first use (after any fork: never touch CUDA before)."""
    return DigitalMask(device=device, batch_size=batch_size)


def mask_file(
    src: Path,
    dst: Path,
    *,
    device: str = "cpu",
    batch_size: int = 8,
    progress: Callable[[float], None] | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_video_seconds: float = DEFAULT_MAX_DURATION_S,
    model: DigitalMask | None = None,
) -> MaskResult:
    """Mask a photo or video file (type sniffed from content) into ``dst``.

    Photos keep their format where it can be written (PNG/TIFF -> PNG, WebP -> WebP, else JPEG) unless
    ``dst``'s suffix names one; videos become H.264 MP4. Raises MaskingError for input that cannot be
    masked; nothing is left at ``dst`` then. ``model`` replaces the process's shared model (default),
    e.g. one with a fixed appearance seed for paired evaluations (``tools/seeded_masker.py``).
    """
    with Path(src).open("rb") as fh:
        media_type = sniff(fh.read(SNIFF_BYTES))
    model = model or get_model(device, batch_size)
    try:
        if media_type.kind is MediaKind.PHOTO:
            return _mask_photo(model, src, dst, output_format_for(media_type), max_pixels)
        if media_type.kind is MediaKind.VIDEO:
            return _mask_video(model, src, dst, progress, max_pixels, max_video_seconds)
    except MediaError as exc:
        Path(dst).unlink(missing_ok=True)
        raise MaskingError(exc.reason) from exc
    if media_type.kind is MediaKind.DICOM:
        raise MaskingError("DICOM input is handled by the DICOM path (services.dicom), not mask_file")
    raise MaskingError(f"unsupported media type: {media_type.mime}")


_SUFFIX_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}


def _mask_photo(model: DigitalMask, src: Path, dst: Path, default_format: str, max_pixels: int) -> MaskResult:
    rgb = read_photo(src, max_pixels=max_pixels)
    seq = model.analyse([rgb])
    if seq.frames_blanked:
        raise MaskingError("a face was detected but could not be landmarked confidently enough to mask")
    if not seq.tracks:
        raise MaskingError("no face was found in the photo")
    out = model.render(seq, 0)
    fmt = _SUFFIX_FORMATS.get(Path(dst).suffix.lower(), default_format)
    write_photo(out, dst, fmt)
    return MaskResult(
        kind="photo",
        output_path=Path(dst),
        metrics=seq.metrics(),
        frames_total=1,
        frames_blanked=seq.frames_blanked,
        extra={
            "faces": int(seq.analysis.faces_per_frame[0]),
            "format": fmt,
            "bystanders_not_drawn": seq.bystanders_not_drawn,
        },
    )


def _mask_video(
    model: DigitalMask,
    src: Path,
    dst: Path,
    progress: Callable[[float], None] | None,
    max_pixels: int,
    max_seconds: float,
) -> MaskResult:
    info = probe_video(src, max_duration_s=max_seconds, max_pixels=max_pixels)
    timing: list[tuple[int, int]] = []

    def frames() -> Any:
        for f in iter_frames(src, info=info, max_duration_s=max_seconds, max_pixels=max_pixels):
            timing.append((f.pts, f.duration))
            yield f.image

    expected = max(info.frame_count, 1)

    def analysed(n: int) -> None:
        if progress is not None:
            progress(min(0.7, 0.7 * n / expected))

    seq = model.analyse(frames(), fps=float(info.fps), progress=analysed)
    if seq.n_frames == 0:
        raise MaskingError("the video has no decodable frames")
    if not seq.tracks:
        raise MaskingError("no face was found in any frame of the video")
    if seq.frames_blanked == seq.n_frames:
        raise MaskingError("no frame of the video could be masked safely")
    with VideoWriter.for_video(dst, info) as writer:
        for i, (pts, duration) in enumerate(timing):
            writer.write(model.render(seq, i), pts=pts, duration=duration or None)
            if progress is not None and i % 16 == 0:
                progress(0.7 + 0.3 * (i + 1) / seq.n_frames)
    if progress is not None:
        progress(1.0)
    return MaskResult(
        kind="video",
        output_path=Path(dst),
        metrics=seq.metrics(),
        frames_total=seq.n_frames,
        frames_blanked=seq.frames_blanked,
        extra={
            "fps": float(info.fps),
            "width": info.width,
            "height": info.height,
            "bystanders_not_drawn": seq.bystanders_not_drawn,
        },
    )
