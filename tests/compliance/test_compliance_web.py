"""The web pages: session login, the audit page, the review page. HTTP-level checks first, then a real
headless Chromium (Debian's, driven by Playwright; no browser download) that logs in, filters,
exports, opens a record, plays the masked video and checks the plots; it saves the screenshots the
README links (docs/screenshots/audit.png, review.png)."""

from __future__ import annotations

import contextlib
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from compliance_support import Service, Uploads
from service_support import REPO

from services.reports.verify import verify_export

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
SCREENSHOTS = REPO / "docs" / "screenshots"


@contextlib.contextmanager
def login(service: Service, key: str) -> Iterator[httpx.Client]:
    with service.http(follow_redirects=False) as c:
        r = c.post("/ui/login", data={"api_key": key, "next": "/ui/audit"})
        assert r.status_code == 303, r.text
        yield c


def test_login_sets_a_signed_httponly_strict_cookie(service: Service, auditor: str) -> None:
    with service.http(follow_redirects=False) as c:
        r = c.get("/ui/audit?record=X")
        assert r.status_code == 303 and r.headers["location"] == "/ui/login?next=%2Fui%2Faudit%3Frecord%3DX"
        page = c.get("/ui/login")
        assert page.status_code == 200 and '<label for="api_key">API key</label>' in page.text
        bad = c.post("/ui/login", data={"api_key": "dmk_0000000000000000_" + "x" * 43})
        assert (
            bad.status_code == 401
            and 'role="alert"' in bad.text
            and "dmask_session" not in bad.headers.get("set-cookie", "")
        )
        r = c.post("/ui/login", data={"api_key": auditor, "next": "/ui/audit?record=X"})
        assert r.status_code == 303 and r.headers["location"] == "/ui/audit?record=X"
        cookie = r.headers["set-cookie"]
        for attr in ("HttpOnly", "SameSite=strict", "Path=/ui"):
            assert attr.lower() in cookie.lower(), cookie
        value = cookie.split(";")[0].split("=", 1)[1]
        assert auditor.split("_")[2] not in value  # the key's secret never travels in the cookie
        page = c.get("/ui/audit")
        assert page.status_code == 200 and "Hash chain" in page.text
        csp = page.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert (
            page.headers["referrer-policy"] == "no-referrer" and page.headers["cache-control"] == "no-store"
        )
        assert not re.search(r"""(src|href|action)=["']?(https?:)?//""", page.text), "no external assets"
        # a tampered cookie is no session
        c.cookies.set("dmask_session", value[:-2] + ("AA" if not value.endswith("AA") else "BB"), path="/ui")
        assert c.get("/ui/audit").status_code == 303


def test_logout_needs_the_form_token_and_cross_site_posts_are_refused(service: Service, auditor: str) -> None:
    with login(service, auditor) as c:
        assert c.post("/ui/logout", data={"csrf": "wrong"}).status_code == 403
        token = re.search(r'name="csrf" value="([^"]+)"', c.get("/ui/audit").text)
        assert token
        evil = c.post("/ui/logout", data={"csrf": token.group(1)}, headers={"Origin": "http://evil.example"})
        assert evil.status_code == 403
        out = c.post("/ui/logout", data={"csrf": token.group(1)})
        assert out.status_code == 303 and out.headers["location"] == "/ui/login"
        assert 'dmask_session=""' in out.headers["set-cookie"] or "Max-Age=0" in out.headers["set-cookie"]
        c.cookies.clear()
        assert c.get("/ui/audit").status_code == 303
    with service.http(follow_redirects=False) as anon:
        cross = anon.post("/ui/login", data={"api_key": auditor}, headers={"Sec-Fetch-Site": "cross-site"})
        assert cross.status_code == 403


def test_scopes_bearer_keys_and_revocation(service: Service, auditor: str, writer: str) -> None:
    with service.http(writer, follow_redirects=False) as c:  # a bearer key works on the pages too
        assert c.get("/ui/records").status_code == 200
        denied = c.get("/ui/audit")
        assert denied.status_code == 403 and "audit:read" in denied.text
    with service.http(auditor, follow_redirects=False) as c:
        assert c.get("/ui/records").status_code == 403
        assert c.get("/ui/").headers["location"] == "/ui/audit"
    from services.audit.service import AuditContext
    from services.auth.service import create_key, revoke_key
    from services.db import session_scope

    with session_scope(service.settings) as s:
        row, key = create_key(s, "temp-officer", ["audit:read"], AuditContext(request_id="cli:test"))
    with login(service, key) as c:
        assert c.get("/ui/audit").status_code == 200
        with session_scope(service.settings) as s:
            revoke_key(s, row.id, AuditContext(request_id="cli:test"))
        assert c.get("/ui/audit").status_code == 303  # revoking the key ends its sessions
    with service.http(auditor) as c:
        logins = c.get("/v1/audit", params={"action": "ui.login", "client": "temp-officer"}).json()["items"]
        assert logins and logins[0]["outcome"] == "success"


