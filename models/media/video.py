"""Video probing, decoding to upright RGB frames, and clean H.264/MP4 encoding (PyAV).

Decisions (see also the tests in ``tests/media``):

* **Rotation** -- frames are yielded *upright*: the stream's display matrix (phones store portrait
  video as landscape pixels plus a rotation) is applied to the pixels, so the face detector sees
  upright faces. The writer therefore writes upright pixels with rotation 0 by default; output
  displays like the input.
* **Timestamps / VFR** -- every frame keeps its input presentation timestamp (made relative to the
  first frame) and time base; :meth:`VideoWriter.for_video` writes them back in that time base, so
  variable-frame-rate input keeps its timing, frame count and duration. B-frames: frames come out
  of the decoder in presentation order.
* **Odd sizes** -- H.264 4:2:0 needs even dimensions and its SPS can only crop by 2. The writer
  pads the last column/row by replication and records the real size in the MP4 clean-aperture
  (``clap``) box; :func:`iter_frames` honours ``clap``, so the masked video decodes at its real
  size here (tested), as in players that apply ``clap`` (QuickTime/Safari do). Players that
  ignore it show one extra, replicated edge column/row -- never black bars or rescaling.
* **Privacy** -- the output holds one video stream and nothing else: no audio, no container or
  stream metadata (no creation_time, no location, no encoder tag: muxed bit-exact), and x264's
  version SEI is stripped from the bitstream.
* **Safety** -- the container format is forced to the sniffed one (FFmpeg never guesses, so no
  playlist/concat tricks), header caps (pixels, duration, frames) are checked before decoding, an
  MP4 whose sample table points past the end of the file is refused as truncated, and decoding
  stops with :class:`MediaError` if the stream yields fewer or (far) more frames than declared.
"""

from __future__ import annotations

import contextlib
import math
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal

import av
import av.error
import numpy as np
from av.sidedata.sidedata import Type as FrameSideDataType

from . import _bmff
from .errors import MediaError
from .sniff import SNIFF_BYTES, MediaKind, MediaType, sniff

__all__ = [
    "DEFAULT_MAX_DURATION_S",
    "DEFAULT_MAX_VIDEO_PIXELS",
    "VideoFrame",
    "VideoInfo",
    "VideoWriter",
    "iter_frames",
    "probe_video",
]

#: Default caps, checked from the header before anything is decoded.
DEFAULT_MAX_DURATION_S: Final = 30 * 60.0
DEFAULT_MAX_VIDEO_PIXELS: Final = 3840 * 2160
_MAX_FPS: Final = 240

# FFmpeg demuxer per sniffed type: FFmpeg is never asked to guess the format.
_DEMUXERS: Final = {
    MediaType.MP4: "mov",
    MediaType.MOV: "mov",
    MediaType.THREE_GP: "mov",
    MediaType.AVI: "avi",
    MediaType.WEBM: "matroska",
    MediaType.MKV: "matroska",
}
_BMFF_TYPES: Final = {MediaType.MP4, MediaType.MOV, MediaType.THREE_GP}
# What PyAV raises on hostile input: FFmpeg errors, undecodable metadata, and OSError subclasses.
_DECODER_ERRORS: Final = (av.error.FFmpegError, UnicodeError, OSError)
_OPEN_TIMEOUT_S: Final = 20.0
_READ_TIMEOUT_S: Final = 20.0

Transform = Literal["none", "hflip", "vflip", "rot180", "clock", "cclock", "transpose", "antitranspose"]


@dataclass(frozen=True)
class VideoInfo:
    """Header facts about a video, already checked against the caps.

    ``width``/``height`` are the size of the frames :func:`iter_frames` yields (cropped to the
    clean aperture and rotated upright); ``coded_width``/``coded_height`` are the stored size.
    ``rotation`` is the clockwise angle a player turns the stored picture by (0/90/180/270),
    ``mirrored`` whether the display matrix also flips it.
    """

    media_type: MediaType
    width: int
    height: int
    coded_width: int
    coded_height: int
    fps: Fraction
    frame_count: int
    duration_s: float
    time_base: Fraction
    rotation: int
    mirrored: bool
    has_audio: bool
    codec: str
    sample_aspect_ratio: Fraction = Fraction(1)
    _transform: Transform = field(default="none", repr=False)
    _crop: _bmff.CropRect | None = field(default=None, repr=False)
    _count_exact: bool = field(default=True, repr=False)  # frame_count from the header, not estimated


