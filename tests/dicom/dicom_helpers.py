"""Helpers for the DICOM path tests: shared data, PHI-laden VL Photographic / Video Photographic objects."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from services.dicom.pixels import encapsulate_stream, encode_h264

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("DMASK_SHARED_DATA", REPO.parent / "shared" / "data"))
VL_PHOTO = "1.2.840.10008.5.1.4.1.1.77.1.4"
VIDEO_PHOTO = "1.2.840.10008.5.1.4.1.1.77.1.4.1"
PRIVATE_CREATOR = "ACME HOSPITAL PACS 1.0"

# Values that must never survive in an output file (checked by byte search as well).
PHI_STRINGS = [
    "Doe^Jane",
    "MRN-0012345",
    "ACC-778899",
    "St Elsewhere General",
    "12 Hospital Road",
    "Dr^Referring",
    "Tech^Operator",
    "CAM-SN-555",
    "LENS-SN-42",
    "Jane Doe Camera",
    "secret private note",
    "OTHER-ID-9",
    "555-0100",
]


def shared(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not available: {path}")
    return path


def invert(frames: Iterable[np.ndarray], fps: float | None) -> Iterator[np.ndarray]:
    """A real, simple pixel transform to check plumbing (NOT masking)."""
    for f in frames:
        yield 255 - f


def phi_header(sop_class: str, *, study_uid: str, series_uid: str, sop_uid: str, for_uid: str) -> Dataset:
    """A header full of identifying information, as a hospital camera/EHR would send it."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = for_uid
    ds.InstanceCreationDate, ds.InstanceCreationTime = "20240305", "101500"
    ds.InstanceCreatorUID = "1.2.826.0.1.3680043.99.1"
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "MRN-0012345"
    ds.IssuerOfPatientID = "HOSP-A"
    ds.OtherPatientIDs = "OTHER-ID-9"
    ds.PatientBirthDate = "19800214"
    ds.PatientSex = "F"
    ds.PatientAge = "044Y"
    ds.PatientSize = "1.68"
    ds.PatientWeight = "61"
    ds.PatientAddress = "12 Hospital Road, Springfield"
    ds.PatientTelephoneNumbers = "555-0100"
    ds.EthnicGroup = "Martian"
    ds.AdditionalPatientHistory = "Patient Jane Doe, seen after fall at home"
    ds.AccessionNumber = "ACC-778899"
    ds.StudyID = "S-4711"
    ds.StudyDate, ds.StudyTime = "20240305", "101010"
    ds.SeriesDate, ds.SeriesTime = "20240305", "101200"
    ds.ContentDate, ds.ContentTime = "20240305", "101300"
    ds.AcquisitionDateTime = "20240305101300.000000"
    ds.StudyDescription = "Face photo Jane Doe"
    ds.SeriesDescription = "Clinic photos"
    ds.ReferringPhysicianName = "Dr^Referring"
    ds.OperatorsName = "Tech^Operator"
    ds.PerformingPhysicianName = "Dr^Performing"
    ds.InstitutionName = "St Elsewhere General"
    ds.InstitutionAddress = "12 Hospital Road, Springfield"
    ds.StationName = "PHOTO-ROOM-3"
    ds.DeviceSerialNumber = "CAM-SN-555"
    ds.Manufacturer = "ACME"
    ds.ManufacturerModelName = "PhotoCam 9"
    ds.Modality = "XC"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.ImageComments = "Jane Doe left profile"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.PatientOrientation = ""
    ds.BurnedInAnnotation = "YES"
    # VL Photographic Acquisition / EXIF-like attributes and GPS (VL Photographic Geolocation).
    ds.CameraOwnerName = "Jane Doe Camera"
    ds.LensMake = "ACME Optics"
    ds.LensModel = "Zoom 35"
    ds.LensSerialNumber = "LENS-SN-42"
    ds.MakerNote = b"maker-secret"
    ds.GPSLatitudeRef = "N"
    ds.GPSLatitude = ["51.5", "0.1", "0.2"]
    ds.GPSLongitudeRef = "W"
    ds.GPSLongitude = ["0.12", "0.1", "0.2"]
    ds.GPSDateStamp = "20240305"
    # Sequences with identifying content.
    req = Dataset()
    req.RequestedProcedureID = "RP-1"
    req.ScheduledProcedureStepID = "SPS-1"
    req.RequestedProcedureDescription = "Photo of Jane Doe"
    ds.RequestAttributesSequence = [req]
    ref_patient = Dataset()
    ref_patient.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.1.1"
    ref_patient.ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.99.77"
    ds.ReferencedPatientSequence = [ref_patient]
    icon = Dataset()
    icon.Rows, icon.Columns, icon.SamplesPerPixel = 4, 4, 1
    icon.PhotometricInterpretation = "MONOCHROME2"
    icon.BitsAllocated, icon.BitsStored, icon.HighBit, icon.PixelRepresentation = 8, 8, 7, 0
    icon.PixelData = bytes(range(16))
    ds.IconImageSequence = [icon]
    ds.AcquisitionContextSequence = Sequence()
    # Private block.
    block = ds.private_block(0x0029, PRIVATE_CREATOR, create=True)
    block.add_new(0x10, "LO", "secret private note")
    block.add_new(0x11, "UN", b"MRN-0012345")
    # Overlay (group 6000) and curve (group 5000) with burned annotation.
    ds.add_new(0x60000010, "US", 4)
    ds.add_new(0x60000011, "US", 4)
    ds.add_new(0x60000040, "CS", "G")
    ds.add_new(0x60000050, "SS", [1, 1])
    ds.add_new(0x60000100, "US", 1)
    ds.add_new(0x60000102, "US", 0)
    ds.add_new(0x60004000, "LT", "Jane Doe annotation")
    ds.add_new(0x60003000, "OW", b"\xff\xff")
    ds.add_new(0x50000005, "US", 1)
    ds.add_new(0x50003000, "OW", b"\x01\x00")
    return ds