def test_static_assets_and_range_requests(
    service: Service, writer: str, reader_b: str, uploads: Uploads
) -> None:
    with service.http() as c:
        js = c.get("/ui/static/review.js")
        assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
        assert c.get("/ui/static/app.css").headers["content-type"].startswith("text/css")
        assert c.get("/ui/static/../routes.py").status_code == 404
    video = uploads.wait()["video"]
    art = video["artifact_id"]
    with service.http(writer) as c:
        whole = c.get(f"/ui/artifacts/{art}/file")
        assert whole.status_code == 200 and whole.headers["content-type"] == "video/mp4"
        assert whole.headers["accept-ranges"] == "bytes" and len(whole.content) > 1000
        part = c.get(f"/ui/artifacts/{art}/file", headers={"Range": "bytes=100-199"})
        assert part.status_code == 206 and part.content == whole.content[100:200]
        assert part.headers["content-range"] == f"bytes 100-199/{len(whole.content)}"
        tail = c.get(f"/ui/artifacts/{art}/file", headers={"Range": "bytes=-10"})
        assert tail.content == whole.content[-10:]
        bad = c.get(f"/ui/artifacts/{art}/file", headers={"Range": f"bytes={len(whole.content)}-"})
        assert bad.status_code == 416
        assert c.get(f"/ui/artifacts/{art}/metrics").json()["schema"] == "dmask.eye-metrics/1"
    with service.http(reader_b) as c:  # another clinic: not found, and the attempt is audited
        assert c.get(f"/ui/artifacts/{art}/file").status_code == 404
    with service.http() as c:
        assert c.get(f"/ui/artifacts/{art}/file").status_code == 401


# --- the browser ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.fail("Debian's chromium is required: apt-get install -y chromium chromium-driver")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def _login_page(browser: Any, service: Service, key: str, path: str) -> Any:
    context = browser.new_context(
        viewport={"width": 1360, "height": 900}, accept_downloads=True, base_url=service.url
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto(path)
    assert "/ui/login" in page.url  # not signed in yet: sent to the login page
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in with API key").click()
    page.wait_for_url(re.compile(re.escape(path.split("?")[0])))
    page.errors = errors
    return page


def _accessibility_basics(page: Any) -> None:
    facts = page.evaluate(
        """() => ({
            unlabelled: [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
                .filter(el => !el.labels || el.labels.length === 0).map(el => el.name || el.id),
            landmarks: ['header', 'nav', 'main', 'footer'].filter(t => document.querySelector(t)),
            imagesWithoutAlt: [...document.querySelectorAll('img')]
                .filter(i => !i.hasAttribute('alt')).length,
            lang: document.documentElement.lang,
            h1: document.querySelectorAll('h1').length,
        })"""
    )
    assert facts["unlabelled"] == [], facts
    assert facts["landmarks"] == ["header", "nav", "main", "footer"], facts
    assert facts["imagesWithoutAlt"] == 0 and facts["lang"] == "en" and facts["h1"] == 1, facts
    page.keyboard.press("Tab")  # the first stop is the skip link
    assert page.evaluate("document.activeElement.textContent") == "Skip to main content"


def test_browser_audit_page_filter_export_and_screenshot(
    browser: Any, service: Service, auditor: str, uploads: Uploads, tmp_path: Path
) -> None:
    page = _login_page(browser, service, auditor, "/ui/audit")
    try:
        assert page.get_by_test_id("chain-result").inner_text().startswith("All ")
        assert "intact" in page.locator("#chain-title").inner_text()
        _accessibility_basics(page)
        # filter by the record of the real uploads, with the keyboard-reachable form
        page.get_by_label("Record ID").fill(uploads.record_id)
        page.get_by_label("Outcome").select_option("success")
        page.get_by_role("button", name="Apply filters").click()
        page.wait_for_url(re.compile(r"record="))
        rows = page.locator("#audit-table tbody tr")
        assert rows.count() >= 3
        records = page.locator("#audit-table tbody tr td:nth-child(6)").all_inner_texts()
        assert set(records) == {uploads.record_id}
        assert {
            t.strip() for t in page.locator("#audit-table tbody tr td:nth-child(5)").all_inner_texts()
        } == {"success"}
        actions = page.locator("#audit-table tbody tr td:nth-child(4) small").all_inner_texts()
        assert "media.upload" in actions
        seqs = [int(s) for s in page.locator("#audit-table tbody tr td:nth-child(1)").all_inner_texts()]
        assert seqs == sorted(seqs, reverse=True)
        # export the filtered log from the page, then verify the file offline
        with page.expect_download() as dl:
            page.get_by_role("link", name="Export CSV").click()
        target = tmp_path / "ui-export.csv"
        dl.value.save_as(target)
        result = verify_export(target)
        assert result.ok and result.filters and result.filters["record"] == uploads.record_id
        # the per-record access report opens from the same filters
        with page.expect_download() as dl2:
            page.get_by_role("link", name="Access report (CSV)").click()
        dl2.value.save_as(tmp_path / "report.csv")
        assert verify_export(tmp_path / "report.csv").ok
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "audit.png"), full_page=True)
        # unfiltered: pagination links lead to older events and back
        page.goto("/ui/audit")
        if page.get_by_role("link", name="Older events →").count():
            page.get_by_role("link", name="Older events →").click()
            assert page.get_by_role("link", name="← Newer events").count() == 1
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url(re.compile(r"/ui/login"))
        assert page.errors == []
    finally:
        page.context.close()