@dataclass(frozen=True)
class VideoFrame:
    """One decoded frame: upright RGB pixels and where it sits in time.

    ``pts`` is in ``time_base`` units counted from the first frame (first frame: 0); ``time`` is
    the same in seconds; ``duration`` is the frame's display duration in ``time_base`` units
    (0 if the stream does not say).
    """

    image: np.ndarray
    index: int
    pts: int
    time_base: Fraction
    duration: int

    @property
    def time(self) -> float:
        return float(self.pts * self.time_base)


def _sniff_file(path: Path) -> MediaType:
    try:
        with path.open("rb") as fh:
            head = fh.read(SNIFF_BYTES)
    except OSError as exc:
        raise MediaError(f"video could not be read ({exc.strerror or 'I/O error'})") from None
    media_type = sniff(head)
    if media_type.kind is not MediaKind.VIDEO:
        raise MediaError(f"not a supported video format ({media_type.mime})")
    return media_type


def _open_input(path: Path, media_type: MediaType) -> av.container.InputContainer:
    # "file:" + whitelist: the name can never be read as another protocol, and no demuxer may
    # open anything but local files.
    try:
        return av.open(
            "file:" + str(path.resolve()),
            mode="r",
            format=_DEMUXERS[media_type],
            options={"protocol_whitelist": "file"},
            metadata_errors="replace",
            timeout=(_OPEN_TIMEOUT_S, _READ_TIMEOUT_S),
        )
    except _DECODER_ERRORS as exc:
        raise MediaError(f"corrupt or truncated {media_type.label} video") from exc


def _video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream:
    """The first real video stream (cover art is stored as an 'attached picture' video stream)."""
    for stream in container.streams.video:
        if av.stream.Disposition.attached_pic in stream.disposition:
            continue
        if stream.codec_context is None:
            raise MediaError("video codec is not supported")
        return stream
    raise MediaError("file has no video stream")


def probe_video(
    path: str | os.PathLike[str],
    *,
    max_duration_s: float = DEFAULT_MAX_DURATION_S,
    max_pixels: int = DEFAULT_MAX_VIDEO_PIXELS,
) -> VideoInfo:
    """Read and check a video's header; decode only its first frame (for the display matrix)."""
    p = Path(path)
    media_type = _sniff_file(p)
    file_size = p.stat().st_size
    container = _open_input(p, media_type)
    try:
        return _probe_open(container, p, media_type, file_size, max_duration_s, max_pixels)
    except _DECODER_ERRORS as exc:
        raise MediaError(f"corrupt or truncated {media_type.label} video") from exc
    finally:
        container.close()


