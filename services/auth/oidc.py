"""OpenID Connect sign-in for people: the authorization code flow with PKCE (S256), ``state`` and
``nonce`` (OpenID Connect Core 1.0 §3.1; OAuth 2.0 Security BCP, RFC 9700).

``begin`` records the sign-in in flight (``oidc_logins``: state, nonce, PKCE verifier, return URL)
and builds the provider's authorization URL. ``finish`` deletes that row before anything else (a
replayed ``state`` finds nothing, even from a copied cookie), redeems the code with the verifier at
the token endpoint (a code stolen or injected from another sign-in fails there), validates the ID
token (signature, issuer, audience = our client id, expiry, nonce) and maps the person's roles to our
scopes. Every refusal is a ``SignInRefused`` carrying what the audit log should say.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import urllib.parse
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import Session

from services.audit.service import Actor
from services.auth import jwt_tokens
from services.auth.discovery import Provider, http_json
from services.auth.models import OidcLogin
from services.db import utcnow
from services.settings import Settings

LOGIN_TTL = timedelta(minutes=10)
SCOPE = "openid profile"
MISCONFIGURED = "The identity provider is misconfigured."
UNVERIFIED = "The sign-in could not be verified."


class SignInRefused(Exception):
    """A sign-in that must not succeed. ``reason`` is for the audit log; ``message`` for the person;
    ``actor`` is set when the provider vouched for who it is (an unmapped role)."""

    def __init__(self, reason: str, message: str, actor: Actor | None = None, status: int = 401) -> None:
        super().__init__(reason)
        self.reason = reason
        self.message = message
        self.actor = actor
        self.status = status


@dataclass(frozen=True)
class SignedIn:
    actor: Actor
    tenant: str
    scopes: frozenset[str]
    expires_at: datetime
    id_token: str
    next_url: str
    roles: list[str] = field(default_factory=list)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def pkce_challenge(verifier: str) -> str:
    return _b64(hashlib.sha256(verifier.encode("ascii")).digest())


def begin(
    db: Session, settings: Settings, provider: Provider, redirect_uri: str, next_url: str
) -> tuple[str, str]:
    """Record a sign-in in flight; returns (state, the provider's authorization URL)."""
    db.execute(delete(OidcLogin).where(OidcLogin.created_at < utcnow() - LOGIN_TTL))  # abandoned ones
    login = OidcLogin(
        state=secrets.token_urlsafe(32),
        nonce=secrets.token_urlsafe(32),
        code_verifier=secrets.token_urlsafe(64),
        next_url=next_url,
    )
    db.add(login)
    endpoint = provider.endpoint("authorization_endpoint")
    if endpoint is None:
        raise SignInRefused("provider has no authorization endpoint", MISCONFIGURED)
    query = urllib.parse.urlencode(
        {
            "response_type": "code",
            "client_id": settings.oidc_client_id or "",
            "redirect_uri": redirect_uri,
            "scope": SCOPE,
            "state": login.state,
            "nonce": login.nonce,
            "code_challenge": pkce_challenge(login.code_verifier),
            "code_challenge_method": "S256",
        }
    )
    sep = "&" if "?" in endpoint else "?"
    return login.state, f"{endpoint}{sep}{query}"


def take_login(db: Session, state: str) -> OidcLogin | None:
    """Delete and return the sign-in in flight for ``state`` (once: a second call finds nothing)."""
    row = db.get(OidcLogin, state, with_for_update=True) if 0 < len(state) <= 64 else None
    if row is None:
        return None
    db.delete(row)
    db.flush()
    if row.created_at < utcnow() - LOGIN_TTL:
        return None
    return row


def _redeem(settings: Settings, provider: Provider, code: str, verifier: str, redirect_uri: str) -> Any:
    endpoint = provider.endpoint("token_endpoint")
    if endpoint is None:
        raise SignInRefused("provider has no token endpoint", MISCONFIGURED)
    secret = settings.oidc_client_secret.get_secret_value() if settings.oidc_client_secret else None
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": verifier,
    }
    headers = {}
    if secret:
        # RFC 6749 §2.3.1: both parts form-urlencoded before the Basic encoding
        user = urllib.parse.quote(settings.oidc_client_id or "", safe="")
        pair = f"{user}:{urllib.parse.quote(secret, safe='')}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    else:
        form["client_id"] = settings.oidc_client_id or ""
    return http_json(endpoint, data=form, headers=headers)


def finish(
    settings: Settings, provider: Provider, login: OidcLogin, code: str, redirect_uri: str
) -> SignedIn:
    """Redeem the code of a taken sign-in and decide who signed in, with which scopes."""
    answer = _redeem(settings, provider, code, login.code_verifier, redirect_uri)
    if not isinstance(answer, dict) or "id_token" not in answer:
        error = answer.get("error") if isinstance(answer, dict) else None
        raise SignInRefused(
            f"token endpoint refused the code ({str(error or 'no id_token')[:60]})",
            "The identity provider did not confirm this sign-in. Please sign in again.",
        )
    id_token = str(answer["id_token"])
    try:
        claims = jwt_tokens.validate(provider, id_token, settings.oidc_client_id or "")
    except jwt_tokens.TokenRejected as exc:
        raise SignInRefused(f"ID token rejected: {exc.reason}", UNVERIFIED) from None
    if claims.get("nonce") != login.nonce:
        raise SignInRefused("ID token nonce mismatch", UNVERIFIED)
    if "azp" in claims and claims["azp"] != settings.oidc_client_id:
        raise SignInRefused("ID token issued to another client (azp)", UNVERIFIED)
    return signed_in(settings, claims, id_token, login.next_url)


def signed_in(settings: Settings, claims: dict[str, Any], id_token: str, next_url: str) -> SignedIn:
    """Map a verified ID token to a person: roles to scopes, tenant, a session no longer than the token."""
    name = claims.get("name") or claims.get("preferred_username") or claims.get("email") or claims["sub"]
    actor = Actor(
        kind="person",
        subject=str(claims["sub"]),
        name=str(name),
        issuer=str(claims["iss"]),
        client=settings.oidc_client_id,
    )
    roles = jwt_tokens.role_values(claims, settings.oidc_roles_claim)
    scopes = jwt_tokens.mapped_scopes(roles, settings.oidc_role_scopes)
    if not scopes:
        raise SignInRefused(
            f"no mapped role (roles: {', '.join(roles)[:200] or 'none'})",
            "You are signed in at the hospital's identity provider, but none of your roles gives access "
            "to DigitalMask. Ask your administrator to assign you a DigitalMask role.",
            actor=actor,
            status=403,
        )
    tenant = jwt_tokens.tenant_of(claims, settings.oidc_tenant_claim, "unassigned")
    return SignedIn(
        actor=actor,
        tenant=tenant,
        scopes=scopes,
        expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
        id_token=id_token,
        next_url=next_url,
        roles=roles,
    )


def logout_url(provider: Provider, id_token: str | None, client_id: str | None, after: str) -> str | None:
    """RP-initiated logout at the provider, when it publishes an end_session_endpoint."""
    try:
        endpoint = provider.endpoint("end_session_endpoint")
    except Exception:  # the provider being down must not keep a person signed in here
        return None
    if endpoint is None:
        return None
    params = {"post_logout_redirect_uri": after, "client_id": client_id or ""}
    if id_token:
        params["id_token_hint"] = id_token
    sep = "&" if "?" in endpoint else "?"
    return f"{endpoint}{sep}{urllib.parse.urlencode(params)}"
