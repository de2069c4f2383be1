"""FHIR R4 AuditEvent API: every search parameter, paging, IHE BALP shape, fhir.resources validation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from compliance_support import Service, Uploads
from fhir.resources.R4B.auditevent import AuditEvent as FhirAuditEvent
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome

DCM = "http://dicom.nema.org/resources/ontology/DCM"


@pytest.fixture(scope="module")
def activity(service: Service, writer: str, reader_b: str, admin: str, uploads: Uploads) -> dict[str, Any]:
    """A known mix of events with request IDs chosen here. On a fresh record: a rejected upload, a
    listing, a legal hold placed, released, released again (refused) and placed again. Elsewhere: an
    anonymous refusal and a refusal for lack of scope (refusals at the door name no record)."""
    import uuid

    rec = f"MRN-F{uuid.uuid4().hex[:10]}"
    with service.http(writer) as c:
        r = c.post(
            f"/v1/records/{rec}/media", content=b"<html></html>" * 10, headers={"X-Request-ID": "a-bad-1"}
        )
        assert r.status_code == 415, r.text
        assert c.get(f"/v1/records/{rec}/media", headers={"X-Request-ID": "a-list-1"}).status_code == 200
    with service.http(admin) as c:
        assert c.put(f"/v1/records/{rec}/legal-hold", json={"reason": "case 42"}).status_code == 201
        assert c.delete(f"/v1/records/{rec}/legal-hold").status_code == 204
        assert c.delete(f"/v1/records/{rec}/legal-hold").status_code == 404
        assert c.put(f"/v1/records/{rec}/legal-hold", headers={"X-Request-ID": "hold-2"}).status_code == 201
    with service.http() as anon:
        assert anon.get(f"/v1/records/{rec}/media", headers={"X-Request-ID": "anon-1"}).status_code == 401
    with service.http(reader_b) as c:
        r = c.post(f"/v1/records/{rec}/media", content=b"x", headers={"X-Request-ID": "b-upload-1"})
        assert r.status_code == 403
    return {"record": rec}


RECORD_ACTIONS = [
    "media.upload",
    "media.list",
    "legal_hold.set",
    "legal_hold.release",
    "legal_hold.release",
    "legal_hold.set",
]


def search(c: httpx.Client, params: Any) -> dict[str, Any]:
    r = c.get("/fhir/AuditEvent", params=params)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/fhir+json")
    body: dict[str, Any] = r.json()
    Bundle.model_validate(body)  # the whole Bundle, every AuditEvent inside included
    return body


def resources(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle.get("entry", [])]


def activity_of(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    """The resources minus the reads of the log (each search of a record adds one to that record)."""
    return [r for r in resources(bundle) if not action_of(r).startswith("audit.")]


def all_pages(c: httpx.Client, params: list[tuple[str, str]]) -> Iterator[dict[str, Any]]:
    bundle = search(c, params)
    while True:
        yield bundle
        nxt = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        if not nxt:
            return
        parts = urlsplit(nxt[0])
        bundle = search(c, parse_qsl(parts.query))


def action_of(res: dict[str, Any]) -> str:
    return next(c["code"] for c in res["subtype"] if c["system"] == "urn:dmask:audit-action")


def entity_ids(res: dict[str, Any]) -> dict[str, str]:
    return {
        e["what"]["identifier"]["system"]: e["what"]["identifier"]["value"] for e in res.get("entity", [])
    }


def test_patient_parameter_and_balp_shape(service: Service, auditor: str, activity: dict[str, Any]) -> None:
    rec = activity["record"]
    with service.http(auditor) as c:
        plain = activity_of(search(c, {"patient": rec}))
        assert [r["id"] for r in activity_of(search(c, {"patient": f"Patient/{rec}"}))] == [
            r["id"] for r in plain
        ]
        ident = activity_of(search(c, {"patient:identifier": f"urn:dmask:record-id|{rec}"}))
        assert [r["id"] for r in ident] == [r["id"] for r in plain]
    assert [action_of(r) for r in plain] == RECORD_ACTIONS
    for res in plain:
        FhirAuditEvent.model_validate(res)
        patient = res["entity"][0]
        assert patient["what"]["identifier"] == {"system": "urn:dmask:record-id", "value": rec}
        assert patient["role"]["code"] == "1" and patient["type"]["code"] == "1"
        assert res["source"]["type"][0]["code"] == "4"
        chain = {e["url"]: e for e in res["extension"]}["urn:dmask:fhir:StructureDefinition:audit-chain"]
        assert {x["url"] for x in chain["extension"]} == {"seq", "hash", "prev_hash"}
    rejected, listing, hold = plain[0], plain[1], plain[2]
    assert rejected["action"] == "C" and rejected["outcome"] == "4" and "415" in rejected["outcomeDesc"]
    assert {"system": "http://hl7.org/fhir/restful-interaction", "code": "create"} in rejected["subtype"]
    client_agent = listing["agent"][0]
    assert client_agent["who"]["identifier"] == {"system": "urn:dmask:client", "value": "clinic-a"}
    assert client_agent["altId"] and client_agent["requestor"] is True
    assert client_agent["network"] == {"address": "127.0.0.1", "type": "2"}
    assert listing["agent"][1]["who"]["identifier"]["value"] == "digitalmask"
    assert listing["agent"][1]["requestor"] is False
    # REST events: type rest, subtype the interaction, the request ID as a BALP XrequestId entity
    assert listing["type"]["code"] == "rest" and listing["action"] == "E"
    assert {"system": "http://hl7.org/fhir/restful-interaction", "code": "search-type"} in listing["subtype"]
    req = [e for e in listing["entity"] if e["type"]["code"] == "XrequestId"]
    assert req and req[0]["what"]["identifier"]["value"] == "a-list-1"
    assert hold["action"] == "U" and hold["outcome"] == "0"
    with service.http(auditor) as c:
        [anon] = resources(search(c, {"entity": "anon-1"}))
        [refused_b] = resources(search(c, {"entity": "b-upload-1"}))
    # anonymous refusal: the requestor is known by network address only
    assert (
        anon["agent"][0]["requestor"] is True
        and anon["agent"][0]["who"]["display"] == "unauthenticated client"
    )
    assert anon["outcome"] == "4" and "401" in anon["outcomeDesc"]
    assert anon["type"] == {"system": DCM, "code": "110113", "display": "Security Alert"}
    assert (
        refused_b["agent"][0]["who"]["identifier"]["value"] == "clinic-b"
        and "403" in refused_b["outcomeDesc"]
    )


def test_agent_and_altid(service: Service, auditor: str, reader_b: str, activity: dict[str, Any]) -> None:
    with service.http(auditor) as c:
        by_agent = resources(search(c, {"agent": "clinic-b"}))
        assert by_agent and all(r["agent"][0]["who"]["identifier"]["value"] == "clinic-b" for r in by_agent)
        assert [r["id"] for r in resources(search(c, {"agent": "Device/clinic-b"}))] == [
            r["id"] for r in by_agent
        ]
        assert [r["id"] for r in resources(search(c, {"agent:identifier": "urn:dmask:client|clinic-b"}))] == [
            r["id"] for r in by_agent
        ]
        key_id = reader_b.split("_")[1]
        assert [r["id"] for r in resources(search(c, {"altid": key_id}))] == [r["id"] for r in by_agent]
        both = resources(search(c, [("agent", "clinic-b,ops")]))  # comma: OR
        assert {r["agent"][0]["who"]["identifier"]["value"] for r in both} == {"clinic-b", "ops"}
        assert resources(search(c, [("agent", "clinic-b"), ("agent", "ops")])) == []  # repeated: AND
        assert resources(search(c, {"agent": "nobody"})) == []


def test_entity_parameter(service: Service, auditor: str, uploads: Uploads) -> None:
    with service.http(auditor) as c:
        upload_ev = resources(search(c, {"entity": "ehr-video-1"}))  # the request ID of the upload
        assert [action_of(r) for r in upload_ev] == ["media.upload", "job.queued"]
        media_id = entity_ids(upload_ev[0])["urn:dmask:media"]
        job_id = entity_ids(upload_ev[0])["urn:dmask:job"]
        by_media = resources(search(c, {"entity": media_id}))
        assert by_media and all(entity_ids(r)["urn:dmask:media"] == media_id for r in by_media)
        by_job = resources(search(c, {"entity:identifier": f"urn:dmask:job|{job_id}"}))
        assert by_job and all(entity_ids(r)["urn:dmask:job"] == job_id for r in by_job)
        by_record = resources(search(c, {"entity": f"Patient/{uploads.record_id}"}))
        assert {entity_ids(r)["urn:dmask:record-id"] for r in by_record} == {uploads.record_id}
        assert resources(search(c, {"entity:identifier": "urn:dmask:media|" + job_id})) == []


def test_date_prefixes(service: Service, auditor: str, activity: dict[str, Any]) -> None:
    with service.http(auditor) as c:
        events = activity_of(search(c, {"patient": activity["record"]}))
        first, last = events[0], events[-1]
        ids = [r["id"] for r in events]

        def ids_for(*dates: str) -> list[str]:
            params = [("patient", activity["record"])] + [("date", d) for d in dates]
            return [r["id"] for r in activity_of(search(c, params))]

        assert ids_for(f"ge{first['recorded']}", f"le{last['recorded']}") == ids  # repeated: AND
        assert ids_for(f"gt{first['recorded']}") == ids[1:]
        assert ids_for(f"lt{last['recorded']}") == ids[:-1]
        assert ids_for(f"eq{first['recorded']}") == [ids[0]]
        assert ids_for(first["recorded"]) == [ids[0]]  # no prefix: eq
        assert ids_for(f"ne{first['recorded']}") == ids[1:]
        day = first["recorded"][:10]
        assert ids_for(day) == ids and ids_for(f"ge{day}", f"le{day}") == ids  # day precision: whole day
        assert ids_for(f"ge{first['recorded'][:4]}") == ids
        assert ids_for("lt2000-01-01") == [] and ids_for("gt2999") == []
        assert ids_for(f"sa{first['recorded']}") == ids[1:] and ids_for(f"eb{last['recorded']}") == ids[:-1]
        # a zone offset: the same instant written in +02:00
        hh = int(first["recorded"][11:13])
        shifted = f"{day}T{(hh + 2) % 24:02d}{first['recorded'][13:-1]}+02:00"
        if hh < 22:
            assert ids_for(f"ge{shifted}", f"le{shifted}") == [ids[0]]


def test_action_outcome_type_subtype(service: Service, auditor: str, activity: dict[str, Any]) -> None:
    rec = activity["record"]
    with service.http(auditor) as c:

        def actions(**params: str) -> list[str]:
            return [action_of(r) for r in activity_of(search(c, {"patient": rec, **params}))]

        assert actions(action="U") == ["legal_hold.set", "legal_hold.set"]
        assert actions(action="D") == ["legal_hold.release", "legal_hold.release"]
        assert actions(action="E") == ["media.list"]
        assert actions(action="http://hl7.org/fhir/audit-event-action|C") == ["media.upload"]
        assert actions(action="C,D") == ["media.upload", "legal_hold.release", "legal_hold.release"]
        assert actions(outcome="4") == ["media.upload", "legal_hold.release"]
        assert actions(outcome="0") == [
            "media.list",
            "legal_hold.set",
            "legal_hold.release",
            "legal_hold.set",
        ]
        assert actions(outcome="8") == []
        assert actions(outcome="rejected") == ["media.upload", "legal_hold.release"]
        assert actions(type="rest") == RECORD_ACTIONS
        assert actions(type=f"{DCM}|110113") == []
        assert actions(type="http://terminology.hl7.org/CodeSystem/audit-event-type|rest") == RECORD_ACTIONS
        assert actions(subtype="urn:dmask:audit-action|legal_hold.set") == [
            "legal_hold.set",
            "legal_hold.set",
        ]
        assert actions(subtype="http://hl7.org/fhir/restful-interaction|search-type") == ["media.list"]
        assert actions(subtype="update") == ["legal_hold.set", "legal_hold.set"]
        alerts = [
            action_of(r)
            for r in resources(search(c, {"type": f"{DCM}|110113", "entity": "anon-1,b-upload-1"}))
        ]
        assert alerts == ["request.denied", "request.denied"]
        creates = [action_of(r) for r in resources(search(c, {"subtype": "create", "entity": "ehr-photo-1"}))]
        assert creates == ["media.upload"]


def test_paging_with_count_follows_next_links(
    service: Service, auditor: str, activity: dict[str, Any]
) -> None:
    with service.http(auditor) as c:
        everything = resources(search(c, {"_count": "1000"}))
        pages = list(all_pages(c, [("_count", "7")]))
        assert len(pages) >= 2
        for page in pages[:-1]:
            assert len(page["entry"]) == 7
            assert page["link"][0]["relation"] == "self"
            assert [link["relation"] for link in page["link"]] == ["self", "next"]
        assert [link["relation"] for link in pages[-1]["link"]] == ["self"]
        paged = [r["id"] for p in pages for r in resources(p)]
        # the snapshot as of the first page, in chain order: what an earlier search saw, then what was
        # appended before the first page (that search's own audit.read, worker events)
        assert paged[: len(everything)] == [r["id"] for r in everything]
        assert [int(i) for i in paged] == list(range(1, len(paged) + 1))
        # _count=1 over the audit reads themselves: every page writes one more audit.read, yet the
        # paging ends at the head of the first page instead of running forever
        params = [("subtype", "urn:dmask:audit-action|audit.read"), ("_count", "1")]
        first = search(c, params)
        reads = [r["id"] for p in all_pages(c, params) for r in resources(p)]
        assert reads[0] == resources(first)[0]["id"] and len(reads) == len(set(reads))
        newest = resources(search(c, params + [("_sort", "-date")]))[0]
        assert int(newest["id"]) > int(reads[-1])
        # newest first
        desc = [r["id"] for p in all_pages(c, [("_count", "50"), ("_sort", "-date")]) for r in resources(p)]
        assert [int(i) for i in desc] == sorted((int(i) for i in desc), reverse=True)
        # the self link tells which parameters were applied (unknown ones are ignored)
        b = search(c, [("patient", activity["record"]), ("unknown-param", "x"), ("_count", "2")])
        self_url = b["link"][0]["url"]
        assert "patient=" in self_url and "unknown-param" not in self_url and self_url.startswith(service.url)
        assert all(e["fullUrl"] == f"{service.url}/fhir/AuditEvent/{e['resource']['id']}" for e in b["entry"])


def test_read_one_event_and_errors(
    service: Service, auditor: str, writer: str, activity: dict[str, Any]
) -> None:
    with service.http(auditor) as c:
        ev = resources(search(c, {"patient": activity["record"], "action": "U"}))[-1]
        r = c.get(f"/fhir/AuditEvent/{ev['id']}")
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/fhir+json")
        assert r.json() == ev
        FhirAuditEvent.model_validate(r.json())
        for bad in ("999999999", "abc"):
            r = c.get(f"/fhir/AuditEvent/{bad}")
            assert r.status_code == 404
            OperationOutcome.model_validate(r.json())
        for params in (
            {"date": "yesterday"},
            {"_count": "0"},
            {"date": "ap2026-01-01"},
            {"_cursor": "!!"},
            {"_sort": "action"},
            {"_id": "x"},
        ):
            r = c.get("/fhir/AuditEvent", params=params)
            assert r.status_code == 400, (params, r.text)
            assert r.json()["resourceType"] == "OperationOutcome"
            OperationOutcome.model_validate(r.json())
    with service.http(writer) as c:
        assert c.get("/fhir/AuditEvent").status_code == 403
    with service.http() as c:
        assert c.get("/fhir/AuditEvent").status_code == 401
        meta = c.get("/fhir/metadata")
        assert meta.status_code == 200
        CapabilityStatement.model_validate(meta.json())
        names = {p["name"] for p in meta.json()["rest"][0]["resource"][0]["searchParam"]}
        assert {"patient", "agent", "entity", "date", "action", "outcome", "type", "subtype"} <= names


def test_reading_the_log_is_audited(service: Service, auditor: str, activity: dict[str, Any]) -> None:
    rec = activity["record"]
    with service.http(auditor) as c:
        search(c, {"patient": rec, "action": "U"})
        reads = resources(search(c, {"patient": rec, "subtype": "urn:dmask:audit-action|audit.read"}))
    assert reads, "the FHIR search of a record is recorded against that record"
    detail = json.loads(
        next(e["valueString"] for e in reads[-1]["extension"] if e["url"].endswith("audit-detail"))
    )
    assert detail["api"] == "fhir" and detail["query"]["patient"] == rec
    assert reads[-1]["agent"][0]["who"]["identifier"]["value"] == "compliance"
