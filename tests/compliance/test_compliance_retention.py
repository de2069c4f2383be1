"""Retention: what is past its retention is deleted (and each deletion audited), what is under legal
hold or still needed is kept, audit events cannot be deleted; the Celery beat task does it for real."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from compliance_support import Service, make_settings
from service_support import REDIS_HOST, REDIS_PORT, REPO, Seaweed, clean_env, wait_for
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import DBAPIError

from services.artifacts.models import Artifact
from services.audit import service as audit
from services.audit.models import AuditEvent
from services.db import get_sessionmaker, session_scope
from services.jobs.models import Job
from services.media.models import Media
from services.retention.models import LegalHold
from services.retention.policy import RetentionPolicy
from services.settings import Settings
from services.storage import ObjectStore, get_store
from workers.retention import enforce_retention

LONG_AGO = datetime(2020, 1, 2, tzinfo=UTC)


@dataclass
class Env:
    settings: Settings
    store: ObjectStore


@pytest.fixture(scope="module")
def env(
    weed: Seaweed, make_db: Callable[[], tuple[str, str]], tmp_path_factory: pytest.TempPathFactory
) -> Env:
    from services.migrate import upgrade

    _name, url = make_db()
    settings = make_settings(weed, tmp_path_factory.mktemp("ret"), url)
    upgrade(settings)
    store = get_store(settings)
    store.ensure_buckets()
    return Env(settings, store)


@dataclass
class Seeded:
    media_id: str
    artifact_id: str | None
    keys: list[tuple[str, str]]  # (bucket, key) of stored objects


def seed(
    env: Env,
    record_id: str,
    created_at: datetime,
    *,
    artifact: bool = True,
    original: bool = False,
    job_status: str = "succeeded",
    kind: str = "video",
) -> Seeded:
    """Rows and objects as the API and a worker leave them, dated ``created_at``."""
    media_id, job_id, art_id = (str(uuid.uuid4()) for _ in range(3))
    keys: list[tuple[str, str]] = []
    orig_key = f"t/{uuid.uuid4().hex}" if original else None
    if orig_key:
        env.store.put_stream("originals", orig_key, io.BytesIO(b"original"), content_type="video/mp4")
        keys.append(("originals", orig_key))
    with session_scope(env.settings) as s:
        s.add(
            Media(
                id=media_id,
                record_id=record_id,
                client_id="clinic-a",
                kind=kind,
                mime_type="video/mp4",
                size_bytes=8,
                sha256="0" * 64,
                original_key=orig_key,
                meta={},
                request_fingerprint="f" * 64,
                created_at=created_at,
            )
        )
        s.flush()
        s.add(
            Job(
                id=job_id,
                media_id=media_id,
                record_id=record_id,
                client_id="clinic-a",
                kind=kind,
                status=job_status,
                created_at=created_at,
                enqueued_at=created_at,
            )
        )
        s.flush()
        if artifact:
            obj, met = f"t/{uuid.uuid4().hex}", f"t/{uuid.uuid4().hex}"
            env.store.put_stream("artifacts", obj, io.BytesIO(b"masked"), content_type="video/mp4")
            env.store.put_stream("artifacts", met, io.BytesIO(b"{}"), content_type="application/json")
            keys += [("artifacts", obj), ("artifacts", met)]
            s.add(
                Artifact(
                    id=art_id,
                    job_id=job_id,
                    media_id=media_id,
                    record_id=record_id,
                    client_id="clinic-a",
                    kind=kind,
                    mime_type="video/mp4",
                    object_key=obj,
                    metrics_key=met,
                    size_bytes=6,
                    sha256="1" * 64,
                    model_version="test",
                    created_at=created_at,
                )
            )
    return Seeded(media_id, art_id if artifact else None, keys)


def stored(env: Env, item: Seeded) -> list[bool]:
    return [env.store.exists(bucket, key) for bucket, key in item.keys]  # type: ignore[arg-type]


def events(env: Env, **where: str) -> list[AuditEvent]:
    with get_sessionmaker(env.settings)() as s:
        stmt = select(AuditEvent).order_by(AuditEvent.id)
        for k, v in where.items():
            stmt = stmt.where(getattr(AuditEvent, k) == v)
        return list(s.execute(stmt).scalars())


def hold(env: Env, record_id: str) -> None:
    with session_scope(env.settings) as s:
        s.add(LegalHold(record_id=record_id, created_by="ops", reason="litigation"))


def test_enforce_retention_deletes_due_items_and_keeps_held_ones(env: Env) -> None:
    now = datetime.now(UTC)
    free, held, fresh_rec = (f"MRN-R{uuid.uuid4().hex[:8]}" for _ in range(3))
    hold(env, held)
    old_art = seed(env, free, LONG_AGO)
    held_art = seed(env, held, LONG_AGO)
    fresh_art = seed(env, fresh_rec, now - timedelta(days=10))
    photo_art = seed(env, free, LONG_AGO, kind="photo")  # photos kept 10 years by this policy
    old_orig = seed(env, free, now - timedelta(days=40), artifact=False, original=True, job_status="failed")
    held_orig = seed(env, held, now - timedelta(days=40), artifact=False, original=True, job_status="failed")
    busy_orig = seed(env, free, now - timedelta(days=40), artifact=False, original=True, job_status="queued")
    new_orig = seed(env, free, now - timedelta(days=5), artifact=False, original=True, job_status="failed")
    policy = RetentionPolicy(artifact_days=365, artifact_days_by_kind={"photo": 3650}, original_days=30)

    with get_sessionmaker(env.settings)() as session:
        report = enforce_retention(session, env.store, now, policy)
    assert report.artifacts_deleted == [old_art.artifact_id]
    assert report.originals_deleted == [old_orig.media_id]
    assert report.held_artifacts == 1 and report.held_originals == 1 and report.errors == 0
    assert stored(env, old_art) == [False, False] and stored(env, old_orig) == [False]
    for kept in (held_art, fresh_art, photo_art, held_orig, busy_orig, new_orig):
        assert all(stored(env, kept)), kept
    with get_sessionmaker(env.settings)() as s:
        gone = s.get(Artifact, old_art.artifact_id)
        assert gone is not None and gone.deleted_at is not None
        assert s.get(Artifact, held_art.artifact_id).deleted_at is None  # type: ignore[union-attr]
        media = s.get(Media, old_orig.media_id)
        assert media is not None and media.original_key is None and media.original_deleted_at is not None

    [deleted] = events(env, action="artifact.expire", artifact_id=str(old_art.artifact_id))
    assert deleted.record_id == free and deleted.media_id == old_art.media_id and deleted.outcome == "success"
    assert deleted.detail["reason"] == "retention" and deleted.detail["retention_days"] == 365
    assert deleted.request_id == f"retention:{report.run_id}"
    [orig_ev] = events(env, action="original.delete", media_id=old_orig.media_id)
    assert orig_ev.detail == {"reason": "retention", "retention_days": 30}
    run = events(env, action="retention.run")[-1]
    assert run.detail["artifacts_deleted"] == 1 and run.detail["held_artifacts"] == 1
    assert not events(env, record_id=held, action="artifact.expire")
    assert [e.action for e in events(env, request_id=f"retention:{report.run_id}")] == [
        "artifact.expire",
        "original.delete",
        "retention.run",
    ]

    # idempotent; and once the hold is released the held record's items go too
    with get_sessionmaker(env.settings)() as session:
        assert enforce_retention(session, env.store, now, policy).artifacts_deleted == []
    with session_scope(env.settings) as s:
        s.execute(delete(LegalHold).where(LegalHold.record_id == held))
    with get_sessionmaker(env.settings)() as session:
        again = enforce_retention(session, env.store, now, policy)
    assert again.artifacts_deleted == [held_art.artifact_id] and again.originals_deleted == [
        held_orig.media_id
    ]
    with get_sessionmaker(env.settings)() as s:
        assert audit.verify(s).ok


def test_reconciler_expiry_honours_legal_holds(env: Env) -> None:
    """The reconciler's own artifact expiry (services.artifacts.service) keeps held records too."""
    from services.artifacts.service import expire_artifacts

    held, free = f"MRN-H{uuid.uuid4().hex[:8]}", f"MRN-E{uuid.uuid4().hex[:8]}"
    hold(env, held)
    kept, gone = seed(env, held, LONG_AGO), seed(env, free, LONG_AGO)
    settings = env.settings.model_copy(update={"artifact_retention_days": 365})
    while expire_artifacts(settings, env.store):
        pass
    assert all(stored(env, kept)) and stored(env, gone) == [False, False]
    assert not events(env, action="artifact.expire", artifact_id=str(kept.artifact_id))


