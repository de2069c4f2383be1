"""The in-process worker: the same runner, fed from the database instead of a broker.

Used when no broker is configured: by the API process itself (embedded default: one machine, one
command) and by ``dmask worker`` without a broker. Jobs are picked oldest first; the claim is the same
guarded UPDATE as under Celery, so several such workers can share one database.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import select

from services.artifacts.service import expire_artifacts
from services.db import get_sessionmaker
from services.jobs import service as jobs
from services.jobs.dispatch import LocalDispatcher
from services.jobs.models import Job, JobStatus
from services.settings import Settings
from services.storage import get_store
from workers.heartbeat import touch
from workers.runner import run_job, worker_name

log = logging.getLogger("dmask.worker")


class InProcessWorker:
    def __init__(self, settings: Settings, dispatcher: LocalDispatcher | None = None) -> None:
        self.settings = settings
        self.dispatcher = dispatcher or LocalDispatcher()
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None
        self.name = f"inproc:{worker_name()}"

    def next_job(self) -> str | None:
        with get_sessionmaker(self.settings)() as session:
            return session.execute(
                select(Job.id).where(Job.status == JobStatus.queued).order_by(Job.enqueued_at).limit(1)
            ).scalar_one_or_none()

    def loop(self) -> None:
        last_reconcile = 0.0
        last_beat = 0.0
        while not self.stop_event.is_set():
            now = time.monotonic()
            if now - last_beat >= self.settings.worker_heartbeat_interval_s:
                try:
                    touch(self.settings.heartbeat_path)
                except OSError:
                    log.warning("cannot touch the heartbeat file")
                last_beat = now
            try:
                if now - last_reconcile >= self.settings.reconcile_interval_s:
                    jobs.recover_stale(self.settings, worker=self.name)
                    expire_artifacts(self.settings, get_store(self.settings))
                    last_reconcile = now
                job_id = self.next_job()
            except Exception:
                log.exception("in-process worker: database error")
                job_id = None
            if job_id is None:
                self.dispatcher.wakeup.wait(self.settings.embedded_poll_s)
                self.dispatcher.wakeup.clear()
                continue
            try:
                run_job(self.settings, job_id, worker=self.name)
            except Exception:
                log.exception("in-process worker: job %s crashed", job_id)

    def start(self) -> None:
        self.thread = threading.Thread(target=self.loop, name="dmask-inprocess-worker", daemon=True)
        self.thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.stop_event.set()
        self.dispatcher.wakeup.set()
        if self.thread is not None:
            self.thread.join(timeout)
