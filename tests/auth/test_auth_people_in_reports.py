"""Who looked at this patient's masked media? The answer names the person: in FHIR AuditEvent
(IHE BALP agents) and in the per-record access report."""

from __future__ import annotations

import uuid
from typing import Any

from auth_support import UI_CLIENT, OpenIdProvider, Service, SignIn
from fhir.resources.R4B.bundle import Bundle


def _clinician_opens_record(service: Service, idp: OpenIdProvider) -> str:
    record_id = f"MRN-{uuid.uuid4().hex[:10]}"
    with SignIn(service, idp) as browser:
        browser.sign_in("chen", "chen-pass-1", "/ui/records")
        assert browser.get(f"/ui/records/{record_id}").status_code == 200
    return record_id


def test_fhir_audit_events_name_the_person_balp_style(service: Service, idp: OpenIdProvider) -> None:
    record_id = _clinician_opens_record(service, idp)
    with service.http(service.key("auditor", "audit:read")) as c:
        r = c.get("/fhir/AuditEvent", params={"agent": "chen"})
        assert r.status_code == 200, r.text
        bundle: dict[str, Any] = r.json()
        Bundle.model_validate(bundle)
        by_issuer = c.get("/fhir/AuditEvent", params={"agent:identifier": f"{idp.issuer}|chen"}).json()
    events = [e["resource"] for e in bundle["entry"]]
    assert events
    assert {e["resource"]["id"] for e in by_issuer["entry"]} == {e["id"] for e in events}
    for ev in events:
        person, service_agent, application = ev["agent"]
        assert person["requestor"] is True
        assert person["type"]["coding"][0]["code"] == "humanuser"
        assert person["who"]["identifier"] == {"system": idp.issuer, "value": "chen"}
        assert person["who"]["display"] == "Dr. Wei Chen"
        assert service_agent["requestor"] is False
        assert application["who"]["identifier"]["value"] == UI_CLIENT and application["requestor"] is False
    assert any(
        ent["what"]["identifier"]["value"] == record_id for ev in events for ent in ev.get("entity", [])
    ), "the record the person opened is among the events"


def test_the_access_report_lists_the_people_by_name(service: Service, idp: OpenIdProvider) -> None:
    record_id = _clinician_opens_record(service, idp)
    with service.http(service.key("auditor", "audit:read")) as c:
        r = c.get(f"/v1/records/{record_id}/access-report")
    assert r.status_code == 200
    people = r.text.split('<table id="people">', 1)[1].split("</table>", 1)[0]
    assert "Dr. Wei Chen" in people and "chen" in people and idp.issuer in people
