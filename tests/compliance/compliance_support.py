"""Support code of the compliance tests (importable by name: test modules must not import conftest,
which clashes with the other test folders' conftest modules in one pytest run)."""

from __future__ import annotations

import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "service"))

from service_support import (  # noqa: E402
    S3_ACCESS,
    S3_SECRET,
    SSE_C_KEY,
    Seaweed,
    wait_for,
)

from services.settings import Settings  # noqa: E402

VIDEO = "videos/livep_d0.mp4"  # 78 frames at 25 fps, one blink at 2.6 s
PHOTO = "faces/angelina_jolie/4.jpg"  # 330x512


def build_app(settings: Settings) -> Any:
    """The service's own app: the compliance routers are wired in ``services.app``."""
    from services.app import create_app

    return create_app(settings)


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
