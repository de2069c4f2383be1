"""DICOMweb driven by dicomweb-client, as a PACS or viewer integrates: STOW-RS in, QIDO-RS finds the
masked instance, WADO-RS returns it (parsed by pydicom: de-identified), its metadata, frames, bulk
data and a rendered frame that decodes as an image."""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from dicomweb_support import Node, poll
from PIL import Image

FACE = "dicom/ot_pal8_face.dcm"


def client(node: Node, key: str) -> DICOMwebClient:
    return DICOMwebClient(url=f"{node.url}/dicomweb", headers={"Authorization": f"Bearer {key}"})


def val(item: dict[str, Any], tag: str) -> Any:
    return item.get(tag, {}).get("Value", [None])[0]


@dataclass
class Stored:
    key: str
    record_id: str
    original: pydicom.Dataset
    retrieve_url: str
    study: str
    series: str
    sop: str
    dw: DICOMwebClient


@pytest.fixture(scope="module")
def stored(node: Node, shared_data: Path) -> Stored:
    """One face instance stored by STOW-RS for a fresh tenant, masked, and found by QIDO-RS."""
    key = node.tenant("media:write", "media:read")
    record_id = f"MRN-{uuid.uuid4().hex[:10]}"
    original = pydicom.dcmread(shared_data / FACE, force=True)
    original.PatientID, original.PatientName = "PID-0042-7731", "DOE^JANE"  # an identifying header
    original.StudyDate, original.Modality = "20240315", "OT"
    dw = client(node, key)
    answer = dw.store_instances([original], additional_params={"record_id": record_id})
    (ref,) = answer.ReferencedSOPSequence
    assert ref.ReferencedSOPInstanceUID == original.SOPInstanceUID
    url = str(ref.RetrieveURL)
    assert url.startswith(f"{node.url}/dicomweb/studies/")
    study, series, sop = (
        url.split("/studies/")[1].replace("/series/", "/").replace("/instances/", "/").split("/")
    )
    # A PACS polls QIDO-RS until the masked instance appears (no /v1 job polling needed).
    poll(lambda: dw.search_for_instances(search_filters={"SOPInstanceUID": sop}), 240, "masked instance")
    return Stored(key, record_id, original, url, study, series, sop, dw)


def test_qido_finds_the_masked_study_by_pseudonym_date_and_modality(stored: Stored) -> None:
    dw = stored.dw
    (study,) = dw.search_for_studies()
    assert val(study, "0020000D") == stored.study != stored.original.StudyInstanceUID
    pseudonym = val(study, "00100020")
    assert pseudonym and pseudonym != stored.original.PatientID
    assert val(study, "00201208") == 1 and val(study, "00201206") == 1
    assert val(study, "00081190") == stored.retrieve_url.split("/series/")[0]
    assert len(dw.search_for_studies(search_filters={"PatientID": pseudonym})) == 1
    assert dw.search_for_studies(search_filters={"PatientID": stored.original.PatientID}) == []
    date = val(study, "00080020")
    if date:
        assert len(dw.search_for_studies(search_filters={"StudyDate": f"{date}-{date}"})) == 1
        assert dw.search_for_studies(search_filters={"StudyDate": "-18000101"}) == []
    modality = study["00080061"]["Value"]
    assert len(dw.search_for_studies(search_filters={"ModalitiesInStudy": modality[0]})) == 1
    assert dw.search_for_studies(search_filters={"ModalitiesInStudy": "XA"}) == []
    assert dw.search_for_studies(offset=1) == []
    (series,) = dw.search_for_series(stored.study)
    assert val(series, "0020000E") == stored.series and val(series, "00201209") == 1
    (inst,) = dw.search_for_instances(stored.study, stored.series, fields=["PatientName"])
    assert val(inst, "00080018") == stored.sop and "00100010" in inst
    assert dw.search_for_instances(search_filters={"SOPInstanceUID": stored.original.SOPInstanceUID}) == []


