"""Bearer tokens for systems: JWT access tokens from the hospital's OpenID provider, beside API keys.

Every token here comes from, or is signed with the key of, a real ``oidc-provider`` on loopback; the
attacks are tokens that are valid in every respect but one, and each must be refused with 401 and
leave an audit event that says why and what the token claimed to be."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import jwt
import pytest
from auth_support import API_AUDIENCE, OpenIdProvider, Service, SigningKey, b64url, head_id, last_denial


def test_a_system_token_from_the_provider_is_accepted_and_named(
    service: Service, idp: OpenIdProvider
) -> None:
    token = idp.access_token("ehr-system", "media:read media:write")
    with service.http(token) as c:
        me = c.get("/v1/whoami")
    assert me.status_code == 200, me.text
    assert me.json() == {
        "kind": "system",
        "subject": "ehr-system",
        "name": "ehr-system",
        "issuer": idp.issuer,
        "client_id": "clinic-a",  # the tenant claim the provider puts in its tokens
        "key_id": None,
        "scopes": ["media:read", "media:write"],
    }


def test_the_audit_names_a_system_and_can_be_filtered_by_it(service: Service, idp: OpenIdProvider) -> None:
    token = idp.access_token("audit-bot", "audit:read")
    with service.http(token) as c:
        r = c.get("/v1/audit", params={"actor": "audit-bot", "action": "audit.read"})
    assert r.status_code == 200, r.text
    mine = [e for e in service.audit(actor="audit-bot") if e["action"] == "audit.read"]
    assert mine, "the system's read of the audit log is itself audited under its name"
    event = mine[-1]
    assert (event["actor_kind"], event["actor_sub"], event["actor_issuer"], event["actor_client"]) == (
        "system",
        "audit-bot",
        idp.issuer,
        "audit-bot",
    )
    assert all(e["actor_sub"] == "audit-bot" for e in service.audit(actor="audit-bot"))


def test_a_token_scope_it_was_not_given_is_forbidden_and_audited(
    service: Service, idp: OpenIdProvider
) -> None:
    token = idp.access_token("audit-bot", "audit:read")
    since = head_id(service)
    with service.http(token) as c:
        r = c.post("/v1/records/MRN-1/media", files={"file": ("a.jpg", b"\xff\xd8\xff", "image/jpeg")})
    assert r.status_code == 403 and r.headers["content-type"].startswith("application/problem+json")
    denial = last_denial(service, since)
    assert denial["detail"]["status"] == 403 and denial["actor_sub"] == "audit-bot"


def _hs256_with_public_key(key: SigningKey, claims: dict[str, Any]) -> str:
    """The RS/HS confusion attack: HMAC "signed" with the provider's public key as the secret."""
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": key.kid}).encode())
    body = b64url(json.dumps(claims).encode())
    sig = hmac.new(key.public_pem(), f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{b64url(sig)}"


def _forge(idp: OpenIdProvider, attack: str) -> str:
    now = int(time.time())
    if attack == "other audience":
        return idp.key.sign(idp.claims(aud="https://another-service.example/api"))
    if attack == "expired":
        return idp.key.sign(idp.claims(iat=now - 900, exp=now - 300))
    if attack == "not yet valid":
        return idp.key.sign(idp.claims(nbf=now + 600))
    if attack == "other issuer":
        return idp.key.sign(idp.claims(iss="https://login.other-hospital.example"))
    if attack == "other issuer's key":
        return SigningKey.new(idp.key.kid).sign(idp.claims())  # same kid, another key
    if attack == "alg none":
        return jwt.encode(idp.claims(), None, algorithm="none", headers={"kid": idp.key.kid})
    if attack == "HS256 with the public key":
        return _hs256_with_public_key(idp.key, idp.claims())
    if attack == "unknown kid":
        return SigningKey.new("rotated-away").sign(idp.claims())
    if attack == "no subject":
        return idp.key.sign(idp.claims(sub=None))
    raise AssertionError(attack)


ATTACKS = {
    "other audience": "token is for another audience",
    "expired": "token expired",
    "not yet valid": "token not yet valid",
    "other issuer": "token from another issuer",
    "other issuer's key": "bad signature",
    "alg none": "algorithm 'none' not allowed",
    "HS256 with the public key": "algorithm 'HS256' not allowed",
    "unknown kid": "unknown signing key",
    "no subject": "token lacks the sub claim",
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_a_forged_or_misdirected_token_is_refused_and_audited(
    service: Service, idp: OpenIdProvider, attack: str
) -> None:
    token = _forge(idp, attack)
    provider = service.app.state.oidc_provider
    since = head_id(service)
    fetches = provider.jwks_fetches
    with service.http(token) as c:
        r = c.get("/v1/audit")
    assert r.status_code == 401, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
    denial = last_denial(service, since)
    assert denial["outcome"] == "denied" and denial["detail"]["status"] == 401
    assert ATTACKS[attack] in denial["detail"]["reason"], denial["detail"]
    assert denial["detail"]["token"].get("sub") == ("ehr-system" if attack != "no subject" else None)
    assert denial["actor_kind"] is None, "a refused token names nobody as the actor"
    if attack == "unknown kid":
        assert provider.jwks_fetches == fetches + 1, "an unknown kid refreshes the key set exactly once"
    else:
        assert provider.jwks_fetches == fetches


def test_a_token_valid_in_every_respect_passes(service: Service, idp: OpenIdProvider) -> None:
    """The attack tests' control: the same minting with nothing wrong is accepted."""
    with service.http(idp.key.sign(idp.claims())) as c:
        assert c.get("/v1/whoami").json()["subject"] == "ehr-system"


def test_the_provider_refuses_tokens_for_scopes_a_client_does_not_have(idp: OpenIdProvider) -> None:
    r = idp.token("audit-bot", "media:write")
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"


def test_revoking_an_api_key_ends_its_access_at_once(service: Service) -> None:
    from services.audit.service import AuditContext
    from services.auth.service import create_key, revoke_key
    from services.db import session_scope

    with session_scope(service.settings) as s:
        row, key = create_key(s, "lab-system", ["media:read"], AuditContext(request_id="cli:test"))
    with service.http(key) as c:
        assert c.get("/v1/whoami").json()["kind"] == "key"
        with session_scope(service.settings) as s:
            revoke_key(s, row.id, AuditContext(request_id="cli:test"))
        assert c.get("/v1/whoami").status_code == 401


def test_tokens_are_refused_when_no_issuer_is_configured(embedded_service: Any, idp: OpenIdProvider) -> None:
    svc: Service = embedded_service()
    token = idp.access_token("ehr-system")
    with svc.http(token) as c:
        r = c.get("/v1/whoami")
    assert r.status_code == 401
    denials = [e for e in svc.audit(action="request.denied") if e["detail"].get("token")]
    assert denials and "bearer tokens are not accepted" in denials[-1]["detail"]["reason"]


def test_an_unreachable_provider_is_503_not_a_silent_accept(
    embedded_service: Any, idp: OpenIdProvider
) -> None:
    from auth_support import UI_SECRET
    from service_support import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    svc: Service = embedded_service(
        oidc_issuer=dead, oidc_client_id="x", oidc_client_secret=UI_SECRET, jwt_audience=API_AUDIENCE
    )
    with svc.http(idp.key.sign(idp.claims(iss=dead))) as c:
        r = c.get("/v1/whoami")
    assert r.status_code == 503 and r.headers["content-type"].startswith("application/problem+json")
    assert httpx.get(svc.url + "/livez").status_code == 200
