"""Probes (unauthenticated: orchestrators call them), the dependency report, and Prometheus metrics
(scope ``metrics``: operational data only a scraper needs). None carries PHI.

Each probe answers one question, so that an outage of a shared dependency stays small:

* ``/livez``: is this process healthy? Answered by the event loop itself and nothing else, so it
  fails only when the process is wedged (then restarting it helps). A dependency outage never fails
  it: restarting every pod would not bring Redis or S3 back.
* ``/readyz``: can this pod serve requests? Its own database connection, nothing shared. A broker
  or object-store outage must not take every API pod out of the Service at once: during a broker
  outage uploads are still accepted (the reconciler sends them later), during a store outage the API
  itself answers 503 + Retry-After in milliseconds (the store's circuit breaker), which an EHR can
  act on, unlike an ingress error.
* ``/dependencies`` and ``dmask_dependency_up`` in ``/metrics``: database, broker and object store,
  for dashboards and alerts; never a probe.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from services.auth.deps import require_scope
from services.auth.service import Principal
from services.db import get_engine
from services.settings import Settings
from services.storage import get_store

router = APIRouter(tags=["health"])

DEPENDENCY_UP = Gauge(
    "dmask_dependency_up",
    "1 if this API process reached the dependency at its last check (/dependencies or a scrape), else 0",
    ["dependency"],
)

#: Seconds a client of /readyz should wait before asking again.
READY_RETRY_AFTER_S = 5


@router.get("/livez")
async def livez() -> dict[str, str]:
    """The process answers: its event loop runs. Deliberately checks nothing else."""
    return {"status": "ok"}


def _check_db(settings: Settings) -> None:
    with get_engine(settings).connect() as conn:
        conn.execute(text("SELECT 1"))


def _check_broker(settings: Settings) -> None:
    if settings.broker_url is None:
        return
    if settings.broker_url.startswith(("redis://", "rediss://", "unix://")):
        import redis

        client = redis.Redis.from_url(settings.broker_url, socket_timeout=2, socket_connect_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
        return
    from kombu import Connection

    with Connection(settings.broker_url, connect_timeout=2) as conn:
        conn.ensure_connection(max_retries=1)


def _check_storage(settings: Settings) -> None:
    """Goes through the store's circuit breaker: while it is open this answers at once."""
    get_store(settings).check()


CHECKS = {"database": _check_db, "broker": _check_broker, "storage": _check_storage}


def check_dependencies(settings: Settings) -> dict[str, str]:
    """Each dependency's state ("ok", "in-process" for an absent broker, "unavailable (Error)"),
    also published as ``dmask_dependency_up``."""
    states: dict[str, str] = {}
    for name, check in CHECKS.items():
        try:
            check(settings)
            states[name] = "in-process" if name == "broker" and settings.broker_url is None else "ok"
        except Exception as exc:
            states[name] = f"unavailable ({type(exc).__name__})"
        DEPENDENCY_UP.labels(dependency=name).set(0 if states[name].startswith("unavailable") else 1)
    return states


@router.get("/readyz", responses={503: {"description": "This pod cannot reach its database"}})
async def readyz(request: Request) -> JSONResponse:
    """This pod can serve: its database connection works. Else 503 with Retry-After."""
    settings: Settings = request.app.state.settings
    try:
        await run_in_threadpool(_check_db, settings)
    except Exception as exc:
        body: dict[str, Any] = {
            "type": "urn:dmask:problem:not-ready",
            "title": "Service Unavailable",
            "status": 503,
            "detail": "This instance cannot reach its database.",
            "instance": "/readyz",
            "checks": {"database": f"unavailable ({type(exc).__name__})"},
        }
        return JSONResponse(
            body,
            status_code=503,
            headers={"Retry-After": str(READY_RETRY_AFTER_S)},
            media_type="application/problem+json",
        )
    return JSONResponse({"status": "ready", "checks": {"database": "ok"}})


@router.get("/dependencies")
async def dependencies(request: Request) -> dict[str, Any]:
    """Database, broker and object store as this process sees them: ``ok`` or ``degraded``. Always
    200 (a report, not a probe: pointing a readiness probe here would bring back the outage
    amplification the split avoids)."""
    settings: Settings = request.app.state.settings
    states = await run_in_threadpool(check_dependencies, settings)
    degraded = any(v.startswith("unavailable") for v in states.values())
    return {"status": "degraded" if degraded else "ok", "dependencies": states}


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request, _: Annotated[Principal, Depends(require_scope("metrics"))]) -> Response:
    check_dependencies(request.app.state.settings)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
