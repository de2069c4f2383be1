"""Recovery behaviours of a worker, against a real Redis and real worker processes: it notices a
broker restart by itself (no false alarm on a broker it meets for the first time), its liveness
heartbeat survives a broker outage but not a freeze, and a worker killed with SIGKILL leaves no temp
folder behind once another worker runs. How fast recovery happens is measured by
benchmarks/recovery.py, not timed here."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from service_support import PrivateRedis, Stack, upload, wait_for, wait_job

pytestmark = pytest.mark.ops

PHOTO = "faces/hugh_jackman/1.jpg"


def test_first_contact_with_a_fresh_broker_is_not_an_alarm(
    make_stack: Callable[..., Stack], tmp_path: Path
) -> None:
    broker = PrivateRedis(tmp_path / "redis")
    broker.start()
    try:
        stack = make_stack(broker_url=broker.url)
        worker = stack.start_worker()
        wait_for(lambda: "broker first contact" in worker.log.read_text(), 20, "first broker check")
        assert "broker lost its state" not in worker.log.read_text()
    finally:
        broker.kill()


def test_worker_notices_a_broker_restart_and_resends_what_was_queued(
    make_stack: Callable[..., Stack], tmp_path: Path, shared_data: Path
) -> None:
    broker = PrivateRedis(tmp_path / "redis")
    broker.start()
    try:
        stack = make_stack(broker_url=broker.url, requeue_after_s=3600)
        stack.start_api()
        worker = stack.start_worker()
        wait_for(lambda: "broker first contact" in worker.log.read_text(), 20, "first broker check")
        key = stack.key("clinic", "media:write", "media:read")
        with stack.http(key) as c:
            broker.kill()
            job_id = upload(c, "MRN-restart", shared_data / PHOTO).json()["job_id"]
            broker.start()  # empty: no persistence
            wait_for(
                lambda: "broker lost its state (restarted" in worker.log.read_text(), 30, "restart noticed"
            )
            assert wait_job(c, job_id, timeout=120)["status"] == "succeeded"
    finally:
        broker.kill()


def test_sigkilled_worker_leaves_no_temp_folder(
    make_stack: Callable[..., Stack], tmp_path: Path, shared_data: Path
) -> None:
    """Python's multiprocessing would leave a ``pymp-*`` folder per killed worker in /tmp (a
    container's /tmp outlives the process); the worker's locked folder is removed by the next one."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    stack = make_stack()
    stack.env["TMPDIR"] = str(tmp)
    stack.start_api()
    first = stack.start_worker()
    with stack.http(stack.key("clinic", "media:write", "media:read")) as c:
        job_id = upload(c, "MRN-tmp", shared_data / PHOTO).json()["job_id"]
        assert wait_job(c, job_id, timeout=120)["status"] == "succeeded"
    left = set(os.listdir(tmp))
    assert left and all(name.startswith("dmask-proc-") for name in left), left
    first.kill()
    assert set(os.listdir(tmp)) == left  # SIGKILL: nothing ran to clean up
    stack.start_worker()
    wait_for(lambda: not (left & set(os.listdir(tmp))), 60, "killed worker's folder removed")
    assert not [n for n in os.listdir(tmp) if n.startswith("pymp-")]


def heartbeat_age(stack: Stack) -> float:
    return time.time() - Path(stack.env["DMASK_WORKER_HEARTBEAT_FILE"]).stat().st_mtime


def test_worker_liveness_holds_through_a_broker_outage_and_fails_when_frozen(
    make_stack: Callable[..., Stack], tmp_path: Path
) -> None:
    """Celery's event loop stops while it reconnects to a lost broker; the heartbeat must not, or
    the liveness probe would restart every worker (and kill their jobs) for a Redis outage. A
    frozen worker, though, must go stale. (Heartbeat every 1 s here, broker checked every 2 s.)"""
    broker = PrivateRedis(tmp_path / "redis")
    broker.start()
    try:
        stack = make_stack(broker_url=broker.url)
        worker = stack.start_worker()
        broker.kill()
        ages = []
        for _ in range(12):
            time.sleep(1)
            ages.append(heartbeat_age(stack))
        broker.start()
        for _ in range(5):
            time.sleep(1)
            ages.append(heartbeat_age(stack))
        assert max(ages) < 5, ages
        worker.signal_group(signal.SIGSTOP)
        try:
            time.sleep(6)
            assert heartbeat_age(stack) > 5
        finally:
            worker.signal_group(signal.SIGCONT)
        wait_for(lambda: heartbeat_age(stack) < 2, 20, "heartbeat after the freeze")
    finally:
        broker.kill()
