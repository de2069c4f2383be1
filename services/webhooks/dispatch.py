"""Waking whatever delivers webhook messages: the in-process pump (embedded mode) or a Celery task.

Importable without the Celery app: the task is sent by name through the job dispatcher's Celery
client, so neither ``services`` nor ``workers`` import each other at module level for it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from services.settings import Settings

log = logging.getLogger("dmask.webhooks")

DELIVER_TASK = "dmask.webhooks.deliver"
SWEEP_INTERVAL_S = 60.0

#: Set when messages were queued in this process; the in-process pump waits on it.
WAKEUP = threading.Event()


def beat_schedule() -> dict[str, dict[str, Any]]:
    """The safety net under Celery: due messages whose task was lost (broker restart) are sent."""
    return {
        "dmask-webhooks": {
            "task": DELIVER_TASK,
            "schedule": SWEEP_INTERVAL_S,
            "options": {"expires": SWEEP_INTERVAL_S},
        }
    }


def kick(settings: Settings, countdown: float | None = None) -> None:
    """Have due messages delivered soon (best effort: the sweep and the pump poll anyway)."""
    if settings.embedded:
        WAKEUP.set()
        return
    from services.jobs.dispatch import CeleryDispatcher, get_dispatcher

    dispatcher = get_dispatcher(settings)
    if not isinstance(dispatcher, CeleryDispatcher):
        return
    try:
        dispatcher.app.send_task(
            DELIVER_TASK, queue=settings.queue_name, countdown=countdown or None, retry=False
        )
    except Exception as exc:  # broker down: the beat sweep sends it later
        log.warning("could not send the webhook delivery task: %s", type(exc).__name__)


def kick_if_pending(settings: Settings) -> None:
    """``kick`` when messages are waiting: a deployment without webhooks sends no extra tasks."""
    from services.webhooks.delivery import next_due

    if next_due(settings) is not None:
        kick(settings)
