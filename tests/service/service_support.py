"""Real components for the service tests: PostgreSQL databases, Redis, a SeaweedFS S3 server, and
the API / worker as subprocesses (``python -m services.cli serve|worker``), exactly as deployed.

Nothing is mocked: uploads cross a real socket into uvicorn, objects land in SeaweedFS (originals
with SSE-C), jobs travel through Redis to a Celery prefork worker that runs the real model.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from minio import Minio

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable
PG_ADMIN = os.environ.get("DMASK_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_HOST = os.environ.get("DMASK_TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("DMASK_TEST_REDIS_PORT", "6379"))
WEED = shutil.which("weed", path=str(Path(PY).parent)) or shutil.which("weed") or "weed"
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"

S3_ACCESS = "dmasktest"
S3_SECRET = "dmasktest-secret-key-0123456789"
SSE_C_KEY = base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def free_port(pair_offset: int | None = None) -> int:
    """A free loopback port (and, with ``pair_offset``, one whose port+offset is free too: SeaweedFS
    puts each gRPC port at http port + 10000)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if pair_offset is None:
            return port
        if port + pair_offset > 65535:
            continue
        with socket.socket() as s2:
            try:
                s2.bind(("127.0.0.1", port + pair_offset))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port")


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except Exception as exc:  # noqa: BLE001 - keep polling, report the last error
            last = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out waiting for {what} (last: {last!r})")


def tail(path: Path, n: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


# --- PostgreSQL -----------------------------------------------------------------------------------


def create_database(prefix: str = "dmask_test") -> tuple[str, str]:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def drop_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pg_connect(db_name: str) -> psycopg.Connection[Any]:
    return psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{db_name}", autocommit=True)


# --- Redis ----------------------------------------------------------------------------------------


class PrivateRedis:
    """A redis-server of our own on a free port, without persistence (like production's broker
    here): restarting it loses every queued message."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.workdir / "redis.log", "ab") as log:
            self.proc = subprocess.Popen(
                [
                    REDIS_SERVER,
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.workdir),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        import redis

        wait_for(lambda: redis.Redis(port=self.port, socket_timeout=1).ping(), 20, "private redis")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def restart(self) -> None:
        self.kill()
        self.start()


# --- SeaweedFS ------------------------------------------------------------------------------------


class Seaweed:
    """``weed server`` (master + volume + filer + S3) on free loopback ports with an S3 identity."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.s3_port = 0

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.s3_port}"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        data = self.workdir / "data"
        data.mkdir(exist_ok=True)
        config = self.workdir / "s3.json"
        config.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "dmask",
                            "credentials": [{"accessKey": S3_ACCESS, "secretKey": S3_SECRET}],
                            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                        }
                    ]
                }
            )
        )
        ports = [free_port(10000) for _ in range(4)]
        while len({*ports, *(p + 10000 for p in ports)}) < 8:  # one's gRPC port is another's http port
            ports = [free_port(10000) for _ in range(4)]
        master, volume, filer, self.s3_port = ports
        cmd = [
            WEED,
            "server",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={master}",
            f"-volume.port={volume}",
            "-filer",
            f"-filer.port={filer}",
            "-s3",
            f"-s3.port={self.s3_port}",
            f"-s3.config={config}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.volumeSizeLimitMB=64",
            "-volume.max=0",
            f"-filer.localSocket={self.workdir}/filer.sock",
            f"-s3.localSocket={self.workdir}/s3.sock",
        ]
        with open(self.workdir / "weed.log", "ab") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir, start_new_session=True
            )
        client = self.client()

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError("weed exited:\n" + tail(self.workdir / "weed.log"))
            name = "readiness-probe"
            if not client.bucket_exists(name):
                client.make_bucket(name)
            import io

            client.put_object(name, "probe", io.BytesIO(b"ok"), 2)
            return True

        wait_for(ready, 90, "SeaweedFS S3", interval=0.5)

    def client(self) -> Minio:
        return Minio(
            self.endpoint, access_key=S3_ACCESS, secret_key=S3_SECRET, secure=False, region="us-east-1"
        )

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s: the filer stops within a second, but the S3 gateway keeps
        retrying it and the process exits only ~25 s later (it was SIGKILLed at 20 s anyway)."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
            self.proc = None


# --- the service ----------------------------------------------------------------------------------


