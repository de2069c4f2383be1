"""``/fhir``: a read-only FHIR R4 view of the audit log for compliance tools (scope audit:read) and of
the masked media for the EHR that sent them.

``GET /fhir/AuditEvent`` answers a searchset Bundle with self/next links; ``GET /fhir/AuditEvent/{id}``
one event; ``GET /fhir/Media`` and ``GET /fhir/Media/{id}`` the masked media of the caller's client
(scope media:read); ``GET /fhir/metadata`` the CapabilityStatement that tells tools which search
parameters exist. Every search and read is itself written to the audit log (``audit.read``,
``media.search``, ``media.read``; detail ``api: fhir``) before the answer leaves: nothing is returned
that was not audited.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from services.audit import service as audit
from services.audit.models import AuditEvent, AuditHead
from services.auth.deps import audit_ctx, require_scope, settings_of
from services.auth.service import Principal
from services.db import get_sessionmaker, session_scope, utcnow
from services.fhir import mapping, media, search
from services.fhir.outcome import FHIR_JSON, FhirResponse, outcome

router = APIRouter(prefix="/fhir", tags=["fhir"])

FHIR_VERSION = "4.0.1"


def operation_outcome(status: int, code: str, message: str) -> FhirResponse:
    return outcome(status, code, message)


def base_url(request: Request) -> str:
    """Absolute links use the configured public base URL (DMASK_PUBLIC_URL), never the Host header."""
    return settings_of(request).public_base + "/fhir"


def _head_seq(session: Any) -> int:
    seq: int = session.execute(select(AuditHead.seq).where(AuditHead.id == 1)).scalar_one()
    return seq


def _audit_access(
    request: Request, principal: Principal, action: str, record_id: str | None, detail: dict[str, Any]
) -> None:
    with session_scope(settings_of(request)) as session:
        audit.append(session, audit_ctx(request, principal), action, record_id=record_id, detail=detail)


def _audit_read(
    request: Request, principal: Principal, record_id: str | None, detail: dict[str, Any]
) -> None:
    _audit_access(request, principal, "audit.read", record_id, detail)


@router.get(
    "/AuditEvent",
    response_class=FhirResponse,
    summary="Search audit events (FHIR R4 searchset Bundle)",
    description="Search parameters: patient (record ID), agent (client), entity (record, media, job, "
    "artifact or request ID), date (prefixes eq ne gt lt ge le sa eb; repeatable), action (C R U D E), "
    "outcome (0 4 8 12), type, subtype, altid (key id), address, _id, _count, _sort (date, -date).",
)
def search_audit_events(
    request: Request, principal: Annotated[Principal, Depends(require_scope("audit:read"))]
) -> FhirResponse:
    settings = settings_of(request)
    params = list(request.query_params.multi_items())
    with get_sessionmaker(settings)() as session:
        try:
            parsed = search.parse(params, search.distinct_actions(session))
        except search.SearchError as exc:
            return operation_outcome(400, exc.code, str(exc))
        rows, nxt = search.run(session, parsed, _head_seq(session))
        session.expunge_all()
    record = next(iter(parsed.record_ids)) if len(parsed.record_ids) == 1 else None
    _audit_read(
        request,
        principal,
        record,
        {"api": "fhir", "query": search.describe(parsed), "returned": len(rows), "page": bool(parsed.cursor)},
    )
    base = base_url(request)
    self_params = list(parsed.used)
    if parsed.cursor is not None:
        self_params.append(("_cursor", search.encode_cursor(parsed.cursor)))
    links = [{"relation": "self", "url": f"{base}/AuditEvent?{urlencode(self_params)}".rstrip("?")}]
    if nxt is not None:
        next_params = [(k, v) for k, v in parsed.used if k != "_count"]
        next_params += [("_count", str(parsed.count)), ("_cursor", search.encode_cursor(nxt))]
        links.append({"relation": "next", "url": f"{base}/AuditEvent?{urlencode(next_params)}"})
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": audit._ts(utcnow())},
        "type": "searchset",
        "link": links,
        "entry": [
            {
                "fullUrl": f"{base}/AuditEvent/{ev.id}",
                "resource": mapping.to_fhir(ev),
                "search": {"mode": "match"},
            }
            for ev in rows
        ],
    }
    return FhirResponse(bundle, headers={"Cache-Control": "no-store"})


@router.get(
    "/AuditEvent/{event_id}",
    response_class=FhirResponse,
    summary="Read one audit event",
    responses={404: {"description": "No such AuditEvent (an OperationOutcome)", "content": {FHIR_JSON: {}}}},
)
async def read_audit_event(
    request: Request, event_id: str, principal: Annotated[Principal, Depends(require_scope("audit:read"))]
) -> FhirResponse:
    if not (event_id.isascii() and event_id.isdigit()) or len(event_id) > 18:
        return operation_outcome(404, "not-found", "No such AuditEvent.")
    settings = settings_of(request)

    def load() -> AuditEvent | None:
        with get_sessionmaker(settings)() as session:
            ev = session.get(AuditEvent, int(event_id))
            if ev is not None:
                session.expunge(ev)
            return ev

    ev = await run_in_threadpool(load)
    await run_in_threadpool(
        _audit_read,
        request,
        principal,
        ev.record_id if ev else None,
        {"api": "fhir", "read": event_id, "found": ev is not None},
    )
    if ev is None:
        return operation_outcome(404, "not-found", "No such AuditEvent.")
    return FhirResponse(mapping.to_fhir(ev), headers={"Cache-Control": "no-store", "ETag": f'W/"{ev.hash}"'})


@router.get(
    "/Media",
    response_class=FhirResponse,
    summary="Search masked media (FHIR R4 searchset Bundle of Media)",
    description="Search parameters: patient (record ID), created (date prefixes), status (preparation "
    "in-progress completed not-done), _count; next links page through the results. Scope media:read.",
)
def search_media(
    request: Request, principal: Annotated[Principal, Depends(require_scope("media:read"))]
) -> FhirResponse:
    settings = settings_of(request)
    try:
        parsed = media.parse(list(request.query_params.multi_items()))
    except search.SearchError as exc:
        return operation_outcome(400, exc.code, str(exc))
    with get_sessionmaker(settings)() as session:
        rows, nxt = media.run(session, parsed, None if principal.is_admin else principal.client_id)
        session.expunge_all()
    record = next(iter(parsed.patients)) if len(parsed.patients) == 1 else None
    _audit_access(
        request,
        principal,
        "media.search",
        record,
        {"api": "fhir", "query": sorted({k for k, _ in parsed.used}), "returned": len(rows)},
    )
    base = base_url(request)
    links = [{"relation": "self", "url": f"{base}/Media?{urlencode(parsed.used)}".rstrip("?")}]
    if nxt is not None:
        more = [*parsed.used, ("_count", str(parsed.count)), ("_cursor", media.encode_cursor(*nxt))]
        links.append({"relation": "next", "url": f"{base}/Media?{urlencode(more)}"})
    bundle = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": audit._ts(utcnow())},
        "type": "searchset",
        "link": links,
        "entry": [
            {
                "fullUrl": f"{base}/Media/{job.id}",
                "resource": media.to_fhir(job, m, art, inst, settings.public_base),
                "search": {"mode": "match"},
            }
            for job, m, art, inst in rows
        ],
    }
    return FhirResponse(bundle, headers={"Cache-Control": "no-store"})


@router.get(
    "/Media/{media_id}",
    response_class=FhirResponse,
    summary="Read one masked media (the fullUrl of a Media search entry)",
    responses={404: {"description": "No such Media (an OperationOutcome)", "content": {FHIR_JSON: {}}}},
)
async def read_media(
    request: Request, media_id: str, principal: Annotated[Principal, Depends(require_scope("media:read"))]
) -> FhirResponse:
    """Another client's media reads as missing, as it is missing from that client's searches."""
    settings = settings_of(request)
    well_formed = _is_uuid(media_id)

    def load() -> media.MediaRow | None:
        if not well_formed:
            return None
        with get_sessionmaker(settings)() as session:
            row = media.read(session, media_id, None if principal.is_admin else principal.client_id)
            session.expunge_all()
            return row

    row = await run_in_threadpool(load)
    await run_in_threadpool(
        _audit_access,
        request,
        principal,
        "media.read",
        row[0].record_id if row else None,
        {"api": "fhir", "read": media_id if well_formed else None, "found": row is not None},
    )
    if row is None:
        return operation_outcome(404, "not-found", "No such Media.")
    return FhirResponse(media.to_fhir(*row, settings.public_base), headers={"Cache-Control": "no-store"})


def _is_uuid(value: str) -> bool:
    """Media ids are job UUIDs; anything else is not looked up (nor written to the audit log)."""
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


SEARCH_PARAMS = [
    ("_id", "token", "Sequence number of the event"),
    ("patient", "reference", "The EHR record ID (Patient/<id> or <id>)"),
    ("agent", "reference", "The API client that made the request"),
    ("altid", "token", "The API key id the client used"),
    ("address", "string", "Network address of the client"),
    ("entity", "reference", "Record, media, job, artifact or request ID the event is about"),
    ("date", "date", "When the event was recorded"),
    ("action", "token", "C | R | U | D | E"),
    ("outcome", "token", "0 | 4 | 8 | 12"),
    ("type", "token", "Event type (rest, DCM codes)"),
    ("subtype", "token", f"Event subtype ({mapping.SYS_ACTION} action or REST interaction)"),
]


@router.get("/metadata", response_class=FhirResponse, summary="FHIR CapabilityStatement")
def capability_statement(request: Request) -> FhirResponse:
    """Unauthenticated like any FHIR server's: it describes the API, it carries no data."""
    body = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-28",
        "kind": "instance",
        "software": {"name": "DigitalMask"},
        "implementation": {
            "description": "DigitalMask: audit log and masked media (read-only)",
            "url": base_url(request),
        },
        "fhirVersion": FHIR_VERSION,
        "format": ["json"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "description": "Authorization: Bearer <API key>; scope audit:read for AuditEvent, "
                    "media:read for Media. Errors are OperationOutcome resources."
                },
                "resource": [
                    {
                        "type": "AuditEvent",
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "searchParam": [
                            {"name": n, "type": t, "documentation": d} for n, t, d in SEARCH_PARAMS
                        ],
                    },
                    {
                        "type": "Media",
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "searchParam": [
                            {"name": n, "type": t, "documentation": d} for n, t, d in media.SEARCH_PARAMS
                        ],
                    },
                ],
            }
        ],
    }
    return FhirResponse(body)
