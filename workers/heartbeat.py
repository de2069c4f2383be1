"""The worker heartbeat file: touched every few seconds; a liveness probe checks its age
(e.g. ``test $(( $(date +%s) - $(stat -c %Y $DMASK_WORKER_HEARTBEAT_FILE) )) -lt 60``).

The worker's own event loop touches it, so a wedged worker goes stale and is restarted. While the
broker is unreachable, though, Celery's consumer sits in its reconnection loop (backing off up to
30 s between attempts) and the event loop does not tick: that is no wedge, and restarting every
worker would not bring Redis back (it would kill their running jobs). So the reconciler, which
watches the broker from its own thread, ``excuse``s the loop for that long, and a keep-alive
thread touches the file meanwhile. A frozen or dead process touches nothing.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

_excused_until = 0.0
_lock = threading.Lock()


def touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    os.utime(path)


def excuse(seconds: float) -> None:
    """The event loop may not tick for ``seconds`` for a reason a restart would not cure."""
    global _excused_until
    with _lock:
        _excused_until = max(_excused_until, time.monotonic() + seconds)


def excused() -> bool:
    with _lock:
        return time.monotonic() < _excused_until


def keep_alive_while_excused(path: Path, interval_s: float, stop: threading.Event) -> None:
    """Thread body: touch the file every ``interval_s`` while an excuse holds."""
    while not stop.wait(interval_s):
        if excused():
            try:
                touch(path)
            except OSError:
                continue
