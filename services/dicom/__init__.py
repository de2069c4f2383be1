"""DICOM path of DigitalMask: read/decode untrusted DICOM, mask the pixels, de-identify the header
(PS3.15 Basic Profile), write a conformant output, and the STOW-RS request/response helpers."""

from .errors import DicomError
from .iod import check_iod
from .mask import DicomResult, MaskFrames, mask_dicom, output_sop_class
from .pixels import PixelInfo, iter_rgb_frames, pixel_info
from .profile import DeidKeys, DeidOptions, applied_method_codes, profile_table
from .reader import Layout, ReadLimits, inspect, inspect_bytes, read_dicom
from .stow import (
    FailedInstance,
    FailureReason,
    MultipartLimits,
    Part,
    StoredInstance,
    StowError,
    WarningReason,
    build_stow_response,
    check_stow_content_type,
    parse_multipart_related,
    stow_http_status,
)
from .uids import HmacUidMapper, InMemoryUidMapper, UidMapper, keyed_uid

__all__ = [
    "DeidKeys",
    "DeidOptions",
    "DicomError",
    "DicomResult",
    "FailedInstance",
    "FailureReason",
    "MultipartLimits",
    "Part",
    "StoredInstance",
    "StowError",
    "WarningReason",
    "build_stow_response",
    "check_stow_content_type",
    "parse_multipart_related",
    "stow_http_status",
    "HmacUidMapper",
    "InMemoryUidMapper",
    "Layout",
    "MaskFrames",
    "PixelInfo",
    "ReadLimits",
    "UidMapper",
    "applied_method_codes",
    "check_iod",
    "inspect",
    "inspect_bytes",
    "iter_rgb_frames",
    "keyed_uid",
    "mask_dicom",
    "output_sop_class",
    "pixel_info",
    "profile_table",
    "read_dicom",
]
