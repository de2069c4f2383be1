"""The orphan sweeper: removes stored objects that no database row accounts for, audited.

Why objects can be orphaned although every code path deletes what it gives up: cleanup needs the
store, and the store (or the process) can be gone at that moment. An API that refuses an upload
while S3 is down cannot abort the multipart upload; a worker that cannot record its artifact because
the database is down cannot always delete the objects it uploaded; a process killed between the
object write and the database commit deletes nothing. The sweeper closes those gaps after the fact:

* objects in ``originals`` no ``media.original_key`` names, and objects in ``artifacts`` no live
  ``artifacts`` row names (an expired artifact's objects count as orphans too);
* unfinished multipart uploads (S3) or temp files (local store);
* originals of succeeded jobs still stored although ``delete_originals`` is on (the worker's delete
  failed), deleted through ``jobs.delete_original`` like any other;

everything older than ``orphan_grace_s`` only: a younger object may belong to an upload or a job
that is about to commit its row. Every deletion is an audit event (``storage.orphan_delete``,
``storage.upload_abort``) naming the bucket and the key, which is random and carries no PHI.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, text

from services.audit import service as audit
from services.db import get_engine, session_scope, utcnow
from services.settings import Settings
from services.storage.base import BucketName, ObjectStore

log = logging.getLogger("dmask.sweeper")

SWEEP_LOCK_ID = 0x444D534B5357  # "DMSKSW": one sweeper at a time across reconcilers
_CHUNK = 500


@dataclass
class SweepReport:
    """What one pass removed (keys are random storage keys, never PHI)."""

    deleted: dict[str, list[str]] = field(default_factory=dict)
    aborted: dict[str, list[str]] = field(default_factory=dict)
    failed: dict[str, list[str]] = field(default_factory=dict)
    originals_of_succeeded_jobs: int = 0
    skipped: bool = False  # another sweeper held the lock

    def as_dict(self) -> dict[str, Any]:
        return {
            "deleted": self.deleted,
            "aborted": self.aborted,
            "failed": self.failed,
            "originals_of_succeeded_jobs": self.originals_of_succeeded_jobs,
            "skipped": self.skipped,
        }

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.deleted.values()) + sum(len(v) for v in self.aborted.values())


def _referenced(settings: Settings, bucket: BucketName, keys: list[str]) -> set[str]:
    """The subset of ``keys`` a row still points to (indexed lookups, ``_CHUNK`` keys at a time)."""
    from services.artifacts.models import Artifact
    from services.media.models import Media

    found: set[str] = set()
    with session_scope(settings) as session:
        for i in range(0, len(keys), _CHUNK):
            chunk = keys[i : i + _CHUNK]
            if bucket == "originals":
                found.update(
                    k
                    for k in session.execute(
                        select(Media.original_key).where(Media.original_key.in_(chunk))
                    ).scalars()
                    if k
                )
            else:
                rows = session.execute(
                    select(Artifact.object_key, Artifact.metrics_key).where(
                        Artifact.deleted_at.is_(None),
                        or_(Artifact.object_key.in_(chunk), Artifact.metrics_key.in_(chunk)),
                    )
                )
                for obj, met in rows:
                    found.update((obj, met))
    return found


@contextlib.contextmanager
def _exclusive(settings: Settings) -> Iterator[bool]:
    """True if this process may sweep now. On PostgreSQL a session advisory lock keeps several
    reconcilers (one per worker) from sweeping at once and auditing the same deletion twice."""
    engine = get_engine(settings)
    if engine.dialect.name != "postgresql":
        yield True
        return
    with engine.connect() as conn:
        got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": SWEEP_LOCK_ID}).scalar())
        conn.commit()
        try:
            yield got
        finally:
            if got:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": SWEEP_LOCK_ID})
                conn.commit()


def _audit(settings: Settings, action: str, bucket: str, keys: list[str], outcome: str, **extra: Any) -> None:
    if not keys:
        return
    with session_scope(settings) as session:
        for key in keys:
            audit.append(
                session, audit.SYSTEM, action, outcome, detail={"bucket": bucket, "key": key, **extra}
            )


def _sweep_bucket(
    settings: Settings,
    store: ObjectStore,
    bucket: BucketName,
    cutoff: datetime,
    limit: int,
    report: SweepReport,
) -> None:
    aborted = store.abort_stale_uploads(bucket, cutoff)
    _audit(settings, "storage.upload_abort", bucket, aborted, audit.Outcome.success)
    report.aborted[bucket] = aborted

    old = [o.key for o in store.list_objects(bucket) if o.last_modified < cutoff]
    referenced = _referenced(settings, bucket, old)
    orphans = [k for k in old if k not in referenced][:limit]
    deleted: list[str] = []
    failed: list[str] = []
    for key in orphans:
        try:
            store.delete(bucket, key)
            deleted.append(key)
        except Exception as exc:
            log.warning("could not delete an orphaned object: %s", type(exc).__name__)
            failed.append(key)
    _audit(settings, "storage.orphan_delete", bucket, deleted, audit.Outcome.success)
    _audit(settings, "storage.orphan_delete", bucket, failed, audit.Outcome.failure)
    report.deleted[bucket] = deleted
    report.failed[bucket] = failed


def _originals_of_succeeded_jobs(settings: Settings, store: ObjectStore, cutoff: datetime, limit: int) -> int:
    from services.jobs import service as jobs
    from services.jobs.models import Job, JobStatus
    from services.media.models import Media

    with session_scope(settings) as session:
        media_ids = list(
            session.execute(
                select(Media.id)
                .join(Job, Job.media_id == Media.id)
                .where(
                    Media.original_key.is_not(None),
                    Job.status == JobStatus.succeeded,
                    Job.finished_at < cutoff,
                )
                .limit(limit)
            ).scalars()
        )
    return sum(1 for mid in media_ids if jobs.delete_original(settings, store, mid, "sweeper"))


def sweep_orphans(
    settings: Settings,
    store: ObjectStore,
    *,
    grace_s: float | None = None,
    now: datetime | None = None,
    limit: int = 10_000,
) -> SweepReport:
    """One sweep of both buckets (at most ``limit`` deletions per bucket). See the module doc."""
    grace = settings.orphan_grace_s if grace_s is None else grace_s
    cutoff = (now or utcnow()) - timedelta(seconds=grace)
    report = SweepReport()
    with _exclusive(settings) as mine:
        if not mine:
            report.skipped = True
            return report
        for bucket in ("originals", "artifacts"):
            _sweep_bucket(settings, store, bucket, cutoff, limit, report)
        if settings.delete_originals:
            report.originals_of_succeeded_jobs = _originals_of_succeeded_jobs(settings, store, cutoff, limit)
    if report.total or report.originals_of_succeeded_jobs:
        log.warning(
            "orphan sweep removed %d objects, aborted %d unfinished uploads, deleted %d originals of "
            "succeeded jobs",
            sum(len(v) for v in report.deleted.values()),
            sum(len(v) for v in report.aborted.values()),
            report.originals_of_succeeded_jobs,
        )
    return report
