"""What the DICOM path can mask, decided from the header before anything is stored.

STOW-RS answers with it (PS3.18 10.5.3 failure reasons), so a client is never told "stored" for an
object whose job could only fail: an object of a SOP class without an image (RT Plan, SR, PDF), an
image object without usable pixel data, or pixel data in a transfer syntax no decoder here reads.
The checks are the worker's own (``pixel_info``, the decoders it will use), not a second opinion.
"""

from __future__ import annotations

from pydicom.dataset import Dataset

from .errors import DicomError
from .iod import _modules, is_known_sop_class
from .pixels import VIDEO_TS, PixelInfo, pixel_info
from .stow import FailureReason

IMAGE_MODULES = {"image-pixel"}
PHOTOMETRICS = {
    "MONOCHROME1",
    "MONOCHROME2",
    "RGB",
    "PALETTE COLOR",
    "YBR_FULL",
    "YBR_FULL_422",
    "YBR_ICT",
    "YBR_RCT",
    "YBR_PARTIAL_420",
}


def decodable(transfer_syntax_uid: str) -> bool:
    """True when this installation can decode pixel data in ``transfer_syntax_uid``."""
    from pydicom.uid import UID

    uid = UID(transfer_syntax_uid)
    if transfer_syntax_uid in VIDEO_TS:
        return True  # decoded by PyAV (services.dicom.video)
    if not uid.is_transfer_syntax:
        return False
    if not uid.is_encapsulated:
        return True
    from pydicom.pixels import get_decoder

    try:
        return bool(get_decoder(uid).is_available)
    except (NotImplementedError, ValueError, KeyError):
        return False


def refusal(ds: Dataset) -> tuple[FailureReason, str] | None:
    """Why ``ds`` (read with its pixel data deferred or present) cannot be masked; None if it can."""
    sop_class = str(ds.get("SOPClassUID", "")).strip()
    if not is_known_sop_class(sop_class):
        return FailureReason.SOP_CLASS_NOT_SUPPORTED, "unknown SOP class"
    if not IMAGE_MODULES & {m["key"] for m in _modules(sop_class)}:
        return FailureReason.SOP_CLASS_NOT_SUPPORTED, "SOP class without an image"
    try:
        info = pixel_info(ds)
    except DicomError as exc:
        return FailureReason.DATASET_DOES_NOT_MATCH_SOP_CLASS, exc.reason
    if not decodable(info.transfer_syntax_uid):
        return FailureReason.TRANSFER_SYNTAX_NOT_SUPPORTED, "transfer syntax not supported"
    if not info.is_video_stream and info.photometric not in PHOTOMETRICS:
        return FailureReason.DATASET_DOES_NOT_MATCH_SOP_CLASS, "unsupported photometric interpretation"
    if _native_pixels_short(ds, info):
        return FailureReason.DATASET_DOES_NOT_MATCH_SOP_CLASS, "pixel data shorter than the image it declares"
    return None


def _native_pixels_short(ds: Dataset, info: PixelInfo) -> bool:
    """Uncompressed pixel data holding fewer bytes than rows x columns x samples x frames needs (a
    truncated object: every frame after the cut would fail to decode). Read from the element's
    length, so a deferred (not loaded) value is enough."""
    from pydicom.uid import UID

    if UID(info.transfer_syntax_uid).is_encapsulated or info.is_video_stream:
        return False
    raw = ds.get_item("PixelData")
    value = getattr(raw, "value", None)
    length = len(value) if isinstance(value, bytes | bytearray) else getattr(raw, "length", None)
    if length is None or length == 0xFFFFFFFF:
        return False
    bits = int(ds.get("BitsAllocated", 8) or 8)
    samples = info.rows * info.columns * info.samples_per_pixel * info.number_of_frames
    if info.photometric == "YBR_FULL_422":
        samples = samples * 2 // 3
    return int(length) < (samples * bits + 7) // 8
