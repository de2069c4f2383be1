"""The embedded mode's webhook sender: a thread in the API process (no broker, no Celery).

Same delivery code as the Celery task; it sleeps until the earliest pending message is due, or until
``services.webhooks.dispatch.WAKEUP`` is set by a transaction that queued new messages.
"""

from __future__ import annotations

import logging
import threading

from services.db import utcnow
from services.logsafe import exc_summary
from services.settings import Settings
from services.webhooks import delivery
from services.webhooks.dispatch import WAKEUP

log = logging.getLogger("dmask.webhooks")

IDLE_POLL_S = 5.0


class WebhookPump:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None

    def loop(self) -> None:
        while not self.stop_event.is_set():
            wait = IDLE_POLL_S
            try:
                delivery.deliver_due(self.settings)
                due = delivery.next_due(self.settings)
                if due is not None:
                    wait = min(IDLE_POLL_S, max((due - utcnow()).total_seconds(), 0.05))
            except Exception as exc:
                log.error("webhook pump: %s", exc_summary(exc))
            WAKEUP.wait(wait)
            WAKEUP.clear()

    def start(self) -> None:
        self.thread = threading.Thread(target=self.loop, name="dmask-webhook-pump", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        WAKEUP.set()
        if self.thread is not None:
            self.thread.join(15)
