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
from services.logsafe import exc_summary
from services.settings import Settings
from services.storage import get_store
from workers.heartbeat import touch
from workers.runner import ShutdownState, run_job, worker_name

log = logging.getLogger("dmask.worker")


class InProcessWorker:
    def __init__(self, settings: Settings, dispatcher: LocalDispatcher | None = None) -> None:
        self.settings = settings
        self.dispatcher = dispatcher or LocalDispatcher()
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None
        self.name = f"inproc:{worker_name()}"
        self.shutdown = ShutdownState()  # this worker's own: stopping it must not touch others

    def next_job(self) -> str | None:
        with get_sessionmaker(self.settings)() as session:
            return session.execute(
                select(Job.id).where(Job.status == JobStatus.queued).order_by(Job.enqueued_at).limit(1)
            ).scalar_one_or_none()

    def loop(self) -> None:
        from workers.reconciler import SweepTimer
        from workers.scratch import remove_abandoned

        last_reconcile = 0.0
        last_beat = 0.0
        sweeper = SweepTimer(self.settings)
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
                    sweeper.maybe_sweep()
                    remove_abandoned()
                job_id = self.next_job()
            except Exception as exc:
                log.error("in-process worker: database error: %s", exc_summary(exc))
                job_id = None
            if job_id is None:
                self.dispatcher.wakeup.wait(self.settings.embedded_poll_s)
                self.dispatcher.wakeup.clear()
                continue
            try:
                status = run_job(self.settings, job_id, worker=self.name, shutdown=self.shutdown)
            except Exception as exc:
                log.error("in-process worker: job %s crashed: %s", job_id, exc_summary(exc))
                status = None
            if status == JobStatus.queued:
                # Handed back (a dependency is down, or an internal error to retry): back off
                # instead of claiming it again at once in a tight loop.
                self.stop_event.wait(self.settings.infra_retry_delay_s)

    def start(self) -> None:
        self.thread = threading.Thread(target=self.loop, name="dmask-inprocess-worker", daemon=True)
        self.thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop polling; a running job gets ``worker_shutdown_timeout_s`` (or ``timeout``) to finish,
        then is handed back to the queue at its next progress report (not counted as a delivery)."""
        self.stop_event.set()
        self.dispatcher.wakeup.set()
        grace = self.settings.worker_shutdown_timeout_s
        grace = timeout if grace is None else min(grace, timeout)
        self.shutdown.request(grace)
        if self.thread is not None:
            self.thread.join(grace + 10.0)
