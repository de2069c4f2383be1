"""The job runner: original -> sniff -> model (or the DICOM path) -> artifact + metrics -> job row.

Shared by the Celery task and the in-process worker, so both modes behave identically. The runner
trusts nothing from the API: it re-sniffs the downloaded original, and every state change goes
through the guarded transitions in ``services.jobs.service``. While the model runs, a lease keeper
thread refreshes the job's heartbeat (and progress); if the lease is lost (the reconciler gave the
job to someone else) the result is thrown away instead of being recorded twice.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.jobs import service as jobs
from services.jobs.models import JobStatus
from services.settings import Settings
from services.storage import ObjectNotFound, ObjectStore, get_store, new_key

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


class PermanentFailure(Exception):
    """Input that will never mask (reason is safe to show to the client)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class LeaseLost(Exception):
    pass


class LeaseKeeper:
    """Refreshes the job heartbeat every few seconds and forwards progress (throttled)."""

    def __init__(self, settings: Settings, claimed: jobs.ClaimedJob) -> None:
        self.settings, self.claimed = settings, claimed
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
    """Dispatch on the sniffed kind of the original. DICOM goes to ``workers.dicom``."""
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
    """The DICOM route (``workers.dicom``): the model masks the decoded frames, the DICOM path
    de-identifies the header (PS3.15 Basic Profile) with pseudonyms, date shifts and UIDs keyed by
    ``settings.hmac_key``, so every instance of one record maps consistently."""
    from models.api import MODEL_VERSION, get_model
    from workers.dicom import DeidKeys, DeidOptions, DicomError, HmacUidMapper
    from workers.dicom import mask_dicom as dicom_mask

    model = get_model(resolve_device(settings.device), settings.batch_size)
    master = settings.hmac_key.get_secret_value().encode("utf-8")
    uid_key = hmac.new(master, b"dmask/uid/v1", hashlib.sha256).digest()
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


def run_job(settings: Settings, job_id: str, worker: str, store: ObjectStore | None = None) -> str | None:
    """Run one job if it can be claimed. Returns the job's resulting status (None: not claimed)."""
    claimed = jobs.claim(settings, job_id, worker)
    if claimed is None:
        log.info("job %s not claimable (already taken, done or failed): skipping", job_id)
        return None
    store = store or get_store(settings)
    started = time.monotonic()
    uploaded: list[str] = []
    status: str | None
    try:
        with tempfile.TemporaryDirectory(prefix="dmask-job-") as tmp, LeaseKeeper(settings, claimed) as lease:
            workdir = Path(tmp)
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
            store.put_file("artifacts", art_key, out.path, content_type=out.mime_type)
            uploaded.append(art_key)
            metrics_path = workdir / "metrics.json"
            metrics_path.write_text(json.dumps(out.metrics, sort_keys=True, default=str))
            store.put_file("artifacts", metrics_key, metrics_path, content_type="application/json")
            uploaded.append(metrics_key)
            artifact_id = jobs.complete(
                settings,
                claimed,
                jobs.ArtifactData(
                    kind=out.kind,
                    mime_type=out.mime_type,
                    object_key=art_key,
                    metrics_key=metrics_key,
                    size_bytes=out.path.stat().st_size,
                    sha256=_sha256(out.path),
                    frames_total=out.frames_total,
                    frames_blanked=out.frames_blanked,
                    model_version=out.model_version,
                ),
                worker,
            )
            if artifact_id is None:
                raise LeaseLost()
            uploaded.clear()
        status = JobStatus.succeeded
        _observe(claimed.kind, "succeeded", time.monotonic() - started)
        log.info("job %s succeeded in %.1fs", job_id, time.monotonic() - started)
        if settings.delete_originals:
            jobs.delete_original(settings, store, claimed.media_id, worker)
    except LeaseLost:
        log.warning("job %s: lease lost, result discarded", job_id)
        status = None
    except PermanentFailure as exc:
        status = jobs.fail(settings, claimed, exc.reason, permanent=True, worker=worker)
        _observe(claimed.kind, "failed", time.monotonic() - started)
    except Exception as exc:
        log.exception("job %s: internal error", job_id)
        status = jobs.fail(
            settings, claimed, f"internal error ({type(exc).__name__})", permanent=False, worker=worker
        )
        _observe(claimed.kind, "error", time.monotonic() - started)
        if status == JobStatus.queued:
            from services.jobs.dispatch import get_dispatcher

            get_dispatcher(settings).enqueue([job_id])
    finally:
        for key in uploaded:
            try:
                store.delete("artifacts", key)
            except Exception:
                log.warning("could not remove orphaned artifact object")
    return status


def worker_name() -> str:
    return f"{os.uname().nodename}:{os.getpid()}"
