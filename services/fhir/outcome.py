"""FHIR errors: every error under ``/fhir`` is an ``OperationOutcome`` (R4) with the HTTP status.

The diagnostics are the service's own wording of the problem (``Problem.detail``), which by contract
never repeats request input (paths and parameters can carry record IDs); headers such as
``WWW-Authenticate`` and ``Retry-After`` are kept.
"""

from __future__ import annotations

from http import HTTPStatus

from fastapi import Request
from fastapi.responses import JSONResponse

from services.problems import Problem

FHIR_JSON = "application/fhir+json"

# HTTP status -> OperationOutcome.issue.code (http://hl7.org/fhir/issue-type)
ISSUE_CODES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    410: "deleted",
    413: "too-costly",
    415: "not-supported",
    422: "processing",
    429: "throttled",
    500: "exception",
    503: "transient",
}


OUTCOME_DOC = {
    FHIR_JSON: {
        "schema": {
            "type": "object",
            "required": ["resourceType", "issue"],
            "properties": {"resourceType": {"const": "OperationOutcome"}, "issue": {"type": "array"}},
        }
    }
}


class FhirResponse(JSONResponse):
    media_type = FHIR_JSON


def outcome(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> FhirResponse:
    body = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error" if status < 500 else "fatal", "code": code, "diagnostics": message}],
    }
    return FhirResponse(body, status_code=status, headers=headers)


def render(request: Request, problem: Problem) -> FhirResponse:
    """The app's problem renderer under /fhir (services.problems.render_under)."""
    code = ISSUE_CODES.get(problem.status, "exception" if problem.status >= 500 else "invalid")
    message = problem.detail or problem.title or HTTPStatus(problem.status).phrase
    rid = getattr(request.state, "request_id", None)
    if rid:
        message = f"{message} (request {rid})"
    return outcome(problem.status, code, message, problem.headers)