def test_audit_events_cannot_be_deleted(env: Env, tmp_path: Path, service: Service, admin: str) -> None:
    from services.migrate import upgrade

    sqlite = Settings(home=tmp_path / "embedded")
    upgrade(sqlite)
    for settings in (sqlite, env.settings):
        with session_scope(settings) as s:
            audit.append(s, audit.SYSTEM, "test.event")
        for stmt in (delete(AuditEvent), update(AuditEvent).values(outcome="failure")):
            with pytest.raises(DBAPIError, match="append-only"), session_scope(settings) as s:
                s.execute(stmt)
        with get_sessionmaker(settings)() as s:
            assert s.execute(text("SELECT count(*) FROM audit_events")).scalar_one() >= 1
    # and no route of the product deletes or changes audit events
    with service.http(admin) as c:
        paths = c.get("/openapi.json").json()["paths"]
    for path, ops in paths.items():
        if "audit" in path.lower():
            assert set(ops) <= {"get"}, (path, set(ops))


@pytest.fixture
def celery_procs(env: Env, tmp_path: Path) -> Iterator[Callable[[str], subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    db = 10
    redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db).flushdb()
    penv = clean_env()
    s = env.settings
    penv.update(
        {
            "DMASK_HOME": str(tmp_path / "home"),
            "DMASK_DATABASE_URL": s.sqlalchemy_url,
            "DMASK_BROKER_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{db}",
            "DMASK_QUEUE_NAME": f"retention-{uuid.uuid4().hex[:6]}",
            "DMASK_S3_ENDPOINT": str(s.s3_endpoint),
            "DMASK_S3_ACCESS_KEY": s.s3_access_key.get_secret_value() if s.s3_access_key else "",
            "DMASK_S3_SECRET_KEY": s.s3_secret_key.get_secret_value() if s.s3_secret_key else "",
            "DMASK_S3_SECURE": "false",
            "DMASK_S3_REGION": "us-east-1",
            "DMASK_SSE_C_KEY": s.sse_c_key.get_secret_value() if s.sse_c_key else "",
            "DMASK_BUCKET_ORIGINALS": s.bucket_originals,
            "DMASK_BUCKET_ARTIFACTS": s.bucket_artifacts,
            # per-kind policy only: the reconciler's own expiry (artifact_retention_days) stays off, so
            # whatever is deleted here was deleted by the task
            "DMASK_ARTIFACT_RETENTION_DAYS_BY_KIND": '{"video": 365}',
            "DMASK_ORIGINAL_RETENTION_DAYS": "none",
            "DMASK_WORKER_HEARTBEAT_FILE": str(tmp_path / "hb"),
            "DMASK_RETENTION_INTERVAL_S": "1",
        }
    )

    def start(code: str) -> subprocess.Popen[bytes]:
        with open(tmp_path / f"proc{len(procs)}.log", "wb") as log:
            p = subprocess.Popen(
                [sys.executable, "-c", code],
                cwd=REPO,
                env=penv,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        procs.append(p)
        return p

    yield start
    for p in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, 15)
    for p in procs:
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, 9)
            p.wait(10)


