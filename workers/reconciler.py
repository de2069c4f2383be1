"""The reconciler: makes the broker agree with the job table again.

- Jobs ``running`` with a heartbeat older than the lease (their worker died): back to ``queued`` and
  re-sent, or ``failed`` once ``max_deliveries`` is spent (dead-lettered).
- Masked artifacts past ``artifact_retention_days`` are deleted (when that is set).
- Every ``orphan_sweep_interval_s``, objects no row accounts for are removed (services.storage.sweeper).
- Local job folders a killed worker left behind (holding an original) are removed (workers.scratch).
- Jobs ``queued`` whose message the broker lost: all of them right after a broker restart (Redis
  without persistence forgets everything), otherwise those waiting longer than ``requeue_after_s``.
Runs at worker start and every ``reconcile_interval_s``; several reconcilers at once are safe because
every change is a guarded UPDATE and duplicate messages cannot be claimed twice.
"""

from __future__ import annotations

import logging
import threading
import time

from services.artifacts.service import expire_artifacts
from services.jobs import service as jobs
from services.jobs.dispatch import Dispatcher, get_dispatcher
from services.logsafe import exc_summary
from services.settings import Settings
from services.storage import get_store
from workers.scratch import remove_abandoned

log = logging.getLogger("dmask.reconciler")


def reconcile_once(settings: Settings, dispatcher: Dispatcher) -> list[str]:
    try:
        expire_artifacts(settings, get_store(settings))
    except Exception as exc:
        log.error("artifact retention pass failed: %s", exc_summary(exc))
    ids = jobs.recover_stale(settings)
    try:
        lost = dispatcher.broker_lost_state()
    except Exception as exc:
        log.warning("broker unreachable: %s", type(exc).__name__)
        return ids
    if lost:
        log.warning("broker lost its state: re-sending every queued job")
    for job_id in jobs.queued_to_resend(settings, everything=lost):
        if job_id not in ids:
            ids.append(job_id)
    if ids:
        sent = dispatcher.enqueue(ids)
        log.info("reconciler re-sent %d of %d jobs", sent, len(ids))
    return ids


class SweepTimer:
    """Runs the orphan sweeper every ``orphan_sweep_interval_s`` (not at start: a worker restart
    loop must not turn into a listing storm against the store)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.last = time.monotonic()

    def maybe_sweep(self) -> None:
        interval = self.settings.orphan_sweep_interval_s
        if not interval or time.monotonic() - self.last < interval:
            return
        self.last = time.monotonic()
        from services.storage.sweeper import sweep_orphans

        try:
            sweep_orphans(self.settings, get_store(self.settings))
        except Exception as exc:
            log.warning("orphan sweep failed: %s", exc_summary(exc))


def run_forever(settings: Settings, stop: threading.Event, dispatcher: Dispatcher | None = None) -> None:
    dispatcher = dispatcher or get_dispatcher(settings)
    sweeper = SweepTimer(settings)
    while True:
        try:
            reconcile_once(settings, dispatcher)
        except Exception as exc:
            # Logged without the message: a failed statement's text can carry identifiers.
            log.error("reconciler pass failed: %s", exc_summary(exc))
        sweeper.maybe_sweep()
        remove_abandoned()
        if stop.wait(settings.reconcile_interval_s):
            return


def start_reconciler_thread(settings: Settings, dispatcher: Dispatcher | None = None) -> threading.Event:
    stop = threading.Event()
    threading.Thread(
        target=run_forever, args=(settings, stop, dispatcher), name="reconciler", daemon=True
    ).start()
    return stop
