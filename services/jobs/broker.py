"""The Celery broker settings that the API (sending jobs) and the workers (running them) share.

Why a module of its own: both sides must agree on the broker, the queue and the message format, and
the API sends a job by its task name without importing the workers (``services.jobs.dispatch`` and
``workers/`` used to import each other for this). The workers' own settings (acks, prefetch, pool,
schedules) stay in ``workers.celery_app``.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from services.settings import Settings


def broker_conf(settings: Settings) -> dict[str, Any]:
    """Celery configuration both ends of the queue must share."""
    return {
        "task_default_queue": settings.queue_name,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "broker_transport_options": {
            "visibility_timeout": settings.visibility_timeout_s,
            "socket_timeout": 10,
            "socket_connect_timeout": 5,
        },
        "broker_connection_timeout": 5,
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        "task_send_sent_event": False,
    }


def sending_app(settings: Settings) -> Celery:
    """A Celery app that only sends tasks by name (no task modules, no worker settings)."""
    app = Celery("dmask", broker=settings.broker_url or "memory://")
    app.conf.update(broker_conf(settings))
    return app
