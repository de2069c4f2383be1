"""Validating JWTs from the hospital's identity provider: API access tokens of systems (OAuth 2.0
client credentials, SMART Backend Services style) and the ID tokens of people signing in to /ui.

What a token must pass, in order, each failure a ``TokenRejected`` with a reason for the audit log:
- a JWS whose header ``alg`` is on ``ALLOWED_ALGS``: asymmetric algorithms only, so ``none`` and
  HS256 "signed" with the provider's public key (the RS/HS confusion attack) never reach a key;
- a ``kid`` found in the provider's JWKS (one refresh for an unknown kid), of a key type that fits
  the algorithm (PyJWT refuses a key of the wrong family);
- the signature, then ``iss`` equal to the configured issuer, ``aud`` containing the expected
  audience, ``exp`` and ``nbf`` with ``LEEWAY_S`` of clock skew, ``sub`` present.
Validation is done by PyJWT; this module decides what is allowed and what the claims mean.
"""

from __future__ import annotations

from typing import Any

import jwt
from jwt.exceptions import (
    ExpiredSignatureError,
    ImmatureSignatureError,
    InvalidAudienceError,
    InvalidIssuerError,
    InvalidSignatureError,
    InvalidTokenError,
    MissingRequiredClaimError,
)

from services.audit.service import Actor
from services.auth.discovery import Provider
from services.auth.service import CLIENT_NAME, SCOPES, Principal

ALLOWED_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
LEEWAY_S = 15
MAX_TOKEN_CHARS = 16384


class TokenRejected(ValueError):
    """A token that must not be accepted; ``reason`` goes to the audit log (never the token)."""

    def __init__(self, reason: str, hint: dict[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.hint = hint or {}


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and not token.startswith("dmk_")


def unverified_hint(token: str) -> dict[str, Any]:
    """What a rejected token claimed (issuer, subject, client, kid, alg), bounded, for the audit
    log: an investigator needs to see who a forged or stale token pretended to be."""
    hint: dict[str, Any] = {}
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except InvalidTokenError:
        return hint
    for name, value in (
        ("alg", header.get("alg")),
        ("kid", header.get("kid")),
        ("iss", claims.get("iss")),
        ("sub", claims.get("sub")),
        ("client", claims.get("azp") or claims.get("client_id")),
    ):
        if isinstance(value, str) and value:
            hint[name] = value[:200]
    return hint


def validate(provider: Provider, token: str, audience: str, *, leeway: float = LEEWAY_S) -> dict[str, Any]:
    """The token's claims if it passes every check above; ``TokenRejected`` otherwise."""
    if len(token) > MAX_TOKEN_CHARS:
        raise TokenRejected("token too long")
    hint = unverified_hint(token)
    try:
        header = jwt.get_unverified_header(token)
    except InvalidTokenError:
        raise TokenRejected("malformed token") from None
    alg = header.get("alg")
    if alg not in ALLOWED_ALGS:
        raise TokenRejected(f"algorithm {str(alg)[:20]!r} not allowed", hint)
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise TokenRejected("token has no key id (kid)", hint)
    key = provider.signing_key(kid)
    if key is None:
        raise TokenRejected("unknown signing key (kid)", hint)
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key=key,
            algorithms=[alg],
            audience=audience,
            issuer=provider.issuer,
            leeway=leeway,
            options={"require": ["exp", "iss", "aud", "sub"]},
        )
    except ExpiredSignatureError:
        raise TokenRejected("token expired", hint) from None
    except ImmatureSignatureError:
        raise TokenRejected("token not yet valid (nbf/iat)", hint) from None
    except InvalidAudienceError:
        raise TokenRejected("token is for another audience", hint) from None
    except InvalidIssuerError:
        raise TokenRejected("token from another issuer", hint) from None
    except InvalidSignatureError:
        raise TokenRejected("bad signature", hint) from None
    except MissingRequiredClaimError as exc:
        raise TokenRejected(f"token lacks the {exc.claim} claim", hint) from None
    except InvalidTokenError as exc:  # key/algorithm mismatch, malformed segments, ...
        raise TokenRejected(f"invalid token ({type(exc).__name__})", hint) from None
    return claims


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def mapped_scopes(values: list[str], role_scopes: dict[str, list[str]]) -> frozenset[str]:
    """Our scopes for a token's roles or OAuth scopes: a value mapped in ``DMASK_OIDC_ROLE_SCOPES``
    gives its listed scopes; a value that is one of our scope names gives itself. Anything else is
    ignored (``openid``, ``profile``, other APIs' scopes)."""
    out: set[str] = set()
    for value in values:
        out.update(s for s in role_scopes.get(value, []) if s in SCOPES)
        if value in SCOPES:
            out.add(value)
    return frozenset(out)


def role_values(claims: dict[str, Any], roles_claim: str) -> list[str]:
    """The roles claim, also as a dotted path (Keycloak puts realm roles in ``realm_access.roles``)."""
    value: Any = claims
    for part in roles_claim.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return _strings(value)


def tenant_of(claims: dict[str, Any], tenant_claim: str, fallback: str) -> str:
    """The client whose media the caller sees: the tenant claim when it is a valid client name."""
    value = claims.get(tenant_claim)
    if isinstance(value, str) and CLIENT_NAME.match(value):
        return value
    return fallback


def system_principal(
    claims: dict[str, Any], roles_claim: str, role_scopes: dict[str, list[str]], tenant_claim: str
) -> Principal:
    """A system calling the API with an access token: scopes from ``scope``/``scp`` (and roles, as
    Entra ID puts application permissions there), tenant from the tenant claim, else its client id."""
    client = claims.get("azp") or claims.get("client_id") or claims.get("appid")
    client = client if isinstance(client, str) else None
    values = _strings(claims.get("scope")) + _strings(claims.get("scp")) + role_values(claims, roles_claim)
    subject = str(claims["sub"])
    fallback = client if client and CLIENT_NAME.match(client) else f"sys-{subject}"[:64]
    tenant = tenant_of(claims, tenant_claim, fallback if CLIENT_NAME.match(fallback) else "unknown-system")
    name = claims.get("name") or client or subject
    return Principal(
        client_id=tenant,
        key_id=None,
        scopes=mapped_scopes(values, role_scopes),
        actor=Actor(kind="system", subject=subject, name=str(name), issuer=str(claims["iss"]), client=client),
    )
