"""Load benchmark: 1, 8 and 32 concurrent clients against the distributed setup (JSON on stdout).

The setup is ``benchmarks/ingest.py``'s (fresh PostgreSQL database, Redis, SeaweedFS S3 with SSE-C
originals), with the API as ``dmask serve --workers N`` (several uvicorn processes on one port).
Each client loops: upload a shared photo (multipart, with an Idempotency-Key), then read the job it
got back. No masking worker runs, so the numbers are the ingest path's, not the model's (see
benchmarks/processing.py for that); the jobs stay queued and go with the database.

Per concurrency level: uploads/s, job reads/s, latency percentiles of both, the status codes seen
(anything but 202/200 is reported, a 5xx fails the run), and the machine's load average before and
after (other work on the machine shows up there).

    .venv/bin/python benchmarks/load.py [--clients 1,8,32] [--seconds 30] [--api-workers 4] [--out FILE]

Run on demand, not in CI. Needs PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from ingest import REPO, deployment, load_average, percentile, photos  # noqa: E402
from service_support import Stack  # noqa: E402


def summary(latencies: list[float]) -> dict[str, float]:
    if not latencies:
        return {}
    return {
        "p50": round(percentile(latencies, 0.50) * 1000, 1),
        "p90": round(percentile(latencies, 0.90) * 1000, 1),
        "p99": round(percentile(latencies, 0.99) * 1000, 1),
        "max": round(max(latencies) * 1000, 1),
    }


def run_level(
    stack: Stack, key: str, payloads: list[tuple[str, bytes]], clients: int, seconds: float
) -> dict[str, Any]:
    up_lat: list[float] = []
    get_lat: list[float] = []
    statuses: dict[str, int] = {}
    lock = threading.Lock()
    stop = time.monotonic() + seconds
    counter = iter(range(10**9))

    def client_loop() -> None:
        with stack.http(key, timeout=120) as c:
            while time.monotonic() < stop:
                i = next(counter)
                name, data = payloads[i % len(payloads)]
                t0 = time.perf_counter()
                r = c.post(
                    f"/v1/records/LOAD-{i % 500}/media",
                    files={"file": (name, data)},
                    headers={"Idempotency-Key": uuid.uuid4().hex},
                )
                t1 = time.perf_counter()
                with lock:
                    up_lat.append(t1 - t0)
                    statuses[f"upload {r.status_code}"] = statuses.get(f"upload {r.status_code}", 0) + 1
                if r.status_code != 202:
                    continue
                t2 = time.perf_counter()
                g = c.get(f"/v1/jobs/{r.json()['job_id']}")
                t3 = time.perf_counter()
                with lock:
                    get_lat.append(t3 - t2)
                    statuses[f"job {g.status_code}"] = statuses.get(f"job {g.status_code}", 0) + 1

    before = load_average()
    t0 = time.perf_counter()
    threads = [threading.Thread(target=client_loop) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {
        "clients": clients,
        "wall_s": round(wall, 2),
        "uploads": len(up_lat),
        "uploads_per_s": round(len(up_lat) / wall, 2),
        "job_reads_per_s": round(len(get_lat) / wall, 2),
        "upload_latency_ms": summary(up_lat),
        "job_read_latency_ms": summary(get_lat),
        "statuses": dict(sorted(statuses.items())),
        "server_errors": sum(n for k, n in statuses.items() if k.split()[1].startswith("5")),
        "load_average_before": before,
        "load_average_after": load_average(),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", default="1,8,32")
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--api-workers", type=int, default=4)
    ap.add_argument("--out", type=Path)
    ap.add_argument(
        "--shared",
        type=Path,
        default=Path(os.environ.get("DMASK_SHARED_DATA", REPO.parent / "shared" / "data")),
    )
    args = ap.parse_args()
    levels = [int(x) for x in args.clients.split(",")]
    payloads = [(f.name, f.read_bytes()) for f in photos(args.shared)]
    workdir = Path(tempfile.mkdtemp(prefix="dmask-load-"))
    try:
        with deployment(workdir, api_workers=args.api_workers) as (stack, _):
            key = stack.key("load", "media:write", "media:read")
            with stack.http(key) as c:  # warm every API process (connections, imports)
                for i in range(4 * args.api_workers):
                    c.post(f"/v1/records/WARM-{i}/media", files={"file": payloads[i % len(payloads)]})
            result: dict[str, Any] = {
                "benchmark": "load",
                "setup": {
                    "api": f"dmask serve --workers {args.api_workers}",
                    "database": "PostgreSQL 127.0.0.1:5432",
                    "broker": "Redis 127.0.0.1:6379",
                    "storage": "SeaweedFS S3 on loopback, originals SSE-C",
                    "masking_workers": 0,
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "photos": len(payloads),
                    "seconds_per_level": args.seconds,
                },
                "levels": [run_level(stack, key, payloads, n, args.seconds) for n in levels],
            }
        text = json.dumps(result, indent=2)
        print(text)
        if args.out:
            args.out.write_text(text + "\n")
        return 1 if any(level["server_errors"] for level in result["levels"]) else 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
