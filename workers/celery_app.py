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
import os
import signal
import threading
from typing import Any

from celery import Celery, bootsteps, signals

from services.jobs.broker import broker_conf
from services.retention.schedule import BEAT_SCHEDULE  # imports no Celery app: no cycle
from services.settings import Settings, get_settings
from services.webhooks.dispatch import beat_schedule as webhook_beat_schedule  # no Celery app: no cycle
from workers.heartbeat import keep_alive_while_excused, touch

log = logging.getLogger("dmask.worker")


def make_celery(settings: Settings) -> Celery:
    tasks = ["workers.tasks", "workers.retention", "workers.webhooks"]
    app = Celery("dmask", broker=settings.broker_url or "memory://", include=tasks)
    app.conf.update(broker_conf(settings))  # what the API's sending app shares (services.jobs.broker)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        worker_enable_remote_control=False,
        worker_concurrency=settings.worker_concurrency,
        worker_max_tasks_per_child=None,
        # retention: artifacts and originals past their policy, legal holds kept; webhook sweep
        beat_schedule={**BEAT_SCHEDULE, **webhook_beat_schedule()},
    )
    return app


class Heartbeat(bootsteps.StartStopStep):
    """Touches ``settings.heartbeat_path`` from the worker's own timer: if the worker's event loop
    wedges, the file goes stale and the liveness probe restarts the pod. While the broker is
    unreachable the loop is excused (workers.heartbeat) and a thread keeps the file fresh."""

    requires = {"celery.worker.components:Timer"}

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.tref: Any = None
        self.stop_keep_alive = threading.Event()

    def start(self, parent: Any) -> None:
        settings = get_settings()
        touch(settings.heartbeat_path)
        self.tref = parent.timer.call_repeatedly(
            settings.worker_heartbeat_interval_s, touch, (settings.heartbeat_path,), priority=10
        )
        threading.Thread(
            target=keep_alive_while_excused,
            args=(settings.heartbeat_path, settings.worker_heartbeat_interval_s, self.stop_keep_alive),
            name="heartbeat-keep-alive",
            daemon=True,
        ).start()

    def stop(self, parent: Any) -> None:
        self.stop_keep_alive.set()
        if self.tref is not None:
            self.tref.cancel()


app = make_celery(get_settings())
app.steps["worker"].add(Heartbeat)

_reconciler_started = threading.Event()


@signals.worker_init.connect
def _adopt_temp_dir(**_: Any) -> None:
    """Parent process, before the pool forks: a temp folder a SIGKILL does not leave behind."""
    from workers.scratch import adopt_process_temp_dir

    adopt_process_temp_dir()


@signals.worker_process_init.connect
def _child_init(**_: Any) -> None:
    """In each pool child: drop database connections inherited from the parent."""
    from services.db import dispose_engines

    dispose_engines()
    install_child_signal_handlers()


# --- shutdown ---------------------------------------------------------------------------------
#
# SIGTERM (a deploy, a node drain) starts Celery's warm shutdown in the parent: no new job is taken
# and the running one may finish. Celery itself waits for it without limit, and a pool child that
# gets SIGTERM itself (``docker stop`` through ``tini -g``, ``kill`` of the process group) would
# die on the spot, leaving its job "running" until the lease expires and charging it a delivery.
# So, with ``worker_shutdown_timeout_s`` set:
#   * the child ignores SIGTERM while it runs a job (an idle child still exits at once);
#   * the running job gets ``worker_shutdown_timeout_s`` to finish;
#   * past it (the parent's timer sends RELEASE_SIGNAL to its children) the job is handed back to
#     the queue at its next progress report, without counting a delivery, and re-sent to the
#     broker for another worker; the task then returns, is acked, and the worker exits.
# Unset, the running job always finishes (the orchestrator's grace period must cover it).

RELEASE_SIGNAL = signal.SIGUSR2


def install_child_signal_handlers() -> None:
    """Take over SIGTERM and RELEASE_SIGNAL in a pool child. Called by the task itself on every
    run (cheap): billiard resets the termination signals to its own exit handler *after* the
    ``worker_process_init`` hooks, so a handler installed there would not survive."""
    if signal.getsignal(signal.SIGTERM) is not _child_sigterm:
        signal.signal(signal.SIGTERM, _child_sigterm)
    if signal.getsignal(RELEASE_SIGNAL) is not _child_release:
        signal.signal(RELEASE_SIGNAL, _child_release)


def _child_sigterm(signum: int, frame: Any) -> None:
    from workers.runner import SHUTDOWN

    if not SHUTDOWN.busy:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        return
    SHUTDOWN.request(get_settings().worker_shutdown_timeout_s)


def _child_release(signum: int, frame: Any) -> None:
    from workers.runner import SHUTDOWN

    SHUTDOWN.request(0.0)


def _pool_children() -> list[int]:
    pid = os.getpid()
    pids: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                pids.extend(int(p) for p in fh.read().split())
    except OSError:
        from billiard.process import active_children

        pids = [int(p.pid) for p in active_children() if p.pid]
    return pids


def _release_running_jobs() -> None:
    for child in _pool_children():
        try:
            os.kill(child, RELEASE_SIGNAL)
        except ProcessLookupError:
            continue
    log.warning("shutdown timeout reached: running jobs are handed back to the queue")


@signals.worker_shutting_down.connect
def _on_shutting_down(how: str = "", **_: Any) -> None:
    """Parent process, warm shutdown started: arm the shutdown timeout."""
    timeout = get_settings().worker_shutdown_timeout_s
    if timeout is None or how != "Warm":
        return
    timer = threading.Timer(timeout, _release_running_jobs)
    timer.daemon = True
    timer.start()


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
