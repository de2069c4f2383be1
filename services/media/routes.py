"""/v1/records/{record_id}/media: upload and list."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from services.audit import service as audit
from services.auth.deps import audit_ctx, require_scope, settings_of
from services.auth.service import Principal
from services.db import session_scope
from services.media import service
from services.media.schemas import ArtifactRef, MediaItem, RecordMedia, UploadAccepted
from services.metrics import UPLOAD_BYTES
from services.problems import Problem
from services.storage import get_store

router = APIRouter(prefix="/v1/records", tags=["media"])

UPLOAD_DOC = """Upload a photo, video or DICOM file for a record; masking runs asynchronously.

Send either `multipart/form-data` with a part `file` (and optionally a part `metadata` holding JSON:
`capture_time`, `description`, `laterality`), or the raw file as the body with any Content-Type
(optional metadata JSON in the `X-DMask-Metadata` header). The type is sniffed from the content.
An `Idempotency-Key` header makes retries safe: the same key and body return the same job.
"""


def _record_id(request: Request, record_id: str) -> str:
    try:
        return service.validate_record_id(record_id)
    except Problem as problem:
        principal = getattr(request.state, "principal", None)
        service.audit_rejection(settings_of(request), audit_ctx(request, principal), None, problem)
        raise


@router.post(
    "/{record_id}/media",
    status_code=202,
    response_model=UploadAccepted,
    description=UPLOAD_DOC,
    responses={
        413: {"description": "Too large"},
        415: {"description": "Unsupported type"},
        422: {"description": "Invalid"},
    },
    openapi_extra={
        "requestBody": {
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "file": {"type": "string", "format": "binary"},
                            "metadata": {"type": "string"},
                        },
                    }
                },
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            },
            "required": True,
        }
    },
)
async def upload_media(
    request: Request, record_id: str, principal: Annotated[Principal, Depends(require_scope("media:write"))]
) -> JSONResponse:
    settings = settings_of(request)
    record_id = await run_in_threadpool(_record_id, request, record_id)
    ctx = audit_ctx(request, principal)
    accepted = await service.ingest(
        request, record_id, principal, ctx, settings, get_store(settings), request.app.state.upload_executor
    )
    media, job = accepted.media, accepted.job
    if not accepted.replayed:
        UPLOAD_BYTES.labels(kind=media.kind).inc(media.size_bytes)
    if accepted.to_dispatch:
        await run_in_threadpool(request.app.state.dispatcher.enqueue, [job.id])
    body = UploadAccepted(
        job_id=job.id,
        media_id=media.id,
        record_id=media.record_id,
        status=job.status,
        kind=media.kind,
        mime_type=media.mime_type,
        size_bytes=media.size_bytes,
        sha256=media.sha256,
        replayed=accepted.replayed,
        links={"job": f"/v1/jobs/{job.id}", "record_media": f"/v1/records/{media.record_id}/media"},
    )
    headers = {"Location": f"/v1/jobs/{job.id}"}
    if accepted.replayed:
        headers["Idempotency-Replayed"] = "true"
    return JSONResponse(body.model_dump(mode="json"), status_code=202, headers=headers)


@router.get("/{record_id}/media", response_model=RecordMedia)
def list_record_media(
    request: Request, record_id: str, principal: Annotated[Principal, Depends(require_scope("media:read"))]
) -> RecordMedia:
    """The record's media visible to this client (all clients' for admin) and their masked artifacts."""
    record_id = _record_id(request, record_id)
    settings = settings_of(request)
    with session_scope(settings) as session:
        rows = service.record_media(session, record_id, principal)
        audit.append(
            session,
            audit_ctx(request, principal),
            "media.list",
            record_id=record_id,
            detail={"items": len(rows)},
        )
    items = [
        MediaItem(
            media_id=m.id,
            record_id=m.record_id,
            client_id=m.client_id,
            kind=m.kind,
            mime_type=m.mime_type,
            size_bytes=m.size_bytes,
            sha256=m.sha256,
            metadata=dict(m.meta or {}),
            created_at=m.created_at,
            original_stored=m.original_key is not None,
            job_id=j.id if j else None,
            job_status=j.status if j else None,
            artifacts=[
                ArtifactRef(
                    artifact_id=a.id,
                    kind=a.kind,
                    mime_type=a.mime_type,
                    size_bytes=a.size_bytes,
                    model_version=a.model_version,
                    frames_total=a.frames_total,
                    frames_blanked=a.frames_blanked,
                    created_at=a.created_at,
                    links={"file": f"/v1/artifacts/{a.id}", "metrics": f"/v1/artifacts/{a.id}/metrics"},
                )
                for a in arts
            ],
        )
        for m, j, arts in rows
    ]
    return RecordMedia(record_id=record_id, items=items)
