"""The reconciler: makes the broker agree with the job table again.

- Jobs ``running`` with a heartbeat older than the lease (their worker died): back to ``queued`` and
  re-sent at the front of the queue, or ``failed`` once ``max_deliveries`` is spent (dead-lettered).
- Masked artifacts past ``artifact_retention_days`` are deleted (when that is set).
- Every ``orphan_sweep_interval_s``, objects no row accounts for are removed (services.storage.sweeper).
- Local job folders a killed worker left behind (holding an original) are removed (workers.scratch).
- Jobs ``queued`` whose message the broker lost: all of them right after a broker restart (Redis
  without persistence forgets everything), those queued while it was unreachable, and otherwise
  those waiting longer than ``requeue_after_s``.
Lease expiry and the broker are checked every ``broker_check_interval_s`` (seconds, not a full
pass: a dead worker's job restarts within lease + that); the rest runs at worker start and every
``reconcile_interval_s``. Several reconcilers at once are safe because every change is a guarded
UPDATE and duplicate messages cannot be claimed twice.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta

from services.artifacts.service import expire_artifacts
from services.db import utcnow
from services.jobs import service as jobs
from services.jobs.dispatch import Dispatcher, get_dispatcher
from services.logsafe import exc_summary
from services.settings import Settings
from services.storage import get_store
from workers.heartbeat import excuse
from workers.scratch import remove_abandoned

log = logging.getLogger("dmask.reconciler")

#: Celery's consumer backs off up to 30 s between reconnection attempts; its event loop (and so the
#: heartbeat) resumes only after one succeeds.
BROKER_RECONNECT_GRACE_S = 60.0


class BrokerWatch:
    """What this process knows about the broker between checks, so that each change is logged once
    and acted on at once: a broker that lost its queues (restarted without persistence) gets every
    queued job re-sent; one that was unreachable gets the jobs queued meanwhile (their sends failed)."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self.reachable: bool | None = None
        self.seen_marker = False
        self.unreachable_since: datetime | None = None

    def check(self, settings: Settings) -> list[str]:
        """The queued jobs to send again now (usually none)."""
        try:
            lost = self.dispatcher.broker_lost_state()
        except Exception as exc:
            # Celery's consumer is reconnecting (not wedged): keep the liveness probe off it.
            excuse(BROKER_RECONNECT_GRACE_S + 2 * settings.broker_check_interval_s)
            if self.reachable is not False:
                log.warning("broker unreachable: %s", type(exc).__name__)
                # Uploads that failed to send just before this worker noticed count too.
                margin = timedelta(seconds=settings.broker_check_interval_s + 10)
                self.unreachable_since = utcnow() - margin
            self.reachable = False
            return []
        if self.reachable is False:
            log.warning("broker reachable again")
            excuse(BROKER_RECONNECT_GRACE_S)  # the consumer's next reconnection attempt may be 30 s off
        self.reachable = True
        since, self.unreachable_since = self.unreachable_since, None
        first_contact, self.seen_marker = not self.seen_marker, True
        ids = jobs.queued_to_resend(settings, everything=lost, since=since)
        if lost and not first_contact:
            log.warning(
                "broker lost its state (restarted without persistence): re-sending %d queued jobs", len(ids)
            )
        elif lost and ids:
            # First contact of this process and no marker: a new broker, or one restarted before
            # this worker started. Only worth a warning if jobs were waiting on it.
            log.warning("broker lost its state or is new: re-sending %d queued jobs", len(ids))
        elif lost:
            log.info("broker first contact: marker set")
        return ids


def reconcile_once(settings: Settings, dispatcher: Dispatcher, watch: BrokerWatch | None = None) -> list[str]:
    """A full pass: retention, then ``quick_pass``."""
    try:
        expire_artifacts(settings, get_store(settings))
    except Exception as exc:
        log.error("artifact retention pass failed: %s", exc_summary(exc))
    return quick_pass(settings, dispatcher, watch or BrokerWatch(dispatcher))


def quick_pass(settings: Settings, dispatcher: Dispatcher, watch: BrokerWatch) -> list[str]:
    """Cheap enough to run every ``broker_check_interval_s`` (two indexed queries and a Redis SET
    NX): jobs of dead workers (past their lease) go back to the front of the queue; the broker is
    checked, and queued jobs whose message may be lost are re-sent."""
    requeued = jobs.recover_stale(settings)
    if requeued:
        sent = dispatcher.enqueue(requeued, front=True)
        log.info("reconciler requeued %d of %d jobs whose worker was lost", sent, len(requeued))
    resend = [j for j in watch.check(settings) if j not in requeued]
    if resend:
        sent = dispatcher.enqueue(resend)
        log.info("reconciler re-sent %d of %d queued jobs", sent, len(resend))
    return requeued + resend


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
    """A quick pass every ``broker_check_interval_s``, a full one every ``reconcile_interval_s``."""
    dispatcher = dispatcher or get_dispatcher(settings)
    watch = BrokerWatch(dispatcher)
    sweeper = SweepTimer(settings)
    next_full = 0.0
    while True:
        full = time.monotonic() >= next_full
        try:
            if full:
                next_full = time.monotonic() + settings.reconcile_interval_s
                reconcile_once(settings, dispatcher, watch)
            else:
                quick_pass(settings, dispatcher, watch)
        except Exception as exc:
            # Logged without the message: a failed statement's text can carry identifiers.
            log.error("reconciler pass failed: %s", exc_summary(exc))
        if full:
            sweeper.maybe_sweep()
            remove_abandoned()
        if stop.wait(min(settings.broker_check_interval_s, settings.reconcile_interval_s)):
            return


def start_reconciler_thread(settings: Settings, dispatcher: Dispatcher | None = None) -> threading.Event:
    stop = threading.Event()
    threading.Thread(
        target=run_forever, args=(settings, stop, dispatcher), name="reconciler", daemon=True
    ).start()
    return stop
