"""Prometheus metrics. Labels carry route templates, methods, statuses and media kinds only: never
record IDs, client names or anything else that could identify a patient."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from services.settings import Settings

log = logging.getLogger("dmask.metrics")

HTTP_REQUESTS = Counter("dmask_http_requests_total", "HTTP requests", ["method", "route", "status"])
HTTP_LATENCY = Histogram(
    "dmask_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
UPLOAD_BYTES = Counter("dmask_upload_bytes_total", "Bytes accepted by uploads", ["kind"])
JOB_DURATION = Histogram(
    "dmask_job_duration_seconds",
    "Masking job run time in this process",
    ["kind", "outcome"],
    buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600),
)
JOB_OUTCOMES = Counter("dmask_job_runs_total", "Masking job runs in this process", ["kind", "outcome"])


class JobTableCollector(Collector):
    """Cluster-wide job figures read from the database at scrape time (the job table is the truth,
    wherever the workers run): queue depth, jobs by status, failures, recent job durations. The
    per-process histogram ``dmask_job_duration_seconds`` lives where jobs run (the worker's own
    endpoint, ``worker_metrics_port``; the API itself in embedded mode)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from services.db import get_sessionmaker, utcnow
        from services.jobs.models import Job

        counts: dict[str, int] = {}
        try:
            with get_sessionmaker(self.settings)() as session:
                for status, n in session.execute(select(Job.status, func.count()).group_by(Job.status)):
                    counts[str(status)] = int(n)
        except Exception as exc:
            log.warning("job metrics unavailable: %s", type(exc).__name__)
            return
        durations: dict[str, list[float]] = {}
        try:
            since = utcnow() - timedelta(hours=1)
            with get_sessionmaker(self.settings)() as session:
                rows = session.execute(
                    select(Job.kind, Job.started_at, Job.finished_at)
                    .where(Job.status == "succeeded", Job.finished_at >= since)
                    .order_by(Job.finished_at.desc())
                    .limit(10_000)
                )
                for kind, started, finished in rows:
                    if started is not None and finished is not None:
                        durations.setdefault(str(kind), []).append((finished - started).total_seconds())
        except Exception as exc:
            log.warning("job duration metrics unavailable: %s", type(exc).__name__)
        by_status = GaugeMetricFamily("dmask_jobs", "Jobs by status", labels=["status"])
        for status in ("queued", "running", "succeeded", "failed"):
            by_status.add_metric([status], counts.get(status, 0))
        yield by_status
        yield GaugeMetricFamily(
            "dmask_queue_depth", "Jobs waiting for a worker", value=counts.get("queued", 0)
        )
        yield GaugeMetricFamily("dmask_jobs_failed", "Jobs that ended failed", value=counts.get("failed", 0))
        avg = GaugeMetricFamily(
            "dmask_job_duration_seconds_avg_1h",
            "Mean run time of jobs that succeeded in the last hour",
            labels=["kind"],
        )
        worst = GaugeMetricFamily(
            "dmask_job_duration_seconds_max_1h",
            "Longest run time of jobs that succeeded in the last hour",
            labels=["kind"],
        )
        done = GaugeMetricFamily(
            "dmask_jobs_succeeded_1h", "Jobs that succeeded in the last hour", labels=["kind"]
        )
        for kind, values in sorted(durations.items()):
            avg.add_metric([kind], sum(values) / len(values))
            worst.add_metric([kind], max(values))
            done.add_metric([kind], len(values))
        yield avg
        yield worst
        yield done
