"""Soak: mixed uploads for ten minutes with a worker restart in the middle; afterwards every job is
accounted for (JSON on stdout).

The distributed setup of ``benchmarks/ingest.py`` plus one Celery worker (``dmask worker``, CPU).
Clients upload a mix at a steady pace: shared photos, a short face video, DICOM files, and input that
must be refused (HTML: 415) or fail in the worker (a truncated JPEG), each with an Idempotency-Key and
retrying 503s as the API asks. Halfway through, the worker gets SIGTERM (with
``worker_shutdown_timeout_s`` set, so a long job is handed back rather than waited for) and a new one
starts. At the end the run waits for every job to settle and checks:

* every 202 has its job, and every job ended succeeded with exactly one artifact or failed with a
  reason (``tests/hardening/hardening_support.assert_accounted``);
* after the orphan sweep, storage holds exactly what the rows name;
* the audit chain verifies.

    .venv/bin/python benchmarks/soak.py [--minutes 10] [--interval 4] [--out FILE]

Run on demand, not in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests" / "hardening"))
sys.path.insert(0, str(HERE.parent / "tests" / "service"))

from build_corpus import FACE_VIDEO, short_clip  # noqa: E402
from hardening_support import assert_accounted, query, sweep, wait_settled  # noqa: E402
from ingest import REPO, deployment, load_average, percentile, photos  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--interval", type=float, default=4, help="seconds between uploads")
    ap.add_argument("--settle-minutes", type=float, default=20)
    ap.add_argument("--out", type=Path)
    ap.add_argument(
        "--shared",
        type=Path,
        default=Path(os.environ.get("DMASK_SHARED_DATA", REPO.parent / "shared" / "data")),
    )
    args = ap.parse_args()
    rng = random.Random(5)
    pics = photos(args.shared)
    clip = short_clip(args.shared / FACE_VIDEO, 6)
    dicoms = [args.shared / "dicom" / n for n in ("ot_pal8_face.dcm", "ct_small.dcm", "mr_small.dcm")]
    face = pics[0].read_bytes()
    mix: list[tuple[str, Any]] = (
        [("photo", p) for p in pics[:40]]
        + [("video", clip)] * 4
        + [("dicom", d) for d in dicoms] * 2
        + [("html", b"<html><body>not a photo</body></html>")] * 2
        + [("truncated", face[: len(face) // 2])] * 2
    )
    workdir = Path(tempfile.mkdtemp(prefix="dmask-soak-"))
    accepted: dict[str, str] = {}  # job id -> kind sent
    answers: Counter[str] = Counter()
    latencies: list[float] = []
    lock = threading.Lock()
    try:
        with deployment(
            workdir,
            redis_db=14,
            job_lease_s="30",
            reconcile_interval_s="5",
            worker_shutdown_timeout_s="5",
            infra_retry_delay_s="2",
            device="cpu",
            batch_size="8",
            max_video_seconds="60",
            log_level="info",
        ) as (stack, weed):
            stack.start_worker()
            key = stack.key("soak", "media:write", "media:read", "audit:read")
            start = time.monotonic()
            end = start + args.minutes * 60
            restart_at = start + args.minutes * 30
            restarted: dict[str, Any] = {}

            def upload(kind: str, item: Any) -> None:
                data = item.read_bytes() if isinstance(item, Path) else item
                idem = uuid.uuid4().hex
                with stack.http(key, timeout=120) as c:
                    for _ in range(30):
                        t = time.perf_counter()
                        r = c.post(
                            f"/v1/records/SOAK-{rng.randrange(200)}/media",
                            files={"file": (f"f-{kind}", data)},
                            headers={"Idempotency-Key": idem},
                        )
                        with lock:
                            latencies.append(time.perf_counter() - t)
                            answers[f"{kind} {r.status_code}"] += 1
                        if r.status_code == 503:
                            time.sleep(float(r.headers.get("retry-after", "2")))
                            continue
                        if r.status_code == 202:
                            with lock:
                                accepted[r.json()["job_id"]] = kind
                        return

            threads: list[threading.Thread] = []
            while time.monotonic() < end:
                if not restarted and time.monotonic() >= restart_at:
                    old = stack.workers[-1]
                    t = time.monotonic()
                    old.popen.send_signal(signal.SIGTERM)
                    old.popen.wait(120)
                    restarted["stopped_in_s"] = round(time.monotonic() - t, 1)
                    restarted["exit_code"] = old.popen.returncode
                    stack.start_worker()
                    restarted["downtime_s"] = round(time.monotonic() - t, 1)
                kind, item = mix[rng.randrange(len(mix))]
                th = threading.Thread(target=upload, args=(kind, item))
                th.start()
                threads.append(th)
                time.sleep(args.interval)
            for th in threads:
                th.join(300)
            upload_s = time.monotonic() - start
            wait_settled(stack, timeout=args.settle_minutes * 60)
            settled_s = time.monotonic() - start
            report = sweep(stack)
            accounting = assert_accounted(stack, weed.client(), list(accepted))
            with stack.http(key) as c:
                verify = c.get("/v1/audit/verify").json()
            rows = query(stack, "SELECT kind, status, deliveries FROM jobs")
            released = query(stack, "SELECT count(*) FROM audit_events WHERE action = 'job.released'")[0][0]
            requeued = query(stack, "SELECT count(*) FROM audit_events WHERE action = 'job.requeued'")[0][0]
            failures = Counter(
                r[0] for r in query(stack, "SELECT failure_reason FROM jobs WHERE status = 'failed'")
            )
            result = {
                "benchmark": "soak",
                "minutes": args.minutes,
                "upload_interval_s": args.interval,
                "uploads_sent": sum(answers.values()),
                "answers": dict(sorted(answers.items())),
                "server_errors": sum(
                    n for k, n in answers.items() if k.split()[1].startswith("5") and k.split()[1] != "503"
                ),
                "accepted": len(accepted),
                "jobs": dict(Counter(f"{k} {s}" for k, s, _ in rows)),
                "deliveries": dict(Counter(str(d) for _, _, d in rows)),
                "failure_reasons": dict(failures),
                "worker_restart": restarted,
                "jobs_released": released,
                "jobs_requeued": requeued,
                "every_job_accounted_for": len(accounting.jobs) == len(accepted),
                "orphan_sweep": {
                    k: {b: len(v) for b, v in report[k].items()} for k in ("deleted", "aborted")
                },
                "audit_chain": verify,
                "upload_latency_ms": {
                    "p50": round(percentile(latencies, 0.5) * 1000, 1),
                    "p99": round(percentile(latencies, 0.99) * 1000, 1),
                },
                "uploading_s": round(upload_s, 1),
                "all_settled_after_s": round(settled_s, 1),
                "load_average_end": load_average(),
            }
        text = json.dumps(result, indent=2)
        print(text)
        if args.out:
            args.out.write_text(text + "\n")
        return 0 if result["server_errors"] == 0 and verify["ok"] else 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
