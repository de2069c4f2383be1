"""The API application factory.

``create_app`` wires settings, storage, the job dispatcher (Celery or the in-process worker), the
problem+json error handlers and the routers. With no configuration it is the embedded default: the
SQLite database is migrated at start and an in-process worker thread masks uploads.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response

from services import problems
from services.artifacts.routes import router as artifacts_router
from services.audit.routes import router as audit_router
from services.auth.discovery import Provider
from services.auth.ratelimit import make_rate_limiter
from services.auth.routes import router as auth_router
from services.dicomweb.retrieve import router as dicomweb_retrieve_router
from services.dicomweb.routes import router as dicomweb_router
from services.fhir import outcome as fhir_outcome
from services.fhir.routes import router as fhir_router
from services.health import router as health_router
from services.jobs.dispatch import get_dispatcher
from services.jobs.routes import router as jobs_router
from services.media.routes import router as media_router
from services.metrics import HTTP_LATENCY, HTTP_REQUESTS, JobTableCollector
from services.reports.routes import router as reports_router
from services.retention.routes import router as retention_router
from services.settings import Settings, get_settings
from services.web.routes import router as web_router
from services.webhooks.routes import router as webhooks_router

log = logging.getLogger("dmask.api")
access_log = logging.getLogger("dmask.access")

REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
API_VERSION = "1.0.0"

_collectors: dict[str, JobTableCollector] = {}


def _register_job_metrics(settings: Settings) -> None:
    from prometheus_client import REGISTRY

    url = settings.sqlalchemy_url
    if url in _collectors:
        return
    for old in list(_collectors.values()):
        REGISTRY.unregister(old)
    _collectors.clear()
    collector = JobTableCollector(settings)
    REGISTRY.register(collector)
    _collectors[url] = collector


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from services.storage import get_store

        if settings.migrate_on_start:
            from services.migrate import upgrade

            upgrade(settings)
        try:
            get_store(settings).ensure_buckets()
        except Exception as exc:  # readiness reports it; the API still starts
            log.error("object store not ready: %s", exc)
        worker = None
        pump = None
        if settings.embedded:
            from services.jobs.dispatch import LocalDispatcher
            from workers.inprocess import InProcessWorker

            dispatcher = app.state.dispatcher
            assert isinstance(dispatcher, LocalDispatcher)
            from workers.webhook_pump import WebhookPump

            worker = InProcessWorker(settings, dispatcher)
            worker.start()
            pump = WebhookPump(settings)
            pump.start()
            log.info("embedded mode: in-process worker and webhook sender started")
        try:
            yield
        finally:
            if worker is not None:
                worker.stop()
            if pump is not None:
                pump.stop()
            app.state.upload_executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="DigitalMask ingestion API",
        version=API_VERSION,
        description="Upload clinical photos, videos and DICOM; every face is replaced by a digital mask "
        "that keeps the eye signals. Errors are RFC 9457 problem details.",
        lifespan=lifespan,
        openapi_url="/openapi.json",
    )
    app.state.settings = settings
    app.state.rate_limiter = make_rate_limiter(settings)
    app.state.oidc_provider = Provider(settings.oidc_issuer) if settings.oidc_issuer else None
    app.state.upload_executor = ThreadPoolExecutor(max_workers=64, thread_name_prefix="upload")
    app.state.dispatcher = get_dispatcher(settings)
    _register_job_metrics(settings)
    problems.install(app)
    problems.render_under(app, "/fhir", fhir_outcome.render, fhir_outcome.OUTCOME_DOC)  # OperationOutcomes

    @app.middleware("http")
    async def request_context(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        """Request id (taken from X-Request-ID when sane), metrics and a PHI-free access log: the
        route template is logged, never the path (paths carry record IDs)."""
        incoming = request.headers.get("x-request-id", "")
        request.state.request_id = incoming if REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
        finally:
            route = request.scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            elapsed = time.perf_counter() - started
            HTTP_REQUESTS.labels(request.method, template, str(status)).inc()
            HTTP_LATENCY.labels(request.method, template).observe(elapsed)
            access_log.info(
                "%s %s %s %.1fms rid=%s",
                request.method,
                template,
                status,
                elapsed * 1000,
                request.state.request_id,
            )
        response.headers["X-Request-ID"] = request.state.request_id
        return response

    app.include_router(health_router)
    app.include_router(media_router)
    app.include_router(dicomweb_router)
    app.include_router(dicomweb_retrieve_router)
    app.include_router(jobs_router)
    app.include_router(artifacts_router)
    app.include_router(audit_router)
    app.include_router(auth_router)
    app.include_router(fhir_router)
    app.include_router(reports_router)
    app.include_router(retention_router)
    app.include_router(web_router)
    app.include_router(webhooks_router)
    return app
