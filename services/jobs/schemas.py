"""Job status as clients see it."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class JobOut(BaseModel):
    job_id: str
    status: str = Field(description="queued | running | succeeded | failed")
    progress: float = Field(ge=0, le=1)
    failure_reason: str | None
    model_version: str | None
    record_id: str
    media_id: str
    kind: str
    deliveries: int
    artifact_id: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    links: dict[str, str]