def _probe_open(
    container: av.container.InputContainer,
    path: Path,
    media_type: MediaType,
    file_size: int,
    max_duration_s: float,
    max_pixels: int,
) -> VideoInfo:
    stream = _video_stream(container)
    cc = stream.codec_context
    coded_w, coded_h = int(cc.width or 0), int(cc.height or 0)
    if coded_w <= 0 or coded_h <= 0:
        raise MediaError("video has no frame size")
    if coded_w * coded_h > max_pixels:
        raise MediaError(f"video frame size {coded_w}x{coded_h} exceeds the pixel limit")
    fps = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not fps or fps <= 0 or fps > _MAX_FPS:
        raise MediaError("video frame rate is missing or implausible")
    fps = Fraction(fps)
    time_base = Fraction(stream.time_base) if stream.time_base else Fraction(1, 90000)
    if stream.duration:
        duration = float(stream.duration * time_base)
    elif container.duration:
        duration = container.duration / av.time_base
    else:
        raise MediaError("video duration is unknown")
    if not math.isfinite(duration) or duration <= 0:
        raise MediaError("video duration is missing or implausible")
    if duration > max_duration_s:
        raise MediaError(f"video is {duration:.0f} s long; the limit is {max_duration_s:.0f} s")
    count_exact = bool(stream.frames)
    frame_count = int(stream.frames) if count_exact else round(duration * fps)
    if frame_count > max_duration_s * _MAX_FPS:
        raise MediaError("video declares more frames than allowed")
    if media_type in _BMFF_TYPES:
        _check_samples_inside_file(stream, file_size)

    crop = _bmff.read_clean_aperture(path) if media_type in _BMFF_TYPES else None
    if crop is not None and (crop.width, crop.height) == (coded_w, coded_h):
        crop = None
    # The decoder enforces the cap too: a bitstream may declare a bigger picture than the header.
    stream.codec_context.options = {"max_pixels": str(_decoder_pixel_cap(max_pixels))}
    first = next(iter(container.decode(stream)), None)  # display matrix lives on decoded frames
    if first is None:
        raise MediaError("video has no decodable frames")
    # The decoder has the last word on the frame size (it is what iter_frames will see).
    coded_w, coded_h = first.width, first.height
    if coded_w * coded_h > max_pixels:
        raise MediaError(f"video frame size {coded_w}x{coded_h} exceeds the pixel limit")
    if crop is not None and (crop.left + crop.width > coded_w or crop.top + crop.height > coded_h):
        crop = None
    transform, rotation, mirrored = _display_transform(first)
    width, height = (crop.width, crop.height) if crop else (coded_w, coded_h)
    sar = Fraction(stream.sample_aspect_ratio) if stream.sample_aspect_ratio else Fraction(1)
    if transform in ("clock", "cclock", "transpose", "antitranspose"):
        width, height = height, width
        sar = 1 / sar
    return VideoInfo(
        media_type=media_type,
        width=width,
        height=height,
        coded_width=coded_w,
        coded_height=coded_h,
        fps=fps,
        frame_count=frame_count,
        duration_s=duration,
        time_base=time_base,
        rotation=rotation,
        mirrored=mirrored,
        has_audio=bool(container.streams.audio),
        codec=cc.name,
        sample_aspect_ratio=sar,
        _transform=transform,
        _crop=crop,
        _count_exact=count_exact,
    )


def _decoder_pixel_cap(max_pixels: int) -> int:
    """Decoder-level cap (AVCodecContext.max_pixels) against a bitstream bigger than its header.

    Generous on purpose: some decoders apply it to internal buffers too (MPEG-4 Part 2 checks a
    ~6x area buffer), and the exact check is ours. It still stops a gigapixel picture.
    """
    return 8 * max_pixels + (1 << 20)


def _check_samples_inside_file(stream: av.video.stream.VideoStream, file_size: int) -> None:
    """A truncated MP4 with its moov up front still opens; its sample table gives it away."""
    entries = stream.index_entries
    if len(entries) == 0:
        return
    last_end = max(e.pos + e.size for e in entries)
    if last_end > file_size:
        raise MediaError("video is truncated: frame data is missing from the end of the file")


def _display_transform(frame: av.VideoFrame) -> tuple[Transform, int, bool]:
    """How to turn a stored frame into what a player shows, from its DISPLAYMATRIX side data.

    Mirrors FFmpeg's own autorotate logic (fftools): returns (transform, clockwise degrees,
    mirrored). Angles that are not a multiple of 90 are refused rather than shown wrongly.
    """
    matrix: tuple[int, ...] | None = None
    side_data: Any = frame.side_data  # a SideDataContainer at runtime; the stub says TypedDict
    for item in side_data:
        # PyAV before 18 iterates the side data themselves; PyAV 18 iterates their types, as a mapping
        sd = item if hasattr(item, "type") else side_data[item]
        if getattr(sd, "type", None) == FrameSideDataType.DISPLAYMATRIX:
            raw = bytes(sd)
            if len(raw) >= 36:
                matrix = struct.unpack("=9i", raw[:36])
    if matrix is None:
        return "none", 0, False
    theta = _clockwise_degrees(matrix)
    if theta is None:
        return "none", 0, False
    mirrored = (matrix[0] * matrix[4] - matrix[1] * matrix[3]) < 0
    if abs(theta) < 1.0 or abs(theta - 360) < 1.0:
        return ("vflip" if matrix[4] < 0 else "none"), 0, mirrored
    if abs(theta - 90) < 1.0:
        return ("transpose" if matrix[3] > 0 else "clock"), 90, mirrored
    if abs(theta - 180) < 1.0:
        hflip, vflip = matrix[0] < 0, matrix[4] < 0
        if hflip and vflip:
            return "rot180", 180, mirrored
        return ("hflip" if hflip else "vflip" if vflip else "none"), 180, mirrored
    if abs(theta - 270) < 1.0:
        return ("antitranspose" if matrix[3] < 0 else "cclock"), 270, mirrored
    raise MediaError("video display rotation is not a multiple of 90 degrees")


