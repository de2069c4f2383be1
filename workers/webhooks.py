"""Celery task delivering webhook messages (``services.webhooks.delivery``).

The task delivers every due message, then, if it attempted any and some are still pending (a
receiver failed), sends itself again for when the earliest one is due: retries follow the messages'
back-off without a task per message. Beat runs it every minute as well, so a lost message is found.
"""

from __future__ import annotations

import logging
from typing import Any

from services.db import utcnow
from services.settings import get_settings
from services.webhooks import delivery
from services.webhooks.dispatch import DELIVER_TASK, kick
from workers.celery_app import app

log = logging.getLogger("dmask.worker")


@app.task(name=DELIVER_TASK, bind=True, ignore_result=True)
def deliver(self: Any) -> int:
    settings = get_settings()
    try:
        attempted = delivery.deliver_due(settings)
        if attempted:
            due = delivery.next_due(settings)
            if due is not None:
                kick(settings, countdown=max((due - utcnow()).total_seconds(), 0.0) + 0.05)
        return attempted
    except Exception as exc:  # the beat sweep tries again
        log.warning("webhook delivery pass failed: %s", type(exc).__name__)
        return 0
