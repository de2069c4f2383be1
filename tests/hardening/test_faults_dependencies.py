"""Dependency faults against the real deployment: Redis restarted with jobs queued and in flight,
PostgreSQL restarted during uploads, the S3 server stopped during an upload and during an artifact
write.

The deployment here runs on private PostgreSQL, Redis and SeaweedFS processes (the machine's and the
session's serve every other test). The drills run in order on one deployment (starting the stack
costs more than a drill), each ending with the same invariants:

* the API answers 503 with Retry-After while a dependency it needs is down, never 500;
* every upload it acknowledged with 202 ends with exactly one artifact or a failed job with a
  reason (the client's retries of refused ones carry an Idempotency-Key, so none is doubled);
* after the orphan sweep, no stored object is unaccounted for, and the sweep is audited.

Extends tests/service/test_service_resilience.py (broker restart with jobs queued, no worker
running) with jobs in flight and the other dependencies.
"""

from __future__ import annotations

import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from build_corpus import FACE_JPEG, FACE_VIDEO, short_clip
from hardening_support import (
    PrivatePostgres,
    RestartableSeaweed,
    assert_accounted,
    fault_env,
    query,
    sweep,
    wait_job_status,
    wait_settled,
)
from service_support import PrivateRedis, Stack, wait_for, wait_job

pytestmark = pytest.mark.hardening

SLOW = "DMASK-SLOW-JOB"
LOST_COMMIT = "lost-commit-answer"
MIB = 1 << 20


@dataclass
class Deps:
    stack: Stack
    pg: PrivatePostgres
    broker: PrivateRedis
    s3: RestartableSeaweed
    photo: bytes
    clip: bytes
    key: str = ""
    accepted: list[str] = field(default_factory=list)  # job ids acknowledged with 202

    def client(self) -> httpx.Client:
        return self.stack.http(self.key, timeout=60)


def marked(data: bytes) -> bytes:
    payload = SLOW.encode()
    if data[4:8] == b"ftyp":
        return data + struct.pack(">I", 8 + len(payload)) + b"free" + payload
    return data + payload


@pytest.fixture(scope="module")
def deps(
    make_stack: Callable[..., Stack], shared_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deps]:
    work = tmp_path_factory.mktemp("deps")
    pg = PrivatePostgres()
    pg.start()
    broker = PrivateRedis(work / "redis")
    broker.start()
    s3 = RestartableSeaweed(work / "seaweed")
    s3.start()
    try:
        stack = make_stack(
            broker_url=broker.url,
            database_url=pg.create_database("dmask_faults"),
            s3_endpoint=s3.endpoint,
            s3_part_size_mb=5,
            job_lease_s=8,
            reconcile_interval_s=1,
            infra_retry_delay_s=1,
        )
        fault_env(stack, slow_marker=SLOW, slow_s="4", lost_commit_marker=LOST_COMMIT)
        stack.start_api()
        stack.start_worker()
        d = Deps(
            stack,
            pg,
            broker,
            s3,
            (shared_data / FACE_JPEG).read_bytes(),
            short_clip(shared_data / FACE_VIDEO, 4),
        )
        d.key = stack.key("clinic", "media:write", "media:read")
        yield d
        stack.stop()
    finally:
        s3.stop()
        broker.kill()
        pg.destroy()


def upload(c: httpx.Client, data: bytes, idem: str | None = None, name: str = "f.bin") -> httpx.Response:
    headers = {"Idempotency-Key": idem} if idem else {}
    return c.post(
        f"/v1/records/MRN-{uuid.uuid4().hex[:8]}/media",
        files={"file": (name, data, "application/octet-stream")},
        headers=headers,
    )


def assert_outage_answer(r: httpx.Response, slug: str | None = None) -> None:
    """A refusal while a dependency is down: 503 problem with Retry-After, never a 500."""
    assert r.status_code == 503, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/problem+json")
    assert int(r.headers["retry-after"]) > 0
    if slug:
        assert r.json()["type"] == f"urn:dmask:problem:{slug}"


def settle_and_account(d: Deps) -> dict[str, Any]:
    wait_settled(d.stack, timeout=300)
    report = sweep(d.stack)
    assert_accounted(d.stack, d.s3.client(), None)
    jobs = {r[0] for r in query(d.stack, "SELECT id FROM jobs")}
    assert set(d.accepted) <= jobs, "an acknowledged upload was lost"
    return report


