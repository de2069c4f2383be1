"""PS3.18 conformance on the wire (media types, multipart framing, status codes, failure reasons) and
bad input: checked with plain HTTP, because here the bytes themselves are the specification."""

from __future__ import annotations

import copy
import email.parser
import io
import uuid
from pathlib import Path

import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from dicomweb_support import Node, poll
from pydicom.encaps import encapsulate
from pydicom.uid import UID

BOUNDARY = "conformance-boundary"
STOW_TYPE = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
# PS3.18 Table 10.5.3 / PS3.4 status codes used as FailureReason
SOP_CLASS_NOT_SUPPORTED, DOES_NOT_MATCH, TS_NOT_SUPPORTED, CANNOT_UNDERSTAND = 0x0122, 0xA900, 0xC122, 0xC000
PHI = "PID-SECRET-99"


def related(*parts: bytes) -> bytes:
    out = b"".join(
        f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode() + p + b"\r\n" for p in parts
    )
    return out + f"--{BOUNDARY}--\r\n".encode()


def encode(ds: pydicom.Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def failures(body: dict) -> list[int]:
    return [i["00081197"]["Value"][0] for i in body.get("00081198", {}).get("Value", [])]


@pytest.fixture(scope="module")
def face(node: Node, shared_data: Path) -> tuple[str, str, str, str]:
    """(key, study, series, sop) of one masked face instance of a fresh tenant."""
    key = node.tenant("media:write", "media:read")
    ds = pydicom.dcmread(shared_data / "dicom/ot_pal8_face.dcm", force=True)
    dw = DICOMwebClient(url=f"{node.url}/dicomweb", headers={"Authorization": f"Bearer {key}"})
    url = str(
        dw.store_instances([ds], additional_params={"record_id": "MRN-conf"})
        .ReferencedSOPSequence[0]
        .RetrieveURL
    )
    sop = url.rsplit("/", 1)[1]
    (inst,) = poll(lambda: dw.search_for_instances(search_filters={"SOPInstanceUID": sop}), 240, "instance")
    return key, inst["0020000D"]["Value"][0], inst["0020000E"]["Value"][0], sop


def test_stow_refuses_what_cannot_be_masked_with_the_failure_reason(node: Node, shared_data: Path) -> None:
    key = node.tenant("media:write", "media:read")
    record_id = f"MRN-{uuid.uuid4().hex[:8]}"
    rtplan = (shared_data / "dicom/rtplan_no_pixels.dcm").read_bytes()
    ct = pydicom.dcmread(shared_data / "dicom/ct_small.dcm", force=True)
    no_pixels = copy.deepcopy(ct)
    del no_pixels.PixelData
    truncated = copy.deepcopy(ct)
    truncated.PixelData = ct.PixelData[: len(ct.PixelData) // 2]
    j2k_part2 = copy.deepcopy(ct)
    j2k_part2.PixelData = encapsulate([ct.PixelData])
    j2k_part2.file_meta.TransferSyntaxUID = UID("1.2.840.10008.1.2.4.92")  # JPEG 2000 Part 2: no decoder here
    with node.http(key) as c:
        r = c.post(
            "/dicomweb/studies",
            params={"record_id": record_id},
            headers={"Content-Type": STOW_TYPE},
            content=related(rtplan, encode(no_pixels), encode(truncated), encode(j2k_part2), b"not dicom"),
        )
        assert r.status_code == 409 and r.headers["content-type"] == "application/dicom+json", r.text
        assert failures(r.json()) == [
            SOP_CLASS_NOT_SUPPORTED,
            DOES_NOT_MATCH,
            DOES_NOT_MATCH,
            TS_NOT_SUPPORTED,
            CANNOT_UNDERSTAND,
        ]
        assert "00081199" not in r.json()  # nothing claimed as stored
        assert c.get(f"/v1/records/{record_id}/media").json()["items"] == []  # and nothing was


def test_stow_retrieve_url_comes_from_the_configured_base_not_the_host_header(
    node: Node, shared_data: Path
) -> None:
    key = node.tenant("media:write")
    mr = (shared_data / "dicom/mr_small.dcm").read_bytes()
    with node.http(key) as c:
        r = c.post(
            "/dicomweb/studies",
            params={"record_id": "MRN-host"},
            content=related(mr),
            headers={"Content-Type": STOW_TYPE, "Host": "attacker.example:81"},
        )
    assert r.status_code == 200, r.text
    (item,) = r.json()["00081199"]["Value"]
    assert item["00081190"]["Value"][0].startswith(node.url + "/dicomweb/studies/")


def test_wado_multipart_framing(node: Node, face: tuple[str, str, str, str]) -> None:
    key, study, series, sop = face
    with node.http(key) as c:
        r = c.get(
            f"/dicomweb/studies/{study}/series/{series}/instances/{sop}",
            headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'},
        )
    assert r.status_code == 200
    ctype = r.headers["content-type"]
    assert ctype.startswith('multipart/related; type="application/dicom"; boundary=')
    boundary = ctype.split("boundary=", 1)[1]
    assert r.content.startswith(f"--{boundary}\r\n".encode()) and r.content.endswith(
        f"\r\n--{boundary}--\r\n".encode()
    )
    msg = email.parser.BytesParser().parsebytes(b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + r.content)
    (part,) = msg.get_payload()
    assert part.get_content_type() == "application/dicom" and "transfer-syntax=" in part["Content-Type"]
    assert part["Content-Location"].endswith(f"/instances/{sop}")
    ds = pydicom.dcmread(io.BytesIO(part.get_payload(decode=True)))
    assert ds.SOPInstanceUID == sop and ds.PatientIdentityRemoved == "YES"


@pytest.mark.parametrize(
    ("path", "accept"),
    [
        ("", "application/zip"),
        ("", 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50'),
        ("/metadata", "application/dicom+xml"),
        ("/frames/1/rendered", "image/gif"),
    ],
)
def test_wado_answers_406_to_what_it_cannot_produce(
    node: Node, face: tuple[str, str, str, str], path: str, accept: str
) -> None:
    key, study, series, sop = face
    with node.http(key) as c:
        r = c.get(
            f"/dicomweb/studies/{study}/series/{series}/instances/{sop}{path}", headers={"Accept": accept}
        )
    assert r.status_code == 406 and r.headers["content-type"] == "application/problem+json"


def test_wado_bad_frames_and_unknown_uids(node: Node, face: tuple[str, str, str, str]) -> None:
    key, study, series, sop = face
    base = f"/dicomweb/studies/{study}/series/{series}/instances/{sop}"
    with node.http(key) as c:
        assert c.get(f"{base}/frames/0").status_code == 400
        assert c.get(f"{base}/frames/a,b").status_code == 400
        assert c.get(f"{base}/frames/99").status_code == 404
        assert c.get(f"{base}/frames/99/rendered").status_code == 404
        assert c.get(f"{base}/bulkdata/7FE0001X").status_code == 404
        for path in (
            "/dicomweb/studies/1.2.999",
            f"/dicomweb/studies/{study}/series/1.2.999/metadata",
            f"/dicomweb/studies/{study}/series/{series}/instances/1.2.999/rendered",
            "/dicomweb/studies/x!",
        ):
            r = c.get(path)
            assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json", path


@pytest.mark.parametrize(
    "params",
    [
        {"StudyDate": "2020-13-45"},
        {"StudyDate": "20201231-20200101"},
        {"limit": "ten"},
        {"offset": "-1"},
        {"includefield": "NotAKeyword"},
        {"StudyInstanceUID": f"1.2.{PHI}"},
        {"fuzzymatching": "maybe"},
        {"PatientID": "a\x00b"},
    ],
)
def test_qido_malformed_parameters_are_400_without_echo(node: Node, params: dict[str, str]) -> None:
    with node.http(node.tenant("media:read")) as c:
        r = c.get("/dicomweb/studies", params=params)
    assert r.status_code in (400, 422) and r.headers["content-type"] == "application/problem+json", r.text
    assert PHI not in r.text and "NotAKeyword" not in r.text


def test_qido_warns_about_ignored_keys_and_more_results(node: Node, face: tuple[str, str, str, str]) -> None:
    key, study, _series, _sop = face
    with node.http(key) as c:
        r = c.get("/dicomweb/studies", params={"PatientWeight": "80", "fuzzymatching": "true"})
        assert r.status_code == 200 and "PatientWeight" in r.headers["warning"] and len(r.json()) == 1
        r = c.get("/dicomweb/instances", params={"limit": "1"})
        assert "warning" not in r.headers
        empty = c.get("/dicomweb/studies", params={"StudyInstanceUID": "1.2.3.4"})
        assert empty.status_code == 200 and empty.json() == []
        assert c.get("/dicomweb/studies", headers={"Accept": "application/dicom+xml"}).status_code == 406
    with node.http(node.tenant("media:write")) as c:
        assert c.get("/dicomweb/studies").status_code == 403
    with node.http() as c:
        assert c.get(f"/dicomweb/studies/{study}").status_code == 401


def test_photos_uploaded_through_v1_are_not_dicomweb_objects(node: Node, shared_data: Path) -> None:
    """Decided (docs/integration.md): /v1 photos and videos stay outside DICOMweb; FHIR Media lists them."""
    key = node.tenant("media:write", "media:read")
    record_id = f"MRN-{uuid.uuid4().hex[:8]}"
    photo = shared_data / "faces/angelina_jolie/4.jpg"
    with node.http(key) as c:
        r = c.post(
            f"/v1/records/{record_id}/media", files={"file": ("p.jpg", photo.read_bytes(), "image/jpeg")}
        )
        assert r.status_code == 202, r.text
    (job,) = node.wait_jobs(key, record_id, 1)
    assert job["status"] == "succeeded"
    with node.http(key) as c:
        assert c.get("/dicomweb/instances").json() == []
        media = c.get("/fhir/Media", params={"patient": record_id}).json()["entry"]
    assert [e["resource"]["content"]["contentType"] for e in media] == ["image/jpeg"]
