"""Support of the DICOMweb, FHIR and webhook tests: the service's own app served by a real uvicorn on
a free loopback port, embedded mode (in-process worker and webhook sender), on a real PostgreSQL
database and SeaweedFS S3 (the service tests' support code). ``DMASK_PUBLIC_URL`` is the server's
own address, as a deployment would set it."""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "service"))

from service_support import (  # noqa: E402
    REPO,
    S3_ACCESS,
    S3_SECRET,
    SSE_C_KEY,
    Seaweed,
    create_database,
    drop_database,
    free_port,
    wait_for,
)

from services.settings import Settings  # noqa: E402

__all__ = ["Node", "serve", "wait_for"]


@dataclass
class Node:
    settings: Settings
    url: str
    db_name: str
    keys: dict[str, str] = field(default_factory=dict)

    def key(self, client: str, *scopes: str) -> str:
        from services.audit.service import AuditContext
        from services.auth.service import create_key
        from services.db import session_scope

        name = f"{client}:{','.join(sorted(scopes))}"
        if name not in self.keys:
            with session_scope(self.settings) as session:
                _row, key = create_key(session, client, list(scopes), AuditContext(request_id="test"))
            self.keys[name] = key
        return self.keys[name]

    def tenant(self, *scopes: str) -> str:
        """A key of a fresh client (tenant): its searches see only what the test itself stored."""
        return self.key(f"t-{uuid.uuid4().hex[:10]}", *scopes)

    def http(self, key: str | None = None, **kw: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=kw.pop("timeout", 60), **kw)

    def wait_jobs(self, key: str, record_id: str, n: int, timeout: float = 240) -> list[dict[str, Any]]:
        """The record's ``n`` jobs once all have finished (succeeded or failed)."""
        with self.http(key) as c:

            def done() -> list[dict[str, Any]] | None:
                items = c.get(f"/v1/records/{record_id}/media").json()["items"]
                jobs = [c.get(f"/v1/jobs/{m['job_id']}").json() for m in items]
                finished = [j for j in jobs if j["status"] in ("succeeded", "failed")]
                return jobs if len(items) == n and len(finished) == n else None

            result: list[dict[str, Any]] = wait_for(done, timeout, f"{n} jobs", interval=0.5)
            return result


@contextmanager
def serve(weed: Seaweed, home: Path, **extra: Any) -> Iterator[Node]:
    import uvicorn

    from services.app import create_app
    from services.migrate import upgrade

    db_name, db_url = create_database("dmask_dicomweb")
    port = free_port()
    suffix = uuid.uuid4().hex[:8]
    values: dict[str, Any] = {
        "home": home,
        "database_url": db_url,
        "broker_url": None,
        "s3_endpoint": weed.endpoint,
        "s3_access_key": S3_ACCESS,
        "s3_secret_key": S3_SECRET,
        "s3_secure": False,
        "s3_region": "us-east-1",
        "bucket_originals": f"worig-{suffix}",
        "bucket_artifacts": f"wart-{suffix}",
        "sse_c_key": SSE_C_KEY,
        "device": "cpu",
        "batch_size": 8,
        "rate_limit_per_minute": 100000,
        "max_video_seconds": 10,
        "embedded_poll_s": 0.2,
        "reconcile_interval_s": 30,
        "hmac_key": "dicomweb-test-hmac-key",
        "public_url": f"http://127.0.0.1:{port}",
        "webhook_allow_private": True,
        "webhook_retry_base_s": 0.5,
        "webhook_max_attempts": 8,
    }
    values.update(extra)
    settings = Settings(**values)
    upgrade(settings)
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="dicomweb-uvicorn", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: httpx.get(url + "/readyz", timeout=5).status_code == 200, 60, "API")
    try:
        yield Node(settings, url, db_name)
    finally:
        server.should_exit = True
        thread.join(30)
        from services.db import get_engine

        get_engine(settings).dispose()
        time.sleep(0.1)
        drop_database(db_name)


def poll(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    return wait_for(predicate, timeout, what, interval=0.3)


# --- the session fixtures the DICOMweb, FHIR and webhook test folders share (their conftests import
# them, so each folder still gets its own service per session) ---------------------------------------


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = Path(os.environ.get("DMASK_SHARED_DATA", REPO.parent / "shared" / "data"))
    if not (root / "manifest.json").exists():
        pytest.fail(f"shared data not found at {root} (set DMASK_SHARED_DATA)")
    return root


@pytest.fixture(scope="session")
def weed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seaweed]:
    server = Seaweed(tmp_path_factory.mktemp("seaweed"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def node(weed: Seaweed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    with serve(weed, tmp_path_factory.mktemp("home")) as n:
        yield n
