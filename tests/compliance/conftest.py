"""Fixtures of the compliance tests: the owner's app factory plus this issue's routers, served by a
real uvicorn on a free port, on a real PostgreSQL database and SeaweedFS S3 (the service tests'
support code), with the embedded in-process worker masking real shared media.

The routers are included here (``build_app``) so the tests pass before the lead wires them into
``services.app``; once wired, including them again is skipped.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
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

VIDEO = "videos/livep_d0.mp4"  # 78 frames at 25 fps, one blink at 2.6 s
PHOTO = "faces/angelina_jolie/4.jpg"  # 330x512


def build_app(settings: Settings) -> Any:
    """``services.app.create_app`` plus the routers of this issue (skipped if already wired)."""
    from fastapi import FastAPI

    from services.app import create_app
    from services.fhir.routes import router as fhir_router
    from services.reports.routes import router as reports_router
    from services.retention.routes import router as retention_router
    from services.web.routes import router as web_router

    app: FastAPI = create_app(settings)
    present = {getattr(r, "path", None) for r in app.router.routes}
    for router in (fhir_router, reports_router, retention_router, web_router):
        if not any(getattr(r, "path", None) in present for r in router.routes):
            app.include_router(router)
    return app


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


def make_settings(weed: Seaweed, home: Path, db_url: str, **extra: Any) -> Settings:
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
        "bucket_originals": f"corig-{suffix}",
        "bucket_artifacts": f"cart-{suffix}",
        "sse_c_key": SSE_C_KEY,
        "device": "cpu",
        "batch_size": 8,
        "rate_limit_per_minute": 100000,
        "max_video_seconds": 10,
        "embedded_poll_s": 0.2,
        "reconcile_interval_s": 30,
        "hmac_key": "compliance-test-hmac-key",
    }
    values.update(extra)
    return Settings(**values)


@dataclass
class Service:
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
                _row, key = create_key(session, client, list(scopes), AuditContext(request_id="cli:test"))
            self.keys[name] = key
        return self.keys[name]

    def http(self, key: str | None = None, **kw: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=kw.pop("timeout", 60), **kw)


@pytest.fixture(scope="session")
def service(weed: Seaweed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    import uvicorn

    from services.migrate import upgrade

    db_name, db_url = create_database("dmask_compliance")
    settings = make_settings(weed, tmp_path_factory.mktemp("home"), db_url)
    upgrade(settings)
    port = free_port()
    config = uvicorn.Config(
        build_app(settings), host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="compliance-uvicorn", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: httpx.get(url + "/readyz", timeout=5).status_code == 200, 60, "compliance API")
    yield Service(settings, url, db_name)
    server.should_exit = True
    thread.join(30)
    from services.db import get_engine

    get_engine(settings).dispose()
    drop_database(db_name)


@pytest.fixture(scope="session")
def writer(service: Service) -> str:
    return service.key("clinic-a", "media:write", "media:read")


@pytest.fixture(scope="session")
def reader_b(service: Service) -> str:
    return service.key("clinic-b", "media:read")


@pytest.fixture(scope="session")
def auditor(service: Service) -> str:
    return service.key("compliance", "audit:read")


@pytest.fixture(scope="session")
def admin(service: Service) -> str:
    return service.key("ops", "admin")


@dataclass
class Uploads:
    record_id: str
    video_job: str
    photo_job: str
    service: Service
    writer: str
    _done: dict[str, dict[str, Any]] = field(default_factory=dict)

    def wait(self, timeout: float = 240) -> dict[str, dict[str, Any]]:
        """Both jobs finished (succeeded); returns the job bodies by kind."""
        if not self._done:
            with self.service.http(self.writer) as c:
                for kind, job_id in (("photo", self.photo_job), ("video", self.video_job)):

                    def done(job_id: str = job_id) -> dict[str, Any] | None:
                        body: dict[str, Any] = c.get(f"/v1/jobs/{job_id}").json()
                        return body if body["status"] in ("succeeded", "failed") else None

                    job = wait_for(done, timeout, f"{kind} job", interval=0.5)
                    assert job["status"] == "succeeded", job
                    self._done[kind] = job
        return self._done


@pytest.fixture(scope="session", autouse=True)
def uploads(service: Service, writer: str, shared_data: Path) -> Iterator[Uploads]:
    """Real uploads of a shared photo and video, started first so the in-process worker masks them
    while the other tests run; tests that need the results call ``uploads.wait()``."""
    record_id = f"MRN-{uuid.uuid4().hex[:10]}"
    with service.http(writer) as c:
        jobs = {}
        for kind, rel in (("photo", PHOTO), ("video", VIDEO)):
            src = shared_data / rel
            r = c.post(
                f"/v1/records/{record_id}/media",
                files={"file": (src.name, src.read_bytes(), "application/octet-stream")},
                headers={"X-Request-ID": f"ehr-{kind}-1"},
            )
            assert r.status_code == 202, r.text
            jobs[kind] = r.json()["job_id"]
    handle = Uploads(record_id, jobs["video"], jobs["photo"], service, writer)
    yield handle
    # let the worker finish before the server stops: a model thread still running when the
    # interpreter exits aborts the process
    with contextlib.suppress(Exception):
        handle.wait()


@pytest.fixture
def record_id() -> str:
    return f"MRN-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def make_db() -> Iterator[Callable[[], tuple[str, str]]]:
    made: list[str] = []

    def factory() -> tuple[str, str]:
        name, url = create_database("dmask_compliance")
        made.append(name)
        return name, url

    yield factory
    from services.db import _engines

    for url, engine in list(_engines.items()):
        if any(name in url for name in made):
            engine.dispose()
    for name in made:
        drop_database(name)
