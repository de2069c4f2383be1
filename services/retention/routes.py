"""``/v1/records/{record_id}/legal-hold``: place (PUT), release (DELETE) and look up (GET) a legal hold.

Placing and releasing are admin actions; looking up is also open to audit:read (compliance officers
need to see holds). Every call is audited, including refusals (by the auth dependencies).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from services.audit import service as audit
from services.auth.deps import audit_ctx, require_any, require_scope, settings_of
from services.auth.service import Principal
from services.db import session_scope
from services.media.service import validate_record_id
from services.problems import not_found
from services.retention.models import LegalHold

router = APIRouter(prefix="/v1/records", tags=["retention"])


class LegalHoldIn(BaseModel):
    reason: str | None = Field(
        default=None, max_length=500, description="Case or ticket reference (no clinical details)."
    )


class LegalHoldOut(BaseModel):
    record_id: str
    reason: str | None
    created_by: str
    created_at: datetime


def _out(hold: LegalHold) -> LegalHoldOut:
    return LegalHoldOut(
        record_id=hold.record_id, reason=hold.reason, created_by=hold.created_by, created_at=hold.created_at
    )


@router.put(
    "/{record_id}/legal-hold",
    response_model=LegalHoldOut,
    summary="Place a legal hold",
    responses={201: {"model": LegalHoldOut, "description": "A new hold was placed"}},
)
async def put_legal_hold(
    request: Request,
    response: Response,
    record_id: str,
    principal: Annotated[Principal, Depends(require_scope("admin"))],
    body: Annotated[LegalHoldIn | None, Body()] = None,
) -> LegalHoldOut:
    """Idempotent: placing a hold that exists updates its reason. 201 when new, 200 otherwise."""
    validate_record_id(record_id)
    settings = settings_of(request)
    reason = body.reason if body else None

    def run() -> tuple[LegalHold, bool]:
        with session_scope(settings) as session:
            hold = session.get(LegalHold, record_id, with_for_update=True)
            created = hold is None
            if hold is None:
                hold = LegalHold(
                    record_id=record_id,
                    reason=reason,
                    created_by=principal.client_id,
                    key_id=principal.key_id,
                )
                session.add(hold)
            elif reason is not None:
                hold.reason = reason
            session.flush()
            audit.append(
                session,
                audit_ctx(request, principal),
                "legal_hold.set",
                record_id=record_id,
                detail={"created": created},
            )
            return hold, created

    hold, created = await run_in_threadpool(run)
    response.status_code = 201 if created else 200
    return _out(hold)


@router.delete("/{record_id}/legal-hold", status_code=204, summary="Release a legal hold")
async def delete_legal_hold(
    request: Request, record_id: str, principal: Annotated[Principal, Depends(require_scope("admin"))]
) -> Response:
    validate_record_id(record_id)
    settings = settings_of(request)

    def run() -> bool:
        with session_scope(settings) as session:
            hold = session.get(LegalHold, record_id, with_for_update=True)
            if hold is not None:
                session.delete(hold)
                session.flush()
            audit.append(
                session,
                audit_ctx(request, principal),
                "legal_hold.release",
                audit.Outcome.success if hold else audit.Outcome.rejected,
                record_id=record_id,
                detail={} if hold else {"status": 404, "reason": "no hold"},
            )
            return hold is not None

    if not await run_in_threadpool(run):
        raise not_found("legal hold")
    return Response(status_code=204)


@router.get("/{record_id}/legal-hold", response_model=LegalHoldOut, summary="Look up a legal hold")
async def get_legal_hold(
    request: Request,
    record_id: str,
    principal: Annotated[Principal, Depends(require_any("admin", "audit:read"))],
) -> LegalHoldOut:
    validate_record_id(record_id)
    settings = settings_of(request)

    def run() -> LegalHold | None:
        with session_scope(settings) as session:
            hold = session.get(LegalHold, record_id)
            audit.append(
                session,
                audit_ctx(request, principal),
                "legal_hold.read",
                record_id=record_id,
                detail={"held": hold is not None},
            )
            return hold

    hold = await run_in_threadpool(run)
    if hold is None:
        raise not_found("legal hold")
    return _out(hold)
