"""Request and response shapes of the media endpoints."""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: Characters refused in free text. Control characters other than tab and line breaks (NUL among
#: them: PostgreSQL text cannot hold it, C strings end at it); invisible characters that make text
#: display differently from what it is, i.e. bidirectional embeddings, overrides and isolates (the
#: "Trojan Source" trick: a description that reads one way in a viewer and another in the data),
#: zero-width space, word joiner, invisible operators, BOM, interlinear annotations; and lone
#: surrogates (not encodable as UTF-8: they used to fail deep in the database driver). Allowed on
#: purpose: ZWNJ/ZWJ (U+200C/U+200D, needed by Persian and Indic scripts and emoji sequences) and the
#: LRM/RLM marks (U+200E/U+200F, which only direct neutral characters inside right-to-left text).
FORBIDDEN_TEXT = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b\u2028\u2029\u202a-\u202e"
    "\u2060-\u2064\u2066-\u2069\ufeff\ufff9-\ufffb\ud800-\udfff]"
)


def clean_text(value: str) -> str:
    """NFC-normalised ``value``; ValueError (without echoing it: it can be PHI) if it holds a
    refused character."""
    if FORBIDDEN_TEXT.search(value):
        raise ValueError("contains control, bidirectional-override or invisible characters")
    return unicodedata.normalize("NFC", value)


class MediaMetadata(BaseModel):
    """Optional clinical context sent with an upload (multipart part ``metadata`` as JSON, or the
    ``X-DMask-Metadata`` header with a raw body)."""

    model_config = ConfigDict(extra="forbid")

    capture_time: datetime | None = None
    description: str | None = Field(default=None, max_length=2000)
    laterality: Literal["OD", "OS", "OU"] | None = Field(
        default=None, description="Eye shown: OD right, OS left, OU both."
    )

    @field_validator("description")
    @classmethod
    def _description_is_plain_text(cls, value: str | None) -> str | None:
        return None if value is None else clean_text(value)


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
