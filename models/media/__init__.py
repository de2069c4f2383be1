"""Media layer: sniff uploads, decode photos/videos to upright RGB, encode pixels only.

Everything raised for bad input is a :class:`MediaError` whose message never names the file.
"""

from .errors import MediaError
from .photo import DEFAULT_MAX_PIXELS, encode_photo, output_format_for, read_photo, write_photo
from .sniff import SNIFF_BYTES, MediaKind, MediaType, sniff
from .video import (
    DEFAULT_MAX_DURATION_S,
    DEFAULT_MAX_VIDEO_PIXELS,
    VideoFrame,
    VideoInfo,
    VideoWriter,
    iter_frames,
    probe_video,
)

__all__ = [
    "DEFAULT_MAX_DURATION_S",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MAX_VIDEO_PIXELS",
    "SNIFF_BYTES",
    "MediaError",
    "MediaKind",
    "MediaType",
    "VideoFrame",
    "VideoInfo",
    "VideoWriter",
    "encode_photo",
    "iter_frames",
    "output_format_for",
    "probe_video",
    "read_photo",
    "sniff",
    "write_photo",
]
