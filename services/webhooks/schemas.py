"""Webhook API bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

EventType = Literal["job.succeeded", "job.failed", "artifact.expired"]


class EndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        max_length=2000,
        description="https URL of the receiver (http too on private networks "
        "when DMASK_WEBHOOK_ALLOW_PRIVATE is set).",
    )
    events: list[EventType] = Field(min_length=1, max_length=3)


class EndpointOut(BaseModel):
    id: str
    url: str
    events: list[str]
    created_at: datetime
    previous_secret_valid_until: datetime | None = None


class EndpointCreated(EndpointOut):
    secret: str = Field(description="whsec_... signing secret (Standard Webhooks); shown only here.")


class AttemptOut(BaseModel):
    attempt: int
    started_at: datetime
    duration_ms: int
    status_code: int | None
    error: str | None
    succeeded: bool


class DeliveryOut(BaseModel):
    id: str = Field(description="The message id (webhook-id header).")
    event_type: str
    status: str = Field(description="pending | delivered | failed")
    attempts: int
    next_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None
    payload: dict[str, object]
    attempt_log: list[AttemptOut]
