"""Probes with the right meaning, tried against real outages of the shared dependencies.

Readiness is "this pod can serve" (its own database connection) and stays 200 while Redis or S3 is
down, because the API still behaves well then: uploads are accepted during a broker outage (and run
once it is back), and a store outage is answered by the API itself with 503 + Retry-After in well
under a second (the store's circuit breaker), logged once per state change. Liveness fails only
when the process stops answering. The chart and compose probe the same paths these tests call.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis
from deploy_support import COMPOSE_FILE, load_yaml, render
from hardening_support import RestartableSeaweed
from service_support import PrivateRedis, Stack, upload, wait_for, wait_job

pytestmark = pytest.mark.ops

PHOTO = "faces/jennifer_aniston/1.jpg"


def probe_paths() -> dict[str, str]:
    """The paths the Helm chart's API probes and the compose API healthcheck call."""
    api = render().container("-api")
    compose_test = " ".join(load_yaml(COMPOSE_FILE)["services"]["api"]["healthcheck"]["test"])
    compose_path = re.search(r"http://127\.0\.0\.1:8000(/[a-z]+)", compose_test)
    assert compose_path, compose_test
    return {
        "liveness": api["livenessProbe"]["httpGet"]["path"],
        "readiness": api["readinessProbe"]["httpGet"]["path"],
        "startup": api["startupProbe"]["httpGet"]["path"],
        "compose": compose_path.group(1),
    }


def test_chart_and_compose_probe_liveness_and_readiness_paths() -> None:
    paths = probe_paths()
    assert paths == {"liveness": "/livez", "readiness": "/readyz", "startup": "/livez", "compose": "/livez"}


def assert_probes_up(stack: Stack) -> None:
    """What the orchestrator sees through the chart's probes: the pod stays live and in the Service."""
    for kind, path in probe_paths().items():
        r = httpx.get(stack.api_url + path, timeout=5)
        assert r.status_code == 200, (kind, path, r.text)


def metric(stack: Stack, key: str, name: str) -> float:
    text = httpx.get(stack.api_url + "/metrics", headers={"Authorization": f"Bearer {key}"}).text
    found = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.M)
    assert found, name
    return float(found.group(1))


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path / "redis")
    server.start()
    yield server
    server.kill()


@pytest.fixture
def s3(tmp_path: Path) -> Iterator[RestartableSeaweed]:
    server = RestartableSeaweed(tmp_path / "seaweed")
    server.start()
    yield server
    server.stop()


def test_broker_outage_keeps_the_pod_ready_and_uploads_accepted(
    make_stack: Callable[..., Stack], broker: PrivateRedis, shared_data: Path
) -> None:
    stack = make_stack(broker_url=broker.url, job_lease_s=8)
    stack.start_api()
    worker = stack.start_worker()
    key = stack.key("clinic", "media:write", "media:read")
    scraper = stack.key("prometheus", "metrics")
    broker.kill()
    with stack.http(key) as c:
        accepted = [upload(c, f"MRN-{i}", shared_data / PHOTO) for i in range(3)]
        assert [r.status_code for r in accepted] == [202, 202, 202]
        assert_probes_up(stack)
        report = httpx.get(stack.api_url + "/dependencies", timeout=10).json()
        assert report["status"] == "degraded" and report["dependencies"]["broker"].startswith("unavailable")
        assert metric(stack, scraper, 'dmask_dependency_up{dependency="broker"}') == 0
        assert metric(stack, scraper, 'dmask_dependency_up{dependency="database"}') == 1
        broker.start()  # same port, empty: every message sent before the outage is gone too
        for r in accepted:
            assert wait_job(c, r.json()["job_id"], timeout=120)["status"] == "succeeded"
    assert metric(stack, scraper, 'dmask_dependency_up{dependency="broker"}') == 1
    log = worker.log.read_text()
    assert log.count("broker unreachable") == 1 and log.count("broker reachable again") == 1


