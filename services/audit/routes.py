"""/v1/audit: read, export and verify the audit log (scope audit:read).

``audit:read`` is a compliance scope: it reads the whole log, not only the caller's own events (job
transitions are written by workers and belong to no client). Reading and exporting are audited too.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from services.audit import service as audit
from services.audit.schemas import AuditPage, VerifyOut
from services.auth.deps import audit_ctx, require_scope, settings_of
from services.auth.service import Principal
from services.db import get_sessionmaker, session_scope
from services.problems import Problem

router = APIRouter(prefix="/v1/audit", tags=["audit"])

# the columns of exports written before migration 0004 (no actor): they still verify offline
LEGACY_CSV_FIELDS = [
    "id",
    "ts",
    "client_id",
    "key_id",
    "source_ip",
    "action",
    "outcome",
    "record_id",
    "media_id",
    "job_id",
    "artifact_id",
    "request_id",
    "detail",
    "prev_hash",
    "hash",
]
CSV_FIELDS = [*LEGACY_CSV_FIELDS, *audit.ACTOR_FIELDS]


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"a:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, value = raw.split(":", 1)
        if prefix != "a":
            raise ValueError
        return int(value)
    except ValueError:
        raise Problem(422, "Invalid cursor.", slug="invalid-cursor") from None


@router.get(
    "",
    response_model=AuditPage,
    responses={200: {"content": {"application/json": {}, "text/csv": {}, "application/x-ndjson": {}}}},
)
def list_audit(
    request: Request,
    principal: Annotated[Principal, Depends(require_scope("audit:read"))],
    record: str | None = None,
    client: str | None = None,
    actor: Annotated[
        str | None, Query(description="Events of one actor: a person's or system's subject, or a key id.")
    ] = None,
    action: str | None = None,
    outcome: str | None = None,
    since: Annotated[datetime | None, Query(description="Events at or after this time (ISO 8601).")] = None,
    until: Annotated[datetime | None, Query(description="Events before this time (ISO 8601).")] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    format: Literal["json", "csv", "ndjson"] = "json",
) -> object:
    flt = audit.AuditFilter(
        record_id=record,
        client_id=client,
        actor=actor,
        action=action,
        outcome=outcome,
        since=since,
        until=until,
        after_id=decode_cursor(cursor),
    )
    settings = settings_of(request)
    filters = {
        k: v
        for k, v in {
            "record": record,
            "client": client,
            "actor": actor,
            "action": action,
            "outcome": outcome,
            "since": since and since.isoformat(),
            "until": until and until.isoformat(),
        }.items()
        if v
    }
    with session_scope(settings) as session:
        audit.append(
            session,
            audit_ctx(request, principal),
            "audit.export" if format != "json" else "audit.read",
            record_id=record,
            detail={"filters": filters, "format": format},
        )
    if format == "json":
        with get_sessionmaker(settings)() as session:
            rows = audit.query(session, flt, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return AuditPage(
            items=[audit.event_dict(r) for r in rows],
            next_cursor=encode_cursor(rows[-1].id) if more and rows else None,
        )

    def generate() -> Iterator[bytes]:
        with get_sessionmaker(settings)() as session:
            if format == "csv":
                buf = io.StringIO()
                writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS)
                writer.writeheader()
                for ev in audit.iter_all(session, flt):
                    row = audit.event_dict(ev)
                    row["detail"] = json.dumps(row["detail"], sort_keys=True)
                    writer.writerow(row)
                    if buf.tell() > 1 << 16:
                        yield buf.getvalue().encode()
                        buf.seek(0)
                        buf.truncate()
                yield buf.getvalue().encode()
            else:
                for ev in audit.iter_all(session, flt):
                    yield (json.dumps(audit.event_dict(ev), sort_keys=True) + "\n").encode()

    media_type = "text/csv; charset=utf-8" if format == "csv" else "application/x-ndjson"
    ext = "csv" if format == "csv" else "ndjson"
    return StreamingResponse(
        generate(),
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="audit.{ext}"'},
    )


@router.get("/verify", response_model=VerifyOut)
async def verify_chain(
    request: Request, principal: Annotated[Principal, Depends(require_scope("audit:read"))]
) -> VerifyOut:
    """Walk the whole hash chain online; ``first_broken`` is the id of the first row that fails."""
    settings = settings_of(request)

    def run() -> audit.VerifyResult:
        with get_sessionmaker(settings)() as session:
            result = audit.verify(session)
        with session_scope(settings) as session:
            audit.append(
                session,
                audit_ctx(request, principal),
                "audit.verify",
                audit.Outcome.success if result.ok else audit.Outcome.failure,
                detail={"checked": result.checked, "first_broken": result.first_broken},
            )
        return result

    result = await run_in_threadpool(run)
    return VerifyOut(**result.as_dict())
