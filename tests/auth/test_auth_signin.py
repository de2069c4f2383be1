"""People sign in to /ui at the hospital's identity provider (OpenID Connect authorization code flow
with PKCE, state and nonce) against a real ``oidc-provider``: who they are reaches the audit log, their
roles decide their pages, and every way of cheating the flow is refused and audited."""

from __future__ import annotations

import html
import re
import time
import urllib.parse

import httpx
from auth_support import UI_CLIENT, UI_SECRET, OpenIdProvider, Service, SignIn, head_id


def _events(service: Service, since: int, action: str) -> list[dict]:  # type: ignore[type-arg]
    return [e for e in service.audit(action=action) if e["id"] > since]


def test_a_person_signs_in_and_the_audit_names_them(service: Service, idp: OpenIdProvider) -> None:
    since = head_id(service)
    with SignIn(service, idp) as browser:
        authorize = urllib.parse.parse_qs(urllib.parse.urlsplit(browser.start()).query)
        assert authorize["code_challenge_method"] == ["S256"] and len(authorize["code_challenge"][0]) == 43
        assert authorize["state"][0] and authorize["nonce"][0] and authorize["client_id"] == [UI_CLIENT]
        landed = browser.sign_in("olivia", "olivia-pass-1")
        assert landed.status_code == 200 and 'content="0;url=/ui/audit"' in landed.text
        cookie = landed.headers["set-cookie"]
        assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
        max_age = int(re.search(r"Max-Age=(\d+)", cookie, re.I).group(1))  # type: ignore[union-attr]
        assert 0 < max_age <= 600, "the session ends no later than the provider's token (600 s)"
        page = browser.get("/ui/audit")
        assert page.status_code == 200 and "Olivia Officer" in page.text
        assert browser.get("/ui/records").status_code == 403  # a compliance officer reviews no media
    login = _events(service, since, "ui.login")[-1]
    assert login["outcome"] == "success"
    assert (login["actor_kind"], login["actor_sub"], login["actor_name"]) == (
        "person",
        "olivia",
        "Olivia Officer",
    )
    assert (login["actor_issuer"], login["actor_client"]) == (idp.issuer, UI_CLIENT)
    reads = [e for e in _events(service, since, "audit.read") if e["actor_sub"] == "olivia"]
    assert reads, "what the person then did is audited under their name too"


def test_a_clinician_gets_media_of_their_tenant_only(service: Service, idp: OpenIdProvider) -> None:
    with SignIn(service, idp) as browser:
        assert browser.sign_in("chen", "chen-pass-1", "/ui/records").status_code == 200
        page = browser.get("/ui/records")
        assert page.status_code == 200 and "Dr. Wei Chen" in page.text
        assert browser.get("/ui/audit").status_code == 403


def test_a_person_without_a_mapped_role_is_refused_with_a_clear_page(
    service: Service, idp: OpenIdProvider
) -> None:
    since = head_id(service)
    with SignIn(service, idp) as browser:
        r = browser.sign_in("victor", "victor-pass-1")
        assert r.status_code == 403
        assert "none of your roles gives access" in r.text and "dmask_session" not in r.headers.get(
            "set-cookie", ""
        )
        assert browser.get("/ui/audit").status_code == 303  # still not signed in
    refusal = _events(service, since, "ui.login")[-1]
    assert refusal["outcome"] == "denied" and refusal["detail"]["status"] == 403
    assert "no mapped role" in refusal["detail"]["reason"] and "visitor" in refusal["detail"]["reason"]
    assert (refusal["actor_sub"], refusal["actor_name"]) == ("victor", "Victor Visitor")


def test_a_replayed_state_is_refused_and_audited(service: Service, idp: OpenIdProvider) -> None:
    with SignIn(service, idp) as browser:
        callback = browser.callback_url("olivia", "olivia-pass-1")
        assert browser.complete(callback).status_code == 200
        since = head_id(service)
        with httpx.Client(timeout=30) as attacker:  # the same callback URL, once more
            replay = attacker.get(callback)
        assert replay.status_code == 401 and "already been used" in replay.text
        assert "dmask_session" not in replay.headers.get("set-cookie", "")
    refusal = _events(service, since, "ui.login")[-1]
    assert refusal["outcome"] == "denied" and "replayed state" in refusal["detail"]["reason"]


