"""DICOMweb STOW-RS (POST /dicomweb/studies): each good instance goes through the upload path and gets
its own job; bad parts are listed in FailedSOPSequence; request-level refusals are problem+json."""

from __future__ import annotations

import io
import uuid
from pathlib import Path
from typing import Any

import httpx
import pydicom
from service_support import Stack, wait_job

BOUNDARY = "dmask-stow-boundary"
CTYPE = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
CANNOT_UNDERSTAND, NOT_IN_STUDY = 0xC000, 0xA900


def related(*parts: bytes, part_type: str = "application/dicom") -> bytes:
    body = b""
    for part in parts:
        body += f"--{BOUNDARY}\r\nContent-Type: {part_type}\r\n\r\n".encode() + part + b"\r\n"
    return body + f"--{BOUNDARY}--\r\n".encode()


def stow(
    c: httpx.Client, record_id: str, body: bytes, path: str = "/dicomweb/studies", **kw: Any
) -> httpx.Response:
    headers = {"Content-Type": kw.pop("content_type", CTYPE), **kw.pop("headers", {})}
    return c.post(path, params={"record_id": record_id}, content=body, headers=headers)


def seq(body: dict[str, Any], tag: str) -> list[dict[str, Any]]:
    return list(body.get(tag, {}).get("Value", []))


def value(item: dict[str, Any], tag: str) -> Any:
    return item.get(tag, {}).get("Value", [None])[0]


def test_stow_stores_good_instances_and_fails_the_corrupt_one(
    stack: Stack, writer_a: str, auditor: str, shared_data: Path, record_id: str
) -> None:
    face = (shared_data / "dicom/ot_pal8_face.dcm").read_bytes()
    small = (shared_data / "dicom/mr_small.dcm").read_bytes()
    corrupt = (shared_data / "dicom/ct_small.dcm").read_bytes()[:600]  # truncated mid data set
    expect = [pydicom.dcmread(io.BytesIO(b), stop_before_pixels=True, force=True) for b in (face, small)]
    with stack.http(writer_a) as c:
        r = stow(c, record_id, related(face, corrupt, small), headers={"X-Request-ID": "stow-1"})
        assert r.status_code == 202, r.text
        assert r.headers["content-type"].startswith("application/dicom+json")
        stored, failed = seq(r.json(), "00081199"), seq(r.json(), "00081198")
        assert [(value(i, "00081150"), value(i, "00081155")) for i in stored] == [
            (str(ds.SOPClassUID), str(ds.SOPInstanceUID)) for ds in expect
        ]
        assert [value(i, "00081197") for i in failed] == [CANNOT_UNDERSTAND]
        # RetrieveURL: the WADO-RS URL of the masked instance, under the configured public base URL
        # (DMASK_PUBLIC_URL, unset here: http://DMASK_HOST:DMASK_PORT), never the request's Host.
        retrieve_urls = [value(i, "00081190") for i in stored]
        assert all(u.startswith("http://127.0.0.1:8000/dicomweb/studies/") for u in retrieve_urls)
        media = c.get(f"/v1/records/{record_id}/media").json()["items"]
        job_ids = [m["job_id"] for m in media]  # in upload order: the face first
        assert len(set(job_ids)) == 2
        assert all(m["kind"] == "dicom" and m["mime_type"] == "application/dicom" for m in media)
        job = wait_job(c, job_ids[0])  # the face: the one real masking of this module
        assert job["status"] == "succeeded", job
        art = next(a for m in c.get(f"/v1/records/{record_id}/media").json()["items"] for a in m["artifacts"])
        assert art["mime_type"] == "application/dicom"
        got = c.get(f"/v1/artifacts/{job['artifact_id']}")
        assert got.status_code == 307
        masked = pydicom.dcmread(io.BytesIO(httpx.get(got.headers["location"], timeout=60).content))
        assert masked.SOPInstanceUID != expect[0].SOPInstanceUID
        assert retrieve_urls[0].endswith(
            f"/studies/{masked.StudyInstanceUID}/series/{masked.SeriesInstanceUID}"
            f"/instances/{masked.SOPInstanceUID}"
        )
    with stack.http(auditor) as c:
        events = c.get("/v1/audit", params={"record": record_id, "action": "media.upload"}).json()["items"]
    outcomes = sorted(e["outcome"] for e in events)
    assert outcomes == ["rejected", "success", "success"], events
    assert all(e["request_id"] == "stow-1" and e["client_id"] == "clinic-a" for e in events)