def _clockwise_degrees(matrix: tuple[int, ...]) -> float | None:
    """Clockwise display angle in [0, 360) as FFmpeg computes it (display.c + fftools)."""
    a, b, c, d = (v / 65536.0 for v in (matrix[0], matrix[1], matrix[3], matrix[4]))
    sx, sy = math.hypot(a, c), math.hypot(b, d)
    if sx == 0.0 or sy == 0.0:
        return None  # degenerate matrix: FFmpeg ignores it too
    ccw = -math.degrees(math.atan2(b / sy, a / sx))
    theta = float(-round(ccw))
    return theta - 360.0 * math.floor(theta / 360.0 + 0.9 / 360.0)


def _apply_transform(img: np.ndarray, transform: Transform) -> np.ndarray:
    if transform == "none":
        return img
    if transform == "hflip":
        out = img[:, ::-1]
    elif transform == "vflip":
        out = img[::-1]
    elif transform == "rot180":
        out = img[::-1, ::-1]
    elif transform == "clock":
        out = np.rot90(img, -1)
    elif transform == "cclock":
        out = np.rot90(img, 1)
    elif transform == "transpose":
        out = img.transpose(1, 0, 2)
    else:  # antitranspose
        out = img[::-1, ::-1].transpose(1, 0, 2)
    return np.ascontiguousarray(out)


def _rgb(frame: av.VideoFrame) -> np.ndarray:
    """RGB with the right YUV matrix: untagged HD video is BT.709, untagged SD is BT.601."""
    src_cs: str | int | None = None
    if frame.colorspace in (2, 0):  # unspecified / RGB-identity tags on YUV frames
        src_cs = "ITU709" if frame.height >= 720 else "ITU601"
    return frame.to_ndarray(format="rgb24", src_colorspace=src_cs)


def iter_frames(
    path: str | os.PathLike[str],
    *,
    info: VideoInfo | None = None,
    max_duration_s: float = DEFAULT_MAX_DURATION_S,
    max_pixels: int = DEFAULT_MAX_VIDEO_PIXELS,
) -> Iterator[VideoFrame]:
    """Decode every frame, in presentation order, as upright ``(H, W, 3)`` RGB ``uint8``.

    Pass the ``info`` from :func:`probe_video` to skip probing again. Raises :class:`MediaError`
    (possibly after some frames) if the stream is corrupt, truncated, or longer than declared --
    callers must treat the whole video as failed then.
    """
    p = Path(path)
    if info is None:
        info = probe_video(p, max_duration_s=max_duration_s, max_pixels=max_pixels)
    media_type = _sniff_file(p)
    if media_type is not info.media_type:
        raise MediaError("video changed between probe and decode")
    container = _open_input(p, media_type)
    try:
        yield from _decode_all(container, info, max_duration_s)
    except _DECODER_ERRORS as exc:
        raise MediaError(f"corrupt {info.media_type.label} video: decoding failed") from exc
    finally:
        container.close()


