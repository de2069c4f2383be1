"""Retention enforcement: deletes masked artifacts and stored originals past their retention, skips
records under legal hold, audits every deletion. Audit events are never deleted.

Deleted artifacts are audited as ``artifact.expire`` like the reconciler's ``expire_artifacts`` (which
also honours legal holds), so either path reads the same in the log; this task adds originals,
per-kind policies, the hold re-check just before deleting and a ``retention.run`` summary event.

``enforce_retention(session, store, now, policy)`` is a pure function of its arguments (the clock
included), so tests drive it directly; ``enforce_retention_task`` is the Celery task that celery beat
runs every ``retention_interval_s`` (``BEAT_SCHEDULE``).

Each deletion is its own short transaction: claim the row with a guarded UPDATE (two overlapping runs
cannot both delete), re-check the legal hold, delete the object(s), append the audit event, commit.
If the store refuses, the transaction rolls back and the row stays for the next run; if the commit
fails after the store delete, the next run deletes again (deletes are idempotent) and records it.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from services.artifacts.models import Artifact
from services.artifacts.service import record_expiry
from services.audit import service as audit
from services.jobs.models import Job, JobStatus
from services.media.models import Media
from services.retention.models import LegalHold
from services.retention.policy import RetentionPolicy, policy_from_settings
from services.retention.schedule import BEAT_SCHEDULE, TASK_NAME, beat_schedule
from services.settings import Settings, get_settings
from services.storage import ObjectStore
from workers.celery_app import app

log = logging.getLogger("dmask.retention")

__all__ = ["BEAT_SCHEDULE", "TASK_NAME", "beat_schedule", "enforce_retention", "enforce_retention_task"]


@dataclass
class RetentionReport:
    run_id: str
    artifacts_deleted: list[str] = field(default_factory=list)
    originals_deleted: list[str] = field(default_factory=list)
    held_artifacts: int = 0
    held_originals: int = 0
    errors: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _held(record_id: Any) -> Any:
    return exists().where(LegalHold.record_id == record_id)


def _is_held(session: Session, record_id: str) -> bool:
    return session.get(LegalHold, record_id) is not None


def _ctx(run_id: str) -> audit.AuditContext:
    return audit.AuditContext(request_id=f"retention:{run_id}")


def _delete_artifacts(
    session: Session, store: ObjectStore, now: datetime, policy: RetentionPolicy, report: RetentionReport
) -> None:
    kinds = list(
        session.execute(select(Artifact.kind).where(Artifact.deleted_at.is_(None)).distinct()).scalars()
    )
    session.rollback()
    for kind in kinds:
        max_age = policy.artifact_max_age(kind)
        if max_age is None:
            continue
        cutoff = now - max_age
        due = Artifact.deleted_at.is_(None) & (Artifact.kind == kind) & (Artifact.created_at < cutoff)
        report.held_artifacts += len(
            session.execute(select(Artifact.id).where(due, _held(Artifact.record_id))).all()
        )
        ids = list(
            session.execute(
                select(Artifact.id)
                .where(due, ~_held(Artifact.record_id))
                .order_by(Artifact.created_at)
                .limit(policy.batch)
            ).scalars()
        )
        session.rollback()
        for art_id in ids:
            try:
                claimed = session.execute(
                    update(Artifact)
                    .where(Artifact.id == art_id, Artifact.deleted_at.is_(None))
                    .values(deleted_at=now)
                )
                art = session.get(Artifact, art_id)
                if getattr(claimed, "rowcount", 0) != 1 or art is None:
                    session.rollback()
                    continue
                if _is_held(session, art.record_id):  # a hold placed since the selection wins
                    session.rollback()
                    report.held_artifacts += 1
                    continue
                store.delete("artifacts", art.object_key)
                store.delete("artifacts", art.metrics_key)
                record_expiry(session, get_settings(), art)
                audit.append(
                    session,
                    _ctx(report.run_id),
                    "artifact.expire",
                    record_id=art.record_id,
                    media_id=art.media_id,
                    job_id=art.job_id,
                    artifact_id=art.id,
                    detail={
                        "reason": "retention",
                        "kind": kind,
                        "retention_days": max_age.days,
                        "created_at": audit._ts(art.created_at),
                    },
                )
                session.commit()
                report.artifacts_deleted.append(art_id)
            except Exception as exc:
                session.rollback()
                report.errors += 1
                log.error("retention: could not delete artifact %s: %s", art_id, type(exc).__name__)


def _delete_originals(
    session: Session, store: ObjectStore, now: datetime, policy: RetentionPolicy, report: RetentionReport
) -> None:
    max_age = policy.original_max_age()
    if max_age is None:
        return
    cutoff = now - max_age
    busy = exists().where(Job.media_id == Media.id, Job.status.in_([JobStatus.queued, JobStatus.running]))
    due = Media.original_key.is_not(None) & (Media.created_at < cutoff) & ~busy
    report.held_originals += len(session.execute(select(Media.id).where(due, _held(Media.record_id))).all())
    ids = list(
        session.execute(
            select(Media.id)
            .where(due, ~_held(Media.record_id))
            .order_by(Media.created_at)
            .limit(policy.batch)
        ).scalars()
    )
    session.rollback()
    for media_id in ids:
        try:
            media = session.get(Media, media_id)
            if media is None or media.original_key is None:
                session.rollback()
                continue
            key = media.original_key
            claimed = session.execute(
                update(Media)
                .where(Media.id == media_id, Media.original_key == key)
                .values(original_key=None, original_deleted_at=now)
            )
            if getattr(claimed, "rowcount", 0) != 1:
                session.rollback()
                continue
            if _is_held(session, media.record_id):
                session.rollback()
                report.held_originals += 1
                continue
            store.delete("originals", key)
            audit.append(
                session,
                _ctx(report.run_id),
                "original.delete",
                record_id=media.record_id,
                media_id=media.id,
                detail={"reason": "retention", "retention_days": max_age.days},
            )
            session.commit()
            report.originals_deleted.append(media_id)
        except Exception as exc:
            session.rollback()
            report.errors += 1
            log.error("retention: could not delete original of media %s: %s", media_id, type(exc).__name__)


def enforce_retention(
    session: Session, store: ObjectStore, now: datetime, policy: RetentionPolicy | None = None
) -> RetentionReport:
    """Delete what is past retention as of ``now``; records under legal hold are kept. Ends with one
    ``retention.run`` audit event summarising the run (counts only: the deletions have their own)."""
    policy = policy or policy_from_settings(get_settings())
    report = RetentionReport(run_id=uuid.uuid4().hex[:16])
    _delete_artifacts(session, store, now, policy, report)
    _delete_originals(session, store, now, policy, report)
    if report.artifacts_deleted:
        from services.webhooks.dispatch import kick

        kick(get_settings())
    audit.append(
        session,
        _ctx(report.run_id),
        "retention.run",
        audit.Outcome.success if report.errors == 0 else audit.Outcome.failure,
        detail={
            "policy": policy.describe(),
            "artifacts_deleted": len(report.artifacts_deleted),
            "originals_deleted": len(report.originals_deleted),
            "held_artifacts": report.held_artifacts,
            "held_originals": report.held_originals,
            "errors": report.errors,
            "now": audit._ts(now),
        },
    )
    session.commit()
    return report


def run_retention(settings: Settings, now: datetime | None = None) -> RetentionReport:
    """One run against the configured database and store (the task's body; also usable from a CLI)."""
    from services.db import get_sessionmaker, utcnow
    from services.storage import get_store

    policy = policy_from_settings(settings)
    with get_sessionmaker(settings)() as session:
        report = enforce_retention(session, get_store(settings), now or utcnow(), policy)
    log.info(
        "retention run %s: %d artifacts and %d originals deleted, %d+%d kept under legal hold, %d errors "
        "(policy %s)",
        report.run_id,
        len(report.artifacts_deleted),
        len(report.originals_deleted),
        report.held_artifacts,
        report.held_originals,
        report.errors,
        policy.describe(),
    )
    return report


@app.task(name=TASK_NAME, ignore_result=True, acks_late=True)
def enforce_retention_task() -> dict[str, Any]:
    return run_retention(get_settings()).as_dict()


def beat_main(settings: Settings) -> int:
    """``dmask beat``: celery beat with the retention schedule (run exactly one per deployment; the
    schedule file lives in DMASK_HOME)."""
    from services.retention.policy import RetentionSettings

    interval = RetentionSettings().retention_interval_s
    app.conf.beat_schedule = {**(app.conf.beat_schedule or {}), **beat_schedule(interval)}
    settings.home.mkdir(parents=True, exist_ok=True)
    app.start(
        [
            "beat",
            "--schedule",
            str(settings.home / "celerybeat-schedule"),
            "--loglevel",
            settings.log_level.upper(),
        ]
    )
    return 0
