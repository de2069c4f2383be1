"""RFC 9457 problem details for every error the API returns.

Routes raise ``Problem``; framework errors (validation, unknown route, wrong method, uncaught
exceptions) are converted by the handlers installed in ``install``. Details never echo request input
(validation errors drop the offending value, ``instance`` names the request, not the path): inputs
and paths can carry PHI.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.logsafe import exc_summary

log = logging.getLogger("dmask.api")

PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    """An error answer. ``slug`` names the problem type (``urn:dmask:problem:<slug>``)."""

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        *,
        slug: str | None = None,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or title or str(status))
        self.status = status
        self.detail = detail
        self.slug = slug
        self.title = title or HTTPStatus(status).phrase
        self.headers = headers or {}
        self.extensions = extensions


def problem_body(
    request: Request, status: int, *, title: str, detail: str | None, slug: str | None, **ext: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"urn:dmask:problem:{slug}" if slug else "about:blank",
        "title": title,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    # The occurrence, not the path: paths carry record IDs, and a problem must not echo them (the
    # 401 to an anonymous caller included). The request id finds the log line and audit event.
    rid = getattr(request.state, "request_id", None)
    body["instance"] = f"urn:dmask:request:{rid}" if rid else "urn:dmask:request:unknown"
    if rid:
        body["request_id"] = rid
    body.update(ext)
    return body


def render_under(
    app: FastAPI, prefix: str, renderer: Callable[[Request, Problem], Response], content: dict[str, Any]
) -> None:
    """Errors of requests under ``prefix`` are rendered by ``renderer`` instead of as problem+json
    (a standard API has its own error format: FHIR's OperationOutcome under /fhir); ``content`` is
    how OpenAPI documents them."""
    app.state.problem_renderers = [*getattr(app.state, "problem_renderers", []), (prefix, renderer)]
    app.state.problem_docs = {**getattr(app.state, "problem_docs", {}), prefix: content}


def problem_response(request: Request, problem: Problem) -> Response:
    path = request.url.path
    # a request without an app in its scope (a handler called on its own) gets plain problem+json
    app_state = getattr(request.scope.get("app"), "state", None)
    for prefix, renderer in getattr(app_state, "problem_renderers", []):
        if path == prefix or path.startswith(prefix + "/"):
            return renderer(request, problem)
    body = problem_body(
        request,
        problem.status,
        title=problem.title,
        detail=problem.detail,
        slug=problem.slug,
        **problem.extensions,
    )
    return JSONResponse(body, status_code=problem.status, headers=problem.headers, media_type=PROBLEM_JSON)


async def _problem_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return problem_response(request, exc)


async def _http_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != HTTPStatus(status).phrase else None
    return problem_response(request, Problem(status, detail, headers=dict(exc.headers or {})))


async def _validation_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
        for err in exc.errors()
    ]
    return problem_response(
        request,
        Problem(422, "The request is not valid.", slug="validation", title="Invalid request", errors=errors),
    )


async def _unhandled_handler(request: Request, exc: Exception) -> Response:
    log.error("unhandled error (request %s): %s", getattr(request.state, "request_id", "-"), exc_summary(exc))
    return problem_response(request, Problem(500, "Internal error; quote the request_id to support."))


#: Seconds a client should wait before retrying while a dependency is down (database restarts and
#: fail-overs take seconds; object-store restarts a little longer).
DATABASE_RETRY_AFTER_S = 5
STORAGE_RETRY_AFTER_S = 10


def database_unavailable() -> Problem:
    return Problem(
        503,
        "The database is unavailable; retry later.",
        slug="database-unavailable",
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
    )


def storage_unavailable() -> Problem:
    return Problem(
        503,
        "Object storage is unavailable; retry later.",
        slug="storage-unavailable",
        headers={"Retry-After": str(STORAGE_RETRY_AFTER_S)},
    )


async def _database_handler(request: Request, exc: Exception) -> Response:
    """A database outage answers 503 + Retry-After, never 500: the client retries (with the same
    Idempotency-Key for uploads) and nothing it sent was acknowledged."""
    from services.db import is_database_outage

    if not is_database_outage(exc):
        return await _unhandled_handler(request, exc)
    log.warning(
        "database unavailable (request %s): %s",
        getattr(request.state, "request_id", "-"),
        type(exc).__name__,
    )
    return problem_response(request, database_unavailable())


async def _storage_handler(request: Request, exc: Exception) -> Response:
    from services.storage import ObjectNotFound, StoreUnavailable

    if isinstance(exc, ObjectNotFound):
        return await _unhandled_handler(request, exc)
    # An outage is logged once per state change by the store's circuit breaker, not per request.
    level = logging.DEBUG if isinstance(exc, StoreUnavailable) else logging.WARNING
    log.log(level, "object store failed (request %s): %s", getattr(request.state, "request_id", "-"), exc)
    return problem_response(request, storage_unavailable())


async def _data_handler(request: Request, exc: Exception) -> Response:
    """Input the database cannot store or compare (a NUL character in a query parameter or JSON
    field, a number out of range) is the client's error: 422, not 500. Found by fuzzing
    ``GET /v1/audit?action=%00``: PostgreSQL text cannot hold NUL."""
    log.warning(
        "input refused by the database (request %s): %s",
        getattr(request.state, "request_id", "-"),
        type(exc).__name__,
    )
    return problem_response(
        request,
        Problem(
            422,
            "The request holds a value that cannot be stored or searched (e.g. a NUL character).",
            slug="invalid-input",
        ),
    )


PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details; extension members depend on the problem type.",
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "request_id": {"type": "string"},
    },
    "additionalProperties": True,
}


# The answers any operation of a kind can give, besides those it documents itself.
_AUTHENTICATED_ERRORS = {
    "401": "No key, or an unknown, revoked or malformed one",
    "403": "The key lacks the scope",
    "429": "Rate limit of the client exceeded (Retry-After)",
    "503": "A dependency (database, broker, store) is unreachable (Retry-After)",
}
_PATH_ERRORS = {"404": "No such resource, or another client's (existence is not disclosed)"}
_BODY_ERRORS = {"400": "Malformed body (e.g. a broken multipart or JSON document)"}


def _route_contexts(app: FastAPI) -> list[Any]:
    """Every served route with its dependencies, through the included-router wrappers FastAPI
    (>= 0.16x) keeps in ``app.routes``."""
    found: list[Any] = []
    for route in app.routes:
        if hasattr(route, "effective_route_contexts"):
            found.extend(route.effective_route_contexts())
        elif hasattr(route, "dependant"):
            found.append(route)
    return found


def _key_check(route: Any) -> str | None:
    """How the route resolves a key: ``"scope"`` when one of its dependencies is a ``require_*``
    factory's (services.auth.deps), ``"key"`` when only ``authenticate``, else None (public)."""
    found = None
    pending = list(getattr(getattr(route, "dependant", None), "dependencies", []))
    while pending:
        dep = pending.pop()
        name = getattr(dep.call, "__name__", "")
        if name.startswith("require_"):
            return "scope"
        if name == "authenticate":
            found = "key"
        pending.extend(dep.dependencies)
    return found


def _document_problems(app: FastAPI) -> None:
    """Make the OpenAPI document say what answers really are: FastAPI documents 422 as its own
    ``HTTPValidationError`` JSON, while every error here is ``application/problem+json``
    (schemathesis' conformance checks flagged every 422), and it documents neither the Bearer key
    nor the 400/401/403/404/429/503 answers that come from dependencies rather than the operation
    (its status-code check flagged those). Each error response points to one Problem schema, unless
    the operation documents a media type of its own for that status."""
    from fastapi.openapi.utils import get_openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            openapi_version=app.openapi_version,
            description=app.description,
            routes=app.routes,
            tags=app.openapi_tags,
            servers=app.servers,
            separate_input_output_schemas=app.separate_input_output_schemas,
        )
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        schemas["Problem"] = PROBLEM_SCHEMA
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        schema["components"].setdefault("securitySchemes", {})["apiKey"] = {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key `dmk_<id>_<secret>` from `dmask keys create`.",
        }
        content = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        key_checks = {
            (method.lower(), route.path_format): _key_check(route)
            for route in _route_contexts(app)
            for method in route.methods or ()
        }
        for path, item in schema.get("paths", {}).items():
            for method, operation in item.items():
                responses = operation.setdefault("responses", {})
                extra: dict[str, str] = {}
                check = key_checks.get((method, path))
                if check:
                    operation["security"] = [{"apiKey": []}]
                    extra.update(_AUTHENTICATED_ERRORS)
                    if check != "scope":
                        extra.pop("403")
                if "{" in path:
                    extra.update(_PATH_ERRORS)
                if "requestBody" in operation:
                    extra.update(_BODY_ERRORS)
                for code, description in extra.items():
                    responses.setdefault(code, {"description": description})
                docs = getattr(app.state, "problem_docs", {})
                errors = next(
                    (c for prefix, c in docs.items() if path == prefix or path.startswith(prefix + "/")),
                    content,
                )
                for code, response in responses.items():
                    if code.isdigit() and int(code) >= 400:
                        # An answer a standard defines (STOW-RS 409: a PS3.18 response data set
                        # in application/dicom+json) stays as documented; FastAPI's JSON is a Problem.
                        own = {
                            k: v for k, v in response.get("content", {}).items() if k != "application/json"
                        }
                        response["content"] = own or errors
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def install(app: FastAPI) -> None:
    from sqlalchemy.exc import DataError, DBAPIError, InterfaceError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    from services.storage import StoreError

    app.add_exception_handler(Problem, _problem_handler)
    app.add_exception_handler(StarletteHTTPException, _http_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    for outage in (OperationalError, InterfaceError, DBAPIError, PoolTimeout):
        app.add_exception_handler(outage, _database_handler)
    app.add_exception_handler(DataError, _data_handler)
    app.add_exception_handler(StoreError, _storage_handler)
    app.add_exception_handler(Exception, _unhandled_handler)
    _document_problems(app)


# Frequently used problems --------------------------------------------------------------------------


def not_found(what: str = "resource") -> Problem:
    return Problem(404, f"No such {what}.", slug="not-found")
