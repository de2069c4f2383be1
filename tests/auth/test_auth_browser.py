"""A person in Debian's Chromium (driven by Playwright): opens /ui/audit, is sent to the hospital's
identity provider, signs in on its page, lands on the audit log, signs out there and at the provider;
the audit log then shows that person's sign-in and sign-out under their name."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from auth_support import OpenIdProvider, Service

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.fail("Debian's chromium is required: apt-get install -y chromium chromium-driver")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def test_sign_in_at_the_provider_land_on_the_audit_and_sign_out(
    browser: Any, service: Service, idp: OpenIdProvider
) -> None:
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(f"{service.url}/ui/audit")
        page.wait_for_url(f"{idp.issuer}/interaction/**")
        assert page.title() == "Hospital sign-in"
        page.get_by_label("Username").fill("olivia")
        page.get_by_label("Password").fill("olivia-pass-1")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{service.url}/ui/audit")
        assert page.locator("#signed-in-as").inner_text() == "Olivia Officer"
        assert page.locator("#audit-table").is_visible()

        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url(f"{idp.issuer}/session/end**")
        page.get_by_role("button", name="Yes, sign me out").click()
        page.wait_for_url(f"{service.url}/ui/login?signed_out=1")
        assert page.get_by_role("status").inner_text() == "You are signed out."
        page.goto(f"{service.url}/ui/audit")  # the session is gone here, and at the provider
        page.wait_for_url(f"{idp.issuer}/interaction/**")
        assert page.get_by_label("Password").is_visible()
    finally:
        context.close()
    assert not errors, errors
    mine = [e for e in service.audit(actor="olivia") if e["action"] in ("ui.login", "ui.logout")]
    assert [e["action"] for e in mine][-2:] == ["ui.login", "ui.logout"]
    assert all(e["actor_name"] == "Olivia Officer" and e["actor_kind"] == "person" for e in mine)
