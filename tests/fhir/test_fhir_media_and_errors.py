"""FHIR conformance: masked media as R4 Media (fhirpy, with paging), AuditEvent through fhirpy, every
error under /fhir an OperationOutcome that never repeats the request, and a CapabilityStatement that
lists exactly what works."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import httpx
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from dicomweb_support import Node, serve
from fhirpy import SyncFHIRClient
from service_support import Seaweed

FHIR_JSON = "application/fhir+json"
SECRET = "MRN-SECRET-4711"


def stow_three(node: Node, key: str, record_id: str, shared_data: Path) -> None:
    dw = DICOMwebClient(url=f"{node.url}/dicomweb", headers={"Authorization": f"Bearer {key}"})
    datasets = [pydicom.dcmread(shared_data / f"dicom/{n}.dcm", force=True) for n in ("ct_small", "mr_small")]
    face = pydicom.dcmread(shared_data / "dicom/ot_pal8_face.dcm", force=True)
    dw.store_instances([*datasets, face], additional_params={"record_id": record_id})


def assert_outcome(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(FHIR_JSON)
    body = r.json()
    assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["code"] == code, body
    assert SECRET not in r.text


def test_media_search_by_patient_with_paging_leads_to_masked_artifacts(node: Node, shared_data: Path) -> None:
    key = node.tenant("media:write", "media:read")
    record_id = f"MRN-{uuid.uuid4().hex[:10]}"
    stow_three(node, key, record_id, shared_data)
    node.wait_jobs(key, record_id, 3)
    fhir = SyncFHIRClient(f"{node.url}/fhir", authorization=f"Bearer {key}")
    media = fhir.resources("Media").search(patient=record_id).limit(2).fetch_all()
    assert len(media) == 3 and len({m["id"] for m in media}) == 3
    assert {m["status"] for m in media} == {"completed"}
    assert all(m["subject"]["identifier"]["value"] == record_id for m in media)
    assert fhir.resources("Media").search(patient=record_id, status="not-done").fetch_all() == []
    assert len(fhir.resources("Media").search(patient=record_id, created__ge="2020-01-01").fetch_all()) == 3
    assert fhir.resources("Media").search(patient=record_id, created__lt="2020-01-01").fetch_all() == []
    with httpx.Client(headers={"Authorization": f"Bearer {key}"}, follow_redirects=True, timeout=60) as c:
        got = c.get(media[0]["content"]["url"])
    assert got.status_code == 200
    assert pydicom.dcmread(io.BytesIO(got.content)).PatientIdentityRemoved == "YES"
    other = SyncFHIRClient(f"{node.url}/fhir", authorization=f"Bearer {node.tenant('media:read')}")
    assert other.resources("Media").search(patient=record_id).fetch_all() == []
    auditor = SyncFHIRClient(
        f"{node.url}/fhir", authorization=f"Bearer {node.key('compliance', 'audit:read')}"
    )
    events = auditor.resources("AuditEvent").search(patient=record_id).limit(5).fetch_all()
    actions = {c["code"] for e in events for c in e["subtype"] if c["system"] == "urn:dmask:audit-action"}
    assert {"media.upload", "job.succeeded", "media.search"} <= actions


def test_a_media_entry_reads_back_at_its_full_url_for_its_own_client_only(
    node: Node, shared_data: Path
) -> None:
    key = node.tenant("media:write", "media:read")
    record_id = f"MRN-{uuid.uuid4().hex[:10]}"
    dw = DICOMwebClient(url=f"{node.url}/dicomweb", headers={"Authorization": f"Bearer {key}"})
    face = pydicom.dcmread(shared_data / "dicom/ot_pal8_face.dcm", force=True)
    dw.store_instances([face], additional_params={"record_id": record_id})
    node.wait_jobs(key, record_id, 1)
    fhir = SyncFHIRClient(f"{node.url}/fhir", authorization=f"Bearer {key}")
    (found,) = fhir.resources("Media").search(patient=record_id).fetch_all()
    read = fhir.reference("Media", found["id"]).to_resource()
    assert read.serialize() == found.serialize()
    bundle = fhir.execute("Media", method="get", params={"patient": record_id})
    with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=60) as c:
        assert c.get(bundle["entry"][0]["fullUrl"]).json() == found.serialize()
    with node.http(node.tenant("media:read")) as other:
        assert_outcome(other.get(f"/fhir/Media/{found['id']}"), 404, "not-found")
    auditor = SyncFHIRClient(
        f"{node.url}/fhir", authorization=f"Bearer {node.key('compliance', 'audit:read')}"
    )
    reads = auditor.resources("AuditEvent").search(patient=record_id, subtype="media.read").fetch_all()
    assert len(reads) == 2  # fhirpy's read and the fullUrl's; the other client's miss has no record


def test_errors_are_operation_outcomes_that_echo_nothing(node: Node) -> None:
    auditor = node.key("compliance", "audit:read")
    with node.http() as anon:
        r = anon.get("/fhir/AuditEvent", params={"patient": SECRET})
        assert_outcome(r, 401, "login")
        assert r.headers["www-authenticate"].startswith("Bearer")
    with node.http(node.tenant("media:read")) as c:
        assert_outcome(c.get("/fhir/AuditEvent", params={"patient": SECRET}), 403, "forbidden")
        assert_outcome(c.get("/fhir/Media", params={"created": SECRET}), 400, "not-supported")
        assert_outcome(c.get("/fhir/Media", params={"status": SECRET}), 400, "invalid")
    with node.http(auditor) as c:
        assert_outcome(c.get(f"/fhir/AuditEvent/{SECRET}"), 404, "not-found")
        assert_outcome(c.get("/fhir/AuditEvent/99999999999"), 404, "not-found")
        assert_outcome(c.get(f"/fhir/Patient/{SECRET}"), 404, "not-found")
        assert_outcome(c.get("/fhir/AuditEvent", params={"date": f"eq{SECRET}"}), 400, "invalid")
        assert_outcome(c.get("/fhir/AuditEvent", params={"date": SECRET}), 400, "not-supported")
        assert_outcome(c.post("/fhir/AuditEvent", json={"resourceType": "AuditEvent"}), 405, "not-supported")


def test_rate_limited_fhir_answers_429_operation_outcome(weed: Seaweed, tmp_path: Path) -> None:
    with serve(weed, tmp_path, rate_limit_per_minute=2) as small:
        key = small.key("compliance", "audit:read")
        with small.http(key) as c:
            answers = [c.get("/fhir/AuditEvent", params={"_count": "1"}) for _ in range(4)]
    limited = [r for r in answers if r.status_code == 429]
    assert limited, [r.status_code for r in answers]
    assert_outcome(limited[0], 429, "throttled")
    assert int(limited[0].headers["retry-after"]) > 0


def test_capability_statement_lists_exactly_what_is_supported(node: Node) -> None:
    with node.http() as c:
        cap = c.get("/fhir/metadata").json()
    (rest,) = cap["rest"]
    listed = {r["type"]: {p["name"] for p in r["searchParam"]} for r in rest["resource"]}
    assert set(listed) == {"AuditEvent", "Media"}
    assert listed["Media"] == {"patient", "created", "status"}
    probes = {
        "patient": "x",
        "created": "2024",
        "status": "completed",
        "_id": "1",
        "agent": "x",
        "altid": "x",
        "address": "127.0.0.1",
        "entity": "x",
        "date": "2024",
        "action": "R",
        "outcome": "0",
        "type": "rest",
        "subtype": "read",
    }
    keys = {"AuditEvent": node.key("compliance", "audit:read"), "Media": node.tenant("media:read")}
    for resource, names in listed.items():
        with node.http(keys[resource]) as c:
            for name in names:
                r = c.get(f"/fhir/{resource}", params={name: probes[name]})
                assert r.status_code == 200, (resource, name, r.text)
                assert [p for p in r.json()["link"][0]["url"].split("?", 1)[1].split("&")][0].startswith(name)
    with node.http(keys["Media"]) as c:
        assert_outcome(c.get(f"/fhir/Media/{uuid.uuid4()}"), 404, "not-found")
        assert_outcome(c.get(f"/fhir/Media/{SECRET}"), 404, "not-found")


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(var, raising=False)
