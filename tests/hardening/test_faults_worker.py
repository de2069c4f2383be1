"""Worker faults against the real deployment: SIGKILL and SIGTERM in the middle of a video job, and a
poison job that crashes its process on every delivery.

Extends tests/service/test_service_resilience.py (SIGKILL during a photo job, pool-child SIGKILL,
dead-lettering with a kill from outside) with what it does not cover: a video, a soft shutdown in
both of its outcomes, a real crash inside the job (``os.abort()`` via the test-only fault injection,
``faultinject/sitecustomize.py``) with other jobs queued behind it, and the no-orphan sweep.

After every drill: each acknowledged upload ends with exactly one artifact or a failed job with a
reason, and no object is left that no row accounts for (``assert_accounted``).
"""

from __future__ import annotations

import signal
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from build_corpus import FACE_JPEG, FACE_VIDEO, short_clip
from hardening_support import (
    assert_accounted,
    fault_env,
    pool_children,
    query,
    sweep,
    wait_job_status,
    wait_settled,
)
from service_support import Seaweed, Stack, wait_for, wait_job

pytestmark = pytest.mark.hardening

SLOW = "DMASK-SLOW-JOB"
CRASH = "DMASK-POISON-JOB"


def marked(data: bytes, marker: str) -> bytes:
    """``data`` with ``marker`` inside a trailing ``free`` box (MP4) or after EOI (JPEG): the file
    stays valid, and the fault injection recognises it."""
    payload = marker.encode()
    if data[4:8] == b"ftyp":
        return data + struct.pack(">I", 8 + len(payload)) + b"free" + payload
    return data + payload