@dataclass
class Proc:
    popen: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)

    def stop(self, timeout: float = 15) -> None:
        if not self.alive():
            return
        self.signal_group(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal_group(signal.SIGKILL)
            self.popen.wait(10)

    def kill(self) -> None:
        self.signal_group(signal.SIGKILL)
        self.popen.wait(10)


def service_fixtures(module_name: str) -> Any:
    """tests/service/conftest.py loaded as a module, so that another suite's conftest registers the
    very same fixtures (``make_stack``, ``weed``, ``shared_data``) instead of copies."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(module_name, Path(__file__).with_name("conftest.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def clean_env() -> dict[str, str]:
    """The test process's environment without any DMASK_ setting (each stack sets its own)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("DMASK_")}


@dataclass
class Stack:
    """One deployment: settings (as environment), an API process, worker processes."""

    workdir: Path
    env: dict[str, str]
    db_name: str | None = None
    api: Proc | None = None
    api_url: str = ""
    workers: list[Proc] = field(default_factory=list)
    _keys: dict[tuple[str, tuple[str, ...]], str] = field(default_factory=dict)

    # processes
    def _spawn(self, args: list[str], name: str) -> Proc:
        log = self.workdir / f"{name}.log"
        with open(log, "ab") as fh:
            popen = subprocess.Popen(
                [PY, "-m", "services.cli", *args],
                cwd=REPO,
                env=self.env,
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return Proc(popen, log)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        res = subprocess.run(
            [PY, "-m", "services.cli", *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and res.returncode != 0:
            raise RuntimeError(
                f"dmask {' '.join(args)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}"
            )
        return res

    def start_api(self, probe: str = "/readyz") -> None:
        port = free_port()
        self.api_url = f"http://127.0.0.1:{port}"
        self.api = self._spawn(["serve", "--host", "127.0.0.1", "--port", str(port)], "api")

        def ready() -> bool:
            if self.api is not None and not self.api.alive():
                raise RuntimeError("API exited:\n" + tail(self.api.log))
            return httpx.get(self.api_url + probe, timeout=5).status_code == 200

        wait_for(ready, 60, f"API {probe}")

    def start_worker(self) -> Proc:
        proc = self._spawn(["worker"], f"worker{len(self.workers)}")
        self.workers.append(proc)
        hb = Path(self.env["DMASK_WORKER_HEARTBEAT_FILE"])

        def beating() -> bool:
            if not proc.alive():
                raise RuntimeError("worker exited:\n" + tail(proc.log))
            return hb.exists() and time.time() - hb.stat().st_mtime < 5 and "ready" in proc.log.read_text()

        wait_for(beating, 60, "worker ready")
        return proc

    def stop(self) -> None:
        for w in self.workers:
            w.stop()
        if self.api is not None:
            self.api.stop()

    # API helpers
    def key(self, client: str, *scopes: str) -> str:
        k = (client, tuple(sorted(scopes)))
        if k not in self._keys:
            args = ["keys", "create", "--client", client]
            for s in scopes:
                args += ["--scope", s]
            self._keys[k] = self.cli(*args).stdout.strip().splitlines()[-1]
        return self._keys[k]

    def http(self, key: str | None = None, **kw: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.api_url, headers=headers, timeout=kw.pop("timeout", 60), **kw)

    def settings_env(self) -> dict[str, str]:
        return {k: v for k, v in self.env.items() if k.startswith("DMASK_")}


def wait_job(
    client: httpx.Client, job_id: str, timeout: float = 240, until: tuple[str, ...] = ("succeeded", "failed")
) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        r = client.get(f"/v1/jobs/{job_id}")
        r.raise_for_status()
        body: dict[str, Any] = r.json()
        return body if body["status"] in until else None

    result: dict[str, Any] = wait_for(done, timeout, f"job {job_id}", interval=0.3)
    return result


def upload(
    client: httpx.Client,
    record_id: str,
    path: Path,
    *,
    idem: str | None = None,
    metadata: dict[str, Any] | None = None,
    raw: bool = False,
) -> httpx.Response:
    headers = {"Idempotency-Key": idem} if idem else {}
    if raw:
        if metadata:
            headers["X-DMask-Metadata"] = json.dumps(metadata)
        return client.post(
            f"/v1/records/{record_id}/media",
            content=path.read_bytes(),
            headers={**headers, "Content-Type": "application/octet-stream"},
        )
    files: dict[str, Any] = {"file": (path.name, path.read_bytes(), "application/octet-stream")}
    if metadata is not None:
        files["metadata"] = (None, json.dumps(metadata), "application/json")
    return client.post(f"/v1/records/{record_id}/media", files=files, headers=headers)


def iter_lines(text: str) -> Iterator[str]:
    yield from (line for line in text.splitlines() if line.strip())