def test_wado_instance_is_the_masked_deidentified_object(stored: Stored) -> None:
    ds = stored.dw.retrieve_instance(stored.study, stored.series, stored.sop)
    assert ds.SOPInstanceUID == stored.sop != stored.original.SOPInstanceUID
    assert ds.PatientIdentityRemoved == "YES"
    assert str(ds.PatientName) != str(stored.original.PatientName)
    assert ds.PatientID != stored.original.PatientID
    assert ds.pixel_array.shape[:2] == (stored.original.Rows, stored.original.Columns)
    (whole,) = stored.dw.retrieve_study(stored.study)
    assert whole.SOPInstanceUID == stored.sop
    # The original's UIDs name nothing here: nothing of the unmasked object is ever served.
    with pytest.raises(requests.HTTPError) as err:
        stored.dw.retrieve_instance(
            stored.original.StudyInstanceUID,
            stored.original.SeriesInstanceUID,
            stored.original.SOPInstanceUID,
        )
    assert err.value.response.status_code == 404


def test_wado_metadata_frames_bulkdata_and_rendered_frame(stored: Stored) -> None:
    dw = stored.dw
    (meta,) = dw.retrieve_study_metadata(stored.study)
    header = pydicom.Dataset.from_json(meta, bulk_data_uri_handler=lambda *_: b"")
    assert header.SOPInstanceUID == stored.sop and header.PatientIdentityRemoved == "YES"
    rows, cols = int(header.Rows), int(header.Columns)
    (frame,) = dw.retrieve_instance_frames(stored.study, stored.series, stored.sop, frame_numbers=[1])
    assert len(frame) == rows * cols * 3
    (pixels,) = dw.retrieve_bulkdata(meta["7FE00010"]["BulkDataURI"])
    assert len(pixels) >= rows * cols * 3
    for media_type, fmt in (("image/jpeg", "JPEG"), ("image/png", "PNG")):
        data = dw.retrieve_instance_frames_rendered(
            stored.study, stored.series, stored.sop, frame_numbers=[1], media_types=(media_type,)
        )
        image = Image.open(io.BytesIO(data))
        assert image.format == fmt and image.size == (cols, rows)


def test_another_tenant_gets_404_and_finds_nothing(node: Node, stored: Stored) -> None:
    other = client(node, node.tenant("media:read"))
    assert other.search_for_studies() == []
    assert other.search_for_instances(search_filters={"StudyInstanceUID": stored.study}) == []
    bodies = []
    for study, series, sop in ((stored.study, stored.series, stored.sop), ("1.2.3", "1.2.3.4", "1.2.3.4.5")):
        with pytest.raises(requests.HTTPError) as err:
            other.retrieve_instance(study, series, sop)
        assert err.value.response.status_code == 404
        body = err.value.response.json()
        bodies.append({k: v for k, v in body.items() if k not in ("instance", "request_id")})
    assert bodies[0] == bodies[1]  # another tenant's UID reads exactly like an unknown one


def test_second_stow_of_the_same_instance_is_recognised(node: Node, stored: Stored) -> None:
    again = stored.dw.store_instances([stored.original], additional_params={"record_id": stored.record_id})
    (ref,) = again.ReferencedSOPSequence
    assert ref.WarningReason == 0x0111 and str(ref.RetrieveURL) == stored.retrieve_url
    with node.http(stored.key) as c:
        assert len(c.get(f"/v1/records/{stored.record_id}/media").json()["items"]) == 1


def test_every_search_and_retrieval_is_audited(node: Node, stored: Stored) -> None:
    auditor = node.key("compliance", "audit:read")
    stored.dw.search_for_series()
    stored.dw.retrieve_series_metadata(stored.study, stored.series)
    with node.http(auditor) as c:
        reads = c.get("/v1/audit", params={"record": stored.record_id, "action": "dicomweb.read"}).json()
        searches = c.get("/v1/audit", params={"action": "dicomweb.search"}).json()["items"]
    whats = {e["detail"]["what"] for e in reads["items"]}
    assert {"instances", "metadata", "frames", "bulkdata", "rendered"} <= whats
    assert any(e["detail"]["level"] == "series" for e in searches)
    assert all(stored.original.PatientID not in str(e["detail"]) for e in searches)
