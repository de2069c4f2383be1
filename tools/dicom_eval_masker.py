"""A ``maskeval`` masker that goes through the DICOM path, so the evaluation tool's privacy check
measures the pixels of masked DICOM objects (issue #5), not of masked photos.

    python tools/dicom_eval_masker.py IN_PHOTO OUT_PHOTO

1. IN_PHOTO is decoded upright (EXIF applied) and wrapped in a VL Photographic Image with an
   identifying header, as a hospital camera would send it;
2. it is masked by ``dmask mask`` (the same ``services.dicom.mask_dicom`` call the worker makes);
3. the output must be de-identified (Patient Identity Removed YES; UIDs, patient name, ID and
   birth date not carried over), and its decoded pixels are written to OUT_PHOTO (lossless PNG, or JPEG at
   quality 95 when maskeval asks for ``.jpg``), which maskeval then attacks.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.media import read_photo, write_photo  # noqa: E402
from services.dicom import iter_rgb_frames, pixel_info, read_dicom  # noqa: E402
from workers.mask_cli import mask_command  # noqa: E402

VL_PHOTOGRAPHIC_IMAGE = "1.2.840.10008.5.1.4.1.1.77.1.4"


def vl_photo(rgb: np.ndarray, patient_name: str) -> Dataset:
    """A VL Photographic Image holding ``rgb`` natively, with the header fields that identify."""
    ds = Dataset()
    ds.SOPClassUID = VL_PHOTOGRAPHIC_IMAGE
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = patient_name
    ds.PatientID = "MRN-EVAL-0001"
    ds.PatientBirthDate = "19800214"
    ds.PatientSex = "O"
    ds.StudyDate, ds.StudyTime = "20260305", "101010"
    ds.AccessionNumber = "ACC-EVAL"
    ds.Modality = "XC"
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    ds.Rows, ds.Columns = rgb.shape[:2]
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.BurnedInAnnotation = "NO"
    ds.PixelData = np.ascontiguousarray(rgb, dtype=np.uint8).tobytes()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.preamble = b"\x00" * 128
    return ds


def masked_pixels(masked: Path, source: Dataset) -> np.ndarray:
    """The single RGB frame of a masked instance, after checking it was de-identified."""
    out = read_dicom(masked)
    if out.get("PatientIdentityRemoved") != "YES":
        raise SystemExit("masked DICOM does not declare Patient Identity Removed YES")
    for keyword in ("SOPInstanceUID", "StudyInstanceUID", "PatientName", "PatientID", "PatientBirthDate"):
        if str(out.get(keyword, "")) and str(out.get(keyword)) == str(source.get(keyword)):
            raise SystemExit(f"masked DICOM kept the source {keyword}")
    frames = list(iter_rgb_frames(out, pixel_info(out)))
    if len(frames) != 1:
        raise SystemExit(f"masked DICOM holds {len(frames)} frames, expected 1")
    return frames[0]


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    src, dst = Path(argv[0]), Path(argv[1])
    rgb = read_photo(src)
    with tempfile.TemporaryDirectory(prefix="dmask-eval-") as tmp:
        source = vl_photo(rgb, patient_name="Eval^Subject")
        src_dcm, out_dcm = Path(tmp) / "in.dcm", Path(tmp) / "out.dcm"
        source.save_as(src_dcm, enforce_file_format=True)
        rc = mask_command([str(src_dcm), "-o", str(out_dcm), "--record-id", "maskeval"])
        if rc != 0:
            return rc
        pixels = masked_pixels(out_dcm, source)
    if pixels.shape != rgb.shape:
        raise SystemExit(f"masked frame is {pixels.shape}, source was {rgb.shape}")
    fmt = "JPEG" if dst.suffix.lower() in (".jpg", ".jpeg") else dst.suffix.lstrip(".").upper()
    write_photo(pixels, dst, fmt, quality=95)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