WORKER = """
from services.settings import get_settings
from workers.retention import app
app.worker_main(["worker", "-Q", get_settings().queue_name, "--pool", "solo", "--loglevel", "INFO",
                 "-n", "retention-test@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"])
"""
BEAT = """
from services.settings import get_settings
from workers.retention import beat_main
beat_main(get_settings())
"""


def test_celery_beat_runs_the_retention_task(
    env: Env, celery_procs: Callable[[str], subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    """A real Celery worker and celery beat (the schedule of ``workers.retention``, every second):
    the task deletes the expired artifact, audits it, and keeps the held one."""
    worker = celery_procs(WORKER)
    log = tmp_path / "proc0.log"

    def ready() -> bool:
        assert worker.poll() is None, log.read_text()
        return "ready." in log.read_text()

    wait_for(ready, 60, "celery worker")
    record, held = f"MRN-B{uuid.uuid4().hex[:8]}", f"MRN-BH{uuid.uuid4().hex[:8]}"
    hold(env, held)
    due, kept = seed(env, record, LONG_AGO), seed(env, held, LONG_AGO)
    celery_procs(BEAT)

    def deleted() -> list[AuditEvent]:
        return events(env, action="artifact.expire", artifact_id=str(due.artifact_id))

    [ev] = wait_for(deleted, 90, "the beat-scheduled retention task", interval=0.5)
    assert ev.record_id == record and ev.detail["reason"] == "retention"
    assert ev.request_id and ev.request_id.startswith("retention:")  # the task, not the reconciler
    assert stored(env, due) == [False, False] and all(stored(env, kept))
    assert "dmask.retention.enforce" in log.read_text()