def test_redis_restart_with_jobs_queued_and_in_flight(deps: Deps) -> None:
    d = deps
    r = redis.Redis.from_url(d.broker.url)
    with d.client() as c:
        in_flight = upload(c, marked(d.clip)).json()["job_id"]
        wait_for(
            lambda: c.get(f"/v1/jobs/{in_flight}").json()["progress"] > 0, 120, "job in flight", interval=0.1
        )
        queued = [upload(c, d.photo).json()["job_id"] for _ in range(2)]
        assert r.llen(d.stack.env["DMASK_QUEUE_NAME"]) >= 1  # waiting behind the running job
        d.broker.kill()  # no persistence: queued messages and the in-flight one's unacked copy are gone
        during = [upload(c, d.photo) for _ in range(2)]  # broker down: still accepted, sent later
        assert [x.status_code for x in during] == [202, 202]
        d.broker.start()
        jobs = [in_flight, *queued, *(x.json()["job_id"] for x in during)]
        d.accepted += jobs
        for job_id in jobs:
            assert wait_job(c, job_id, timeout=300)["status"] == "succeeded"
    assert wait_job_status(d.stack.http(d.key), in_flight, ("succeeded",), 5)["deliveries"] == 1
    settle_and_account(d)


def test_postgres_restart_during_uploads(deps: Deps) -> None:
    """Clients upload continuously (retrying 503s with the same Idempotency-Key, as the API asks)
    while the database stops for a few seconds and comes back."""
    d = deps
    answers: list[httpx.Response] = []
    accepted: dict[str, str] = {}
    dropped: list[str] = []
    stop = threading.Event()

    def client_loop() -> None:
        with d.client() as c:
            while not stop.is_set():
                idem = uuid.uuid4().hex
                for _ in range(60):  # retries of this one upload
                    try:
                        res = upload(c, d.photo, idem=idem)
                    except httpx.TransportError as exc:  # the API must answer, not drop the request
                        dropped.append(type(exc).__name__)
                        time.sleep(0.5)
                        continue
                    answers.append(res)
                    if res.status_code == 202:
                        accepted[idem] = res.json()["job_id"]
                        break
                    time.sleep(min(1.0, float(res.headers.get("retry-after", "1"))))
                time.sleep(0.2)

    threads = [threading.Thread(target=client_loop) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(accepted) >= 2, 120, "uploads before the restart")
        d.pg.stop()
        time.sleep(4)
        with d.client() as c:
            assert_outage_answer(upload(c, d.photo), "database-unavailable")
            assert c.get("/v1/whoami").status_code == 503
            assert httpx.get(d.stack.api_url + "/readyz", timeout=30).status_code == 503
        d.pg.start()
        before = len(accepted)
        wait_for(lambda: len(accepted) >= before + 2, 120, "uploads after the restart")
    finally:
        stop.set()
        for t in threads:
            t.join(120)
    codes = {a.status_code for a in answers}
    assert codes <= {202, 503}, codes
    assert not dropped, f"requests the API dropped instead of answering 503: {dropped}"
    for a in answers:
        if a.status_code == 503:
            assert_outage_answer(a)
    assert 503 in codes  # the outage was seen by the clients
    d.accepted += list(accepted.values())
    with d.client() as c:
        for job_id in accepted.values():
            assert wait_job(c, job_id, timeout=300)["status"] == "succeeded"
    # one media row per idempotency key: no retry was stored twice
    rows = query(
        d.stack, "SELECT idempotency_key, count(*) FROM media WHERE idempotency_key IS NOT NULL GROUP BY 1"
    )
    assert all(n == 1 for _, n in rows)
    assert {k for k, _ in rows} >= set(accepted)
    settle_and_account(d)


def test_lost_commit_answer_keeps_the_upload(deps: Deps) -> None:
    """Regression: when PostgreSQL went away just after an upload's COMMIT succeeded, the API answered
    503 and deleted the original; the client's retry (same Idempotency-Key) was then answered 202
    with the committed job, which failed for want of its original, or sat unsent for an hour."""
    d = deps
    idem, record = f"{LOST_COMMIT}-{uuid.uuid4().hex}", f"MRN-{uuid.uuid4().hex[:8]}"

    def post(c: httpx.Client) -> httpx.Response:
        files = {"file": ("f.bin", d.photo, "application/octet-stream")}
        return c.post(f"/v1/records/{record}/media", files=files, headers={"Idempotency-Key": idem})

    with d.client() as c:
        assert_outage_answer(post(c), "database-unavailable")
        retry = post(c)
        assert retry.status_code == 202 and retry.json()["replayed"] is True, retry.text
        job_id = retry.json()["job_id"]
        d.accepted.append(job_id)
        assert wait_job(c, job_id, timeout=120)["status"] == "succeeded"
    assert query(d.stack, "SELECT count(*) FROM media WHERE idempotency_key = %s", idem) == [(1,)]
    settle_and_account(d)


