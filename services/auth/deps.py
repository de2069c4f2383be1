"""FastAPI dependencies: authentication, scopes, rate limiting, and the audit context of a request.

Every refusal (401, 403, first 429 of a window) is written to the audit log before it is raised.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import Request

from services.audit import service as audit
from services.auth import jwt_tokens
from services.auth.discovery import Provider, ProviderUnavailable
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
        actor=principal.audit_actor if principal else None,
    )


def _audit_denial(
    request: Request,
    principal: Principal | None,
    status: int,
    reason: str,
    *,
    token: dict[str, Any] | None = None,
    ids: dict[str, str] | None = None,
) -> None:
    ids = ids or {}
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
                    **({"token": token} if token else {}),
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


def provider_of(request: Request) -> Provider | None:
    provider: Provider | None = getattr(request.app.state, "oidc_provider", None)
    return provider


def _verify_token(request: Request, token: str) -> Principal:
    """An access token from the configured issuer (``TokenRejected`` otherwise)."""
    settings = settings_of(request)
    provider = provider_of(request)
    if provider is None or not settings.jwt_audience:
        raise jwt_tokens.TokenRejected(
            "bearer tokens are not accepted (no DMASK_OIDC_ISSUER / DMASK_JWT_AUDIENCE)",
            jwt_tokens.unverified_hint(token),
        )
    try:
        claims = jwt_tokens.validate(provider, token, settings.jwt_audience)
    except ProviderUnavailable as exc:
        log.error("identity provider unavailable: %s", exc)
        raise Problem(
            503, "The identity provider cannot be reached to check this token.", slug="unavailable"
        ) from None
    return jwt_tokens.system_principal(
        claims, settings.oidc_roles_claim, settings.oidc_role_scopes, settings.oidc_tenant_claim
    )


def authenticate(request: Request) -> Principal:
    """An API key (``dmk_...``) or, when an issuer is configured, a JWT access token from it."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    principal = None
    reason = "missing credentials" if not header else "invalid credentials"
    hint: dict[str, Any] | None = None
    if scheme.lower() == "bearer" and token:
        if jwt_tokens.looks_like_jwt(token):
            try:
                principal = _verify_token(request, token)
            except jwt_tokens.TokenRejected as exc:
                reason, hint = f"invalid token: {exc.reason}", exc.hint
        else:
            with session_scope(settings_of(request)) as session:
                principal = verify_key(session, token)
    limiter: RateLimiter = request.app.state.rate_limiter
    if principal is None:
        throttle_source(request)
        _audit_denial(request, None, 401, reason, token=hint)
        error = ', error="invalid_token"' if hint is not None else ""
        raise Problem(
            401,
            "A valid API key or access token is required (Authorization: Bearer <key or token>).",
            slug="unauthenticated",
            headers={"WWW-Authenticate": f'Bearer realm="dmask"{error}'},
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
    _audit_denial(request, principal, 404, f"{what} belongs to another client", ids=ids)
    return Problem(404, f"No such {what}.", slug="not-found")
