"""Recovery drills, measured: how long the service takes to notice a fault, to recover, and to drain
the backlog it built up (JSON on stdout).

The distributed setup on this machine with dependencies of its own that the drills stop: a private
Redis without persistence (a restart loses every queued message), a private SeaweedFS S3 server, a
fresh PostgreSQL database, ``dmask serve`` and one ``dmask worker`` (CPU). Settings are the
product's defaults (printed in the output beside the numbers) unless given with ``--set``.

Drills, in order, each with photos uploaded before and during the fault:

* ``broker_restart``: Redis is killed (its queue is lost), uploads keep being accepted, Redis comes
  back empty. Measured from its return: the worker's own detection (its "broker lost its state" log
  line), the first job done, every accepted upload done.
* ``s3_outage``: the S3 server is killed for ``--outage-s`` seconds under uploads (the API answers
  503 + Retry-After; their latency is reported) and started again. Measured from its return: first
  upload accepted again, every accepted upload done.
* ``worker_sigkill``: the worker is killed with SIGKILL mid-job and a new one started at once (a
  container restart), with a backlog queued behind the killed job. Measured: when the killed job
  restarts (from its last heartbeat: lease + check interval at most), whether it restarts ahead of
  the backlog, every job done.

Targets (checked in the output): every accepted upload done within 60 s of the dependency's
return; a broker restart detected within 5 s; a killed worker's job restarted within
``job_lease_s`` + 5 s of its last heartbeat.

    .venv/bin/python benchmarks/recovery.py [--photos 6] [--outage-s 20] [--out FILE]

Run on demand, not in CI (about 4 minutes). Needs PostgreSQL on 127.0.0.1:5432.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for sub in ("tests/service", "tests/hardening"):
    sys.path.insert(0, str(REPO / sub))
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
from hardening_support import RestartableSeaweed, query  # noqa: E402
from service_support import (  # noqa: E402
    S3_ACCESS,
    S3_SECRET,
    SSE_C_KEY,
    PrivateRedis,
    Stack,
    clean_env,
    create_database,
    drop_database,
    wait_for,
)

from services.settings import Settings  # noqa: E402

TARGET_DRAIN_S = 60.0
TARGET_BROKER_DETECT_S = 5.0
TARGET_RESTART_MARGIN_S = 5.0
SHARED = Path(os.environ.get("DMASK_SHARED_DATA", REPO.parent / "shared" / "data"))
LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def photos(n: int) -> list[bytes]:
    found = sorted((SHARED / "faces").glob("*/1.jpg"))[:n]
    if len(found) < n:
        raise SystemExit(f"need {n} photos under {SHARED / 'faces'}")
    return [p.read_bytes() for p in found]


def log_time(line: str) -> float:
    """A worker log line's wall-clock time (the logging format's local time)."""
    found = LOG_TIME.match(line)
    if not found:
        raise ValueError(line)
    return datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()


def first_log_line(path: Path, needle: str, after: float) -> float | None:
    for line in path.read_text(errors="replace").splitlines():
        if needle in line:
            with contextlib.suppress(ValueError):
                t = log_time(line)
                if t >= after - 0.001:
                    return t
    return None


class Bench:
    def __init__(self, work: Path, overrides: dict[str, str]) -> None:
        self.work = work
        self.broker = PrivateRedis(work / "redis")
        self.s3 = RestartableSeaweed(work / "seaweed")
        self.db_name, db_url = create_database("dmask_recovery")
        self.broker.start()
        self.s3.start()
        env = clean_env()
        env.update(
            {
                "DMASK_HOME": str(work / "home"),
                "DMASK_DATABASE_URL": db_url,
                "DMASK_BROKER_URL": self.broker.url,
                "DMASK_S3_ENDPOINT": self.s3.endpoint,
                "DMASK_S3_ACCESS_KEY": S3_ACCESS,
                "DMASK_S3_SECRET_KEY": S3_SECRET,
                "DMASK_S3_SECURE": "false",
                "DMASK_S3_REGION": "us-east-1",
                "DMASK_SSE_C_KEY": SSE_C_KEY,
                "DMASK_DEVICE": "cpu",
                "DMASK_RATE_LIMIT_PER_MINUTE": "0",
                "DMASK_LOG_LEVEL": "info",
                "DMASK_WORKER_HEARTBEAT_FILE": str(work / "worker.heartbeat"),
                **{f"DMASK_{k.upper()}": v for k, v in overrides.items()},
            }
        )
        self.stack = Stack(workdir=work, env=env, db_name=self.db_name)
        self.stack.cli("db", "upgrade")
        self.stack.start_api()
        self.worker = self.stack.start_worker()
        self.key = self.stack.key("bench", "media:write", "media:read")
        self.settings = Settings(**{k[6:].lower(): v for k, v in env.items() if k.startswith("DMASK_")})

    def close(self) -> None:
        self.stack.stop()
        self.s3.stop()
        self.broker.kill()
        drop_database(self.db_name)

    def client(self) -> httpx.Client:
        return self.stack.http(self.key, timeout=30)

    def upload(self, c: httpx.Client, data: bytes) -> httpx.Response:
        return c.post(
            f"/v1/records/MRN-{uuid.uuid4().hex[:8]}/media",
            files={"file": ("photo.jpg", data, "image/jpeg")},
            headers={"Idempotency-Key": uuid.uuid4().hex},
        )

    def jobs(self, ids: list[str]) -> list[tuple[Any, ...]]:
        return query(
            self.stack,
            "SELECT id, status, deliveries, started_at, finished_at, heartbeat_at FROM jobs "
            "WHERE id = ANY(%s)",
            ids,
        )

    def wait_done(self, ids: list[str], timeout: float = 600) -> float:
        """Seconds (wall clock, epoch) when the last of ``ids`` finished; raises if one failed."""

        def done() -> bool:
            rows = self.jobs(ids)
            bad = [r for r in rows if r[1] == "failed"]
            if bad:
                raise RuntimeError(f"jobs failed: {bad}")
            return len(rows) == len(ids) and all(r[1] == "succeeded" for r in rows)

        wait_for(done, timeout, "backlog drained", interval=0.5)
        return max(_ts(r[4]) for r in self.jobs(ids))

    def first_done_after(self, ids: list[str], t0: float) -> float | None:
        times = [_ts(r[4]) for r in self.jobs(ids) if r[4] is not None]
        later = [t for t in times if t >= t0]
        return min(later) if later else None

    # --- drills -------------------------------------------------------------------------------

    def broker_restart(self, data: list[bytes]) -> dict[str, Any]:
        with self.client() as c:
            before = [self.upload(c, d).json()["job_id"] for d in data]
            self.broker.kill()
            killed_at = time.time()
            during = [self.upload(c, d) for d in data]
            ready = httpx.get(self.stack.api_url + "/readyz", timeout=10).status_code
            time.sleep(max(0.0, 5 - (time.time() - killed_at)))
            self.broker.start()
            back = time.time()
        accepted = before + [r.json()["job_id"] for r in during if r.status_code == 202]
        done = self.wait_done(accepted)
        detected = wait_for(
            lambda: first_log_line(self.worker.log, "broker lost its state (restarted", back - 1),
            30,
            "detection",
        )
        return {
            "uploads_before": len(before),
            "uploads_during": len(during),
            "accepted_during": sum(r.status_code == 202 for r in during),
            "readyz_during": ready,
            "outage_s": round(back - killed_at, 2),
            "detected_after_s": round(max(0.0, detected - back), 2),
            "first_job_done_after_s": _rel(self.first_done_after(accepted, back), back),
            "backlog_drained_after_s": round(done - back, 2),
            "targets": {
                "detected_within_s": TARGET_BROKER_DETECT_S,
                "drained_within_s": TARGET_DRAIN_S,
                "met": (detected - back) <= TARGET_BROKER_DETECT_S and done - back <= TARGET_DRAIN_S,
            },
        }

    def s3_outage(self, data: list[bytes], outage_s: float) -> dict[str, Any]:
        latencies: list[float] = []
        statuses: dict[str, int] = {}
        accepted: list[str] = []
        with self.client() as c:
            accepted += [self.upload(c, d).json()["job_id"] for d in data]  # queued or running
            self.s3.kill()
            killed_at = time.time()
            ready: set[int] = set()
            i = 0
            while time.time() - killed_at < outage_s:
                t = time.perf_counter()
                r = self.upload(c, data[i % len(data)])
                latencies.append(time.perf_counter() - t)
                statuses[str(r.status_code)] = statuses.get(str(r.status_code), 0) + 1
                if r.status_code == 202:
                    accepted.append(r.json()["job_id"])
                ready.add(httpx.get(self.stack.api_url + "/readyz", timeout=10).status_code)
                i += 1
                time.sleep(0.25)
            self.s3.start()
            back = time.time()
            first_accept: float | None = None
            for d in data:  # clients retrying what was refused
                while True:
                    r = self.upload(c, d)
                    if r.status_code == 202:
                        first_accept = first_accept or time.time()
                        accepted.append(r.json()["job_id"])
                        break
                    time.sleep(float(r.headers.get("retry-after", "1")) / 5)
        done = self.wait_done(accepted)
        latencies.sort()
        return {
            "uploads_before": len(data),
            "outage_s": round(back - killed_at, 2),
            "during": {
                "statuses": statuses,
                "latency_p50_s": round(latencies[len(latencies) // 2], 3),
                "latency_max_s": round(latencies[-1], 3),
                "readyz_statuses": sorted(ready),
            },
            "first_upload_accepted_after_s": _rel(first_accept, back),
            "first_job_done_after_s": _rel(self.first_done_after(accepted, back), back),
            "backlog_drained_after_s": round(done - back, 2),
            "targets": {
                "answer_503_within_s": 1.0,
                "drained_within_s": TARGET_DRAIN_S,
                "met": latencies[-1] <= 1.0 and done - back <= TARGET_DRAIN_S,
            },
        }

    def worker_sigkill(self, data: list[bytes]) -> dict[str, Any]:
        clip = (SHARED / "videos" / "livep_d18.mp4").read_bytes()  # 216 frames: killed mid-way
        with self.client() as c:
            r = c.post(
                f"/v1/records/MRN-{uuid.uuid4().hex[:8]}/media",
                files={"file": ("clip.mp4", clip, "video/mp4")},
            )
            victim = r.json()["job_id"]
            wait_for(lambda: self.jobs([victim])[0][1] == "running", 120, "video job running")
            time.sleep(1)
            self.worker.kill()
            killed_at = time.time()
            last_beat = _ts(self.jobs([victim])[0][5])
            backlog = [self.upload(c, d).json()["job_id"] for d in data]
            self.worker = self.stack.start_worker()  # the container restarts at once
            # Just before the lease runs out, more work arrives: the requeued job must not wait
            # behind it.
            time.sleep(max(0.0, last_beat + self.settings.job_lease_s - 2 - time.time()))
            burst = [self.upload(c, d).json()["job_id"] for d in data * 3]
        restarted = wait_for(
            lambda: (row := self.jobs([victim])[0])[2] == 2 and row[3] is not None and row,
            self.settings.job_lease_s + 120,
            "killed job restarted",
            interval=0.2,
        )
        restart_at = _ts(restarted[3])
        requeued = query(
            self.stack, "SELECT ts FROM audit_events WHERE action = 'job.requeued' AND job_id = %s", victim
        )
        requeue_at = _ts(requeued[0][0])
        done = self.wait_done([victim, *backlog, *burst])
        overtaking = [r for r in self.jobs(burst) if r[3] and requeue_at < _ts(r[3]) < restart_at]
        limit = self.settings.job_lease_s + TARGET_RESTART_MARGIN_S
        return {
            "backlog_while_dead": len(backlog),
            "burst_before_lease_expiry": len(burst),
            "requeued_after_last_heartbeat_s": round(requeue_at - last_beat, 2),
            "restarted_after_last_heartbeat_s": round(restart_at - last_beat, 2),
            "restarted_after_kill_s": round(restart_at - killed_at, 2),
            "waiting_jobs_started_between_requeue_and_restart": len(overtaking),
            "all_drained_after_kill_s": round(done - killed_at, 2),
            "targets": {
                "restarted_within_s_of_last_heartbeat": limit,
                "met": restart_at - last_beat <= limit,
            },
        }


def _ts(value: datetime) -> float:
    """Epoch seconds of a database timestamp (naive ones are UTC)."""
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def _rel(t: float | None, t0: float) -> float | None:
    return None if t is None else round(t - t0, 2)


@contextlib.contextmanager
def bench(overrides: dict[str, str]) -> Iterator[Bench]:
    work = Path(tempfile.mkdtemp(prefix="dmask-recovery-"))
    b: Bench | None = None
    try:
        b = Bench(work, overrides)
        yield b
    finally:
        if b is not None:
            b.close()
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=6, help="uploads before (and during) each fault")
    ap.add_argument("--outage-s", type=float, default=20.0)
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="a setting override")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    overrides = dict(kv.split("=", 1) for kv in args.set)
    data = photos(args.photos)
    load_before = [round(x, 2) for x in os.getloadavg()]
    with bench(overrides) as b:
        defaults = {
            name: getattr(b.settings, name)
            for name in (
                "job_lease_s",
                "broker_check_interval_s",
                "reconcile_interval_s",
                "infra_retry_delay_s",
                "requeue_after_s",
                "visibility_timeout_s",
                "worker_concurrency",
            )
        }
        drills = {
            "broker_restart": b.broker_restart(data),
            "s3_outage": b.s3_outage(data, args.outage_s),
            "worker_sigkill": b.worker_sigkill(data),
        }
    result = {
        "benchmark": "recovery",
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": {"cpus": os.cpu_count(), "load_average_before": load_before},
        "settings": defaults,
        "settings_overridden": overrides,
        "drills": drills,
        "all_targets_met": all(d["targets"]["met"] for d in drills.values()),
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    text = json.dumps(result, indent=2, default=str)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0 if result["all_targets_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
