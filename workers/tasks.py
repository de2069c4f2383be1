"""Celery tasks. The task is a thin shell around ``workers.runner.run_job``: it never raises, because
failures are recorded on the job row (retries are the runner's and reconciler's business)."""

from __future__ import annotations

import logging
from typing import Any

from services.jobs.dispatch import TASK_NAME
from services.settings import get_settings
from workers.celery_app import app, install_child_signal_handlers

log = logging.getLogger("dmask.worker")


@app.task(name=TASK_NAME, bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def mask_job(self: Any, job_id: str) -> str | None:
    from services.logsafe import exc_summary
    from workers.runner import run_job, worker_name

    install_child_signal_handlers()
    try:
        return run_job(get_settings(), job_id, worker=f"celery:{worker_name()}")
    except Exception as exc:
        # Only a database outage that outlasted the runner's retries gets here. The job row is
        # still "running" (or "queued"): the reconciler requeues it when its lease expires (or
        # re-sends it), so acking this message loses nothing. Logged without the message (PHI).
        log.error("job %s: left to the reconciler: %s", job_id, exc_summary(exc))
        return None
