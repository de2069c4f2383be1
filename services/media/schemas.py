"""Request and response shapes of the media endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class MediaMetadata(BaseModel):
    """Optional clinical context sent with an upload (multipart part ``metadata`` as JSON, or the
    ``X-DMask-Metadata`` header with a raw body)."""

    model_config = ConfigDict(extra="forbid")

    capture_time: datetime | None = None
    description: str | None = Field(default=None, max_length=2000)
    laterality: Literal["OD", "OS", "OU"] | None = Field(
        default=None, description="Eye shown: OD right, OS left, OU both."
    )


class UploadAccepted(BaseModel):
    job_id: str
    media_id: str
    record_id: str
    status: str
    kind: str
    mime_type: str
    size_bytes: int
    sha256: str
    replayed: bool = False
    links: dict[str, str]


class ArtifactRef(BaseModel):
    artifact_id: str
    kind: str
    mime_type: str
    size_bytes: int
    model_version: str
    frames_total: int
    frames_blanked: int
    created_at: datetime
    links: dict[str, str]


class MediaItem(BaseModel):
    media_id: str
    record_id: str
    client_id: str
    kind: str
    mime_type: str
    size_bytes: int
    sha256: str
    metadata: dict[str, object]
    created_at: datetime
    original_stored: bool
    job_id: str | None
    job_status: str | None
    artifacts: list[ArtifactRef]


class RecordMedia(BaseModel):
    record_id: str
    items: list[MediaItem]
