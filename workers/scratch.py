"""Per-job scratch folders on local disk, and removal of those a killed worker left behind.

A job's folder holds the patient's original and the half-written masked output. A worker that ends
normally deletes it; one killed with SIGKILL (OOM killer, node failure, ``docker kill``) cannot, and
a restarted container keeps its ``/tmp`` (Kubernetes keeps an ``emptyDir`` across container
restarts). So each folder holds a lock file, ``flock``-ed by the process using it for as long as
it lives: the kernel drops the lock when that process dies, however it dies. The reconciler then
removes every scratch folder whose lock it can take, also when several workers share one ``/tmp``.

The same goes for the worker process's own temp folder: Python's multiprocessing makes a ``pymp-*``
folder that only an exit handler removes (SIGKILL skips it), so the worker gives it a locked
``dmask-proc-*`` folder instead (``adopt_process_temp_dir``), held by the worker and its pool children.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import logging
import multiprocessing.process
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger("dmask.scratch")

PREFIX = "dmask-job-"
PROC_PREFIX = "dmask-proc-"
LOCK_NAME = ".in-use"
# A folder without its lock file yet is being created (mkdtemp, then the lock): left alone this long.
CREATION_GRACE_S = 10.0


@contextlib.contextmanager
def job_scratch(base: Path | None = None) -> Iterator[Path]:
    """A fresh private folder (mode 0700) for one job, locked while in use, removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix=PREFIX, dir=base))
    lock_fd = os.open(folder / LOCK_NAME, os.O_CREAT | os.O_WRONLY, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        os.close(lock_fd)


_held: list[int] = []  # lock descriptors of this process's temp folder: kept open while it lives


def adopt_process_temp_dir(base: Path | None = None) -> Path:
    """Give multiprocessing (this process and the children it forks) a locked temp folder, removed
    at a normal exit here and by ``remove_abandoned`` after a SIGKILL."""
    folder = Path(tempfile.mkdtemp(prefix=PROC_PREFIX, dir=base))
    lock_fd = os.open(folder / LOCK_NAME, os.O_CREAT | os.O_WRONLY, 0o600)
    fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    _held.append(lock_fd)
    config: dict[str, Any] = multiprocessing.process.current_process()._config  # type: ignore[attr-defined]  # noqa: SLF001
    config["tempdir"] = str(folder)
    owner = os.getpid()

    def remove_at_exit() -> None:
        if os.getpid() == owner:  # not in a forked child: the folder is shared with the parent
            shutil.rmtree(folder, ignore_errors=True)

    atexit.register(remove_at_exit)
    return folder


def remove_abandoned(base: Path | None = None, now: float | None = None) -> list[Path]:
    """Remove the scratch folders under ``base`` (default: the temp folder) that no live process
    holds; returns them. Never raises: a folder that cannot be removed now is tried next time."""
    root = Path(base or tempfile.gettempdir())
    now = time.time() if now is None else now
    removed: list[Path] = []
    try:
        candidates = [p for p in root.iterdir() if p.name.startswith((PREFIX, PROC_PREFIX)) and p.is_dir()]
    except OSError:
        return removed
    for folder in candidates:
        try:
            if _abandoned(folder, now):
                shutil.rmtree(folder)
                removed.append(folder)
        except OSError as exc:
            log.warning("cannot remove an abandoned job folder: %s", type(exc).__name__)
    if removed:
        # The folder names are random; they carry no PHI.
        log.warning("removed %d scratch folders left by a worker that was killed", len(removed))
    return removed


def _abandoned(folder: Path, now: float) -> bool:
    lock = folder / LOCK_NAME
    try:
        created = lock.stat().st_mtime  # the lock file is never written: its mtime is its birth
    except FileNotFoundError:
        created = folder.stat().st_mtime
    if now - created <= CREATION_GRACE_S:
        return False  # may be between mkdtemp and flock
    try:
        lock_fd = os.open(lock, os.O_WRONLY)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False  # a live process holds it
    finally:
        os.close(lock_fd)  # closing drops our own lock too
    return True