def _decode_all(
    container: av.container.InputContainer, info: VideoInfo, max_duration_s: float
) -> Iterator[VideoFrame]:
    stream = _video_stream(container)
    stream.thread_type = "AUTO"
    cap = _decoder_pixel_cap(info.coded_width * info.coded_height)
    stream.codec_context.options = {"max_pixels": str(cap)}
    step = max(1, round(1 / (info.fps * info.time_base)))  # nominal frame duration in time_base units
    # An estimated count (no per-frame index, e.g. Matroska) only bounds loosely.
    slack = 1.1 if info._count_exact else 2.0
    max_frames = max(info.frame_count + 10, int(info.frame_count * slack))
    max_pts = (max_duration_s + 1.0) / info.time_base
    crop = info._crop
    first_pts: int | None = None
    last_pts = -1
    index = 0
    for frame in container.decode(stream):
        raw_pts = frame.pts
        if first_pts is None:
            first_pts = raw_pts if raw_pts is not None else 0
        pts = raw_pts - first_pts if raw_pts is not None else last_pts + step
        if pts <= last_pts:  # duplicate/missing timestamps in a damaged stream: keep order
            pts = last_pts + 1
        if index >= max_frames or pts > max_pts:
            raise MediaError("video holds more frames than its header declares")
        if (frame.width, frame.height) != (info.coded_width, info.coded_height):
            raise MediaError("video changes frame size mid-stream")
        img = _rgb(frame)
        if crop is not None:
            img = img[crop.top : crop.top + crop.height, crop.left : crop.left + crop.width]
        img = _apply_transform(img, info._transform)
        yield VideoFrame(
            image=np.ascontiguousarray(img),
            index=index,
            pts=pts,
            time_base=info.time_base,
            duration=int(frame.duration or 0),
        )
        last_pts = pts
        index += 1
    if index == 0:
        raise MediaError("video has no decodable frames")
    expected = info.frame_count if info._count_exact else info.frame_count * 0.5
    if index < expected - 1 and index < expected * 0.99:
        raise MediaError("video is truncated or corrupt: fewer frames than its header declares")