@pytest.fixture(scope="module")
def clip(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real face video cut to 4 frames (masking it takes seconds, not minutes, on 2 CPU cores)."""
    return short_clip(shared_data / FACE_VIDEO, 4)


def post(c: httpx.Client, record: str, data: bytes, name: str = "clip.mp4") -> str:
    r = c.post(f"/v1/records/{record}/media", files={"file": (name, data, "application/octet-stream")})
    assert r.status_code == 202, r.text
    job_id: str = r.json()["job_id"]
    return job_id


def running_with_progress(c: httpx.Client, job_id: str, timeout: float = 120) -> dict[str, Any]:
    """Until the job runs and reports progress past 0.7: the worker is inside the render and encode
    loop of a slow-marked video (held there by the fault injection), its output unfinished."""

    def mid_render() -> dict[str, Any] | None:
        job: dict[str, Any] = c.get(f"/v1/jobs/{job_id}").json()
        return job if job["status"] == "running" and job["progress"] > 0.7 else None

    return wait_for(
        mid_render,
        timeout,
        f"job {job_id} running",
        interval=0.1,
    )


def events(stack: Stack, job_id: str, action: str) -> list[dict[str, Any]]:
    rows = query(
        stack, "SELECT detail FROM audit_events WHERE job_id = %s AND action = %s ORDER BY id", job_id, action
    )
    return [r[0] for r in rows]


@pytest.fixture
def worker_stack(fresh_stack: Callable[..., Stack]) -> Stack:
    stack = fresh_stack(job_lease_s=4, reconcile_interval_s=1, max_deliveries=2, infra_retry_delay_s=1)
    fault_env(stack, slow_marker=SLOW, slow_s="4", crash_marker=CRASH)
    scratch = stack.workdir / "tmp"  # the workers' own temp folder, to see what they leave there
    scratch.mkdir()
    stack.env["TMPDIR"] = str(scratch)
    stack.start_api()
    return stack


def job_folders(stack: Stack) -> list[Path]:
    return sorted((stack.workdir / "tmp").glob("dmask-job-*"))


def test_sigkill_mid_video_is_redone_once(worker_stack: Stack, weed: Seaweed, clip: bytes) -> None:
    """Killed inside the render loop, the worker leaves its job folder behind with the patient's
    original in it; the job is redone once, and the next worker removes that folder."""
    stack = worker_stack
    worker = stack.start_worker()
    with stack.http(stack.key("clinic", "media:write", "media:read")) as c:
        job_id = post(c, "MRN-kill-video", marked(clip, SLOW))
        running_with_progress(c, job_id)
        worker.kill()  # SIGKILL to the parent and its pool child
        [left] = job_folders(stack)
        assert (left / "original").read_bytes() == marked(clip, SLOW)  # the patient's video
        assert c.get(f"/v1/jobs/{job_id}").json()["status"] == "running"  # until the lease expires
        stack.start_worker()
        job = wait_job(c, job_id, timeout=300)
        wait_for(lambda: not job_folders(stack), 60, "the dead worker's job folder removed")
    assert job["status"] == "succeeded", job
    assert job["deliveries"] == 2
    assert [e["reason"] for e in events(stack, job_id, "job.requeued")] == ["worker lost (lease expired)"]
    assert sweep(stack)["deleted"] == {"originals": [], "artifacts": []}
    assert_accounted(stack, weed.client(), [job_id])


def test_sigterm_mid_video_lets_the_job_finish(worker_stack: Stack, weed: Seaweed, clip: bytes) -> None:
    """Default (no worker_shutdown_timeout_s): SIGTERM to the worker's whole process group (as
    ``docker stop`` through ``tini -g`` delivers it) is a warm shutdown; the pool child does not die
    with it, the running video finishes, then the worker exits."""
    stack = worker_stack
    worker = stack.start_worker()
    with stack.http(stack.key("clinic", "media:write", "media:read")) as c:
        job_id = post(c, "MRN-term-video", marked(clip, SLOW))
        running_with_progress(c, job_id)
        worker.signal_group(signal.SIGTERM)
        job = wait_job(c, job_id, timeout=300)
        assert job["status"] == "succeeded", job
        assert job["deliveries"] == 1
    worker.popen.wait(60)  # and then it exits by itself
    assert events(stack, job_id, "job.released") == []
    assert_accounted(stack, weed.client(), [job_id])


def test_sigterm_past_the_shutdown_timeout_hands_the_job_back(
    worker_stack: Stack, weed: Seaweed, clip: bytes
) -> None:
    """worker_shutdown_timeout_s=1: SIGTERM to the parent only (Kubernetes, ``tini`` without
    ``-g``); the video outlasts the timeout, so the job goes back to the queue without counting a
    delivery, the worker exits promptly, and the next worker masks it once."""
    stack = worker_stack
    stack.env["DMASK_WORKER_SHUTDOWN_TIMEOUT_S"] = "1"
    stack.env["DMASK_FAULT_SLOW_S"] = "30"  # far longer than the timeout
    worker = stack.start_worker()
    with stack.http(stack.key("clinic", "media:write", "media:read")) as c:
        job_id = post(c, "MRN-term-release", marked(clip, SLOW))
        running_with_progress(c, job_id)
        started = time.monotonic()
        worker.popen.send_signal(signal.SIGTERM)
        worker.popen.wait(60)
        assert time.monotonic() - started < 30  # it did not wait for the job
        job = wait_job_status(c, job_id, ("queued",), 10)
        assert job["deliveries"] == 0
        [released] = events(stack, job_id, "job.released")
        assert released["reason"] == "worker shutting down"
        stack.env["DMASK_FAULT_SLOW_S"] = "0"
        stack.env.pop("DMASK_WORKER_SHUTDOWN_TIMEOUT_S")
        stack.start_worker()
        job = wait_job(c, job_id, timeout=300)
    assert job["status"] == "succeeded" and job["deliveries"] == 1, job
    assert_accounted(stack, weed.client(), [job_id])


def test_poison_job_is_dead_lettered_and_does_not_block_the_queue(
    worker_stack: Stack, weed: Seaweed, shared_data: Path
) -> None:
    """A file that crashes the decoder's process (here: os.abort() on a marker) on every delivery is
    failed after max_deliveries=2, with its reason; the jobs queued behind it are masked meanwhile,
    and the worker (its parent process) lives on."""
    stack = worker_stack
    worker = stack.start_worker()
    photo = (shared_data / FACE_JPEG).read_bytes()
    with stack.http(stack.key("clinic", "media:write", "media:read")) as c:
        poison = post(c, "MRN-poison", marked(photo, CRASH), "p.jpg")
        others = [post(c, f"MRN-behind-{i}", photo, "ok.jpg") for i in range(2)]
        for job_id in others:
            assert wait_job(c, job_id, timeout=240)["status"] == "succeeded"
        job = wait_job(c, poison, timeout=120)
    assert job["status"] == "failed"
    assert job["failure_reason"].startswith("dead-lettered"), job
    assert job["deliveries"] == 2 and job["artifact_id"] is None
    assert worker.alive() and pool_children(worker, wait_s=30)
    wait_settled(stack)
    assert_accounted(stack, weed.client(), [poison, *others])
