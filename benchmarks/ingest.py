"""Ingest benchmark of the distributed setup on this machine (JSON on stdout).

Starts the same real components as tests/service (a fresh PostgreSQL database, Redis, a SeaweedFS S3
server, `dmask serve`), then measures:

1. uploads/s and latency percentiles for the shared photos (multipart uploads from concurrent
   clients), i.e. the API's ingest path: stream to S3 with SSE-C, sniff, cap checks, database rows,
   audit events, broker message. No worker runs, so masking does not compete for the CPUs; the jobs
   stay queued and are dropped with the database at the end.
2. the API process's resident memory (VmRSS, sampled every 20 ms) while one 1 GiB upload streams
   through it: the body must never be held in memory, so the peak stays near the idle baseline.

    .venv/bin/python benchmarks/ingest.py [--uploads 200] [--concurrency 8] [--big-mib 1024] [--out FILE]

Needs PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379 (see services/README.md).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "service"))

import httpx  # noqa: E402
import redis  # noqa: E402
from service_support import (  # noqa: E402
    REDIS_HOST,
    REDIS_PORT,
    S3_ACCESS,
    S3_SECRET,
    SSE_C_KEY,
    Seaweed,
    Stack,
    clean_env,
    create_database,
    drop_database,
    free_port,
    wait_for,
)

REDIS_DB = 15


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def photos(shared: Path) -> list[Path]:
    manifest = json.loads((shared / "manifest.json").read_text())
    return [shared / p["path"] for p in manifest["photos"]]


def bench_uploads(stack: Stack, key: str, files: list[Path], n: int, concurrency: int) -> dict[str, Any]:
    payloads = [(f.name, f.read_bytes()) for f in files]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    local = threading.local()

    def client() -> httpx.Client:
        if not hasattr(local, "c"):
            local.c = stack.http(key, timeout=120)
        c: httpx.Client = local.c
        return c

    def one(i: int) -> None:
        name, data = payloads[i % len(payloads)]
        t0 = time.perf_counter()
        r = client().post(f"/v1/records/BENCH-{i % 50}/media", files={"file": (name, data)})
        dt = time.perf_counter() - t0
        with lock:
            latencies.append(dt)
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

    for i in range(min(8, n)):  # warm-up (connections, first-import costs)
        one(i)
    latencies.clear()
    statuses.clear()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(n)))
    wall = time.perf_counter() - t0
    total_bytes = sum(len(payloads[i % len(payloads)][1]) for i in range(n))
    return {
        "uploads": n,
        "concurrency": concurrency,
        "distinct_photos": len(payloads),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "wall_s": round(wall, 3),
        "uploads_per_s": round(n / wall, 2),
        "mib_per_s": round(total_bytes / wall / (1 << 20), 2),
        "latency_ms": {
            "p50": round(percentile(latencies, 0.50) * 1000, 1),
            "p90": round(percentile(latencies, 0.90) * 1000, 1),
            "p99": round(percentile(latencies, 0.99) * 1000, 1),
            "mean": round(statistics.fmean(latencies) * 1000, 1),
            "max": round(max(latencies) * 1000, 1),
        },
    }


def bench_big_upload(stack: Stack, key: str, head: bytes, mib: int) -> dict[str, Any]:
    assert stack.api is not None
    pid = stack.api.popen.pid
    total = mib << 20
    chunk = 1 << 20
    zeros = bytes(chunk)

    def body() -> Iterator[bytes]:
        yield head
        sent = len(head)
        while sent < total:
            n = min(chunk, total - sent)
            yield zeros if n == chunk else zeros[:n]
            sent += n

    time.sleep(1)
    baseline = rss_kib(pid)
    samples: list[int] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append(rss_kib(pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    with stack.http(key, timeout=900) as c:
        r = c.post("/v1/records/BENCH-BIG/media", content=body(), headers={"Content-Type": "image/jpeg"})
    wall = time.perf_counter() - t0
    done.set()
    sampler.join()
    peak = max(samples) if samples else baseline
    return {
        "bytes": total,
        "status": r.status_code,
        "wall_s": round(wall, 2),
        "mib_per_s": round(mib / wall, 1),
        "api_rss_mib": {
            "baseline": round(baseline / 1024, 1),
            "peak": round(peak / 1024, 1),
            "growth": round((peak - baseline) / 1024, 1),
            "samples": len(samples),
        },
        "flat": (peak - baseline) < 128 * 1024,  # growth under 128 MiB for a 1 GiB body
    }


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages: other work on the machine skews every number here."""
    return [round(x, 2) for x in os.getloadavg()]


