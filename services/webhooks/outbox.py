"""Writing webhook messages in the transaction of the event they announce (the outbox).

Payloads carry no PHI beyond the record ID: job and artifact IDs, the status, and links built from
``DMASK_PUBLIC_URL`` (never from a request). ``event_key`` makes one message per event per endpoint.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.db import utcnow
from services.dicomweb.models import DicomInstance
from services.settings import Settings
from services.webhooks.models import WebhookEndpoint, WebhookMessage

EVENT_TYPES = ("job.succeeded", "job.failed", "artifact.expired")


def new_message_id() -> str:
    return "msg_" + uuid.uuid4().hex


def links(settings: Settings, session: Session, job_id: str, artifact_id: str | None) -> dict[str, str]:
    base = settings.public_base
    out = {"job": f"{base}/v1/jobs/{job_id}"}
    if artifact_id:
        out["artifact"] = f"{base}/v1/artifacts/{artifact_id}"
        out["metrics"] = f"{base}/v1/artifacts/{artifact_id}/metrics"
        inst = session.get(DicomInstance, artifact_id)
        if inst is not None:
            out["dicomweb"] = (
                f"{base}/dicomweb/studies/{inst.study_uid}/series/{inst.series_uid}/instances/{inst.sop_uid}"
            )
    return out


def emit(
    session: Session,
    settings: Settings,
    event_type: str,
    *,
    client_id: str,
    record_id: str,
    job_id: str,
    status: str,
    artifact_id: str | None = None,
) -> list[str]:
    """Queue one message per endpoint of ``client_id`` subscribed to ``event_type``; returns their ids."""
    assert event_type in EVENT_TYPES
    endpoints = session.execute(
        select(WebhookEndpoint).where(
            WebhookEndpoint.client_id == client_id, WebhookEndpoint.deleted_at.is_(None)
        )
    ).scalars()
    now = utcnow()
    payload: dict[str, Any] = {
        "type": event_type,
        "timestamp": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "data": {
            "job_id": job_id,
            "record_id": record_id,
            "status": status,
            "artifact_id": artifact_id,
            "links": links(settings, session, job_id, artifact_id),
        },
    }
    ids = []
    for endpoint in endpoints:
        if event_type not in endpoint.events:
            continue
        msg = WebhookMessage(
            id=new_message_id(),
            endpoint_id=endpoint.id,
            client_id=client_id,
            event_type=event_type,
            event_key=f"{event_type}:{artifact_id if event_type == 'artifact.expired' else job_id}",
            record_id=record_id,
            payload=payload,
            status="pending",
            attempts=0,
            next_attempt_at=now,
        )
        session.add(msg)
        ids.append(msg.id)
    if ids:
        session.flush()
    return ids
