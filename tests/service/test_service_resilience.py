"""Failure drills: a worker killed with SIGKILL mid-job, and a broker restart that loses every queued
message. Both must end with every job done exactly once (one artifact, one success event, no orphan
objects)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from service_support import PrivateRedis, Seaweed, Stack, upload, wait_for, wait_job

pytestmark = pytest.mark.slow

PHOTOS = ["faces/jennifer_aniston/1.jpg", "faces/hugh_jackman/1.jpg", "faces/kate_winslet/1.jpg"]


def assert_exactly_once(stack: Stack, weed: Seaweed, job_ids: list[str]) -> list[dict[str, Any]]:
    assert stack.db_name
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{stack.db_name}") as conn:
        jobs = conn.execute(
            "SELECT id, status, deliveries, artifact_id FROM jobs WHERE id = ANY(%s)", (job_ids,)
        ).fetchall()
        artifacts = conn.execute(
            "SELECT job_id, object_key, metrics_key FROM artifacts WHERE job_id = ANY(%s)", (job_ids,)
        ).fetchall()
        succeeded = conn.execute(
            "SELECT job_id, count(*) FROM audit_events WHERE action = 'job.succeeded' AND job_id = ANY(%s) "
            "GROUP BY job_id",
            (job_ids,),
        ).fetchall()
    assert sorted(j[0] for j in jobs) == sorted(job_ids)
    assert all(j[1] == "succeeded" for j in jobs), jobs
    assert sorted(a[0] for a in artifacts) == sorted(job_ids)  # one artifact per job
    assert dict(succeeded) == dict.fromkeys(job_ids, 1)
    keys = {
        o.object_name for o in weed.client().list_objects(stack.env["DMASK_BUCKET_ARTIFACTS"], recursive=True)
    }
    expected = {k for a in artifacts for k in (a[1], a[2])}
    assert keys == expected  # no orphan artifact objects from an abandoned attempt
    return [{"id": j[0], "deliveries": j[2]} for j in jobs]


def test_worker_sigkill_mid_job(make_stack: Callable[..., Stack], weed: Seaweed, shared_data: Path) -> None:
    stack = make_stack(job_lease_s=5, reconcile_interval_s=1)
    stack.start_api()
    worker = stack.start_worker()
    key = stack.key("clinic-a", "media:write", "media:read")
    with stack.http(key) as c:
        job_ids = [upload(c, "MRN-kill", shared_data / p).json()["job_id"] for p in PHOTOS]
        first = job_ids[0]
        # The first job is claimed (model loading / masking under way): kill the whole worker.
        wait_job(c, first, timeout=60, until=("running",))
        worker.kill()
        assert not worker.alive()
        assert c.get(f"/v1/jobs/{first}").json()["status"] == "running"  # stuck until the lease expires

        stack.start_worker()
        for job_id in job_ids:
            assert wait_job(c, job_id, timeout=240)["status"] == "succeeded"
        job = c.get(f"/v1/jobs/{first}").json()
        assert job["deliveries"] == 2
    rows = assert_exactly_once(stack, weed, job_ids)
    assert {r["id"]: r["deliveries"] for r in rows}[first] == 2
    with stack.http(stack.key("audit", "audit:read")) as c:
        requeued = c.get("/v1/audit", params={"action": "job.requeued"}).json()["items"]
        assert [e["job_id"] for e in requeued] == [first]
        assert requeued[0]["detail"]["reason"] == "worker lost (lease expired)"
        assert c.get("/v1/audit/verify").json()["ok"] is True


def test_pool_child_sigkill_is_redelivered_once(
    make_stack: Callable[..., Stack], weed: Seaweed, shared_data: Path
) -> None:
    """Only the prefork child dies: Celery rejects the message back to the queue
    (task_reject_on_worker_lost), the redelivery finds the job still leased and stands down, and the
    reconciler hands it out again once the lease expires. Still exactly one artifact."""
    stack = make_stack(job_lease_s=5, reconcile_interval_s=1)
    stack.start_api()
    worker = stack.start_worker()
    key = stack.key("clinic-a", "media:write", "media:read")
    with stack.http(key) as c:
        job_id = upload(c, "MRN-child", shared_data / PHOTOS[0]).json()["job_id"]
        wait_job(c, job_id, timeout=60, until=("running",))
        children = [
            int(p)
            for p in Path(f"/proc/{worker.popen.pid}/task/{worker.popen.pid}/children").read_text().split()
        ]
        assert children
        for child in children:
            os.kill(child, signal.SIGKILL)
        assert wait_job(c, job_id, timeout=240)["status"] == "succeeded"
        assert worker.alive()
    assert_exactly_once(stack, weed, [job_id])


def test_broker_restart_loses_queue_and_reconciler_recovers(
    make_stack: Callable[..., Stack], weed: Seaweed, shared_data: Path, tmp_path: Path
) -> None:
    broker = PrivateRedis(tmp_path / "redis")
    broker.start()
    try:
        stack = make_stack(broker_url=broker.url, reconcile_interval_s=1, requeue_after_s=3600)
        stack.start_api()
        first_worker = stack.start_worker()  # first contact marks the broker epoch
        time.sleep(2)
        first_worker.stop()
        key = stack.key("clinic-a", "media:write", "media:read")
        import redis

        r = redis.Redis.from_url(broker.url)
        with stack.http(key) as c:
            job_ids = [upload(c, "MRN-redis", shared_data / p).json()["job_id"] for p in PHOTOS]
            assert r.llen("gpu") == len(PHOTOS)  # waiting in the broker, no worker running
            broker.restart()  # no persistence: every queued message is gone
            assert r.llen("gpu") == 0
            assert all(c.get(f"/v1/jobs/{j}").json()["status"] == "queued" for j in job_ids)
            stack.start_worker()
            for job_id in job_ids:
                assert wait_job(c, job_id, timeout=240)["status"] == "succeeded"
        rows = assert_exactly_once(stack, weed, job_ids)
        assert all(row["deliveries"] == 1 for row in rows)
        wait_for(lambda: "broker lost its state" in stack.workers[-1].log.read_text(), 10, "reconciler log")
    finally:
        broker.kill()


def test_job_is_dead_lettered_after_max_deliveries(
    make_stack: Callable[..., Stack], weed: Seaweed, shared_data: Path
) -> None:
    """A job whose worker dies every time (think: a file that crashes the decoder) is failed after
    max_deliveries instead of cycling forever."""
    stack = make_stack(job_lease_s=4, reconcile_interval_s=1, max_deliveries=2)
    stack.start_api()
    worker = stack.start_worker()
    key = stack.key("clinic-a", "media:write", "media:read")
    with stack.http(key) as c:
        job_id = upload(c, "MRN-poison", shared_data / PHOTOS[1]).json()["job_id"]
        for delivery in (1, 2):
            wait_for(
                lambda d=delivery: (
                    (j := c.get(f"/v1/jobs/{job_id}").json())["status"] == "running" and j["deliveries"] == d
                ),
                120,
                f"delivery {delivery}",
                interval=0.1,
            )
            children = Path(f"/proc/{worker.popen.pid}/task/{worker.popen.pid}/children").read_text().split()
            for child in children:
                os.kill(int(child), signal.SIGKILL)
        job = wait_job(c, job_id, timeout=120)
    assert job["status"] == "failed"
    assert job["failure_reason"].startswith("dead-lettered")
    assert job["deliveries"] == 2 and job["artifact_id"] is None
    assert worker.alive()
    keys = list(weed.client().list_objects(stack.env["DMASK_BUCKET_ARTIFACTS"], recursive=True))
    assert keys == []
