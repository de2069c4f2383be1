"""Audit log rows as FHIR R4 ``AuditEvent`` resources, shaped after IHE Basic Audit Log Patterns.

Why a mapping instead of storing FHIR: the hash chain is computed over the service's own canonical
row (``services.audit.service.canonical_content``); FHIR is a read-only view of it, so the view can
evolve without touching the chain. The mapping is deterministic and depends only on the row, which
lets the search code evaluate FHIR token parameters (``action``, ``type``, ``subtype``, ``outcome``)
by classifying the distinct ``action`` values of the log.

Shape (IHE BALP):
- ``agent[0]`` the requestor: a person signed in at the identity provider (type ``humanuser``,
  ``who.identifier`` = issuer + subject, ``who.display`` = their name), a system with a bearer token
  (DCM "Source Role ID", identifier = issuer + subject), an API key's client (``who.identifier`` =
  client, ``altId`` = key id), or the operator for CLI actions, or the service itself for worker-side
  events; each with ``network`` = source address. ``agent[1]`` the service (DICOM "Destination Role
  ID"); for a person, ``agent[2]`` the application they used (the OAuth client, DCM "Application").
- ``entity``: the record as Patient (identifier only: the EHR's record ID), the media, job and
  artifact as system objects, the request ID with BALP's ``XrequestId`` entity type.
- The chain position (seq, hash, prev_hash) and the service's event detail travel as extensions so
  a compliance tool can cross-check a FHIR copy against an export.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from services.audit.models import AuditEvent
from services.audit.service import _ts

DCM = "http://dicom.nema.org/resources/ontology/DCM"
EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL = "http://hl7.org/fhir/restful-interaction"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
SECURITY_ROLE = "http://terminology.hl7.org/CodeSystem/extra-security-role-type"
BALP_ENTITY_TYPE = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"
NETWORK_IP = "2"

# Identifier systems of this service (URNs: stable, resolvable nowhere, never a hostname).
SYS_ACTION = "urn:dmask:audit-action"
SYS_OUTCOME = "urn:dmask:audit-outcome"
SYS_RECORD = "urn:dmask:record-id"
SYS_CLIENT = "urn:dmask:client"
SYS_OPERATOR = "urn:dmask:operator"
SYS_SERVICE = "urn:dmask:service"
SYS_MEDIA = "urn:dmask:media"
SYS_JOB = "urn:dmask:job"
SYS_ARTIFACT = "urn:dmask:artifact"
SYS_REQUEST = "urn:dmask:request-id"
EXT_CHAIN = "urn:dmask:fhir:StructureDefinition:audit-chain"
EXT_DETAIL = "urn:dmask:fhir:StructureDefinition:audit-detail"

SERVICE_ID = "digitalmask"
SERVICE_NAME = "DigitalMask ingestion service"

Coding = dict[str, str]


def coding(system: str, code: str, display: str | None = None) -> Coding:
    c = {"system": system, "code": code}
    if display:
        c["display"] = display
    return c


TYPE_REST = coding(EVENT_TYPE, "rest", "RESTful Operation")
TYPE_APP = coding(DCM, "110100", "Application Activity")
TYPE_AUDIT_USED = coding(DCM, "110101", "Audit Log Used")
TYPE_EXPORT = coding(DCM, "110106", "Export")
TYPE_SECURITY = coding(DCM, "110113", "Security Alert")
TYPE_USER_AUTH = coding(DCM, "110114", "User Authentication")


@dataclass(frozen=True)
class ActionClass:
    """How one service action reads in FHIR: event type, CRUDE action, REST interaction if any."""

    type: Coding
    action: str
    interaction: str | None = None
    extra_subtype: Coding | None = None


ACTIONS: dict[str, ActionClass] = {
    "media.upload": ActionClass(TYPE_REST, "C", "create"),
    "media.upload.replay": ActionClass(TYPE_REST, "C", "create"),
    "media.list": ActionClass(TYPE_REST, "E", "search-type"),
    "media.search": ActionClass(TYPE_REST, "E", "search-type"),
    "media.read": ActionClass(TYPE_REST, "R", "read"),
    "dicomweb.search": ActionClass(TYPE_REST, "E", "search-type"),
    "dicomweb.read": ActionClass(TYPE_REST, "R", "read"),
    "artifact.read": ActionClass(TYPE_REST, "R", "read"),
    "artifact.metrics_read": ActionClass(TYPE_REST, "R", "read"),
    "artifact.delete": ActionClass(TYPE_APP, "D"),
    "artifact.expire": ActionClass(TYPE_APP, "D"),
    "original.delete": ActionClass(TYPE_APP, "D"),
    "job.queued": ActionClass(TYPE_APP, "C"),
    "audit.read": ActionClass(TYPE_AUDIT_USED, "E", "search-type"),
    "audit.verify": ActionClass(TYPE_AUDIT_USED, "E"),
    "audit.export": ActionClass(TYPE_EXPORT, "R"),
    "audit.report": ActionClass(TYPE_EXPORT, "R"),
    "request.denied": ActionClass(TYPE_SECURITY, "E"),
    "key.create": ActionClass(TYPE_SECURITY, "C"),
    "key.revoke": ActionClass(TYPE_SECURITY, "D"),
    "user.create": ActionClass(TYPE_SECURITY, "C"),
    "user.disable": ActionClass(TYPE_SECURITY, "D"),
    "legal_hold.set": ActionClass(TYPE_REST, "U", "update"),
    "legal_hold.release": ActionClass(TYPE_REST, "D", "delete"),
    "legal_hold.read": ActionClass(TYPE_REST, "R", "read"),
    "ui.login": ActionClass(TYPE_USER_AUTH, "E", None, coding(DCM, "110122", "Login")),
    "ui.logout": ActionClass(TYPE_USER_AUTH, "E", None, coding(DCM, "110123", "Logout")),
    "retention.run": ActionClass(TYPE_APP, "E"),
}


def classify(action: str) -> ActionClass:
    """The FHIR class of an action; unknown actions fall back by their verb so new ones map sensibly."""
    known = ACTIONS.get(action)
    if known is not None:
        return known
    verb = action.rsplit(".", 1)[-1]
    if verb in ("read", "metrics_read", "get"):
        return ActionClass(TYPE_REST, "R", "read")
    if verb in ("delete", "purge", "release", "revoke"):
        return ActionClass(TYPE_APP, "D")
    if verb in ("create", "upload", "set"):
        return ActionClass(TYPE_APP, "C")
    return ActionClass(TYPE_APP, "E")


def subtypes(action: str) -> list[Coding]:
    cls = classify(action)
    out = [coding(SYS_ACTION, action)]
    if cls.interaction:
        out.append(coding(RESTFUL, cls.interaction))
    if cls.extra_subtype:
        out.append(cls.extra_subtype)
    return out


# outcome: success -> 0 (Success), denied/rejected -> 4 (Minor failure: the request was refused),
# failure -> 8 (Serious failure: the service could not do what it should have).
OUTCOME_CODES = {"success": "0", "denied": "4", "rejected": "4", "failure": "8"}
OUTCOME_DISPLAY = {"0": "Success", "4": "Minor failure", "8": "Serious failure", "12": "Major failure"}


def outcome_code(outcome: str) -> str:
    return OUTCOME_CODES.get(outcome, "8")


def _outcome_desc(ev: AuditEvent) -> str | None:
    if ev.outcome == "success":
        return None
    detail = ev.detail or {}
    parts = [ev.outcome]
    if detail.get("status") is not None:
        parts.append(f"HTTP {detail['status']}")
    if detail.get("reason"):
        parts.append(str(detail["reason"]))
    return ": ".join([parts[0], ", ".join(parts[1:])]) if len(parts) > 1 else parts[0]


def _identifier(system: str, value: str) -> dict[str, str]:
    return {"system": system, "value": value}


def _service_agent(requestor: bool) -> dict[str, Any]:
    return {
        "type": {"coding": [coding(DCM, "110152", "Destination Role ID")]},
        "who": {"identifier": _identifier(SYS_SERVICE, SERVICE_ID), "display": SERVICE_NAME},
        "requestor": requestor,
    }


def _requestor(ev: AuditEvent) -> dict[str, Any] | None:
    agent: dict[str, Any] = {
        "type": {"coding": [coding(DCM, "110153", "Source Role ID")]},
        "requestor": True,
    }
    if ev.actor_kind in ("person", "system") and ev.actor_sub:
        if ev.actor_kind == "person":
            agent["type"] = {"coding": [coding(SECURITY_ROLE, "humanuser", "human user")]}
        agent["who"] = {
            "identifier": _identifier(ev.actor_issuer or SYS_CLIENT, ev.actor_sub),
            "display": ev.actor_name or ev.actor_sub,
        }
        if ev.actor_kind == "system":
            agent["who"]["type"] = "Device"
    elif ev.client_id:
        agent["who"] = {
            "identifier": _identifier(SYS_CLIENT, ev.client_id),
            "type": "Device",
            "display": ev.client_id,
        }
        if ev.key_id:
            agent["altId"] = ev.key_id
    elif ev.request_id and ev.request_id.startswith("cli:"):
        user = ev.request_id[4:] or "unknown"
        agent["who"] = {"identifier": _identifier(SYS_OPERATOR, user), "display": f"operator {user} (CLI)"}
    elif ev.source_ip:
        agent["who"] = {"display": "unauthenticated client"}
    else:
        return None
    if ev.source_ip:
        agent["network"] = {"address": ev.source_ip, "type": NETWORK_IP}
    return agent


def _entity(system: str, value: str, type_: Coding, role: Coding | None, name: str) -> dict[str, Any]:
    ent: dict[str, Any] = {"what": {"identifier": _identifier(system, value)}, "type": type_}
    if role is not None:
        ent["role"] = role
    ent["description"] = name
    return ent


SYSTEM_OBJECT = coding(ENTITY_TYPE, "2", "System Object")


def entities(ev: AuditEvent) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if ev.record_id:
        patient = _entity(
            SYS_RECORD,
            ev.record_id,
            coding(ENTITY_TYPE, "1", "Person"),
            coding(OBJECT_ROLE, "1", "Patient"),
            "patient record (EHR record ID)",
        )
        patient["what"]["type"] = "Patient"
        out.append(patient)
    if ev.media_id:
        out.append(
            _entity(
                SYS_MEDIA, ev.media_id, SYSTEM_OBJECT, coding(OBJECT_ROLE, "4", "Domain Resource"), "media"
            )
        )
    if ev.job_id:
        out.append(
            _entity(SYS_JOB, ev.job_id, SYSTEM_OBJECT, coding(OBJECT_ROLE, "20", "Job"), "masking job")
        )
    if ev.artifact_id:
        out.append(
            _entity(
                SYS_ARTIFACT,
                ev.artifact_id,
                SYSTEM_OBJECT,
                coding(OBJECT_ROLE, "4", "Domain Resource"),
                "masked artifact",
            )
        )
    if ev.request_id:
        out.append(
            _entity(SYS_REQUEST, ev.request_id, coding(BALP_ENTITY_TYPE, "XrequestId"), None, "request ID")
        )
    return out


def to_fhir(ev: AuditEvent) -> dict[str, Any]:
    """One audit row as a FHIR R4 AuditEvent (plain JSON dict, ready to serialise)."""
    cls = classify(ev.action)
    code = outcome_code(ev.outcome)
    requestor = _requestor(ev)
    agents = [requestor, _service_agent(False)] if requestor else [_service_agent(True)]
    if ev.actor_kind == "person" and ev.actor_client:
        agents.append(
            {
                "type": {"coding": [coding(DCM, "110150", "Application")]},
                "who": {"identifier": _identifier(SYS_CLIENT, ev.actor_client), "display": ev.actor_client},
                "requestor": False,
            }
        )
    resource: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": str(ev.id),
        "extension": [
            {
                "url": EXT_CHAIN,
                "extension": [
                    {"url": "seq", "valueInteger": ev.id},
                    {"url": "hash", "valueString": ev.hash},
                    {"url": "prev_hash", "valueString": ev.prev_hash},
                ],
            },
        ],
        "type": cls.type,
        "subtype": subtypes(ev.action),
        "action": cls.action,
        "recorded": _ts(ev.ts),
        "outcome": code,
        "agent": agents,
        "source": {
            "site": SERVICE_ID,
            "observer": {"identifier": _identifier(SYS_SERVICE, SERVICE_ID), "display": SERVICE_NAME},
            "type": [coding(SOURCE_TYPE, "4", "Application Server")],
        },
    }
    if ev.detail:
        resource["extension"].append(
            {"url": EXT_DETAIL, "valueString": json.dumps(ev.detail, sort_keys=True, separators=(",", ":"))}
        )
    desc = _outcome_desc(ev)
    if desc:
        resource["outcomeDesc"] = desc
    ents = entities(ev)
    if ents:
        resource["entity"] = ents
    return resource
