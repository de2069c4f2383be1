"""/v1/jobs/{job_id}: poll a masking job."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from services.auth.deps import deny_other_tenant, require_any, settings_of
from services.auth.service import Principal
from services.db import get_sessionmaker
from services.jobs.models import Job, JobStatus
from services.jobs.schemas import JobOut
from services.problems import not_found

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.get("/{job_id}", response_model=JobOut)
def get_job(
    request: Request,
    job_id: str,
    principal: Annotated[Principal, Depends(require_any("media:read", "media:write"))],
) -> JobOut:
    with get_sessionmaker(settings_of(request))() as session:
        job = session.get(Job, job_id)
    if job is None:
        raise not_found("job")
    if job.client_id != principal.client_id and not principal.is_admin:
        raise deny_other_tenant(request, principal, "job", job_id=job_id)
    links = {"self": f"/v1/jobs/{job.id}", "record_media": f"/v1/records/{job.record_id}/media"}
    if job.status == JobStatus.succeeded and job.artifact_id:
        links["artifact"] = f"/v1/artifacts/{job.artifact_id}"
        links["metrics"] = f"/v1/artifacts/{job.artifact_id}/metrics"
    return JobOut(
        job_id=job.id,
        status=job.status,
        progress=job.progress,
        failure_reason=job.failure_reason,
        model_version=job.model_version,
        record_id=job.record_id,
        media_id=job.media_id,
        kind=job.kind,
        deliveries=job.deliveries,
        artifact_id=job.artifact_id if job.status == JobStatus.succeeded else None,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        links=links,
    )
