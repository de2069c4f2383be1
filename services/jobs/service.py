"""Job state transitions. Each one is a guarded UPDATE (``WHERE status = ... AND claim_token = ...``):
whichever worker, duplicate message or reconciler loses the race sees ``rowcount == 0`` and backs
off, so a job is worked on by one claim at a time and yields at most one artifact.

    queued --claim--> running --complete--> succeeded
       ^                 |  \\--fail(permanent or deliveries exhausted)--> failed
       |                 |
       +---fail(transient) / reconciler (heartbeat older than the lease)
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.artifacts.models import Artifact
from services.audit import service as audit
from services.db import session_scope, utcnow
from services.jobs.models import Job, JobStatus
from services.media.models import Media
from services.settings import Settings
from services.webhooks import outbox

log = logging.getLogger("dmask.jobs")


def _rows(result: Any) -> int:
    assert isinstance(result, CursorResult)
    return int(result.rowcount)


def _ctx(worker: str | None) -> audit.AuditContext:
    """Worker-side events have no client or request; the worker is named in the event detail."""
    return audit.SYSTEM


@dataclass(frozen=True)
class ClaimedJob:
    job_id: str
    token: str
    media_id: str
    record_id: str
    client_id: str
    kind: str
    mime_type: str
    original_key: str | None
    deliveries: int


def claim(settings: Settings, job_id: str, worker: str) -> ClaimedJob | None:
    """queued -> running. None if the job is not queued (done, failed, or someone else has it)."""
    token = str(uuid.uuid4())
    now = utcnow()
    with session_scope(settings) as session:
        res = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == JobStatus.queued)
            .values(
                status=JobStatus.running,
                claim_token=token,
                worker=worker[:200],
                deliveries=Job.deliveries + 1,
                started_at=now,
                heartbeat_at=now,
                progress=0.0,
                failure_reason=None,
            )
        )
        if _rows(res) != 1:
            return None
        job = session.get(Job, job_id)
        media = session.get(Media, job.media_id) if job else None
        assert job is not None and media is not None
        audit.append(
            session,
            _ctx(worker),
            "job.running",
            record_id=job.record_id,
            media_id=job.media_id,
            job_id=job.id,
            detail={"worker": worker[:200], "delivery": job.deliveries},
        )
        return ClaimedJob(
            job.id,
            token,
            job.media_id,
            job.record_id,
            job.client_id,
            job.kind,
            media.mime_type,
            media.original_key,
            job.deliveries,
        )


def heartbeat(settings: Settings, job_id: str, token: str, progress: float | None = None) -> bool:
    """Refresh the lease (and progress). False means the claim was lost: stop working."""
    values: dict[str, Any] = {"heartbeat_at": utcnow()}
    if progress is not None:
        values["progress"] = max(0.0, min(1.0, float(progress)))
    with session_scope(settings) as session:
        res = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.claim_token == token, Job.status == JobStatus.running)
            .values(**values)
        )
        return _rows(res) == 1


@dataclass
class ArtifactData:
    kind: str
    mime_type: str
    object_key: str
    metrics_key: str
    size_bytes: int
    sha256: str
    frames_total: int
    frames_blanked: int
    model_version: str


def complete(
    settings: Settings,
    claimed: ClaimedJob,
    data: ArtifactData,
    worker: str,
    artifact_id: str | None = None,
    also: Callable[[Session, str], None] | None = None,
) -> str | None:
    """running -> succeeded, recording the artifact in the same transaction. Returns the artifact id,
    or None if the claim was lost (the caller then deletes the objects it uploaded). ``also(session,
    artifact_id)`` records more in that transaction (the DICOMweb index); webhook messages for the
    event are queued in it too.

    Idempotent for one ``artifact_id``: when the connection dropped after the COMMIT reached the
    server, the caller's retry finds its own artifact recorded and gets the id back, instead of
    taking the already-succeeded job for a lost claim and deleting the objects the artifact row
    points to."""
    artifact_id = artifact_id or str(uuid.uuid4())
    now = utcnow()
    try:
        with session_scope(settings) as session:
            res = session.execute(
                update(Job)
                .where(
                    Job.id == claimed.job_id,
                    Job.claim_token == claimed.token,
                    Job.status == JobStatus.running,
                )
                .values(
                    status=JobStatus.succeeded,
                    progress=1.0,
                    finished_at=now,
                    heartbeat_at=now,
                    artifact_id=artifact_id,
                    model_version=data.model_version,
                )
            )
            if _rows(res) != 1:
                done = session.get(Job, claimed.job_id)
                if done is None or done.status != JobStatus.succeeded or done.artifact_id != artifact_id:
                    return None
                return artifact_id
            session.add(
                Artifact(
                    id=artifact_id,
                    job_id=claimed.job_id,
                    media_id=claimed.media_id,
                    record_id=claimed.record_id,
                    client_id=claimed.client_id,
                    kind=data.kind,
                    mime_type=data.mime_type,
                    object_key=data.object_key,
                    metrics_key=data.metrics_key,
                    size_bytes=data.size_bytes,
                    sha256=data.sha256,
                    frames_total=data.frames_total,
                    frames_blanked=data.frames_blanked,
                    model_version=data.model_version,
                )
            )
            session.flush()
            if also is not None:
                also(session, artifact_id)
            outbox.emit(
                session,
                settings,
                "job.succeeded",
                client_id=claimed.client_id,
                record_id=claimed.record_id,
                job_id=claimed.job_id,
                status=JobStatus.succeeded,
                artifact_id=artifact_id,
            )
            audit.append(
                session,
                _ctx(worker),
                "job.succeeded",
                record_id=claimed.record_id,
                media_id=claimed.media_id,
                job_id=claimed.job_id,
                artifact_id=artifact_id,
                detail={
                    "model_version": data.model_version,
                    "frames_total": data.frames_total,
                    "frames_blanked": data.frames_blanked,
                },
            )
    except IntegrityError:
        return None
    return artifact_id


def fail(settings: Settings, claimed: ClaimedJob, reason: str, *, permanent: bool, worker: str) -> str | None:
    """running -> failed (permanent, or deliveries used up: dead-lettered) or back to queued.
    Returns the new status, or None if the claim was lost."""
    reason = reason[:500]
    with session_scope(settings) as session:
        job = session.get(Job, claimed.job_id)
        if job is None:
            return None
        dead = permanent or job.deliveries >= settings.max_deliveries
        guard = (Job.id == claimed.job_id, Job.claim_token == claimed.token, Job.status == JobStatus.running)
        ids = {"record_id": claimed.record_id, "media_id": claimed.media_id, "job_id": claimed.job_id}
        if dead:
            final = reason if permanent else f"dead-lettered after {job.deliveries} deliveries: {reason}"
            res = session.execute(
                update(Job)
                .where(*guard)
                .values(
                    status=JobStatus.failed,
                    failure_reason=final[:500],
                    finished_at=utcnow(),
                    claim_token=None,
                )
            )
            if _rows(res) != 1:
                return None
            outbox.emit(
                session,
                settings,
                "job.failed",
                client_id=claimed.client_id,
                record_id=claimed.record_id,
                job_id=claimed.job_id,
                status=JobStatus.failed,
            )
            audit.append(
                session,
                _ctx(worker),
                "job.failed",
                audit.Outcome.failure,
                **ids,
                detail={"reason": final[:500], "deliveries": job.deliveries},
            )
            return JobStatus.failed
        res = session.execute(
            update(Job)
            .where(*guard)
            .values(
                status=JobStatus.queued,
                failure_reason=reason,
                claim_token=None,
                enqueued_at=utcnow(),
                progress=0.0,
            )
        )
        if _rows(res) != 1:
            return None
        audit.append(
            session,
            _ctx(worker),
            "job.requeued",
            audit.Outcome.failure,
            **ids,
            detail={"reason": reason, "deliveries": job.deliveries},
        )
        return JobStatus.queued


def release(settings: Settings, claimed: ClaimedJob, reason: str, *, worker: str) -> bool:
    """running -> queued without counting the delivery: the job did not fail, its worker could not
    finish it (the database or object store was unreachable, or the worker is shutting down). A
    dependency outage must not dead-letter every job that happened to be running. Returns False if
    the claim was lost."""
    with session_scope(settings) as session:
        res = session.execute(
            update(Job)
            .where(
                Job.id == claimed.job_id, Job.claim_token == claimed.token, Job.status == JobStatus.running
            )
            .values(
                status=JobStatus.queued,
                claim_token=None,
                enqueued_at=utcnow(),
                progress=0.0,
                deliveries=Job.deliveries - 1,
            )
        )
        if _rows(res) != 1:
            return False
        audit.append(
            session,
            _ctx(worker),
            "job.released",
            record_id=claimed.record_id,
            media_id=claimed.media_id,
            job_id=claimed.job_id,
            detail={"reason": reason[:500], "worker": worker[:200]},
        )
    return True


def recover_stale(settings: Settings, worker: str = "reconciler") -> list[str]:
    """Running jobs whose worker stopped reporting (killed, OOM, node lost): back to queued, or
    failed once ``max_deliveries`` is spent. Returns the ids to send to the broker again."""
    cutoff = utcnow() - timedelta(seconds=settings.job_lease_s)
    requeue: list[str] = []
    with session_scope(settings) as session:
        stale = list(
            session.execute(
                select(Job).where(Job.status == JobStatus.running, Job.heartbeat_at < cutoff)
            ).scalars()
        )
    for job in stale:
        with session_scope(settings) as session:
            guard = (
                Job.id == job.id,
                Job.status == JobStatus.running,
                Job.claim_token == job.claim_token,
                Job.heartbeat_at < cutoff,
            )
            ids = {"record_id": job.record_id, "media_id": job.media_id, "job_id": job.id}
            if job.deliveries >= settings.max_deliveries:
                reason = f"dead-lettered: worker lost during each of {job.deliveries} deliveries"
                res = session.execute(
                    update(Job)
                    .where(*guard)
                    .values(
                        status=JobStatus.failed, failure_reason=reason, finished_at=utcnow(), claim_token=None
                    )
                )
                if _rows(res) == 1:
                    outbox.emit(
                        session,
                        settings,
                        "job.failed",
                        client_id=job.client_id,
                        record_id=job.record_id,
                        job_id=job.id,
                        status=JobStatus.failed,
                    )
                    audit.append(
                        session,
                        _ctx(worker),
                        "job.failed",
                        audit.Outcome.failure,
                        **ids,
                        detail={"reason": reason, "deliveries": job.deliveries},
                    )
                continue
            res = session.execute(
                update(Job)
                .where(*guard)
                .values(
                    status=JobStatus.queued,
                    claim_token=None,
                    enqueued_at=utcnow(),
                    progress=0.0,
                    failure_reason="worker lost; requeued",
                )
            )
            if _rows(res) == 1:
                audit.append(
                    session,
                    _ctx(worker),
                    "job.requeued",
                    audit.Outcome.failure,
                    **ids,
                    detail={"reason": "worker lost (lease expired)", "deliveries": job.deliveries},
                )
                requeue.append(job.id)
    return requeue


def queued_to_resend(settings: Settings, *, everything: bool, since: datetime | None = None) -> list[str]:
    """Queued jobs whose broker message may be lost: all of them after a broker restart, else those
    waiting longer than ``requeue_after_s`` and (``since``) those queued while the broker was
    unreachable. Their ``enqueued_at`` is bumped so each is resent at most once per period
    (duplicates are harmless: only one claim can win)."""
    now = utcnow()
    cutoff = now - timedelta(seconds=settings.requeue_after_s)
    with session_scope(settings) as session:
        stmt = select(Job.id).where(Job.status == JobStatus.queued)
        if not everything:
            stale = Job.enqueued_at < cutoff
            stmt = stmt.where(stale | (Job.enqueued_at >= since) if since is not None else stale)
        ids = list(session.execute(stmt.order_by(Job.enqueued_at)).scalars())
        if ids:
            session.execute(
                update(Job).where(Job.id.in_(ids), Job.status == JobStatus.queued).values(enqueued_at=now)
            )
    return ids


def delete_original(settings: Settings, store: Any, media_id: str, worker: str) -> bool:
    """Remove a masked job's original from storage (settings.delete_originals), audited."""
    with session_scope(settings) as session:
        media = session.get(Media, media_id)
        if media is None or media.original_key is None:
            return False
        key, record_id = media.original_key, media.record_id
    try:
        store.delete("originals", key)
        outcome, detail = audit.Outcome.success, {}
    except Exception as exc:
        log.error("could not delete original of media %s: %s", media_id, type(exc).__name__)
        outcome, detail = audit.Outcome.failure, {"error": type(exc).__name__}
    with session_scope(settings) as session:
        if outcome == audit.Outcome.success:
            session.execute(
                update(Media)
                .where(Media.id == media_id, Media.original_key == key)
                .values(original_key=None, original_deleted_at=utcnow())
            )
        audit.append(
            session,
            _ctx(worker),
            "original.delete",
            outcome,
            record_id=record_id,
            media_id=media_id,
            detail=detail,
        )
    return outcome == audit.Outcome.success
