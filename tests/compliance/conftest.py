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
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "service"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from compliance_support import PHOTO, VIDEO, Service, Uploads, build_app, make_settings  # noqa: E402
from service_support import (  # noqa: E402
    REPO,
    Seaweed,
    create_database,
    drop_database,
    free_port,
    wait_for,
)


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
def service(weed: Seaweed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    import uvicorn

    from services.migrate import upgrade

    db_name, db_url = create_database("dmask_compliance")
    port = free_port()
    # Absolute links are built from DMASK_PUBLIC_URL (never the Host header): the server's own address.
    settings = make_settings(
        weed, tmp_path_factory.mktemp("home"), db_url, public_url=f"http://127.0.0.1:{port}"
    )
    upgrade(settings)
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
