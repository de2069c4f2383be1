"""Support of the hardening tests: private dependencies that may be stopped and restarted, the
exactly-once / no-orphan invariants, and worker process inspection.

The machine's PostgreSQL cluster and the session's SeaweedFS serve every other test, so a drill that
stops a dependency stops one of its own: ``PrivatePostgres`` (initdb in a temp folder, its own
port, started as the ``postgres`` user when running as root) and ``RestartableSeaweed`` (the service
tests' ``Seaweed``, keeping its ports and data across a restart). Redis: ``PrivateRedis`` from
``service_support``.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from service_support import REPO, Proc, Seaweed, Stack, free_port, tail, wait_for

HARDENING = Path(__file__).resolve().parent
PRESIGN_TTL_S = 3  # the shared hardening stack's presigned-URL lifetime (short, so expiry is testable)
FAULTINJECT = HARDENING / "faultinject"


# --- private PostgreSQL ---------------------------------------------------------------------------


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"PostgreSQL binary {name} not found")
    return path


class PrivatePostgres:
    """A throw-away PostgreSQL cluster: ``initdb`` into a temp folder, trust auth on loopback, no
    fsync. ``stop()``/``start()`` are a real server restart (fast shutdown kills every session)."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="dmask-pg-"))
        os.chmod(self.dir, 0o755)
        self.data = self.dir / "data"
        self.port = free_port()
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(_pg_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def _run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        full = ["runuser", "-u", "postgres", "--", *cmd] if self._as_postgres else list(cmd)
        res = subprocess.run(full, capture_output=True, text=True, timeout=120, cwd=self.dir)
        if check and res.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stdout}\n{res.stderr}")
        return res

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, db: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        opts = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} -c fsync=off -c max_connections=200"
        )
        self._run(
            _pg_bin("pg_ctl"), "-D", str(self.data), "-o", opts, "-l", str(self.dir / "log"), "-w", "start"
        )

    def stop(self) -> None:
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop", check=False)

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


# --- restartable SeaweedFS ------------------------------------------------------------------------


