"""FastAPI dependencies: authentication, scopes, rate limiting, and the audit context of a request.

Every refusal (401, 403, first 429 of a window) is written to the audit log before it is raised.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import Request

from services.audit import service as audit
from services.auth.ratelimit import RateLimiter
from services.auth.service import Principal, verify_key
from services.db import session_scope
from services.problems import Problem
from services.settings import Settings

log = logging.getLogger("dmask.auth")


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def source_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def audit_ctx(request: Request, principal: Principal | None = None) -> audit.AuditContext:
    return audit.AuditContext(
        client_id=principal.client_id if principal else None,
        key_id=principal.key_id if principal else None,
        source_ip=source_ip(request),
        request_id=getattr(request.state, "request_id", None),
    )


def _audit_denial(
    request: Request, principal: Principal | None, status: int, reason: str, **ids: str
) -> None:
    settings = settings_of(request)
    try:
        with session_scope(settings) as session:
            audit.append(
                session,
                audit_ctx(request, principal),
                "request.denied",
                audit.Outcome.denied,
                record_id=ids.get("record_id"),
                job_id=ids.get("job_id"),
                artifact_id=ids.get("artifact_id"),
                media_id=ids.get("media_id"),
                detail={
                    "status": status,
                    "reason": reason,
                    "method": request.method,
                    "route": _route(request),
                },
            )
    except Exception as exc:  # the refusal itself must still go out
        log.error("could not audit a denied request: %s", type(exc).__name__)


def _route(request: Request) -> str:
    route = request.scope.get("route")
    return getattr(route, "path", None) or "unmatched"


def throttle_source(request: Request) -> None:
    """Count one unauthenticated attempt (a failed API key, a login form post) against the source
    address; 429 past the limit. Each attempt is an audit event (a row and a lock on the chain head),
    so an unauthenticated flood must not become an unbounded stream of audit writes, nor an
    unthrottled key-guessing oracle. Client names cannot contain ':', so the buckets never clash."""
    limiter: RateLimiter = request.app.state.rate_limiter
    allowed, retry, first = limiter.hit(f"ip:{source_ip(request) or '-'}")
    if not allowed:
        if first:
            _audit_denial(request, None, 429, "rate limit (unauthenticated attempts)")
        raise Problem(429, "Rate limit exceeded.", slug="rate-limited", headers={"Retry-After": str(retry)})


def authenticate(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    principal = None
    if scheme.lower() == "bearer" and token.strip():
        with session_scope(settings_of(request)) as session:
            principal = verify_key(session, token.strip())
    limiter: RateLimiter = request.app.state.rate_limiter
    if principal is None:
        throttle_source(request)
        reason = "missing credentials" if not header else "invalid credentials"
        _audit_denial(request, None, 401, reason)
        raise Problem(
            401,
            "A valid API key is required (Authorization: Bearer <key>).",
            slug="unauthenticated",
            headers={"WWW-Authenticate": 'Bearer realm="dmask"'},
        )
    allowed, retry, first = limiter.hit(principal.client_id)
    if not allowed:
        if first:
            _audit_denial(request, principal, 429, "rate limit")
        raise Problem(429, "Rate limit exceeded.", slug="rate-limited", headers={"Retry-After": str(retry)})
    request.state.principal = principal
    return principal


def require_scope(scope: str) -> Callable[[Request], Principal]:
    """Dependency factory: the caller must hold ``scope`` (or ``admin``)."""

    def dependency(request: Request) -> Principal:
        principal = authenticate(request)
        if not principal.allows(scope):
            _audit_denial(request, principal, 403, f"missing scope {scope}")
            raise Problem(403, f"This key lacks the scope {scope}.", slug="forbidden", required_scope=scope)
        return principal

    dependency.__name__ = f"require_{scope.replace(':', '_')}"
    return dependency


def require_any(*scopes: str) -> Callable[[Request], Principal]:
    """Dependency factory: the caller must hold at least one of ``scopes`` (or ``admin``)."""

    def dependency(request: Request) -> Principal:
        principal = authenticate(request)
        if not any(principal.allows(s) for s in scopes):
            _audit_denial(request, principal, 403, f"missing scope {' or '.join(scopes)}")
            raise Problem(
                403,
                f"This key lacks the scope {' or '.join(scopes)}.",
                slug="forbidden",
                required_scope=list(scopes),
            )
        return principal

    dependency.__name__ = "require_" + "_or_".join(s.replace(":", "_") for s in scopes)
    return dependency


def deny_other_tenant(request: Request, principal: Principal, what: str, **ids: str) -> Problem:
    """Another client's resource: audited as a denial, answered as 404 so existence is not leaked."""
    _audit_denial(request, principal, 404, f"{what} belongs to another client", **ids)
    return Problem(404, f"No such {what}.", slug="not-found")
