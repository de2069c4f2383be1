"""The worker heartbeat file: touched every few seconds; a liveness probe checks its age
(e.g. ``test $(( $(date +%s) - $(stat -c %Y $DMASK_WORKER_HEARTBEAT_FILE) )) -lt 60``)."""

from __future__ import annotations

import os
from pathlib import Path


def touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    os.utime(path)