def start_api(stack: Stack, workers: int) -> None:
    """``Stack.start_api`` with ``dmask serve --workers``."""
    port = free_port()
    stack.api_url = f"http://127.0.0.1:{port}"
    stack.api = stack._spawn(  # noqa: SLF001 - the tests' process launcher, reused
        ["serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)], "api"
    )
    wait_for(lambda: httpx.get(stack.api_url + "/readyz", timeout=5).status_code == 200, 90, "API")


@contextlib.contextmanager
def deployment(
    workdir: Path, *, api_workers: int = 1, redis_db: int = REDIS_DB, **settings: str
) -> Iterator[tuple[Stack, Seaweed]]:
    """The distributed setup on this machine, as the service tests start it: a fresh PostgreSQL
    database on 127.0.0.1:5432, Redis database ``redis_db`` (flushed), a SeaweedFS S3 server, and
    ``dmask serve`` with ``api_workers`` uvicorn processes. No worker: callers start those
    (``stack.start_worker()``). Everything is removed afterwards. Shared by the benchmarks."""
    weed = Seaweed(workdir / "seaweed")
    db_name, db_url = create_database("dmask_bench")
    redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=redis_db).flushdb()
    suffix = uuid.uuid4().hex[:8]
    stack: Stack | None = None
    try:
        weed.start()
        env = clean_env()
        env.update(
            {
                "DMASK_HOME": str(workdir / "home"),
                "DMASK_DATABASE_URL": db_url,
                "DMASK_BROKER_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{redis_db}",
                "DMASK_S3_ENDPOINT": weed.endpoint,
                "DMASK_S3_ACCESS_KEY": S3_ACCESS,
                "DMASK_S3_SECRET_KEY": S3_SECRET,
                "DMASK_S3_SECURE": "false",
                "DMASK_S3_REGION": "us-east-1",
                "DMASK_BUCKET_ORIGINALS": f"orig-{suffix}",
                "DMASK_BUCKET_ARTIFACTS": f"art-{suffix}",
                "DMASK_SSE_C_KEY": SSE_C_KEY,
                "DMASK_RATE_LIMIT_PER_MINUTE": "0",
                "DMASK_LOG_LEVEL": "warning",
                "DMASK_WORKER_HEARTBEAT_FILE": str(workdir / "worker.heartbeat"),
                **{f"DMASK_{k.upper()}": str(v) for k, v in settings.items()},
            }
        )
        stack = Stack(workdir=workdir, env=env, db_name=db_name)
        stack.cli("db", "upgrade")
        start_api(stack, api_workers)
        yield stack, weed
    finally:
        if stack is not None:
            stack.stop()
        weed.stop()
        drop_database(db_name)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--uploads", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--big-mib", type=int, default=1024)
    ap.add_argument("--out", type=Path)
    ap.add_argument(
        "--shared",
        type=Path,
        default=Path(os.environ.get("DMASK_SHARED_DATA", REPO.parent / "shared" / "data")),
    )
    args = ap.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="dmask-bench-"))
    try:
        with deployment(workdir) as (stack, _):
            key = stack.key("bench", "media:write")
            files = photos(args.shared)
            result: dict[str, Any] = {
                "benchmark": "ingest",
                "setup": {
                    "api": "dmask serve (1 uvicorn process)",
                    "database": "PostgreSQL 127.0.0.1:5432",
                    "broker": "Redis 127.0.0.1:6379",
                    "storage": "SeaweedFS S3 on loopback, originals SSE-C",
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                },
                "load_average_before": load_average(),
                "photos": bench_uploads(stack, key, files, args.uploads, args.concurrency),
            }
            if args.big_mib > 0:
                head = (args.shared / "faces/barack_obama/1.jpg").read_bytes()
                result["big_upload"] = bench_big_upload(stack, key, head, args.big_mib)
            result["load_average_after"] = load_average()
        text = json.dumps(result, indent=2)
        print(text)
        if args.out:
            args.out.write_text(text + "\n")
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
