"""/v1/artifacts/{artifact_id}: the masked file (presigned redirect or stream) and its eye metrics."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from services.artifacts.models import Artifact
from services.audit import service as audit
from services.auth.deps import audit_ctx, deny_other_tenant, require_scope, settings_of
from services.auth.service import Principal
from services.db import get_sessionmaker, session_scope
from services.problems import Problem, not_found
from services.storage import ObjectNotFound, get_store

router = APIRouter(prefix="/v1/artifacts", tags=["artifacts"])

EXT = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/webp": ".webp",
    "video/mp4": ".mp4",
    "application/dicom": ".dcm",
}


def _load(request: Request, artifact_id: str, principal: Principal) -> Artifact:
    with get_sessionmaker(settings_of(request))() as session:
        art = session.get(Artifact, artifact_id)
    if art is None:
        raise not_found("artifact")
    if art.client_id != principal.client_id and not principal.is_admin:
        raise deny_other_tenant(
            request, principal, "artifact", artifact_id=artifact_id, record_id=art.record_id
        )
    if art.deleted_at is not None:
        raise Problem(410, "The artifact expired under the retention policy.", slug="gone")
    return art


def _audit(request: Request, principal: Principal, action: str, art: Artifact, **detail: object) -> None:
    with session_scope(settings_of(request)) as session:
        audit.append(
            session,
            audit_ctx(request, principal),
            action,
            record_id=art.record_id,
            media_id=art.media_id,
            job_id=art.job_id,
            artifact_id=art.id,
            detail=dict(detail),
        )


@router.get(
    "/{artifact_id}",
    responses={
        200: {"description": "The masked file (streamed)"},
        307: {"description": "Redirect to a short-lived presigned URL"},
    },
)
def get_artifact(
    request: Request, artifact_id: str, principal: Annotated[Principal, Depends(require_scope("media:read"))]
) -> Response:
    settings = settings_of(request)
    art = _load(request, artifact_id, principal)
    store = get_store(settings)
    filename = f"{art.id}{EXT.get(art.mime_type, '')}"
    url = store.presign_get(
        "artifacts",
        art.object_key,
        ttl_s=settings.presign_ttl_s,
        content_type=art.mime_type,
        filename=filename,
    )
    _audit(request, principal, "artifact.read", art, delivery="presigned" if url else "stream")
    if url:
        return RedirectResponse(url, status_code=307, headers={"Cache-Control": "no-store"})
    try:
        chunks = store.iter_chunks("artifacts", art.object_key)
        first = next(chunks, b"")
    except ObjectNotFound:
        raise Problem(410, "The artifact's file is no longer stored.", slug="gone") from None

    def body() -> Iterator[bytes]:
        yield first
        yield from chunks

    return StreamingResponse(
        body(),
        media_type=art.mime_type,
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Content-Length": str(art.size_bytes),
            "Cache-Control": "no-store",
            "ETag": f'"{art.sha256}"',
        },
    )


@router.get("/{artifact_id}/metrics")
async def get_artifact_metrics(
    request: Request, artifact_id: str, principal: Annotated[Principal, Depends(require_scope("media:read"))]
) -> JSONResponse:
    """The eye metrics computed while masking (schema: models/README.md)."""
    art = await run_in_threadpool(_load, request, artifact_id, principal)
    store = get_store(settings_of(request))
    try:
        raw = await run_in_threadpool(store.get_bytes, "artifacts", art.metrics_key)
    except ObjectNotFound:
        raise Problem(410, "The artifact's metrics are no longer stored.", slug="gone") from None
    await run_in_threadpool(_audit, request, principal, "artifact.metrics_read", art)
    return JSONResponse(json.loads(raw), headers={"Cache-Control": "no-store"})
