"""Artifact retention: masked files and metrics older than ``artifact_retention_days`` are deleted
from storage (the row stays, marked deleted, so the audit trail and listings still make sense)."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from services.artifacts.models import Artifact
from services.audit import service as audit
from services.db import session_scope, utcnow
from services.dicomweb import index as dicom_index
from services.retention.models import LegalHold
from services.settings import Settings
from services.storage import ObjectStore
from services.webhooks import outbox

log = logging.getLogger("dmask.retention")


def record_expiry(session: Session, settings: Settings, art: Artifact) -> None:
    """What an expired artifact takes with it, in the transaction that marks it deleted: its DICOMweb
    index entry (QIDO stops finding it) and an ``artifact.expired`` webhook message per subscriber."""
    dicom_index.forget(session, art.id)
    outbox.emit(
        session,
        settings,
        "artifact.expired",
        client_id=art.client_id,
        record_id=art.record_id,
        job_id=art.job_id,
        status="expired",
        artifact_id=art.id,
    )


def expire_artifacts(settings: Settings, store: ObjectStore, batch: int = 200) -> int:
    """Delete expired artifacts (one batch per call; the reconciler calls it every pass)."""
    if settings.artifact_retention_days is None:
        return 0
    cutoff = utcnow() - timedelta(days=settings.artifact_retention_days)
    with session_scope(settings) as session:
        expired = list(
            session.execute(
                select(Artifact)
                .where(Artifact.deleted_at.is_(None), Artifact.created_at < cutoff)
                .where(~exists().where(LegalHold.record_id == Artifact.record_id))  # legal hold: keep
                .order_by(Artifact.created_at)
                .limit(batch)
            ).scalars()
        )
    done = 0
    for art in expired:
        try:
            store.delete("artifacts", art.object_key)
            store.delete("artifacts", art.metrics_key)
        except Exception as exc:
            log.warning("could not expire artifact %s: %s", art.id, type(exc).__name__)
            continue
        with session_scope(settings) as session:
            res = session.execute(
                update(Artifact)
                .where(Artifact.id == art.id, Artifact.deleted_at.is_(None))
                .values(deleted_at=utcnow())
            )
            if getattr(res, "rowcount", 0) == 1:
                record_expiry(session, settings, art)
                audit.append(
                    session,
                    audit.SYSTEM,
                    "artifact.expire",
                    record_id=art.record_id,
                    media_id=art.media_id,
                    job_id=art.job_id,
                    artifact_id=art.id,
                    detail={"retention_days": settings.artifact_retention_days},
                )
                done += 1
    if done:
        from services.webhooks.dispatch import kick

        kick(settings)
    return done
