"""The embedded default needs no identity provider: API keys, and a local sign-in for people made
with ``dmask users create`` (scrypt-hashed passwords)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

import httpx
from auth_support import Service
from service_support import REPO


def _cli(service: Service, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DMASK_HOME": str(service.settings.home),
        "DMASK_DATABASE_URL": service.settings.sqlalchemy_url,
    }
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )


def _browser(service: Service) -> httpx.Client:
    return httpx.Client(base_url=service.url, follow_redirects=False, timeout=30)


def _sign_in(c: httpx.Client, username: str, password: str) -> httpx.Response:
    page = c.get("/ui/login")
    assert page.status_code == 200 and 'name="password"' in page.text, "the local sign-in form is offered"
    r = c.post("/ui/login/password", data={"username": username, "password": password, "next": "/ui/audit"})
    return r


def test_a_local_admin_signs_in_and_the_audit_names_them(embedded_service: Callable[..., Service]) -> None:
    service = embedded_service()
    made = _cli(
        service,
        "users",
        "create",
        "admin",
        "--name",
        "Ada Admin",
        "--scope",
        "admin",
        "--password-stdin",
        stdin="correct horse battery\n",
    )
    assert made.returncode == 0, made.stderr
    with service.http() as anon:
        assert anon.get("/ui/login", follow_redirects=False).status_code == 200  # no provider: no redirect
    with _browser(service) as c:
        r = _sign_in(c, "admin", "correct horse battery")
        assert r.status_code == 303 and r.headers["location"] == "/ui/audit"
        page = c.get("/ui/audit")
        assert page.status_code == 200 and "Ada Admin" in page.text
    login = [e for e in service.audit(action="ui.login") if e["outcome"] == "success"][-1]
    assert (login["actor_kind"], login["actor_sub"], login["actor_name"]) == ("person", "admin", "Ada Admin")
    assert login["actor_issuer"] == "urn:dmask:local"
    created = service.audit(action="user.create")
    assert created and created[-1]["detail"] == {"username": "admin", "scopes": ["admin"]}


def test_the_password_is_stored_as_an_scrypt_hash(embedded_service: Callable[..., Service]) -> None:
    from services.auth.models import LocalUser
    from services.db import session_scope

    service = embedded_service()
    assert (
        _cli(
            service,
            "users",
            "create",
            "nurse",
            "--scope",
            "media:read",
            "--password-stdin",
            stdin="a long enough secret\n",
        ).returncode
        == 0
    )
    with session_scope(service.settings) as s:
        stored = s.get(LocalUser, "nurse")
        assert stored is not None
        assert stored.password_hash.startswith("scrypt$16384$8$1$")
        assert "a long enough secret" not in stored.password_hash


def test_a_wrong_password_is_refused_and_audited(embedded_service: Callable[..., Service]) -> None:
    service = embedded_service()
    _cli(
        service,
        "users",
        "create",
        "admin",
        "--scope",
        "admin",
        "--password-stdin",
        stdin="correct horse battery\n",
    )
    for username, password in (("admin", "wrong horse battery"), ("nobody", "correct horse battery")):
        with _browser(service) as c:
            r = _sign_in(c, username, password)
            assert r.status_code == 401 and 'role="alert"' in r.text
            assert "dmask_session" not in r.headers.get("set-cookie", "")
    refusals = [e for e in service.audit(action="ui.login") if e["outcome"] == "denied"]
    assert [e["detail"]["username"] for e in refusals] == ["admin", "nobody"]
    assert all(e["detail"]["reason"] == "invalid username or password" for e in refusals)


def test_short_passwords_are_refused_by_the_cli(embedded_service: Callable[..., Service]) -> None:
    service = embedded_service()
    r = _cli(service, "users", "create", "admin", "--scope", "admin", "--password-stdin", stdin="short\n")
    assert r.returncode == 2 and "at least 12 characters" in r.stderr


def test_disabling_a_user_ends_their_session_at_once(embedded_service: Callable[..., Service]) -> None:
    service = embedded_service()
    _cli(
        service,
        "users",
        "create",
        "temp",
        "--scope",
        "audit:read",
        "--password-stdin",
        stdin="temporary password\n",
    )
    with _browser(service) as c:
        assert _sign_in(c, "temp", "temporary password").status_code == 303
        assert c.get("/ui/audit").status_code == 200
        assert _cli(service, "users", "disable", "temp").returncode == 0
        assert c.get("/ui/audit").status_code == 303
