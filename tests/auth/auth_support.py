"""Support code of the sign-in tests (importable by name; test modules must not import conftest).

A real OpenID provider (the npm package ``oidc-provider``, ``provider/provider.mjs``) runs on
loopback; its signing key is made here, so the attack tests can also mint tokens that are valid in
every respect but the one under test (audience, expiry, issuer, ...). The service runs as in
production: ``services.app.create_app`` under uvicorn on a free port, on its own PostgreSQL database.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "service"))

from service_support import create_database, drop_database, free_port, wait_for  # noqa: E402

from services.settings import Settings  # noqa: E402

PROVIDER_DIR = Path(__file__).resolve().parent / "provider"
API_AUDIENCE = "https://dmask.test/api"
UI_CLIENT = "dmask-ui"
UI_SECRET = "dmask-ui-test-secret-0123456789"
UI_SHORT_CLIENT = "dmask-ui-short"  # tokens of 3 s: the revocation test
ROLE_SCOPES = {"compliance": ["audit:read"], "clinician": ["media:read"], "it-admin": ["admin"]}
SYSTEMS = {
    "ehr-system": ("ehr-secret-0123456789abcdef", "media:read media:write", "clinic-a"),
    "audit-bot": ("audit-bot-secret-0123456789", "audit:read", None),
}
USERS = {
    "olivia": {"password": "olivia-pass-1", "name": "Olivia Officer", "roles": ["compliance"]},
    "chen": {"password": "chen-pass-1", "name": "Dr. Wei Chen", "roles": ["clinician"], "tenant": "clinic-a"},
    "victor": {"password": "victor-pass-1", "name": "Victor Visitor", "roles": ["visitor"]},
    "tara": {"password": "tara-pass-1", "name": "Tara Temp", "roles": ["compliance"]},
}


def ensure_node_modules() -> None:
    """``npm ci`` from the committed lockfile (scripts/test does it too; this covers a bare pytest)."""
    if not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
        npm = shutil.which("npm") or "npm"
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=PROVIDER_DIR, check=True)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@dataclass
class SigningKey:
    kid: str
    private: rsa.RSAPrivateKey

    @classmethod
    def new(cls, kid: str) -> SigningKey:
        return cls(kid, rsa.generate_private_key(public_exponent=65537, key_size=2048))

    def private_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(self.private))
        jwk.pop("key_ops", None)  # "sign" only would keep the provider from verifying its own tokens
        return {**jwk, "kid": self.kid, "alg": "RS256", "use": "sig"}

    def public_pem(self) -> bytes:
        from cryptography.hazmat.primitives import serialization

        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        return jwt.encode(claims, self.private, algorithm="RS256", headers={"kid": self.kid, **header})


@dataclass
class OpenIdProvider:
    issuer: str
    key: SigningKey
    proc: subprocess.Popen[bytes]
    log: Path

    def token(self, client_id: str, scope: str | None = None) -> httpx.Response:
        """The client credentials grant, as a hospital system would ask for a token."""
        secret = SYSTEMS[client_id][0]
        data = {"grant_type": "client_credentials", "resource": API_AUDIENCE}
        if scope:
            data["scope"] = scope
        return httpx.post(f"{self.issuer}/token", data=data, auth=(client_id, secret), timeout=10)

    def access_token(self, client_id: str, scope: str | None = None) -> str:
        r = self.token(client_id, scope)
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    def claims(self, **overrides: Any) -> dict[str, Any]:
        """Claims of a system token that is valid in every respect; tests override one."""
        now = int(time.time())
        base = {
            "iss": self.issuer,
            "sub": "ehr-system",
            "aud": API_AUDIENCE,
            "client_id": "ehr-system",
            "scope": "media:read",
            "tenant": "clinic-a",
            "iat": now,
            "exp": now + 300,
            "jti": uuid.uuid4().hex,
        }
        base.update(overrides)
        return {k: v for k, v in base.items() if v is not None}

    def revoke_user(self, name: str) -> None:
        assert httpx.post(f"{self.issuer}/__test/revoke-user", params={"name": name}).status_code == 204

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def start_provider(workdir: Path, service_urls: list[str]) -> OpenIdProvider:
    ensure_node_modules()
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    key = SigningKey.new(f"test-{uuid.uuid4().hex[:8]}")

    def web_client(client_id: str) -> dict[str, Any]:
        return {
            "client_id": client_id,
            "client_secret": UI_SECRET,
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
            "redirect_uris": [f"{u}/ui/oidc/callback" for u in service_urls],
            "post_logout_redirect_uris": [f"{u}/ui/login?signed_out=1" for u in service_urls],
            "scope": "openid profile",
        }

    clients = [web_client(UI_CLIENT), web_client(UI_SHORT_CLIENT)]
    for client_id, (secret, scope, tenant) in SYSTEMS.items():
        clients.append(
            {
                "client_id": client_id,
                "client_secret": secret,
                "grant_types": ["client_credentials"],
                "response_types": [],
                "redirect_uris": [],
                "scope": scope,
                **({"tenant": tenant} if tenant else {}),
            }
        )
    config = {
        "port": port,
        "issuer": issuer,
        "jwks": {"keys": [key.private_jwk()]},
        "clients": clients,
        "users": USERS,
        "api_audience": API_AUDIENCE,
        "short_ttl_clients": [UI_SHORT_CLIENT],
    }
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "provider.json").write_text(json.dumps(config))
    log = workdir / "provider.log"
    node = shutil.which("node") or "node"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [node, str(PROVIDER_DIR / "provider.mjs"), str(workdir / "provider.json")],
            cwd=PROVIDER_DIR,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    provider = OpenIdProvider(issuer, key, proc, log)
    try:
        wait_for(
            lambda: httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=2).status_code == 200,
            30,
            "the OpenID provider",
        )
    except TimeoutError:
        provider.stop()
        raise TimeoutError(
            f"OpenID provider did not start:\n{log.read_text(errors='replace')[-3000:]}"
        ) from None
    return provider


@dataclass
class Service:
    settings: Settings
    url: str
    app: Any
    db_name: str
    server: Any = None
    thread: threading.Thread | None = None
    keys: dict[str, str] = field(default_factory=dict)

    def key(self, client: str, *scopes: str) -> str:
        from services.audit.service import AuditContext
        from services.auth.service import create_key
        from services.db import session_scope

        name = f"{client}:{','.join(sorted(scopes))}"
        if name not in self.keys:
            with session_scope(self.settings) as session:
                _row, key = create_key(session, client, list(scopes), AuditContext(request_id="cli:test"))
            self.keys[name] = key
        return self.keys[name]

    def http(self, token: str | None = None, **kw: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kw)

    def audit(self, **params: Any) -> list[dict[str, Any]]:
        """Every matching audit event (all pages), read as a compliance officer's system would."""
        items: list[dict[str, Any]] = []
        cursor = None
        with self.http(self.key("auditor", "audit:read")) as c:
            while True:
                r = c.get(
                    "/v1/audit", params={"limit": 1000, **params, **({"cursor": cursor} if cursor else {})}
                )
                assert r.status_code == 200, r.text
                items.extend(r.json()["items"])
                cursor = r.json()["next_cursor"]
                if not cursor:
                    return items

    def stop(self) -> None:
        from services.db import get_engine

        if self.server is not None:
            self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(30)
        get_engine(self.settings).dispose()
        drop_database(self.db_name)