def test_a_code_without_its_pkce_verifier_is_worthless(service: Service, idp: OpenIdProvider) -> None:
    """A stolen code cannot be redeemed without the verifier, and a code injected into another
    sign-in (whose verifier does not match) is refused by the provider and by us, audited."""
    with SignIn(service, idp) as browser:
        callback = browser.callback_url("olivia", "olivia-pass-1")
        code = urllib.parse.parse_qs(urllib.parse.urlsplit(callback).query)["code"][0]
        stolen = httpx.post(
            f"{idp.issuer}/token",
            data={"grant_type": "authorization_code", "code": code, "redirect_uri": callback.split("?")[0]},
            auth=(UI_CLIENT, UI_SECRET),
        )
        assert stolen.status_code == 400 and stolen.json()["error"] in ("invalid_grant", "invalid_request")
    with SignIn(service, idp) as victim, SignIn(service, idp) as attacker:
        victim_state = urllib.parse.parse_qs(urllib.parse.urlsplit(victim.start()).query)["state"][0]
        attacker_callback = attacker.callback_url("victor", "victor-pass-1")
        attacker_code = urllib.parse.parse_qs(urllib.parse.urlsplit(attacker_callback).query)["code"][0]
        since = head_id(service)
        injected = victim.get(f"/ui/oidc/callback?state={victim_state}&code={attacker_code}")
        assert injected.status_code == 401 and "dmask_session" not in injected.headers.get("set-cookie", "")
    refusal = _events(service, since, "ui.login")[-1]
    assert refusal["outcome"] == "denied" and "token endpoint refused the code" in refusal["detail"]["reason"]


def test_an_open_redirect_in_the_return_url_is_refused_and_audited(service: Service) -> None:
    since = head_id(service)
    with httpx.Client(base_url=service.url, follow_redirects=False) as c:
        for evil in ("https://evil.example/phish", "//evil.example/phish", "/ui/\\evil.example", "/v1/audit"):
            r = c.get("/ui/login", params={"next": evil})
            assert r.status_code == 403 and "outside DigitalMask" in r.text, evil
            assert "location" not in r.headers
    refusals = [
        e for e in _events(service, since, "ui.login") if e["detail"].get("reason") == "unsafe return URL"
    ]
    assert [e["detail"]["next"] for e in refusals] == [
        "https://evil.example/phish",
        "//evil.example/phish",
        "/ui/\\evil.example",
        "/v1/audit",
    ]


def test_sign_out_ends_the_session_here_and_at_the_provider(service: Service, idp: OpenIdProvider) -> None:
    with SignIn(service, idp) as browser:
        browser.sign_in("olivia", "olivia-pass-1")
        page = browser.get("/ui/audit")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf
        stolen_cookie = browser.client.cookies.get("dmask_session")
        out = browser.client.post(f"{service.url}/ui/logout", data={"csrf": csrf.group(1)})
        assert out.status_code == 200 and "dmask_session=" in out.headers["set-cookie"]
        refresh = re.search(r'http-equiv="refresh" content="0;url=([^"]+)"', out.text)
        assert refresh
        end = urllib.parse.urlsplit(html.unescape(refresh.group(1)))
        assert f"{end.scheme}://{end.netloc}" == idp.issuer
        params = urllib.parse.parse_qs(end.query)
        assert params["post_logout_redirect_uri"] == [f"{service.url}/ui/login?signed_out=1"]
        assert params["id_token_hint"][0].count(".") == 2
        # a copy of the cookie is worthless now: the session ended on the server
        with httpx.Client(base_url=service.url, follow_redirects=False) as thief:
            thief.cookies.set("dmask_session", stolen_cookie or "", path="/ui")
            assert thief.get("/ui/audit").status_code == 303
    logout = [e for e in service.audit(action="ui.logout") if e["actor_sub"] == "olivia"]
    assert logout and logout[-1]["actor_name"] == "Olivia Officer"


def test_a_person_revoked_at_the_provider_loses_access_within_the_token_lifetime(
    short_lived_service: Service, idp: OpenIdProvider
) -> None:
    service = short_lived_service
    with SignIn(service, idp) as browser:
        assert browser.sign_in("tara", "tara-pass-1").status_code == 200
        assert browser.get("/ui/audit").status_code == 200
        signed_in_at = time.monotonic()
        idp.revoke_user("tara")
        while browser.get("/ui/audit").status_code == 200:
            assert time.monotonic() - signed_in_at < 10, "the session outlived the 3 s token"
            time.sleep(0.5)
        assert browser.get("/ui/audit").headers["location"].startswith("/ui/login")
    with SignIn(service, idp) as again:
        refused = again.at_provider(again.start(), "tara", "tara-pass-1")
        assert refused.status_code == 401 and "Unknown user" in refused.text
