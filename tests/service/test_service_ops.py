"""Operations: probes, metrics, OpenAPI, worker heartbeat, CLI, and the object-store contract on the
real SeaweedFS (SSE-C for originals) and on a local folder."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from minio.error import S3Error
from minio.sse import SseCustomerKey
from service_support import PY, REPO, SSE_C_KEY, Seaweed, Stack, clean_env, free_port, upload, wait_job


def test_probes(stack: Stack) -> None:
    assert httpx.get(stack.api_url + "/livez").json() == {"status": "ok"}
    ready = httpx.get(stack.api_url + "/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok"}
    report = httpx.get(stack.api_url + "/dependencies").json()
    assert report == {"status": "ok", "dependencies": {"database": "ok", "broker": "ok", "storage": "ok"}}


def test_readyz_stays_200_without_a_broker(make_stack: Callable[..., Stack], shared_data: Path) -> None:
    s = make_stack(broker_url=f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    s.start_api()
    assert httpx.get(s.api_url + "/readyz", timeout=30).status_code == 200
    report = httpx.get(s.api_url + "/dependencies", timeout=30).json()
    assert report["status"] == "degraded"
    checks = report["dependencies"]
    assert (
        checks["database"] == "ok"
        and checks["storage"] == "ok"
        and checks["broker"].startswith("unavailable")
    )
    # Uploads still work: the job row is the truth and the reconciler sends it once the broker is back.
    key = s.key("c", "media:write", "media:read")
    with s.http(key) as c:
        res = upload(c, "MRN-1", shared_data / "faces/barack_obama/1.jpg")
        assert res.status_code == 202
        assert c.get(f"/v1/jobs/{res.json()['job_id']}").json()["status"] == "queued"


def test_metrics_have_no_phi(stack: Stack, writer_a: str, shared_data: Path) -> None:
    record = "MRN-metrics-7731"
    with stack.http(writer_a) as c:
        job = wait_job(c, upload(c, record, shared_data / "faces/madonna/1.jpg").json()["job_id"])
        assert job["status"] == "succeeded"
        c.get(f"/v1/records/{record}/media")
    assert httpx.get(stack.api_url + "/metrics").status_code == 401  # scrapers hold a metrics key
    with stack.http(stack.key("prometheus", "metrics")) as c:
        text = c.get("/metrics").text
    assert record not in text and "clinic-a" not in text
    assert 'route="/v1/records/{record_id}/media"' in text
    assert "dmask_http_requests_total" in text and "dmask_http_request_duration_seconds_bucket" in text
    assert "dmask_queue_depth" in text and 'dmask_jobs{status="succeeded"}' in text
    assert "dmask_upload_bytes_total" in text and "dmask_jobs_failed" in text
    assert 'dmask_job_duration_seconds_avg_1h{kind="photo"}' in text
    assert 'dmask_jobs_succeeded_1h{kind="photo"}' in text


def test_openapi(stack: Stack) -> None:
    spec = httpx.get(stack.api_url + "/openapi.json").json()
    paths = spec["paths"]
    for path in (
        "/v1/records/{record_id}/media",
        "/v1/jobs/{job_id}",
        "/v1/artifacts/{artifact_id}",
        "/v1/artifacts/{artifact_id}/metrics",
        "/v1/audit",
        "/v1/audit/verify",
        "/livez",
        "/readyz",
        "/dependencies",
    ):
        assert path in paths, path
    body = paths["/v1/records/{record_id}/media"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in body


def test_worker_heartbeat_file_is_fresh(stack: Stack) -> None:
    hb = Path(stack.env["DMASK_WORKER_HEARTBEAT_FILE"])
    first = hb.stat().st_mtime
    time.sleep(2.5)
    assert hb.stat().st_mtime > first
    assert time.time() - hb.stat().st_mtime < 5


def test_service_modules_do_not_load_torch() -> None:
    code = (
        "import sys, services.app, services.cli, workers.celery_app, workers.tasks, workers.runner; "
        "services.app.create_app(); assert 'torch' not in sys.modules, 'torch loaded'"
    )
    env = clean_env()
    env["DMASK_HOME"] = "/tmp/dmask-import-check"
    res = subprocess.run([PY, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr


def test_cli_dispatches_model_commands() -> None:
    res = subprocess.run(
        [PY, "-m", "services.cli", "mask", "--help"],
        cwd=REPO,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert "usage" in res.stdout.lower()
    res = subprocess.run(
        [PY, "-m", "services.cli", "landmarks", "--help"],
        cwd=REPO,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert "usage" in res.stdout.lower()
    res = subprocess.run(
        [PY, "-m", "services.cli", "--help"],
        cwd=REPO,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    for command in ("serve", "worker", "keys", "db", "audit", "mask", "landmarks"):
        assert command in res.stdout


@pytest.fixture
def s3_store(weed: Seaweed):  # type: ignore[no-untyped-def]
    from services.storage.s3 import S3Store

    suffix = os.urandom(4).hex()
    store = S3Store(
        weed.endpoint,
        "dmasktest",
        "dmasktest-secret-key-0123456789",
        secure=False,
        region="us-east-1",
        buckets={"originals": f"o-{suffix}", "artifacts": f"a-{suffix}"},
        sse_c_key_b64=SSE_C_KEY,
        part_size=5 << 20,
    )
    store.ensure_buckets()
    return store


def test_s3_originals_need_the_sse_c_key(s3_store, weed: Seaweed) -> None:  # type: ignore[no-untyped-def]
    data = os.urandom(11 << 20)  # three multipart parts
    s3_store.put_stream("originals", "k/1", io.BytesIO(data), content_type="application/octet-stream")
    assert s3_store.get_bytes("originals", "k/1") == data
    with s3_store.open_seekable("originals", "k/1") as fh:  # ranged reads (video probing)
        fh.seek(7 << 20)
        assert fh.read(1000) == data[7 << 20 : (7 << 20) + 1000]
        fh.seek(-10, io.SEEK_END)
        assert fh.read() == data[-10:]
    raw = weed.client()
    bucket = s3_store.buckets["originals"]
    with pytest.raises(S3Error):
        raw.get_object(bucket, "k/1").read()  # without the key the store refuses
    with pytest.raises(S3Error):
        raw.get_object(bucket, "k/1", ssec=SseCustomerKey(b"x" * 32)).read()  # wrong key
    assert (
        raw.get_object(bucket, "k/1", ssec=SseCustomerKey(base64.b64decode(SSE_C_KEY))).read()[:64]
        == data[:64]
    )
    assert s3_store.presign_get("originals", "k/1", ttl_s=60, content_type="x", filename="x") is None
    s3_store.delete("originals", "k/1")
    s3_store.delete("originals", "k/1")  # idempotent
    assert not s3_store.exists("originals", "k/1")


def test_aborted_stream_leaves_nothing(s3_store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from services.storage.local import LocalFolderStore

    class Failing(io.RawIOBase):
        def __init__(self) -> None:
            self.sent = 0

        def read(self, n: int = -1) -> bytes:
            if self.sent > (12 << 20):
                raise OSError("client went away")
            self.sent += 1 << 20
            return os.urandom(1 << 20)

    local = LocalFolderStore(tmp_path, {"originals": "o", "artifacts": "a"})
    local.ensure_buckets()
    for store in (s3_store, local):
        with pytest.raises(OSError):
            store.put_stream("originals", "k/2", Failing(), content_type="application/octet-stream")
        assert store.list_keys("originals") == []
        assert not store.exists("originals", "k/2")
    uploads = s3_store.client._list_multipart_uploads(s3_store.buckets["originals"]).uploads  # noqa: SLF001
    assert uploads == []
    assert list((tmp_path / "o" / ".tmp").iterdir()) == []


def test_artifact_retention(make_stack: Callable[..., Stack], weed: Seaweed, shared_data: Path) -> None:
    """artifact_retention_days=0: the reconciler deletes the masked file and metrics right after the
    job, audits it, and the API answers 410 Gone."""
    s = make_stack(artifact_retention_days=0, reconcile_interval_s=1)
    s.start_api()
    s.start_worker()
    key = s.key("c", "media:write", "media:read")
    with s.http(key) as c:
        job = wait_job(c, upload(c, "MRN-ret", shared_data / "faces/megan_fox/1.jpg").json()["job_id"])
        assert job["status"] == "succeeded"
        from service_support import wait_for

        wait_for(lambda: c.get(f"/v1/artifacts/{job['artifact_id']}").status_code == 410, 30, "expiry")
        assert c.get(f"/v1/artifacts/{job['artifact_id']}/metrics").status_code == 410
        assert c.get("/v1/records/MRN-ret/media").json()["items"][0]["artifacts"] == []
    assert list(weed.client().list_objects(s.env["DMASK_BUCKET_ARTIFACTS"], recursive=True)) == []
    with s.http(s.key("a", "audit:read")) as c:
        [ev] = c.get("/v1/audit", params={"action": "artifact.expire"}).json()["items"]
        assert ev["artifact_id"] == job["artifact_id"] and ev["record_id"] == "MRN-ret"


def test_rate_limit(make_stack: Callable[..., Stack]) -> None:
    s = make_stack(rate_limit_per_minute=5)
    s.start_api()
    key = s.key("chatty", "media:read")
    with s.http(key) as c:
        codes = [c.get("/v1/whoami").status_code for _ in range(8)]
        assert codes[:5] == [200] * 5 and codes[5:] == [429] * 3
        r = c.get("/v1/whoami")
        assert r.headers["content-type"].startswith("application/problem+json")
        assert 0 < int(r.headers["retry-after"]) <= 60
    with s.http(s.key("audit", "audit:read")) as c:
        denied = c.get("/v1/audit", params={"action": "request.denied"}).json()["items"]
    assert [e["detail"]["status"] for e in denied] == [429]  # first refusal of the window only


def test_orphan_sweeper_deletes_only_unreferenced_old_objects_and_audits_each(
    make_stack: Callable[..., Stack], weed: Seaweed, shared_data: Path
) -> None:
    """Objects no row names (as a process killed between object write and commit leaves) are
    deleted once older than the grace period, each deletion audited; what rows name is kept."""
    s = make_stack(delete_originals="false")
    s.start_api()
    s.start_worker()
    with s.http(s.key("c", "media:write", "media:read")) as c:
        job = wait_job(c, upload(c, "MRN-sweep", shared_data / "faces/megan_fox/1.jpg").json()["job_id"])
    assert job["status"] == "succeeded"
    raw = weed.client()
    buckets = {"originals": s.env["DMASK_BUCKET_ORIGINALS"], "artifacts": s.env["DMASK_BUCKET_ARTIFACTS"]}

    def keys(bucket: str) -> set[str]:
        return {o.object_name for o in raw.list_objects(buckets[bucket], recursive=True)}

    referenced = {b: keys(b) for b in buckets}
    assert all(referenced.values())  # the original (kept) and the artifact + metrics
    orphans = {b: f"orphan/{os.urandom(8).hex()}" for b in buckets}
    for bucket, key in orphans.items():
        raw.put_object(buckets[bucket], key, io.BytesIO(b"left behind"), 11)

    def sweep(grace_s: int) -> dict[str, Any]:
        out = s.cli("storage", "sweep", "--grace-s", str(grace_s)).stdout.strip().splitlines()[-1]
        report: dict[str, Any] = json.loads(out)
        return report

    assert sweep(3600)["deleted"] == {"originals": [], "artifacts": []}  # too young: may be committing
    assert sweep(0)["deleted"] == {b: [k] for b, k in orphans.items()}
    assert {b: keys(b) for b in buckets} == referenced
    with s.http(s.key("a", "audit:read")) as c:
        events = c.get("/v1/audit", params={"action": "storage.orphan_delete"}).json()["items"]
    assert sorted((e["detail"]["bucket"], e["detail"]["key"], e["outcome"]) for e in events) == sorted(
        (b, k, "success") for b, k in orphans.items()
    )


def within_one_window() -> None:
    """Wait, if needed, so that a few seconds of requests fall into one one-minute window."""
    if time.time() % 60 > 45:
        time.sleep(61 - time.time() % 60)


def test_rate_limit_is_shared_by_every_api_process(make_stack: Callable[..., Stack]) -> None:
    """Two API processes of one deployment (uvicorn workers, replicas) count against one limit:
    the counters are in the deployment's Redis, not in each process."""
    first = make_stack(rate_limit_per_minute=5)
    first.start_api()
    second = Stack(workdir=first.workdir / "second", env=first.env)
    second.workdir.mkdir()
    second.start_api()
    key = first.key("busy", "media:read")
    within_one_window()
    try:
        with first.http(key) as a, second.http(key) as b:
            codes = [(a if i % 2 else b).get("/v1/whoami").status_code for i in range(8)]
    finally:
        second.stop()
    assert sorted(codes) == [200] * 5 + [429] * 3, codes


def test_rate_limit_holds_per_process_while_redis_is_down(make_stack: Callable[..., Stack]) -> None:
    s = make_stack(rate_limit_per_minute=5, broker_url=f"redis://127.0.0.1:{free_port()}/0")
    s.start_api(probe="/livez")
    key = s.key("busy", "media:read")
    within_one_window()
    with s.http(key) as c:
        codes = [c.get("/v1/whoami").status_code for _ in range(8)]
    assert codes == [200] * 5 + [429] * 3