def test_s3_outage_is_answered_fast_by_a_ready_pod_and_logged_once(
    make_stack: Callable[..., Stack], s3: RestartableSeaweed, shared_data: Path
) -> None:
    stack = make_stack(s3_endpoint=s3.endpoint)
    stack.start_api()
    key = stack.key("clinic", "media:write", "media:read")
    scraper = stack.key("prometheus", "metrics")
    photo = (shared_data / PHOTO).read_bytes()
    s3.kill()
    with stack.http(key) as c:
        for i in range(12):
            started = time.monotonic()
            r = c.post(
                f"/v1/records/MRN-{uuid.uuid4().hex[:8]}/media",
                files={"file": ("p.jpg", photo, "image/jpeg")},
                headers={"Idempotency-Key": f"outage-{i}"},
            )
            elapsed = time.monotonic() - started
            assert r.status_code == 503, r.text
            assert int(r.headers["retry-after"]) > 0
            assert r.json()["type"] == "urn:dmask:problem:storage-unavailable"
            assert elapsed < 1.0, f"request {i} took {elapsed:.2f} s"
        assert_probes_up(stack)
        report = httpx.get(stack.api_url + "/dependencies", timeout=10).json()
        assert report["dependencies"]["storage"].startswith("unavailable")
        assert metric(stack, scraper, "dmask_storage_circuit_open") == 1
        s3.start()

        # The breaker lets a probe through after its cooldown; the retried upload then goes in.
        def accepted() -> httpx.Response | None:
            resp = upload(c, "MRN-after", shared_data / PHOTO, idem="after-outage")
            return resp if resp.status_code == 202 else None

        assert wait_for(accepted, 30, "upload accepted after the store returned", interval=1).json()["job_id"]
    assert metric(stack, scraper, "dmask_storage_circuit_open") == 0
    assert stack.api is not None
    log = stack.api.log.read_text()
    assert log.count("circuit open") == 1 and log.count("circuit closed") == 1
    assert " ERROR " not in log and "ERROR:" not in log, log[-3000:]


def test_liveness_fails_only_when_the_process_is_wedged(
    make_stack: Callable[..., Stack], s3: RestartableSeaweed, broker: PrivateRedis
) -> None:
    stack = make_stack(s3_endpoint=s3.endpoint, broker_url=broker.url)
    stack.start_api()
    assert stack.api is not None
    s3.kill()
    broker.kill()
    assert httpx.get(stack.api_url + "/livez", timeout=5).status_code == 200  # dependencies down: alive
    os.kill(stack.api.popen.pid, signal.SIGSTOP)  # wedged: the process no longer runs
    try:
        with pytest.raises(httpx.TimeoutException):
            httpx.get(stack.api_url + "/livez", timeout=2)
    finally:
        os.kill(stack.api.popen.pid, signal.SIGCONT)
    assert httpx.get(stack.api_url + "/livez", timeout=5).status_code == 200


def test_readiness_fails_when_the_pods_own_database_is_unreachable(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack()
    stack.start_api()
    assert stack.db_name
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{stack.db_name}" ALLOW_CONNECTIONS false')
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (stack.db_name,)
        )
    try:
        r = httpx.get(stack.api_url + "/readyz", timeout=10)
        assert r.status_code == 503 and r.headers["retry-after"]
        assert httpx.get(stack.api_url + "/livez", timeout=5).status_code == 200
    finally:
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{stack.db_name}" ALLOW_CONNECTIONS true')
    wait_for(lambda: httpx.get(stack.api_url + "/readyz", timeout=5).status_code == 200, 20, "ready again")


def test_a_requeued_job_goes_to_the_front_of_the_queue(broker: PrivateRedis) -> None:
    """The dispatcher's ``front=True`` puts a message where a worker takes the next one (the right
    end of the Redis list: kombu LPUSHes, workers BRPOP)."""
    from services.jobs.dispatch import CeleryDispatcher
    from services.settings import Settings

    settings = Settings(broker_url=broker.url, queue_name="gpu-front", database_url="sqlite://")
    dispatcher = CeleryDispatcher(settings)
    assert dispatcher.enqueue(["waiting-1", "waiting-2"]) == 2
    assert dispatcher.enqueue(["requeued"], front=True) == 1
    client = redis.Redis.from_url(broker.url)
    order = []
    while (item := client.rpop("gpu-front")) is not None:
        order.append(json.loads(item)["headers"]["argsrepr"])
    assert order == ["['requeued']", "['waiting-1']", "['waiting-2']"]


def test_the_chart_migrates_as_its_own_role_when_given_one() -> None:
    """docs/operations.md's two roles through the chart: the hook Job takes the migration role's
    URL from its own Secret; the API and workers keep the application role's settings."""
    rendered = render({"migrations": {"database": {"existingSecret": "dmask-migrator"}}})
    job = next(d for d in rendered.of_kind("Job") if d["metadata"]["name"].endswith("-migrate"))
    (container,) = job["spec"]["template"]["spec"]["containers"]
    url = next(e for e in container["env"] if e["name"] == "DMASK_DATABASE_URL")
    assert url["valueFrom"]["secretKeyRef"] == {"name": "dmask-migrator", "key": "database-url"}
    api_url = rendered.effective_env(rendered.container("-api"))["DMASK_DATABASE_URL"]
    assert "dmask-migrator" not in str(api_url)
    default_job = next(d for d in render().of_kind("Job") if d["metadata"]["name"].endswith("-migrate"))
    env = {e["name"]: e for e in default_job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "secretKeyRef" not in str(env["DMASK_DATABASE_URL"])  # built from externalDatabase


def test_compose_redis_refuses_instead_of_evicting() -> None:
    command = " ".join(load_yaml(COMPOSE_FILE)["services"]["redis"]["command"])
    assert "--maxmemory-policy noeviction" in command and "--appendonly yes" in command