def test_browser_review_page_plays_video_and_draws_plots(
    browser: Any, service: Service, writer: str, auditor: str, uploads: Uploads
) -> None:
    jobs = uploads.wait()
    page = _login_page(browser, service, writer, "/ui/records")
    try:
        page.get_by_label("Record ID").fill(uploads.record_id)
        page.get_by_role("button", name="Open record").click()
        page.wait_for_url(re.compile(re.escape(f"/ui/records/{uploads.record_id}")))
        _accessibility_basics(page)
        art = jobs["video"]["artifact_id"]
        plots = page.locator(f"#plots-{art}")
        plots.wait_for()
        page.wait_for_function(f"document.getElementById('plots-{art}').dataset.rendered === '3'")
        assert page.locator(f"#plots-{art} figure.plot").count() == 3
        assert page.locator(f"#plots-{art} path[data-eye]").count() == 6
        for d in page.locator(f"#plots-{art} path[data-eye]").evaluate_all(
            "ps => ps.map(p => p.getAttribute('d'))"
        ):
            assert d.startswith("M") and d.count("L") > 50  # a real trace over the 78 frames
        assert page.locator(f"#plots-{art} rect.blink").count() >= 3  # the blink, on each plot
        assert "blink" in (page.locator(f"#plots-{art} svg desc").first.text_content() or "").lower()
        # the masked H.264 video plays in Debian's Chromium
        state = page.evaluate(
            """async (id) => {
                const v = document.getElementById('video-' + id);
                v.muted = true;
                await v.play();
                const t0 = performance.now();
                while (v.currentTime < 0.6 && performance.now() - t0 < 15000) {
                    await new Promise(r => setTimeout(r, 100));
                }
                return {t: v.currentTime, w: v.videoWidth, err: v.error && v.error.code, paused: v.paused,
                        head: document.querySelector('#plots-' + id + ' line.playhead').getAttribute('x1')};
            }""",
            art,
        )
        assert state["t"] >= 0.6 and state["w"] > 0 and state["err"] is None, state
        assert float(state["head"]) > 48  # the playhead follows the video
        # keyboard: focus a plot, step with the arrow keys
        page.evaluate(f"document.getElementById('video-{art}').pause()")
        page.locator(f"#plots-{art} figure.plot").first.focus()
        before = page.evaluate(f"document.getElementById('video-{art}').currentTime")
        page.keyboard.press("Shift+ArrowRight")
        page.wait_for_function(f"document.getElementById('video-{art}').currentTime > {before + 0.5}")
        # the per-video summary
        assert "per minute" in page.locator(f"#summary-{art} [data-metric=blink-rate]").inner_text()
        assert page.locator(f"#summary-{art} [data-metric=asymmetry]").inner_text().endswith("mm")
        # livep_d0's subject glances about and has no nystagmus: no oscillation is claimed
        assert page.locator(f"#summary-{art} [data-metric=oscillation]").inner_text() == "none detected"
        # the masked photo too
        photo = jobs["photo"]["artifact_id"]
        assert page.evaluate(f"document.getElementById('photo-{photo}').naturalWidth") == 330
        # a still at the blink for the README
        page.evaluate(
            """async (id) => { const v = document.getElementById('video-' + id); v.currentTime = 2.66;
                await new Promise(r => v.addEventListener('seeked', r, {once: true})); }""",
            art,
        )
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "review.png"), full_page=True)
        assert page.errors == []
    finally:
        page.context.close()
    with service.http(auditor) as c:
        reads = c.get("/v1/audit", params={"record": uploads.record_id, "action": "artifact.read"}).json()
    assert any(e["detail"].get("delivery") == "ui" for e in reads["items"])  # playback is audited
