"""Celery tasks. The task is a thin shell around ``workers.runner.run_job``: it never raises, because
failures are recorded on the job row (retries are the runner's and reconciler's business)."""

from __future__ import annotations

from typing import Any

from services.jobs.dispatch import TASK_NAME
from services.settings import get_settings
from workers.celery_app import app


@app.task(name=TASK_NAME, bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def mask_job(self: Any, job_id: str) -> str | None:
    from workers.runner import run_job, worker_name

    return run_job(get_settings(), job_id, worker=f"celery:{worker_name()}")
