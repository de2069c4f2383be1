"""Handing job ids to whatever runs them: Celery (broker configured) or the in-process worker.

Sending is best effort by design: the job row is already committed as ``queued``, so if the broker
is down the reconciler sends it later. An upload never fails because the broker hiccupped.
"""

from __future__ import annotations

import logging
import threading
from typing import Protocol

from services.jobs.broker import sending_app
from services.settings import Settings

log = logging.getLogger("dmask.dispatch")

TASK_NAME = "dmask.mask_job"
EPOCH_KEY = "dmask:broker-epoch"


class Dispatcher(Protocol):
    def enqueue(self, job_ids: list[str], countdown: float | None = None, *, front: bool = False) -> int:
        """Send the ids (to be run no sooner than ``countdown`` seconds from now; with ``front``,
        ahead of everything waiting: a job whose worker died was already first in line); returns
        how many were handed over."""

    def broker_lost_state(self) -> bool:
        """True when the broker's marker key was missing (and is now set): the broker restarted
        without persistence (or is new) since the last call of anyone."""


class LocalDispatcher:
    """Embedded mode: wakes the in-process worker (it reads queued jobs from the database)."""

    def __init__(self) -> None:
        self.wakeup = threading.Event()

    def enqueue(self, job_ids: list[str], countdown: float | None = None, *, front: bool = False) -> int:
        if not countdown:  # a delayed job is found by the worker's next poll after its back-off
            self.wakeup.set()
        return len(job_ids)

    def broker_lost_state(self) -> bool:
        return False


class CeleryDispatcher:
    """Sends job ids to the workers through the broker, by task name (the API imports no worker code)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = sending_app(settings)

    def enqueue(self, job_ids: list[str], countdown: float | None = None, *, front: bool = False) -> int:
        sent = 0
        for job_id in job_ids:
            try:
                result = self.app.send_task(
                    TASK_NAME,
                    args=[job_id],
                    queue=self.settings.queue_name,
                    countdown=countdown or None,
                    retry=True,
                    retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
                )
                sent += 1
            except Exception as exc:  # broker down: the reconciler resends queued jobs later
                log.warning("could not enqueue job %s: %s", job_id, type(exc).__name__)
                break
            if front and not countdown:
                self._move_to_front(result.id)
        return sent

    # Kombu's Redis transport LPUSHes messages and workers BRPOP them: the right end is the front.
    # The message just pushed sits near the left end; this moves it, atomically, to the right end.
    _FRONT_SCRIPT = """
    local items = redis.call('LRANGE', KEYS[1], 0, 999)
    for _, item in ipairs(items) do
        if string.find(item, ARGV[1], 1, true) then
            redis.call('LREM', KEYS[1], 1, item)
            redis.call('RPUSH', KEYS[1], item)
            return 1
        end
    end
    return 0
    """

    def _move_to_front(self, task_id: str) -> None:
        url = self.settings.broker_url or ""
        if not url.startswith(("redis://", "rediss://", "unix://")):
            return
        import redis

        client = redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3)
        try:
            client.eval(self._FRONT_SCRIPT, 1, self.settings.queue_name, f'"{task_id}"')
        except Exception as exc:  # it stays queued at the back: later, not lost
            log.warning("could not move a requeued job to the front: %s", type(exc).__name__)
        finally:
            client.close()

    def broker_lost_state(self) -> bool:
        """Redis configured without persistence forgets every queued message when it restarts. A
        marker key set on first contact disappears with them, which tells the reconciler to resend
        everything still queued."""
        url = self.settings.broker_url or ""
        if not url.startswith(("redis://", "rediss://", "unix://")):
            return False
        import redis

        client = redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3)
        try:
            return bool(client.set(f"{EPOCH_KEY}:{self.settings.queue_name}", "1", nx=True))
        finally:
            client.close()


_dispatchers: dict[int, Dispatcher] = {}
_lock = threading.Lock()


def get_dispatcher(settings: Settings) -> Dispatcher:
    with _lock:
        d = _dispatchers.get(id(settings))
        if d is None:
            d = LocalDispatcher() if settings.embedded else CeleryDispatcher(settings)
            _dispatchers[id(settings)] = d
        return d