def _meta(ds: Dataset, ts: str) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ts
    meta.SourceApplicationEntityTitle = "STELSEWHERE"
    ds.file_meta = meta
    ds.preamble = b"\x00" * 128


def write_vl_photo(
    path: Path,
    rgb: np.ndarray,
    *,
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_uid: str | None = None,
) -> Dataset:
    ds = phi_header(
        VL_PHOTO,
        study_uid=study_uid or generate_uid(),
        series_uid=series_uid or generate_uid(),
        sop_uid=sop_uid or generate_uid(),
        for_uid="1.2.826.0.1.3680043.99.5",
    )
    ds.Rows, ds.Columns = rgb.shape[:2]
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.LossyImageCompression = "00"
    ds.PixelData = np.ascontiguousarray(rgb, dtype=np.uint8).tobytes()
    _meta(ds, ExplicitVRLittleEndian)
    ds.save_as(path, enforce_file_format=True)
    return ds


def load_photo(name: str, max_side: int = 320) -> np.ndarray:
    img = Image.open(shared("faces", name)).convert("RGB")
    img.thumbnail((max_side, max_side))
    w, h = img.size
    return np.asarray(img.crop((0, 0, w - w % 2, h - h % 2)))


def video_frames(name: str, n: int) -> tuple[list[np.ndarray], float]:
    frames = []
    with av.open(str(shared("videos", name))) as c:
        stream = c.streams.video[0]
        fps = float(stream.average_rate or 25)
        for frame in c.decode(video=0):
            img = frame.to_ndarray(format="rgb24")
            frames.append(img[: img.shape[0] // 2 * 2 : 2, : img.shape[1] // 2 * 2 : 2].copy())
            if len(frames) == n:
                break
    return frames, fps


def write_video_photo(path: Path, frames: list[np.ndarray], fps: float) -> Dataset:
    rows, cols = frames[0].shape[:2]
    stream, n = encode_h264(frames, rows, cols, fps, preset="ultrafast")
    ds = phi_header(
        VIDEO_PHOTO,
        study_uid=generate_uid(),
        series_uid=generate_uid(),
        sop_uid=generate_uid(),
        for_uid="1.2.826.0.1.3680043.99.6",
    )
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "YBR_PARTIAL_420"
    ds.PlanarConfiguration = 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.NumberOfFrames = n
    ds.FrameTime = f"{1000 / fps:.3f}"
    ds.FrameIncrementPointer = 0x00181063
    ds.CineRate = round(fps)
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionMethod = "ISO_14496_10"
    ds.PixelData = encapsulate_stream(stream)
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    _meta(ds, "1.2.840.10008.1.2.4.102")
    ds.save_as(path, enforce_file_format=True)
    return ds