class VideoWriter:
    """Write RGB frames to a clean H.264 (yuv420p, libx264) MP4 with a single video stream.

    ``rotation`` (clockwise degrees, 0/90/180/270) is stored as a display matrix; keep the
    default 0 when writing frames from :func:`iter_frames`, which are already upright. Frames are
    timed by ``pts`` in ``time_base`` (default ``1/fps``); pass the input's time base and each
    frame's pts to keep variable frame rate timing exactly (:meth:`for_video` does this).

    Use as a context manager: on an exception the partial file is deleted.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        fps: Fraction | int | float,
        width: int,
        height: int,
        rotation: int = 0,
        *,
        time_base: Fraction | None = None,
        sample_aspect_ratio: Fraction | None = None,
        crf: int = 18,
        preset: str = "veryfast",
    ) -> None:
        if width <= 0 or height <= 0:
            raise ValueError("width and height must be positive")
        if rotation % 90:
            raise ValueError("rotation must be a multiple of 90 degrees")
        self.path = Path(path)
        self.fps = Fraction(fps).limit_denominator(100_000)
        if self.fps <= 0:
            raise ValueError("fps must be positive")
        self.width, self.height = width, height
        self.time_base = Fraction(time_base) if time_base else 1 / self.fps
        self._coded_w, self._coded_h = width + (width & 1), height + (height & 1)
        self._step = max(1, round(1 / (self.fps * self.time_base)))
        self._frames = 0
        self._pending: tuple[np.ndarray, int, int | None] | None = None
        self._last_pts = -1
        self._closed = False

        # bitexact: no "encoder" tag or other muxer fingerprints in the file.
        self._container = av.open(
            "file:" + str(self.path.resolve()),
            mode="w",
            format="mp4",
            options={"fflags": "+bitexact", "movflags": "+faststart"},  # faststart: index first, streams
        )
        try:
            stream = self._container.add_stream("libx264", rate=self.fps)
            stream.width, stream.height = self._coded_w, self._coded_h
            stream.pix_fmt = "yuv420p"
            stream.time_base = self.time_base
            cc = stream.codec_context
            cc.time_base = self.time_base
            cc.framerate = self.fps
            # Tag what we encode (BT.709, limited range) so players do not guess.
            cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range = 1, 1, 1, 1
            if sample_aspect_ratio and sample_aspect_ratio != 1:
                cc.sample_aspect_ratio = Fraction(sample_aspect_ratio)
            stream.options = {"crf": str(crf), "preset": preset}
            if rotation % 360:
                stream.set_display_rotation(-(rotation % 360))  # PyAV takes counter-clockwise
            self._stream = stream
            self._strip_sei = av.bitstream.BitStreamFilterContext("filter_units=remove_types=6", stream)
        except BaseException:
            self._container.close()
            self.path.unlink(missing_ok=True)
            raise

    @classmethod
    def for_video(cls, path: str | os.PathLike[str], info: VideoInfo, **kwargs: object) -> VideoWriter:
        """A writer matching ``info``: same upright size, fps, time base and pixel aspect."""
        return cls(
            path,
            info.fps,
            info.width,
            info.height,
            time_base=info.time_base,
            sample_aspect_ratio=info.sample_aspect_ratio,
            **kwargs,  # type: ignore[arg-type]
        )

    @property
    def frames_written(self) -> int:
        return self._frames + (1 if self._pending is not None else 0)

    def write(self, rgb: np.ndarray, pts: int | None = None, duration: int | None = None) -> None:
        """Queue one ``(height, width, 3)`` uint8 RGB frame at ``pts`` (``time_base`` units).

        Without ``pts`` frames are spaced at 1/fps. Pts must increase strictly.
        """
        if self._closed:
            raise ValueError("writer is closed")
        if (
            not isinstance(rgb, np.ndarray)
            or rgb.dtype != np.uint8
            or rgb.shape != (self.height, self.width, 3)
        ):
            raise ValueError(f"expected a ({self.height}, {self.width}, 3) uint8 RGB array")
        if pts is None:
            pts = self._last_pts + self._step if self._last_pts >= 0 else 0
        if pts <= self._last_pts:
            raise ValueError("pts must increase strictly")
        # Hold one frame back: its duration is known once the next pts is.
        if self._pending is not None:
            prev_img, prev_pts, _ = self._pending
            self._encode(prev_img, prev_pts, pts - prev_pts)
        self._pending = (rgb, pts, duration)
        self._last_pts = pts

    def _encode(self, rgb: np.ndarray | None, pts: int, duration: int) -> None:
        if rgb is None:
            packets = self._stream.encode(None)
        else:
            if (self._coded_w, self._coded_h) != (self.width, self.height):
                pad = ((0, self._coded_h - self.height), (0, self._coded_w - self.width), (0, 0))
                rgb = np.pad(rgb, pad, mode="edge")
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame = frame.reformat(format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG")
            frame.pts = pts
            frame.time_base = self.time_base
            frame.duration = max(1, duration)
            packets = self._stream.encode(frame)
            self._frames += 1
        for packet in packets:
            for clean in self._strip_sei.filter(packet):
                clean.stream = self._stream
                self._container.mux(clean)

    def close(self) -> None:
        """Flush the encoder, finish the file and record the real size if it is odd."""
        if self._closed:
            return
        if self._pending is None and self._frames == 0:
            self.abort()
            raise ValueError("no frames were written")
        self._closed = True
        try:
            if self._pending is not None:
                img, pts, duration = self._pending
                self._pending = None
                self._encode(img, pts, duration or self._step)
            self._encode(None, 0, 0)
            for clean in self._strip_sei.filter(None):
                clean.stream = self._stream
                self._container.mux(clean)
        finally:
            self._container.close()
        if (self._coded_w, self._coded_h) != (self.width, self.height):
            _bmff.write_clean_aperture(self.path, self.width, self.height)

    def abort(self) -> None:
        """Stop without finishing and delete the partial file."""
        self._closed = True
        self._pending = None
        with contextlib.suppress(Exception):
            self._container.close()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.abort()
            return
        try:
            self.close()
        except BaseException:
            self.path.unlink(missing_ok=True)
            raise
