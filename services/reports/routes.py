"""Integrity exports and per-record access reports (scope audit:read).

- ``GET /v1/audit/export?format=csv|ndjson`` (filters as ``/v1/audit``): the audit export with hashes
  and the integrity trailer; ``dmask audit verify FILE`` checks it offline.
- ``GET /v1/records/{record_id}/access-report?from=&to=&format=csv|html``: everything that happened
  to one record in a time range, in one request: CSV (an integrity export filtered to the record,
  so it verifies offline too) or a self-contained, printable HTML page (no scripts, no external assets).

Both are audited (``audit.export`` / ``audit.report``) before any row is read.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from services.audit import service as audit
from services.auth.deps import audit_ctx, require_scope, settings_of
from services.auth.service import Principal
from services.db import get_sessionmaker, session_scope, utcnow
from services.fhir.search import SearchError, date_range
from services.media.service import validate_record_id
from services.problems import Problem
from services.reports import export
from services.settings import Settings

router = APIRouter(tags=["audit"])

HTML_ROW_CAP = 20_000


def parse_time(value: str | None, name: str, *, end: bool = False) -> datetime | None:
    """ISO date or date-time. With ``end`` a date means the end of that day (inclusive ranges)."""
    if not value:
        return None
    try:
        lo, hi = date_range(value.strip())
    except SearchError:
        raise Problem(422, f"{name} must be an ISO 8601 date or date-time.", slug="validation") from None
    return hi if end else lo


def start_export(
    settings: Settings,
    ctx: audit.AuditContext,
    action: str,
    flt: audit.AuditFilter,
    detail: dict[str, Any],
) -> export.ChainHead:
    """Audit the export, then read the chain head that bounds it (so it includes its own event)."""
    with session_scope(settings) as session:
        audit.append(session, ctx, action, record_id=flt.record_id, detail=detail)
    with get_sessionmaker(settings)() as session:
        return export.chain_head(session)


def stream_export(
    settings: Settings,
    flt: audit.AuditFilter,
    fmt: export.ExportFormat,
    head: export.ChainHead,
    filters: dict[str, Any],
    filename: str,
) -> StreamingResponse:
    def body() -> Any:
        with get_sessionmaker(settings)() as session:
            yield from export.generate(export.iter_rows(session, flt, head.seq), fmt, head, filters)

    media_type = "text/csv; charset=utf-8" if fmt == "csv" else "application/x-ndjson"
    return StreamingResponse(
        body(),
        media_type=media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{filename}.{fmt}"',
            "Cache-Control": "no-store",
            "X-DMask-Chain-Head": f"{head.seq}:{head.hash}",
        },
    )


def filter_dict(flt: audit.AuditFilter) -> dict[str, Any]:
    raw = {
        "record": flt.record_id,
        "client": flt.client_id,
        "actor": flt.actor,
        "action": flt.action,
        "outcome": flt.outcome,
        "since": flt.since and audit._ts(flt.since),
        "until": flt.until and audit._ts(flt.until),
    }
    return {k: v for k, v in raw.items() if v}


@router.get(
    "/v1/audit/export",
    responses={200: {"content": {"text/csv": {}, "application/x-ndjson": {}}}},
    summary="Audit export with row hashes and the chain head (verifiable offline)",
)
async def audit_export(
    request: Request,
    principal: Annotated[Principal, Depends(require_scope("audit:read"))],
    format: Literal["csv", "ndjson"] = "csv",
    record: str | None = None,
    client: str | None = None,
    actor: Annotated[str | None, Query(description="A person's or system's subject, or a key id.")] = None,
    action: str | None = None,
    outcome: str | None = None,
    since: Annotated[str | None, Query(description="Events at or after (ISO 8601).")] = None,
    until: Annotated[str | None, Query(description="Events before (ISO 8601).")] = None,
) -> Response:
    settings = settings_of(request)
    flt = audit.AuditFilter(
        record_id=record or None,
        client_id=client or None,
        actor=actor or None,
        action=action or None,
        outcome=outcome or None,
        since=parse_time(since, "since"),
        until=parse_time(until, "until"),
    )
    filters = filter_dict(flt)
    head = await run_in_threadpool(
        start_export,
        settings,
        audit_ctx(request, principal),
        "audit.export",
        flt,
        {"filters": filters, "format": format, "integrity": True},
    )
    return stream_export(settings, flt, format, head, filters, "audit")


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "clients": Counter(r["client_id"] or "(service / unauthenticated)" for r in rows).most_common(),
        "people": Counter(
            (r["actor_name"] or r["actor_sub"], r["actor_sub"], r["actor_issuer"] or "")
            for r in rows
            if r.get("actor_kind") == "person"
        ).most_common(),
        "actions": Counter(r["action"] for r in rows).most_common(),
        "refused": sum(1 for r in rows if r["outcome"] != "success"),
    }


def _generated_by(principal: Principal) -> str:
    actor = principal.audit_actor
    if actor.kind == "person":
        return f"{actor.name} ({actor.subject})"
    return f"client {principal.client_id}"


def render_access_report(
    settings: Settings,
    record_id: str,
    flt: audit.AuditFilter,
    head: export.ChainHead,
    principal: Principal,
    period: tuple[str | None, str | None],
) -> str:
    from services.web.templating import render

    with get_sessionmaker(settings)() as session:
        rows: list[dict[str, Any]] = []
        truncated = False
        for row in export.iter_rows(session, flt, head.seq):
            if len(rows) >= HTML_ROW_CAP:
                truncated = True
                break
            rows.append(row)
    return render(
        "access_report.html",
        record_id=record_id,
        rows=rows,
        truncated=truncated,
        cap=HTML_ROW_CAP,
        summary=_summary(rows),
        head=head,
        period=period,
        generated_at=audit._ts(utcnow()),
        generated_by=_generated_by(principal),
    )


@router.get(
    "/v1/records/{record_id}/access-report",
    responses={200: {"content": {"text/csv": {}, "text/html": {}}}},
    summary="Every audit event of one record over a time range (CSV or printable HTML)",
)
async def access_report(
    request: Request,
    record_id: str,
    principal: Annotated[Principal, Depends(require_scope("audit:read"))],
    format: Literal["csv", "html"] = "html",
    from_: Annotated[str | None, Query(alias="from", description="Start (ISO date or date-time).")] = None,
    to: Annotated[str | None, Query(description="End, inclusive (a date means the whole day).")] = None,
) -> Response:
    settings = settings_of(request)
    validate_record_id(record_id)
    flt = audit.AuditFilter(
        record_id=record_id, since=parse_time(from_, "from"), until=parse_time(to, "to", end=True)
    )
    if flt.since and flt.until and flt.since >= flt.until:
        raise Problem(422, "from must be before to.", slug="validation")
    filters = filter_dict(flt)
    head = await run_in_threadpool(
        start_export,
        settings,
        audit_ctx(request, principal),
        "audit.report",
        flt,
        {"filters": filters, "format": format},
    )
    if format == "csv":
        return stream_export(settings, flt, "csv", head, filters, "access-report")
    html = await run_in_threadpool(
        render_access_report, settings, record_id, flt, head, principal, (from_, to)
    )
    return HTMLResponse(
        html,
        headers={
            "Cache-Control": "no-store",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'",
            "X-Content-Type-Options": "nosniff",
        },
    )
