"""The celery beat entry of the retention task, importable without the Celery app (so
``workers/celery_app.py`` can use it without a circular import)."""

from __future__ import annotations

from typing import Any

from services.retention.policy import RetentionSettings

TASK_NAME = "dmask.retention.enforce"


def beat_schedule(interval_s: float) -> dict[str, dict[str, Any]]:
    """Every ``interval_s``; ``expires`` drops a run that waited longer than one interval."""
    return {
        "dmask-retention": {
            "task": TASK_NAME,
            "schedule": interval_s,
            "options": {"expires": interval_s},
        }
    }


BEAT_SCHEDULE = beat_schedule(RetentionSettings().retention_interval_s)