def test_stow_refusals(stack: Stack, writer_a: str, auditor: str, shared_data: Path, record_id: str) -> None:
    small = (shared_data / "dicom/mr_small.dcm").read_bytes()
    with stack.http(writer_a) as c:
        # Wrong content type: 415 problem+json, whatever the body.
        for ctype in ("application/dicom", f'multipart/related; type="image/jpeg"; boundary={BOUNDARY}'):
            r = stow(c, record_id, related(small), content_type=ctype)
            assert r.status_code == 415, r.text
            assert r.headers["content-type"] == "application/problem+json"
        # Every part bad (not DICOM; DICOM declared as another type): 409 and nothing stored.
        r = stow(c, record_id, related(b"\x00" * 300, b"not dicom at all"))
        assert r.status_code == 409, r.text
        assert [value(i, "00081197") for i in seq(r.json(), "00081198")] == [CANNOT_UNDERSTAND] * 2
        assert not seq(r.json(), "00081199")
        body = related(small, part_type="image/jpeg")
        assert stow(c, record_id, body).status_code == 409
        # An instance of another study than the URL's: 0xA900 with its UIDs.
        r = stow(c, record_id, related(small), path="/dicomweb/studies/1.2.3.4")
        assert r.status_code == 409, r.text
        (item,) = seq(r.json(), "00081198")
        assert value(item, "00081197") == NOT_IN_STUDY and value(item, "00081155")
        assert c.get(f"/v1/records/{record_id}/media").json()["items"] == []
        # Past the byte cap (16 MiB in the test stack) for the whole body: 413.
        r = stow(c, record_id, related(small, b"\x00" * (17 << 20)))
        assert r.status_code == 413 and r.json()["type"] == "urn:dmask:problem:upload-too-large"
        # record_id: required, and validated like the media upload's path parameter.
        assert (
            c.post("/dicomweb/studies", content=related(small), headers={"Content-Type": CTYPE}).status_code
            == 422
        )
        r = stow(c, "..", related(small))
        assert r.status_code == 422 and r.json()["type"] == "urn:dmask:problem:invalid-record-id"
    with stack.http(auditor) as c:
        assert stow(c, record_id, related(small)).status_code == 403
        events = c.get("/v1/audit", params={"record": record_id, "action": "media.upload"}).json()["items"]
    assert events and all(e["outcome"] == "rejected" for e in events)


def test_stow_idempotency_key_replays_each_instance(
    stack: Stack, writer_a: str, shared_data: Path, record_id: str
) -> None:
    small = (shared_data / "dicom/mr_small.dcm").read_bytes()
    key = {"Idempotency-Key": f"stow-{uuid.uuid4()}"}
    with stack.http(writer_a) as c:
        first = stow(c, record_id, related(small), headers=key)
        again = stow(c, record_id, related(small), headers=key)
        assert first.status_code == 200, first.text
        # The repeat is recognised by its SOP Instance UID: same instance, a warning, no new job.
        assert again.status_code == 202 and "already received" in again.headers["warning"], again.text
        (a,), (b,) = seq(first.json(), "00081199"), seq(again.json(), "00081199")
        assert value(b, "00081196") == 0x0111 and "00081196" not in a
        assert value(a, "00081190") == value(b, "00081190")
        assert len(c.get(f"/v1/records/{record_id}/media").json()["items"]) == 1
