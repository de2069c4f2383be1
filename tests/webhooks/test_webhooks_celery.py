"""Webhooks delivered by the Celery workers (distributed mode): the worker that finishes a job sends
the delivery task; while the receiver is down the task retries on the back-off schedule; once it is
up every event arrives exactly once."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from dicomweb_support import poll
from service_support import (
    REDIS_HOST,
    REDIS_PORT,
    S3_ACCESS,
    S3_SECRET,
    SSE_C_KEY,
    Seaweed,
    Stack,
    clean_env,
    create_database,
    drop_database,
    free_port,
    wait_for,
)
from test_webhooks import Receiver, register, stow_face


@pytest.fixture(scope="module")
def celery_stack(weed: Seaweed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("celery-webhooks")
    db_name, db_url = create_database("dmask_webhooks")
    suffix = uuid.uuid4().hex[:8]
    port = free_port()
    env = clean_env()
    env.update(
        {
            "DMASK_HOME": str(workdir / "home"),
            "DMASK_DATABASE_URL": db_url,
            "DMASK_BROKER_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/12",
            "DMASK_QUEUE_NAME": f"gpu-{suffix}",
            "DMASK_S3_ENDPOINT": weed.endpoint,
            "DMASK_S3_ACCESS_KEY": S3_ACCESS,
            "DMASK_S3_SECRET_KEY": S3_SECRET,
            "DMASK_S3_SECURE": "false",
            "DMASK_S3_REGION": "us-east-1",
            "DMASK_BUCKET_ORIGINALS": f"corig-{suffix}",
            "DMASK_BUCKET_ARTIFACTS": f"cart-{suffix}",
            "DMASK_SSE_C_KEY": SSE_C_KEY,
            "DMASK_WORKER_HEARTBEAT_FILE": str(workdir / "worker.heartbeat"),
            "DMASK_WORKER_HEARTBEAT_INTERVAL_S": "1",
            "DMASK_DEVICE": "cpu",
            "DMASK_BATCH_SIZE": "8",
            "DMASK_RATE_LIMIT_PER_MINUTE": "100000",
            "DMASK_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "DMASK_WEBHOOK_ALLOW_PRIVATE": "true",
            "DMASK_WEBHOOK_RETRY_BASE_S": "0.5",
        }
    )
    stack = Stack(workdir=workdir, env=env, db_name=db_name)
    stack.cli("db", "upgrade")
    # The API on the port DMASK_PUBLIC_URL names (Stack.start_api picks its own port).
    stack.api_url = f"http://127.0.0.1:{port}"
    stack.api = stack._spawn(["serve", "--host", "127.0.0.1", "--port", str(port)], "api")
    wait_for(lambda: httpx.get(stack.api_url + "/readyz", timeout=5).status_code == 200, 60, "API")
    stack.start_worker()
    yield stack
    stack.stop()
    drop_database(db_name)


def test_celery_worker_delivers_after_receiver_outage_exactly_once(
    celery_stack: Stack, shared_data: Path
) -> None:
    stack = celery_stack
    client = f"t-{uuid.uuid4().hex[:8]}"
    admin = stack.key(client, "webhooks:admin")
    writer = stack.key(client, "media:write", "media:read")
    receiver = Receiver()
    rid = f"MRN-{uuid.uuid4().hex[:8]}"
    with stack.http(admin) as c:
        endpoint = register(c, receiver.url, ["job.succeeded"])
        receiver.secrets.append(endpoint["secret"])
        stow_face(stack.api_url, writer, rid, shared_data)

        def attempts() -> int:
            items = c.get(f"/v1/webhooks/{endpoint['id']}/deliveries").json()
            return len(items[0]["attempt_log"]) if items else 0

        poll(lambda: attempts() >= 2, 300, "failed attempts from the Celery worker")
        receiver.start()
        try:
            poll(lambda: receiver.received, 60, "delivery after the receiver came up")
            poll(
                lambda: c.get(f"/v1/webhooks/{endpoint['id']}/deliveries").json()[0]["status"] == "delivered",
                30,
                "delivered",
            )
        finally:
            receiver.stop()
    assert len(receiver.received) == 1 and receiver.received[0]["data"]["record_id"] == rid
