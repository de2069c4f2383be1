"""``mask_dicom``: one DICOM instance in, one de-identified, face-masked DICOM instance out.

Output decisions (documented here because PACS administrators will ask):

* SOP Class: kept when its IOD allows 8-bit RGB (VL photographic/endoscopic/microscopic, their video
  classes, ophthalmic photography, ultrasound, secondary capture). Monochrome-only IODs (CT, MR, NM,
  ...) cannot carry the masked colour display image honestly, so those become Secondary Capture
  (single frame) or Multi-frame True Color Secondary Capture; ``DicomResult.sop_class_changed`` says so.
* Images: native Explicit VR Little Endian, RGB, 8 bits, Planar Configuration 0.
* Video SOP classes (and any encapsulated MPEG input): re-encoded as MPEG-4 AVC/H.264 High Profile /
  Level 4.1 (1.2.840.10008.1.2.4.102), YBR_PARTIAL_420, every frame kept, same frame rate; native
  multi-frame would be ~100x larger and many viewers cannot play it. Frames over 1920x1080 or with odd
  sizes fall back to native multi-frame RGB.
* Lossy Image Compression "01" with the method/ratio history whenever the input or output is lossy.
* Burned In Annotation "NO" only when the caller's masking contract says frames are fully synthetic
  (``frames_synthetic=True``). A ``mask_frames`` need only give a masked frame of the same shape, i.e.
  faces replaced, so by default the source value is kept and the Clean Pixel Data code (113101) is not
  claimed. The digital mask draws whole frames and says so (``DigitalMask.renders_whole_frames``); the
  worker and ``dmask mask`` pass that on.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian

from . import iod
from .errors import DicomError
from .pixels import (
    AVC_HP41_TS,
    PixelInfo,
    encapsulate_stream,
    encode_h264,
    h264_encodable,
    iter_rgb_frames,
    native_rgb_pixel_data,
    pixel_info,
)
from .profile import DeidKeys, DeidOptions, deidentify
from .reader import ReadLimits, read_dicom
from .uids import UidMapper

MaskFrames = Callable[[Iterable[np.ndarray], float | None], Iterator[np.ndarray]]

SC_IMAGE = "1.2.840.10008.5.1.4.1.1.7"
MF_TRUE_COLOR_SC = "1.2.840.10008.5.1.4.1.1.7.4"
VIDEO_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.77.1.1.1",  # Video Endoscopic Image Storage
    "1.2.840.10008.5.1.4.1.1.77.1.2.1",  # Video Microscopic Image Storage
    "1.2.840.10008.5.1.4.1.1.77.1.4.1",  # Video Photographic Image Storage
}
RGB_SOP_CLASSES = VIDEO_SOP_CLASSES | {
    SC_IMAGE,
    MF_TRUE_COLOR_SC,
    "1.2.840.10008.5.1.4.1.1.6.1",  # Ultrasound Image Storage
    "1.2.840.10008.5.1.4.1.1.3.1",  # Ultrasound Multi-frame Image Storage
    "1.2.840.10008.5.1.4.1.1.77.1.1",  # VL Endoscopic Image Storage
    "1.2.840.10008.5.1.4.1.1.77.1.2",  # VL Microscopic Image Storage
    "1.2.840.10008.5.1.4.1.1.77.1.3",  # VL Slide-Coordinates Microscopic Image Storage
    "1.2.840.10008.5.1.4.1.1.77.1.4",  # VL Photographic Image Storage
    "1.2.840.10008.5.1.4.1.1.77.1.5.1",  # Ophthalmic Photography 8 Bit Image Storage
    "1.2.840.10008.5.1.4.1.1.77.1.7",  # Dermoscopic Photography Image Storage
}
IMPLEMENTATION_CLASS_UID = "2.25." + str(uuid.uuid5(uuid.NAMESPACE_URL, "urn:digitalmask:dicom").int)
IMPLEMENTATION_VERSION = "DMASK_0_1"

# Attributes that describe the old pixel encoding and would be false for the new RGB 8-bit pixels.
_STALE_PIXEL_KEYWORDS = (
    "RedPaletteColorLookupTableDescriptor",
    "GreenPaletteColorLookupTableDescriptor",
    "BluePaletteColorLookupTableDescriptor",
    "AlphaPaletteColorLookupTableDescriptor",
    "RedPaletteColorLookupTableData",
    "GreenPaletteColorLookupTableData",
    "BluePaletteColorLookupTableData",
    "AlphaPaletteColorLookupTableData",
    "SegmentedRedPaletteColorLookupTableData",
    "SegmentedGreenPaletteColorLookupTableData",
    "SegmentedBluePaletteColorLookupTableData",
    "PaletteColorLookupTableUID",
    "LargeRedPaletteColorLookupTableData",
    "LargeGreenPaletteColorLookupTableData",
    "LargeBluePaletteColorLookupTableData",
    "LargePaletteColorLookupTableUID",
    "RescaleIntercept",
    "RescaleSlope",
    "RescaleType",
    "ModalityLUTSequence",
    "WindowCenter",
    "WindowWidth",
    "WindowCenterWidthExplanation",
    "VOILUTFunction",
    "VOILUTSequence",
    "PixelPaddingValue",
    "PixelPaddingRangeLimit",
    "SmallestImagePixelValue",
    "LargestImagePixelValue",
    "SmallestPixelValueInSeries",
    "LargestPixelValueInSeries",
    "PixelDataProviderURL",
    "ExtendedOffsetTable",
    "ExtendedOffsetTableLengths",
    "FloatPixelData",
    "DoubleFloatPixelData",
    "PresentationLUTShape",
    "ColorSpace",
    "PixelAspectRatio",
)


@dataclass(frozen=True)
class DicomResult:
    """What was written. Holds no PHI: new UIDs only (the original->new mapping went to the mapper)."""

    output_path: Path
    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    transfer_syntax_uid: str
    frames: int
    rows: int
    columns: int
    source_sop_class_uid: str
    sop_class_changed: bool
    lossy: bool
    method_codes: tuple[str, ...]
    warnings: tuple[str, ...] = field(default=())


def output_sop_class(source_sop_class: str, frames: int) -> str:
    if source_sop_class in RGB_SOP_CLASSES:
        return source_sop_class
    return SC_IMAGE if frames == 1 else MF_TRUE_COLOR_SC


def mask_dicom(
    src: Path,
    dst: Path,
    *,
    mask_frames: MaskFrames,
    options: DeidOptions,
    keys: DeidKeys,
    uid_map: UidMapper,
    frames_synthetic: bool = False,
    video_codec: Literal["h264", "native"] = "h264",
    limits: ReadLimits | None = None,
    max_output_bytes: int = 4 * 1024**3 - 16,
    method_text: str = "DigitalMask face replacement; PS3.15 Basic Profile",
) -> DicomResult:
    """Mask every frame of ``src`` with ``mask_frames`` and write a de-identified instance to ``dst``.

    ``mask_frames(frames, fps)`` must yield one RGB uint8 frame of the same shape per input frame
    (models.api.DigitalMask.mask_frames). ``frames_synthetic=True`` asserts that the masked frames
    contain nothing of the original pixels (so burned-in text cannot survive). Raises DicomError."""
    ds = read_dicom(src, limits)
    info = pixel_info(ds)
    source_sop = str(ds.SOPClassUID)
    warnings: list[str] = []

    counted = _Counter(iter_rgb_frames(ds, info))
    masked = mask_frames(counted, info.fps)
    out_sop = output_sop_class(source_sop, info.number_of_frames)
    video = (out_sop in VIDEO_SOP_CLASSES or info.is_video_stream) and video_codec == "h264"
    if video and not h264_encodable(info.rows, info.columns, info.fps):
        video = False
        warnings.append("video size or rate outside H.264 Level 4.1: written as native multi-frame")
    try:
        if video:
            fps = info.fps or 25.0
            stream, n_out = encode_h264(masked, info.rows, info.columns, fps)
            pixel_bytes = encapsulate_stream(stream)
            ts = UID(AVC_HP41_TS)
            ratio = (info.rows * info.columns * 3 * max(n_out, 1)) / max(len(stream), 1)
        else:
            pixel_bytes, n_out = native_rgb_pixel_data(masked, info.rows, info.columns, max_output_bytes)
            ts = ExplicitVRLittleEndian
            ratio = 0.0
    except DicomError:
        raise
    except Exception as exc:  # a failing masker or encoder must not leak its message (may hold PHI)
        reason = getattr(exc, "reason", None)  # models.api.MaskingError: reason is PHI-free by contract
        detail = reason if isinstance(reason, str) else type(exc).__name__
        raise DicomError(f"masking failed ({detail})") from exc
    if n_out != counted.n:
        raise DicomError(f"masking returned {n_out} frames for {counted.n} input frames")
    if n_out == 0:
        raise DicomError("no image: no frame could be decoded")
    if counted.n != info.number_of_frames:
        warnings.append(f"header declares {info.number_of_frames} frames, stream has {counted.n}")
    if out_sop == SC_IMAGE and n_out > 1:
        out_sop = MF_TRUE_COLOR_SC
    if out_sop != source_sop:
        warnings.append("SOP class changed: the source IOD cannot hold a colour image")

    codes = deidentify(
        ds,
        sop_class_uid=out_sop,
        options=options,
        keys=keys,
        uid_map=uid_map,
        frames_synthetic=frames_synthetic,
        method_text=method_text,
    )
    _write_pixel_module(ds, info, out_sop, source_sop, pixel_bytes, n_out, video, frames_synthetic)
    lossy = _lossy_bookkeeping(ds, info, video, ratio)
    ds.SOPClassUID = out_sop
    if out_sop != source_sop:
        _make_secondary_capture(ds, out_sop)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(out_sop)
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ts
    meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION
    out = Dataset()
    out.update(ds)  # a fresh data set: no reader state (endianness, raw elements) carried over
    out.file_meta = meta
    out.preamble = b"\x00" * 128
    _save(out, Path(dst))
    return DicomResult(
        output_path=Path(dst),
        sop_class_uid=out_sop,
        sop_instance_uid=str(out.SOPInstanceUID),
        study_instance_uid=str(out.get("StudyInstanceUID", "")),
        series_instance_uid=str(out.get("SeriesInstanceUID", "")),
        transfer_syntax_uid=str(ts),
        frames=n_out,
        rows=info.rows,
        columns=info.columns,
        source_sop_class_uid=source_sop,
        sop_class_changed=out_sop != source_sop,
        lossy=lossy,
        method_codes=tuple(codes),
        warnings=tuple(warnings),
    )


class _Counter:
    """Counts the frames the masker actually pulled."""

    def __init__(self, frames: Iterator[np.ndarray]) -> None:
        self._frames = frames
        self.n = 0

    def __iter__(self) -> Iterator[np.ndarray]:
        for f in self._frames:
            self.n += 1
            yield f


def _write_pixel_module(
    ds: Dataset,
    info: PixelInfo,
    out_sop: str,
    source_sop: str,
    pixels: bytes,
    n: int,
    video: bool,
    frames_synthetic: bool,
) -> None:
    for kw in _STALE_PIXEL_KEYWORDS:
        if kw in ds:
            delattr(ds, kw)
    ds.Rows, ds.Columns = info.rows, info.columns
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "YBR_PARTIAL_420" if video else "RGB"
    ds.PlanarConfiguration = 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelRepresentation = 0
    multi = n > 1 or "NumberOfFrames" in ds or out_sop in VIDEO_SOP_CLASSES or out_sop == MF_TRUE_COLOR_SC
    if multi:
        ds.NumberOfFrames = n
        fps = info.fps or 25.0
        if "FrameIncrementPointer" not in ds or video or out_sop == MF_TRUE_COLOR_SC:
            ds.FrameTime = f"{1000.0 / fps:.4f}"[:16]
            ds.FrameIncrementPointer = 0x00181063
        if video:
            ds.CineRate = round(fps)
    elif "NumberOfFrames" in ds:
        del ds.NumberOfFrames
    ds["PixelData"] = DataElement(0x7FE00010, "OB", pixels)
    if video:
        ds["PixelData"].is_undefined_length = True
    image_type = list(ds.get("ImageType", []) or [])
    ds.ImageType = ["DERIVED", *(image_type[1:] or ["SECONDARY"])]
    ds.RecognizableVisualFeatures = "NO"
    if frames_synthetic:
        ds.BurnedInAnnotation = "NO"
    elif "BurnedInAnnotation" not in ds or not str(ds.BurnedInAnnotation).strip():
        if iod.attribute_type(out_sop, (), "BurnedInAnnotation") in ("1", "1C", "2"):
            ds.BurnedInAnnotation = "YES"  # unknown: never claim NO without proof
        elif "BurnedInAnnotation" in ds:
            del ds.BurnedInAnnotation


def _lossy_bookkeeping(ds: Dataset, info: PixelInfo, video: bool, ratio: float) -> bool:
    lossy = info.source_lossy or video
    for kw in ("LossyImageCompressionMethod", "LossyImageCompressionRatio"):
        if kw in ds:
            delattr(ds, kw)
    if not lossy:
        if info.source_lossy is False and "LossyImageCompression" in ds:
            ds.LossyImageCompression = "00"
        return False
    ds.LossyImageCompression = "01"
    methods = list(info.lossy_methods)
    ratios = list(info.lossy_ratios)
    if video:
        methods.append("ISO_14496_10")
        ratios.append(f"{ratio:.2f}"[:16])
    if methods:
        ds.LossyImageCompressionMethod = methods
        if len(ratios) == len(methods):
            ds.LossyImageCompressionRatio = ratios
    return True


def _make_secondary_capture(ds: Dataset, sop_class_uid: str) -> None:
    """A monochrome IOD's image becomes a colour SC: drop attributes the SC IOD does not define
    (modality acquisition parameters, image plane) and fill the SC Equipment module."""
    known = {kw for (path, kw) in iod.attribute_rules(sop_class_uid) if not path}
    for elem in list(ds):
        kw = elem.keyword
        if kw and kw not in known and not elem.tag.is_private and elem.tag.group != 0x0002:
            del ds[elem.tag]
    if not str(ds.get("ConversionType", "")).strip():
        ds.ConversionType = "WSD"


def _save(ds: Dataset, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".dmask-", suffix=".dcm", dir=dst.parent)
    os.close(fd)
    try:
        ds.save_as(tmp, enforce_file_format=True)
        os.replace(tmp, dst)
    except Exception as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, DicomError):
            raise
        raise DicomError(f"output could not be written ({type(exc).__name__})") from exc