def start_service(home: Path, port: int, **overrides: Any) -> Service:
    import uvicorn

    from services.app import create_app
    from services.migrate import upgrade

    db_name, db_url = create_database("dmask_auth")
    values: dict[str, Any] = {
        "home": home,
        "database_url": db_url,
        "broker_url": None,
        "device": "cpu",
        "rate_limit_per_minute": 100000,
        "hmac_key": "auth-test-hmac-key",
    }
    values.update(overrides)
    settings = Settings(**values)
    upgrade(settings)
    app = create_app(settings)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"auth-uvicorn-{port}", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: httpx.get(url + "/livez", timeout=5).status_code == 200, 60, "auth test API")
    return Service(settings, url, app, db_name, server, thread)


def oidc_settings(provider: OpenIdProvider, client_id: str = UI_CLIENT) -> dict[str, Any]:
    return {
        "oidc_issuer": provider.issuer,
        "oidc_client_id": client_id,
        "oidc_client_secret": UI_SECRET,
        "oidc_role_scopes": ROLE_SCOPES,
        "jwt_audience": API_AUDIENCE,
    }


def last_denial(service: Service, since_id: int) -> dict[str, Any]:
    events = [e for e in service.audit(action="request.denied") if e["id"] > since_id]
    assert events, "the refusal was not audited"
    return events[-1]


def head_id(service: Service) -> int:
    items = service.audit()
    return int(items[-1]["id"]) if items else 0


class SignIn:
    """A person's browser without the browser: follows the redirects between the service and the
    provider by hand, fills the provider's login form, and stops where the tests want to look."""

    def __init__(self, service: Service, idp: OpenIdProvider) -> None:
        self.service = service
        self.idp = idp
        self.client = httpx.Client(timeout=30, follow_redirects=False)

    def __enter__(self) -> SignIn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    def start(self, next_url: str = "/ui/audit") -> str:
        """``GET /ui/login``: returns the provider's authorization URL it redirects to."""
        r = self.client.get(f"{self.service.url}/ui/login", params={"next": next_url})
        assert r.status_code == 303, r.text
        location = r.headers["location"]
        assert location.startswith(self.idp.issuer + "/"), location
        return location

    def at_provider(self, authorize_url: str, username: str, password: str) -> httpx.Response:
        """Through the provider's login page; returns its last answer (the redirect to our callback,
        or its refusal)."""
        r = self.client.get(authorize_url)
        while r.status_code in (302, 303) and r.headers["location"].startswith(("/", self.idp.issuer)):
            loc = r.headers["location"]
            url = loc if loc.startswith("http") else self.idp.issuer + loc
            if "/interaction/" in url and not url.endswith("/login"):
                page = self.client.get(url)
                if page.status_code != 200:
                    return page
                r = self.client.post(url + "/login", data={"username": username, "password": password})
                if r.status_code != 303:
                    return r
                continue
            r = self.client.get(url)
        return r

    def callback_url(self, username: str, password: str, next_url: str = "/ui/audit") -> str:
        r = self.at_provider(self.start(next_url), username, password)
        assert r.status_code in (302, 303), r.text
        location = r.headers["location"]
        assert location.startswith(f"{self.service.url}/ui/oidc/callback?"), location
        return location

    def complete(self, callback_url: str) -> httpx.Response:
        return self.client.get(callback_url)

    def sign_in(self, username: str, password: str, next_url: str = "/ui/audit") -> httpx.Response:
        return self.complete(self.callback_url(username, password, next_url))

    def get(self, path: str) -> httpx.Response:
        return self.client.get(self.service.url + path)