class RestartableSeaweed(Seaweed):
    """``Seaweed`` whose restart keeps the same ports and data folder (``Seaweed.start`` picks new
    free ports each time, which a deployment configured with the old endpoint would not follow)."""

    def start(self) -> None:
        if not self.s3_port:
            super().start()
            self._cmd = self._last_cmd()
            return
        with open(self.workdir / "weed.log", "ab") as log:
            self.proc = subprocess.Popen(
                self._cmd, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir, start_new_session=True
            )
        wait_for(lambda: self._probe(), 90, "SeaweedFS S3 after restart", interval=0.5)

    def _last_cmd(self) -> list[str]:
        assert self.proc is not None
        return [str(a) for a in self.proc.args]  # type: ignore[union-attr]

    def _probe(self) -> bool:
        import io

        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError("weed exited:\n" + tail(self.workdir / "weed.log"))
        self.client().put_object("readiness-probe", "probe", io.BytesIO(b"ok"), 2)
        return True

    def kill(self) -> None:
        """Abrupt stop (SIGKILL of the whole server): in-flight requests see a dead socket."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(20)
            self.proc = None


# --- invariants -----------------------------------------------------------------------------------


def db_url(stack: Stack) -> str:
    return stack.env["DMASK_DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")


def query(stack: Stack, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(db_url(stack), autocommit=True) as conn:
        return list(conn.execute(sql, args or None).fetchall())


def sweep(stack: Stack, grace_s: float = 0) -> dict[str, Any]:
    """Run the orphan sweeper (``dmask storage sweep``) of ``stack`` once."""
    out = stack.cli("storage", "sweep", "--grace-s", str(grace_s)).stdout.strip().splitlines()[-1]
    report: dict[str, Any] = json.loads(out)
    return report


@dataclass
class Accounting:
    jobs: dict[str, tuple[str, str | None, int]]  # id -> (status, failure_reason, deliveries)
    artifacts: dict[str, int]  # job id -> artifact rows

    def status(self, job_id: str) -> str:
        return self.jobs[job_id][0]


def wait_settled(stack: Stack, timeout: float = 300) -> None:
    """Until no job of the deployment is queued or running."""
    wait_for(
        lambda: not query(stack, "SELECT 1 FROM jobs WHERE status IN ('queued', 'running') LIMIT 1"),
        timeout,
        "every job settled",
        interval=0.5,
    )


def assert_accounted(stack: Stack, s3: Any, job_ids: list[str] | None = None) -> Accounting:
    """The invariants after any fault: every job ended succeeded with exactly one artifact (and one
    ``job.succeeded`` event) or failed with a reason and no artifact; the artifacts bucket holds
    exactly the live artifacts' objects and the originals bucket exactly the originals rows name;
    no unfinished multipart upload is left."""
    jobs = {
        r[0]: (r[1], r[2], r[3])
        for r in query(stack, "SELECT id, status, failure_reason, deliveries FROM jobs")
        if job_ids is None or r[0] in job_ids
    }
    if job_ids is not None:
        assert set(jobs) == set(job_ids), "an acknowledged upload has no job row"
    arts = dict(query(stack, "SELECT job_id, count(*) FROM artifacts GROUP BY job_id"))
    succeeded_events = dict(
        query(
            stack, "SELECT job_id, count(*) FROM audit_events WHERE action = 'job.succeeded' GROUP BY job_id"
        )
    )
    for job_id, (status, reason, _) in jobs.items():
        if status == "succeeded":
            assert arts.get(job_id) == 1, f"job {job_id}: {arts.get(job_id)} artifacts"
            assert succeeded_events.get(job_id) == 1, (
                f"job {job_id}: {succeeded_events.get(job_id)} successes"
            )
        else:
            assert status == "failed", f"job {job_id} still {status}"
            assert reason, f"job {job_id} failed without a reason"
            assert job_id not in arts, f"failed job {job_id} has an artifact"
    bucket_art = stack.env["DMASK_BUCKET_ARTIFACTS"]
    bucket_orig = stack.env["DMASK_BUCKET_ORIGINALS"]
    live = {
        k
        for row in query(stack, "SELECT object_key, metrics_key FROM artifacts WHERE deleted_at IS NULL")
        for k in row
    }
    stored_art = {o.object_name for o in s3.list_objects(bucket_art, recursive=True)}
    assert stored_art == live, f"artifact objects {sorted(stored_art ^ live)} unaccounted"
    originals = {r[0] for r in query(stack, "SELECT original_key FROM media WHERE original_key IS NOT NULL")}
    stored_orig = {o.object_name for o in s3.list_objects(bucket_orig, recursive=True)}
    assert stored_orig == originals, f"original objects {sorted(stored_orig ^ originals)} unaccounted"
    for bucket in (bucket_art, bucket_orig):
        uploads = s3._list_multipart_uploads(bucket).uploads  # noqa: SLF001 - test inspection
        assert uploads == [], f"unfinished multipart uploads left in {bucket}"
    return Accounting(jobs, arts)


# --- worker processes -----------------------------------------------------------------------------


def pool_children(worker: Proc, wait_s: float = 0.0) -> list[int]:
    """The worker's pool processes; with ``wait_s``, waits that long for at least one, as the pool
    replaces a child that died only after a moment (longer on a busy machine)."""
    pid = worker.popen.pid
    deadline = time.monotonic() + wait_s
    while True:
        out: list[int] = []
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/children") as fh:
                out.extend(int(p) for p in fh.read().split())
        if out or time.monotonic() >= deadline:
            return out
        time.sleep(0.2)


def fault_env(stack: Stack, **faults: str) -> None:
    """Load ``faultinject/sitecustomize.py`` into processes the stack starts from now on, with the
    given DMASK_FAULT_* settings (see that module)."""
    path = stack.env.get("PYTHONPATH", "")
    stack.env["PYTHONPATH"] = os.pathsep.join(p for p in (str(FAULTINJECT), str(REPO), path) if p)
    for key, value in faults.items():
        stack.env[f"DMASK_FAULT_{key.upper()}"] = value


def wait_job_status(client: Any, job_id: str, statuses: tuple[str, ...], timeout: float) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        body: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        return body if body.get("status") in statuses else None

    result: dict[str, Any] = wait_for(check, timeout, f"job {job_id} in {statuses}", interval=0.2)
    return result


def now() -> float:
    return time.monotonic()
