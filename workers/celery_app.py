"""Celery application: Redis broker, queue ``settings.queue_name``.

Reliability settings, and why:
- ``task_acks_late`` + ``task_reject_on_worker_lost``: a message is acknowledged only after the job
  ran, so a worker killed mid-job (OOM, SIGKILL, node loss) gives the message back.
- ``worker_prefetch_multiplier = 1``: a GPU worker holds one job at a time; others stay available
  to other workers.
- ``visibility_timeout`` from settings: Redis redelivers an unacknowledged message after it, so it
  must exceed the longest job (duplicates are harmless anyway: claims are guarded in the database).
No result backend: the job row is the result.

The parent process of the prefork pool never imports torch; the model loads lazily in each child.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import Celery, bootsteps, signals

from services.settings import Settings, get_settings
from workers.heartbeat import touch

log = logging.getLogger("dmask.worker")


def make_celery(settings: Settings) -> Celery:
    app = Celery("dmask", broker=settings.broker_url or "memory://", include=["workers.tasks"])
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=settings.queue_name,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout_s,
            "socket_timeout": 10,
            "socket_connect_timeout": 5,
        },
        broker_connection_timeout=5,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        worker_enable_remote_control=False,
        task_send_sent_event=False,
        worker_concurrency=settings.worker_concurrency,
        worker_max_tasks_per_child=None,
    )
    return app


class Heartbeat(bootsteps.StartStopStep):
    """Touches ``settings.heartbeat_path`` from the worker's own timer: if the worker's event loop
    wedges, the file goes stale and the liveness probe restarts the pod."""

    requires = {"celery.worker.components:Timer"}

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.tref: Any = None

    def start(self, parent: Any) -> None:
        settings = get_settings()
        touch(settings.heartbeat_path)
        self.tref = parent.timer.call_repeatedly(
            settings.worker_heartbeat_interval_s, touch, (settings.heartbeat_path,), priority=10
        )

    def stop(self, parent: Any) -> None:
        if self.tref is not None:
            self.tref.cancel()


app = make_celery(get_settings())
app.steps["worker"].add(Heartbeat)

_reconciler_started = threading.Event()


@signals.worker_process_init.connect
def _child_init(**_: Any) -> None:
    """In each pool child: drop database connections inherited from the parent."""
    from services.db import dispose_engines

    dispose_engines()


@signals.worker_ready.connect
def _start_reconciler(**_: Any) -> None:
    """The reconciler runs in the parent process (no model there): once at start, then periodically."""
    if _reconciler_started.is_set():
        return
    _reconciler_started.set()
    from workers.reconciler import start_reconciler_thread

    start_reconciler_thread(get_settings())


@signals.worker_ready.connect
def _start_metrics(**_: Any) -> None:
    settings = get_settings()
    if settings.worker_metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.worker_metrics_port)
