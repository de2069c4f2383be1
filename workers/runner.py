"""The job runner: original -> sniff -> model (or the DICOM path) -> artifact + metrics -> job row.

Shared by the Celery task and the in-process worker, so both modes behave identically. The runner
trusts nothing from the API: it re-sniffs the downloaded original, and every state change goes
through the guarded transitions in ``services.jobs.service``. While the model runs, a lease keeper
thread refreshes the job's heartbeat (and progress); if the lease is lost (the reconciler gave the
job to someone else) the result is thrown away instead of being recorded twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from services.jobs import service as jobs
from services.jobs.models import JobStatus
from services.logsafe import exc_summary
from services.settings import Settings
from services.storage import ObjectNotFound, ObjectStore, StoreUnavailable, get_store, new_key
from workers.scratch import job_scratch

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

T = TypeVar("T")

log = logging.getLogger("dmask.worker")

PHOTO_OUTPUT = {"JPEG": (".jpg", "image/jpeg"), "PNG": (".png", "image/png"), "WEBP": (".webp", "image/webp")}

_device_lock = threading.Lock()
_device: str | None = None


def resolve_device(setting: str) -> str:
    """'auto' becomes cuda or cpu, decided in the process that runs the model (after fork): the
    parent of a prefork pool must never initialise CUDA."""
    global _device
    with _device_lock:
        if _device is None:
            if setting == "auto":
                import torch

                _device = "cuda" if torch.cuda.is_available() else "cpu"
            else:
                _device = setting
        return _device


class ShutdownState:
    """This process was asked to stop (SIGTERM). The running job may go on until ``deadline``
    (monotonic seconds; None: until it finishes); past it the job is handed back to the queue at its
    next progress report. Set from signal handlers, read by the lease keeper's progress hook."""

    def __init__(self) -> None:
        self.busy = False
        self.requested = False
        self.deadline: float | None = None

    def request(self, after_s: float | None) -> None:
        self.requested = True
        if after_s is not None:
            due = time.monotonic() + after_s
            self.deadline = due if self.deadline is None else min(self.deadline, due)

    def due(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def reset(self) -> None:
        self.busy = False
        self.requested = False
        self.deadline = None


SHUTDOWN = ShutdownState()


class ShutdownRequested(Exception):
    """The worker is stopping and the job ran past the shutdown timeout: hand it back."""


class PermanentFailure(Exception):
    """Input that will never mask (reason is safe to show to the client)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class LeaseLost(Exception):
    pass


class LeaseKeeper:
    """Refreshes the job heartbeat every few seconds and forwards progress (throttled)."""

    def __init__(
        self, settings: Settings, claimed: jobs.ClaimedJob, shutdown: ShutdownState | None = None
    ) -> None:
        self.settings, self.claimed = settings, claimed
        self.shutdown = shutdown or SHUTDOWN
        self.interval = max(0.5, min(5.0, settings.job_lease_s / 4))
        self._progress: float | None = None
        self._stop = threading.Event()
        self.lost = False
        self._thread = threading.Thread(target=self._run, name=f"lease-{claimed.job_id[:8]}", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def progress(self, value: float) -> None:
        self._progress = value
        if self.lost:
            raise LeaseLost()
        if self.shutdown.due():
            raise ShutdownRequested()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if not jobs.heartbeat(self.settings, self.claimed.job_id, self.claimed.token, self._progress):
                    self.lost = True
                    return
            except Exception as exc:  # database blip: keep trying until the lease runs out
                log.warning("heartbeat failed for job %s: %s", self.claimed.job_id, type(exc).__name__)


@dataclass
class Output:
    path: Path
    kind: str
    mime_type: str
    metrics: dict[str, Any]
    frames_total: int
    frames_blanked: int
    model_version: str


def mask_media(
    settings: Settings, src: Path, workdir: Path, progress: Callable[[float], None], record_id: str
) -> Output:
    """Dispatch on the sniffed kind of the original. DICOM goes to ``services.dicom``."""
    from models.media.sniff import SNIFF_BYTES, MediaKind, sniff

    with open(src, "rb") as fh:
        media_type = sniff(fh.read(SNIFF_BYTES))
    if media_type.kind is MediaKind.DICOM:
        return mask_dicom(settings, src, workdir, progress, record_id)
    if media_type.kind not in (MediaKind.PHOTO, MediaKind.VIDEO):
        raise PermanentFailure(f"unsupported media type: {media_type.mime}")

    from models.api import MaskingError, mask_file
    from models.media.photo import output_format_for

    if media_type.kind is MediaKind.PHOTO:
        suffix, mime = PHOTO_OUTPUT.get(output_format_for(media_type), (".jpg", "image/jpeg"))
    else:
        suffix, mime = ".mp4", "video/mp4"
    dst = workdir / f"masked{suffix}"
    try:
        result = mask_file(
            src,
            dst,
            device=resolve_device(settings.device),
            batch_size=settings.batch_size,
            progress=progress,
            max_pixels=settings.max_pixels,
            max_video_seconds=settings.max_video_seconds,
        )
    except MaskingError as exc:
        raise PermanentFailure(exc.reason) from exc
    return Output(
        result.output_path,
        result.kind,
        mime,
        result.metrics,
        result.frames_total,
        result.frames_blanked,
        result.model_version,
    )


def mask_dicom(
    settings: Settings, src: Path, workdir: Path, progress: Callable[[float], None], record_id: str
) -> Output:
    """The DICOM route (``services.dicom``): the model masks the decoded frames, the DICOM path
    de-identifies the header (PS3.15 Basic Profile) with pseudonyms, date shifts and UIDs keyed by
    ``settings.hmac_key``, so every instance of one record maps consistently."""
    from models.api import MODEL_VERSION, get_model
    from services.dicom import DeidKeys, DeidOptions, DicomError, HmacUidMapper
    from services.dicom import mask_dicom as dicom_mask
    from services.dicom.uids import service_uid_key

    model = get_model(resolve_device(settings.device), settings.batch_size)
    master = settings.hmac_key.get_secret_value().encode("utf-8")
    uid_key = service_uid_key(master)
    dst = workdir / "masked.dcm"
    progress(0.05)
    try:
        result = dicom_mask(
            src,
            dst,
            mask_frames=model.mask_frames,
            options=DeidOptions(),
            keys=DeidKeys.derive(master, record_id),
            uid_map=HmacUidMapper(uid_key),
            frames_synthetic=model.renders_whole_frames,
        )
    except DicomError as exc:
        raise PermanentFailure(exc.reason) from exc
    metrics = dict(model.last_metrics or {})
    metrics["dicom"] = {
        "sop_class_uid": result.sop_class_uid,
        "source_sop_class_uid": result.source_sop_class_uid,
        "sop_class_changed": result.sop_class_changed,
        "transfer_syntax_uid": result.transfer_syntax_uid,
        "frames": result.frames,
        "rows": result.rows,
        "columns": result.columns,
        "lossy": result.lossy,
        "method_codes": list(result.method_codes),
        "warnings": list(result.warnings),
    }
    return Output(
        Path(result.output_path),
        "dicom",
        "application/dicom",
        metrics,
        int(result.frames),
        int(model.last_blanked),
        MODEL_VERSION,
    )


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _observe(kind: str, outcome: str, seconds: float) -> None:
    from services.metrics import JOB_DURATION, JOB_OUTCOMES

    JOB_DURATION.labels(kind=kind, outcome=outcome).observe(seconds)
    JOB_OUTCOMES.labels(kind=kind, outcome=outcome).inc()


def is_outage(exc: BaseException) -> bool:
    """The database or the object store could not be reached: nothing is wrong with the job."""
    from services.db import is_database_outage

    return isinstance(exc, StoreUnavailable) or is_database_outage(exc)


def retry_db(settings: Settings, what: str, fn: Callable[[], T]) -> T:
    """Run a job-state transition, retrying through a database outage for most of a lease (a
    PostgreSQL restart or fail-over takes seconds). Past that the lease expires anyway and the
    reconciler takes over, so the last error is raised."""
    from services.db import is_database_outage

    deadline = time.monotonic() + max(1.0, settings.job_lease_s * 0.8)
    delay = 0.25
    while True:
        try:
            return fn()
        except Exception as exc:
            if not is_database_outage(exc) or time.monotonic() + delay > deadline:
                raise
            log.warning("database unavailable during %s, retrying: %s", what, type(exc).__name__)
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


def _send(settings: Settings, job_id: str, countdown: float | None = None) -> None:
    from services.jobs.dispatch import get_dispatcher

    try:
        get_dispatcher(settings).enqueue([job_id], countdown=countdown)
    except Exception as exc:  # the reconciler re-sends queued jobs whose message was lost
        log.warning("could not re-send job %s: %s", job_id, type(exc).__name__)


def run_job(
    settings: Settings,
    job_id: str,
    worker: str,
    store: ObjectStore | None = None,
    shutdown: ShutdownState | None = None,
) -> str | None:
    """Run one job if it can be claimed. Returns the job's resulting status (None: not claimed).
    ``shutdown`` is the stop request this run obeys (default: the process's, set by signals).

    Outcomes: succeeded (one artifact); failed (bad input, or deliveries used up); queued again,
    either counted as a delivery (an internal error) or not (``release``: the database or object
    store was down, or this worker is shutting down); or None (the claim was lost: someone else
    owns the job now and whatever this run uploaded is deleted)."""
    from services.db import is_database_outage

    try:
        claimed = jobs.claim(settings, job_id, worker)
    except Exception as exc:
        if not is_database_outage(exc):
            raise
        # Nothing was claimed; without this the message would be acked and the job would wait
        # for the reconciler's requeue_after_s.
        log.warning("job %s: database unavailable at claim, re-sent later: %s", job_id, type(exc).__name__)
        _send(settings, job_id, countdown=settings.infra_retry_delay_s)
        return None
    if claimed is None:
        log.info("job %s not claimable (already taken, done or failed): skipping", job_id)
        return None
    store = store or get_store(settings)
    started = time.monotonic()
    uploaded: list[str] = []
    status: str | None = None
    shutdown = shutdown or SHUTDOWN
    shutdown.busy = True
    try:
        with (
            job_scratch() as workdir,
            LeaseKeeper(settings, claimed, shutdown) as lease,
        ):
            if claimed.original_key is None:
                raise PermanentFailure("the original is no longer stored")
            src = workdir / "original"
            try:
                store.get_to_file("originals", claimed.original_key, src)
            except ObjectNotFound:
                raise PermanentFailure("the original is no longer stored") from None
            out = mask_media(settings, src, workdir, lease.progress, claimed.record_id)
            if lease.lost:
                raise LeaseLost()
            art_key, metrics_key = new_key(), new_key()
            uploaded.append(art_key)  # before the put: a put that fails half-way is cleaned up too
            store.put_file("artifacts", art_key, out.path, content_type=out.mime_type)
            metrics_path = workdir / "metrics.json"
            metrics_path.write_text(json.dumps(out.metrics, sort_keys=True, default=str))
            uploaded.append(metrics_key)
            store.put_file("artifacts", metrics_key, metrics_path, content_type="application/json")
            data = jobs.ArtifactData(
                kind=out.kind,
                mime_type=out.mime_type,
                object_key=art_key,
                metrics_key=metrics_key,
                size_bytes=out.path.stat().st_size,
                sha256=_sha256(out.path),
                frames_total=out.frames_total,
                frames_blanked=out.frames_blanked,
                model_version=out.model_version,
            )
            new_id = str(uuid.uuid4())
            index = dicom_indexer(out, claimed, data.size_bytes)
            artifact_id = retry_db(
                settings, "complete", lambda: jobs.complete(settings, claimed, data, worker, new_id, index)
            )
            if artifact_id is None:
                raise LeaseLost()
            uploaded.clear()
        status = JobStatus.succeeded
        _observe(claimed.kind, "succeeded", time.monotonic() - started)
        log.info("job %s succeeded in %.1fs", job_id, time.monotonic() - started)
        if settings.delete_originals:
            try:
                jobs.delete_original(settings, store, claimed.media_id, worker)
            except Exception as exc:  # the sweeper deletes originals of succeeded jobs later
                log.warning("job %s: original not deleted yet: %s", job_id, type(exc).__name__)
    except LeaseLost:
        log.warning("job %s: lease lost, result discarded", job_id)
        status = None
    except ShutdownRequested:
        log.warning("job %s: worker shutting down, job handed back to the queue", job_id)
        status = _release(settings, claimed, "worker shutting down", worker, countdown=None)
    except PermanentFailure as exc:
        why = exc.reason
        status = retry_db(
            settings, "fail", lambda: jobs.fail(settings, claimed, why, permanent=True, worker=worker)
        )
        _observe(claimed.kind, "failed", time.monotonic() - started)
    except Exception as exc:
        if is_outage(exc):
            log.warning("job %s: dependency unavailable, job handed back: %s", job_id, type(exc).__name__)
            status = _release(
                settings,
                claimed,
                f"dependency unavailable ({type(exc).__name__})",
                worker,
                countdown=settings.infra_retry_delay_s,
            )
            _observe(claimed.kind, "released", time.monotonic() - started)
        else:
            log.error("job %s: internal error: %s", job_id, exc_summary(exc))
            reason = f"internal error ({type(exc).__name__})"
            status = retry_db(
                settings, "fail", lambda: jobs.fail(settings, claimed, reason, permanent=False, worker=worker)
            )
            _observe(claimed.kind, "error", time.monotonic() - started)
            if status == JobStatus.queued:
                _send(settings, job_id)
    finally:
        shutdown.busy = False
        if status in (JobStatus.succeeded, JobStatus.failed):
            _announce(settings)
        for key in uploaded:
            try:
                store.delete("artifacts", key)
            except Exception as exc:  # e.g. the store is down: the orphan sweeper removes it later
                log.warning("could not remove an unrecorded artifact object: %s", type(exc).__name__)
    return status


def dicom_indexer(
    out: Output, claimed: jobs.ClaimedJob, size_bytes: int
) -> Callable[[Session, str], None] | None:
    """The DICOMweb index write for a masked DICOM instance (read from the masked file now, written in
    the transaction that records the artifact); None for photos and videos, which DICOMweb does not
    serve (services/dicomweb/README.md)."""
    if out.kind != "dicom":
        return None
    from services.dicomweb import index

    entry = index.read_entry(out.path)

    def write(session: Session, artifact_id: str) -> None:
        index.write(
            session,
            entry,
            artifact_id=artifact_id,
            client_id=claimed.client_id,
            record_id=claimed.record_id,
            job_id=claimed.job_id,
            size_bytes=size_bytes,
        )

    return write


def _announce(settings: Settings) -> None:
    """Webhook messages were queued with the job's final state: have them delivered now."""
    from services.webhooks.dispatch import kick_if_pending

    try:
        kick_if_pending(settings)
    except Exception as exc:  # the sweep delivers them anyway
        log.warning("could not wake the webhook sender: %s", type(exc).__name__)


def _release(
    settings: Settings, claimed: jobs.ClaimedJob, reason: str, worker: str, countdown: float | None
) -> str | None:
    released = retry_db(settings, "release", lambda: jobs.release(settings, claimed, reason, worker=worker))
    if not released:
        return None
    _send(settings, claimed.job_id, countdown=countdown)
    return JobStatus.queued


def worker_name() -> str:
    return f"{os.uname().nodename}:{os.getpid()}"
