"""`dmask mask` takes a DICOM file in and gives a masked, de-identified DICOM file out, keyed by the
deployment's HMAC key and the record it belongs to."""

from __future__ import annotations

from pathlib import Path

import pydicom
from dicom_helpers import shared

from services.dicom.uids import keyed_uid, service_uid_key
from services.settings import get_settings
from workers.mask_cli import mask_command


def test_a_dicom_photo_is_masked_and_de_identified_from_the_command_line(tmp_path: Path) -> None:
    src = shared("dicom", "ot_pal8_face.dcm")
    out = tmp_path / "masked.dcm"
    rc = mask_command(
        [str(src), "-o", str(out), "--record-id", "MRN-CLI-1", "--metrics", str(tmp_path / "m.json")]
    )
    assert rc == 0
    before, after = pydicom.dcmread(src, force=True), pydicom.dcmread(out)
    assert after.PatientIdentityRemoved == "YES"
    assert after.PatientID != before.get("PatientID") and after.SOPInstanceUID != before.SOPInstanceUID
    assert (after.Rows, after.Columns) == (before.Rows, before.Columns)
    assert (tmp_path / "m.json").exists()


def test_the_command_line_maps_uids_as_the_service_does(tmp_path: Path) -> None:
    """One study masked through the API and through `dmask mask` must get the same UIDs."""
    src = shared("dicom", "ot_pal8_face.dcm")
    out = tmp_path / "masked.dcm"
    assert mask_command([str(src), "-o", str(out), "--record-id", "MRN-CLI-2"]) == 0
    key = service_uid_key(get_settings().hmac_key.get_secret_value().encode("utf-8"))
    before, after = pydicom.dcmread(src, force=True), pydicom.dcmread(out)
    assert after.SOPInstanceUID == keyed_uid(key, before.SOPInstanceUID)
    assert after.StudyInstanceUID == keyed_uid(key, before.StudyInstanceUID)


def test_the_worker_and_the_command_line_claim_the_same_clean_pixels(tmp_path: Path) -> None:
    """The model draws whole frames, so both routes write Burned In Annotation "NO" and list the Clean
    Pixel Data option (113101): a file masked either way says the same about its pixels."""
    from workers.runner import mask_dicom

    src = shared("dicom", "ot_pal8_face.dcm")
    by_cli = tmp_path / "cli.dcm"
    assert mask_command([str(src), "-o", str(by_cli), "--record-id", "MRN-CLI-3"]) == 0
    work = tmp_path / "worker"
    work.mkdir()
    by_worker = mask_dicom(get_settings(), src, work, lambda _: None, "MRN-CLI-3").path
    claims = []
    for path in (by_cli, by_worker):
        ds = pydicom.dcmread(path)
        claims.append((ds.BurnedInAnnotation, [c.CodeValue for c in ds.DeidentificationMethodCodeSequence]))
    assert claims[0] == claims[1]
    assert claims[0][0] == "NO" and "113101" in claims[0][1]
