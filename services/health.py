"""Liveness and readiness (unauthenticated: orchestrators probe them) and Prometheus metrics (scope
``metrics``: request and job counts are operational data only a scraper needs). None carries PHI."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from services.auth.deps import require_scope
from services.auth.service import Principal
from services.db import get_engine
from services.settings import Settings
from services.storage import get_store

router = APIRouter(tags=["health"])


@router.get("/livez")
def livez() -> dict[str, str]:
    """The process answers. Deliberately checks nothing else: a database outage must not make the
    orchestrator restart every API pod."""
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
    get_store(settings).check()


@router.get("/readyz", responses={503: {"description": "A dependency is unreachable"}})
async def readyz(request: Request) -> JSONResponse:
    """Database, broker and object storage reachable: else 503 with Retry-After."""
    settings: Settings = request.app.state.settings
    checks: dict[str, Any] = {}
    for name, fn in (("database", _check_db), ("broker", _check_broker), ("storage", _check_storage)):
        try:
            await run_in_threadpool(fn, settings)
            checks[name] = "ok" if name != "broker" or settings.broker_url else "in-process"
        except Exception as exc:
            checks[name] = f"unavailable ({type(exc).__name__})"
    ok = all(v in ("ok", "in-process") for v in checks.values())
    if ok:
        return JSONResponse({"status": "ready", "checks": checks})
    body = {
        "type": "urn:dmask:problem:not-ready",
        "title": "Service Unavailable",
        "status": 503,
        "detail": "A dependency is unreachable.",
        "instance": "/readyz",
        "checks": checks,
    }
    return JSONResponse(
        body, status_code=503, headers={"Retry-After": "5"}, media_type="application/problem+json"
    )


@router.get("/metrics", include_in_schema=False)
def metrics(_: Annotated[Principal, Depends(require_scope("metrics"))]) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