def test_s3_stopped_during_an_upload(deps: Deps) -> None:
    """The store dies while a 12 MiB upload streams (multipart parts of 5 MiB): 503 + Retry-After,
    and the unfinished multipart upload it leaves in the store is aborted by the sweeper."""
    d = deps
    big = d.photo + b"\0" * (12 * MIB - len(d.photo))  # a real photo padded after its end marker
    killed = threading.Event()
    bucket = d.stack.env["DMASK_BUCKET_ORIGINALS"]

    def slow_body() -> Iterator[bytes]:
        step = 256 << 10
        for i in range(0, len(big), step):
            if i == 6 * MIB:  # the first 5 MiB part is on its way: hold on until the store is gone
                killed.wait(120)
            yield big[i : i + step]

    def kill_once_a_part_is_stored() -> None:
        s3 = d.s3.client()
        wait_for(lambda: s3._list_multipart_uploads(bucket).uploads, 60, "multipart upload started")  # noqa: SLF001
        d.s3.kill()
        killed.set()

    killer = threading.Thread(target=kill_once_a_part_is_stored)
    killer.start()
    with d.client() as c:
        r = c.post(
            f"/v1/records/MRN-{uuid.uuid4().hex[:8]}/media",
            content=slow_body(),
            headers={"Content-Type": "image/jpeg", "Idempotency-Key": "s3-upload-1"},
        )
        killer.join()
        assert_outage_answer(r, "storage-unavailable")
        assert_outage_answer(upload(c, d.photo), "storage-unavailable")
        # The pod stays in the Service (it answers 503 + Retry-After itself); the report shows why.
        assert httpx.get(d.stack.api_url + "/readyz", timeout=30).status_code == 200
        report = httpx.get(d.stack.api_url + "/dependencies", timeout=30).json()
        assert report["dependencies"]["storage"].startswith("unavailable")
        d.s3.start()
        r = c.post(
            f"/v1/records/MRN-{uuid.uuid4().hex[:8]}/media",
            content=big,
            headers={"Content-Type": "image/jpeg", "Idempotency-Key": "s3-upload-1"},
        )
        assert r.status_code == 202, r.text
        d.accepted.append(r.json()["job_id"])
        assert wait_job(c, r.json()["job_id"], timeout=300)["status"] == "succeeded"
    report = settle_and_account(d)
    assert report["aborted"]["originals"], "the interrupted multipart upload was not found"
    aborted = query(d.stack, "SELECT detail FROM audit_events WHERE action = 'storage.upload_abort'")
    assert {a[0]["key"] for a in aborted} >= set(report["aborted"]["originals"])


def test_s3_stopped_during_an_artifact_write(deps: Deps) -> None:
    """The store dies while a video is being masked: the result cannot be written, so the job is
    handed back (not failed, no delivery counted) and retried until the store is back; API calls
    that need the store answer 503 meanwhile."""
    d = deps
    with d.client() as c:
        done = upload(c, d.photo).json()["job_id"]
        artifact = wait_job(c, done, timeout=240)["artifact_id"]
        job_id = upload(c, marked(d.clip)).json()["job_id"]
        d.accepted += [done, job_id]
        wait_for(lambda: c.get(f"/v1/jobs/{job_id}").json()["progress"] > 0, 120, "masking", interval=0.1)
        d.s3.kill()
        released = wait_for(
            lambda: query(
                d.stack,
                "SELECT detail FROM audit_events WHERE job_id = %s AND action = 'job.released'",
                job_id,
            ),
            240,
            "job handed back",
        )
        assert released[0][0]["reason"].startswith("dependency unavailable")
        assert_outage_answer(c.get(f"/v1/artifacts/{artifact}/metrics"), "storage-unavailable")
        assert c.get(f"/v1/artifacts/{artifact}", follow_redirects=False).status_code == 307  # no store call
        assert c.get(f"/v1/jobs/{job_id}").json()["status"] in ("queued", "running")
        time.sleep(3)
        d.s3.start()
        job = wait_job(c, job_id, timeout=300)
    assert job["status"] == "succeeded" and job["deliveries"] == 1, job
    settle_and_account(d)
