"""``/ui``: server-rendered pages for people (Jinja2; no front-end build, no CDN).

- ``/ui/login``: to the hospital's identity provider when one is configured (OpenID Connect, see
  ``services.auth.oidc``; back at ``/ui/oidc/callback``), else a local username/password; an API key
  works in both cases. ``/ui/logout`` ends the session here and, RP-initiated, at the provider.
- ``/ui/audit``: the compliance officer's page: filters, a paginated table (newest first), export
  buttons (integrity CSV/NDJSON, per-record access report) and the hash chain's verification result
- ``/ui/records/{record_id}``: the clinician's review page: the record's masked media; a masked video
  plays beside plots of its eye metrics (drawn by ``static/review.js``) and its per-video summary
- ``/ui/artifacts/{id}/file`` streams a masked file with HTTP Range support (video seeking) through
  the service itself, so pages load nothing from another origin (CSP ``'self'`` only)

Every page and file is behind the same API keys (``Authorization: Bearer``) or the session, the same
scopes as the JSON API, and the same audit trail (reads of the log, media and metrics are audited).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from services.artifacts.models import Artifact
from services.audit import service as audit
from services.audit.models import AuditEvent
from services.audit.service import Actor
from services.auth import oidc, passwords
from services.auth.deps import audit_ctx, authenticate, provider_of, settings_of, throttle_source
from services.auth.discovery import ProviderUnavailable
from services.auth.service import Principal, verify_key
from services.db import get_sessionmaker, session_scope, utcnow
from services.media import service as media_service
from services.problems import Problem
from services.reports import routes as reports
from services.settings import Settings
from services.storage import ObjectNotFound, get_store
from services.web import session as websession
from services.web.templating import STATIC, render

router = APIRouter(prefix="/ui", tags=["web"], include_in_schema=False)

PAGE_SIZE = 50
VERIFY_TTL_S = 60.0
OUTCOMES = ("success", "denied", "rejected", "failure")
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
STATIC_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}


def secure_headers(response: Response, cache: str = "no-store") -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"  # paths carry record IDs
    response.headers["Cache-Control"] = cache
    return response


# --- who is asking --------------------------------------------------------------------------------


@dataclass
class Viewer:
    principal: Principal
    session: websession.Session | None  # None when authenticated by a bearer key

    def can(self, scope: str) -> bool:
        return self.principal.allows(scope)


class LoginRequired(Exception):
    pass


def viewer(request: Request) -> Viewer:
    """Bearer key first (same checks as the API), else the session cookie."""
    if request.headers.get("authorization"):
        return Viewer(authenticate(request), None)
    settings = settings_of(request)
    sess = websession.read(settings, request.cookies.get(websession.COOKIE))
    principal = websession.principal_for(settings, sess) if sess else None
    if sess is None or principal is None:
        raise LoginRequired()
    allowed, retry, _first = request.app.state.rate_limiter.hit(principal.client_id)
    if not allowed:
        raise Problem(429, "Rate limit exceeded.", slug="rate-limited", headers={"Retry-After": str(retry)})
    request.state.principal = principal
    return Viewer(principal, sess)


def _deny(request: Request, who: Viewer, scope: str) -> Response:
    with session_scope(settings_of(request)) as session:
        audit.append(
            session,
            audit_ctx(request, who.principal),
            "request.denied",
            audit.Outcome.denied,
            detail={
                "status": 403,
                "reason": f"missing scope {scope}",
                "method": request.method,
                "route": getattr(request.scope.get("route"), "path", "unmatched"),
            },
        )
    html = render(
        "message.html",
        title="Not allowed",
        who=who,
        csrf=_csrf(request, who),
        message=f"Your API key lacks the scope {scope} needed for this page.",
    )
    return secure_headers(HTMLResponse(html, status_code=403))


def _login_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return secure_headers(RedirectResponse(f"/ui/login?next={quote(target, safe='')}", status_code=303))


def _csrf(request: Request, who: Viewer | None) -> str:
    if who is None or who.session is None:
        return ""
    return websession.csrf_token(settings_of(request), who.session)


def _same_origin(request: Request) -> bool:
    """POSTs must come from our own pages (SameSite=Strict already keeps the cookie off others).
    Browsers send Sec-Fetch-Site, which pages cannot forge; Origin is the fallback (it reads "null"
    under our no-referrer policy, so it cannot be the primary check)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("origin")
    return origin is None or origin == str(request.base_url).rstrip("/")


def _safe_next(value: str | None) -> str:
    if value and value.startswith("/ui/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/ui/"


def _page(request: Request, name: str, who: Viewer | None, status: int = 200, **ctx: Any) -> Response:
    html = render(name, who=who, csrf=_csrf(request, who), **ctx)
    return secure_headers(HTMLResponse(html, status_code=status))


# --- static assets --------------------------------------------------------------------------------

_STATIC_FILES = {p.name: p for p in STATIC.iterdir() if p.suffix in STATIC_TYPES} if STATIC.is_dir() else {}


@router.get("/static/{name}")
def static_file(name: str) -> Response:
    path = _STATIC_FILES.get(name)
    if path is None:
        raise Problem(404, "No such file.", slug="not-found")
    return secure_headers(
        Response(path.read_bytes(), media_type=STATIC_TYPES[path.suffix]), cache="public, max-age=300"
    )


# --- login / logout -------------------------------------------------------------------------------


@router.get("")
@router.get("/")
def home(request: Request) -> Response:
    try:
        who = viewer(request)
    except LoginRequired:
        return _login_redirect(request)
    target = "/ui/audit" if who.can("audit:read") else "/ui/records"
    return secure_headers(RedirectResponse(target, status_code=303))


def _login_page(request: Request, status: int = 200, **ctx: Any) -> Response:
    ctx.setdefault("next", "/ui/")
    ctx.setdefault("error", None)
    return _page(request, "login.html", None, status=status, oidc=provider_of(request) is not None, **ctx)


def _audit_sign_in(
    request: Request,
    action: str,
    outcome: str,
    actor: Actor | None = None,
    principal: Principal | None = None,
    **detail: Any,
) -> None:
    ctx = audit_ctx(request, principal)
    if actor is not None:
        ctx = replace(ctx, actor=actor)
    with session_scope(settings_of(request)) as session:
        audit.append(session, ctx, action, outcome, detail=detail)


def _redirect_uri(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/ui/oidc/callback"


def _refuse_sign_in(request: Request, refused: oidc.SignInRefused) -> Response:
    """The person sees why (a clear page, no provider error codes); the audit log gets the reason."""
    _audit_sign_in(
        request,
        "ui.login",
        audit.Outcome.denied,
        actor=refused.actor,
        status=refused.status,
        reason=refused.reason,
        method="oidc",
    )
    html = render("message.html", title="Sign-in refused", who=None, csrf="", message=refused.message)
    return secure_headers(HTMLResponse(html, status_code=refused.status))


@router.get("/login")
def login_form(
    request: Request, next: str | None = None, signed_out: bool = False, local: bool = False
) -> Response:
    """With an identity provider: straight to it (unless the person was just signed out, or asks for
    the key form with ``?local=1``); without one: the password and API-key forms."""
    provider = provider_of(request)
    if next and _safe_next(next) != next:
        # an attempt to bounce a person through our sign-in to another site (open redirect)
        throttle_source(request)
        _audit_sign_in(
            request, "ui.login", audit.Outcome.denied, status=403, reason="unsafe return URL", next=next[:200]
        )
        return _page(
            request,
            "message.html",
            None,
            status=403,
            title="Sign-in refused",
            message="The sign-in link carried a return address outside DigitalMask, so it was not followed. "
            "Open DigitalMask directly and sign in from there.",
        )
    target = _safe_next(next)
    if provider is None or signed_out or local:
        return _login_page(request, next=target, signed_out=signed_out)
    settings = settings_of(request)
    throttle_source(request)  # each start writes a row: bounded per source address
    try:
        with session_scope(settings) as session:
            _state, url = oidc.begin(session, settings, provider, _redirect_uri(request), target)
    except ProviderUnavailable:
        return _page(
            request,
            "message.html",
            None,
            status=503,
            title="Sign-in unavailable",
            message="The hospital's identity provider cannot be reached. Try again in a few minutes.",
        )
    return secure_headers(RedirectResponse(url, status_code=303))


@router.get("/oidc/callback")
def oidc_callback(
    request: Request,
    state: str = "",
    code: str = "",
    error: str = "",
    error_description: str = "",
) -> Response:
    """The provider sends the person back here. The answer is a small page that moves on to the
    return URL itself, so that navigation starts on our own site and the SameSite=Strict session
    cookie goes with it (a redirect chain begun at the provider would count as cross-site)."""
    settings = settings_of(request)
    provider = provider_of(request)
    if provider is None:
        raise Problem(404, "Sign-in with an identity provider is not configured.", slug="not-found")
    throttle_source(request)
    with session_scope(settings) as session:
        login = oidc.take_login(session, state)
    if login is None:
        return _refuse_sign_in(
            request,
            oidc.SignInRefused(
                "unknown, expired or replayed state",
                "This sign-in link has already been used or has expired. Please sign in again.",
            ),
        )
    if error or not code:
        return _refuse_sign_in(
            request,
            oidc.SignInRefused(
                f"provider returned an error ({error[:60] or 'no code'})",
                "The identity provider did not sign you in. Please try again.",
            ),
        )
    try:
        person = oidc.finish(settings, provider, login, code, _redirect_uri(request))
    except oidc.SignInRefused as refused:
        return _refuse_sign_in(request, refused)
    except ProviderUnavailable:
        return _refuse_sign_in(
            request,
            oidc.SignInRefused(
                "identity provider unavailable", "The identity provider cannot be reached.", status=503
            ),
        )
    sess = websession.start_person(
        settings, person.actor, person.tenant, person.scopes, person.expires_at, person.id_token
    )
    _audit_sign_in(
        request,
        "ui.login",
        audit.Outcome.success,
        actor=person.actor,
        method="oidc",
        roles=person.roles[:20],
        scopes=sorted(person.scopes),
    )
    html = render("redirect.html", target=person.next_url, message="Signed in.")
    response = HTMLResponse(html)
    websession.set_cookie(request, response, sess)
    return secure_headers(response)


@router.post("/login/password")
def login_password(
    request: Request,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/ui/",
) -> Response:
    """Local sign-in (embedded default, no identity provider): a user made with ``dmask users create``."""
    settings = settings_of(request)
    target = _safe_next(next)
    if not _same_origin(request):
        raise Problem(403, "Cross-site form submission refused.", slug="forbidden")
    if provider_of(request) is not None:
        raise Problem(404, "Sign in with the hospital's identity provider.", slug="not-found")
    throttle_source(request)
    with session_scope(settings) as session:
        user = passwords.verify_user(session, username.strip(), password)
        session.expunge_all()
    if user is None:
        _audit_sign_in(
            request,
            "ui.login",
            audit.Outcome.denied,
            status=401,
            reason="invalid username or password",
            method="password",
            username=username.strip()[:64],
        )
        error = "That username and password were not accepted."
        return _login_page(request, status=401, next=target, error=error)
    actor = Actor("person", user.username, user.display_name, passwords.LOCAL_ISSUER, None)
    expires = utcnow() + timedelta(seconds=websession.SESSION_TTL_S)
    sess = websession.start_person(settings, actor, "local", frozenset(user.scopes), expires)
    _audit_sign_in(request, "ui.login", audit.Outcome.success, actor=actor, method="password")
    response = RedirectResponse(target, status_code=303)
    websession.set_cookie(request, response, sess)
    return secure_headers(response)


@router.post("/login")
def login(
    request: Request, api_key: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "/ui/"
) -> Response:
    settings = settings_of(request)
    target = _safe_next(next)
    if not _same_origin(request):
        raise Problem(403, "Cross-site form submission refused.", slug="forbidden")
    throttle_source(request)  # every form post counts: the form is a key-guessing surface too
    with session_scope(settings) as session:
        principal = verify_key(session, api_key.strip()) if api_key.strip() else None
        audit.append(
            session,
            audit_ctx(request, principal),
            "ui.login",
            audit.Outcome.success if principal else audit.Outcome.denied,
            detail={} if principal else {"status": 401, "reason": "invalid credentials"},
        )
    if principal is None:
        return _login_page(
            request, status=401, next=target, error="That API key was not accepted. Check it and try again."
        )
    sess = websession.issue(settings, principal.key_id)
    response = RedirectResponse(target, status_code=303)
    websession.set_cookie(request, response, sess)
    return secure_headers(response)


@router.post("/logout")
def logout(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
    """Ends the session here, then, for a person signed in at the provider, signs them out there too
    (RP-initiated logout) when the provider offers it; they come back to the signed-out page."""
    settings = settings_of(request)
    sess = websession.read(settings, request.cookies.get(websession.COOKIE))
    provider = provider_of(request)
    # with a provider, plain /ui/login would send the person straight back to it
    target = "/ui/login?signed_out=1" if provider is not None else "/ui/login"
    if sess is not None:
        if not (_same_origin(request) and websession.check_csrf(settings, sess, csrf)):
            raise Problem(403, "Invalid form token.", slug="forbidden")
        principal = websession.principal_for(settings, sess)
        ended = websession.end_person(settings, sess)
        with session_scope(settings) as session:
            audit.append(session, audit_ctx(request, principal), "ui.logout")
        if ended is not None and ended.id_token and provider is not None:
            after = str(request.base_url).rstrip("/") + target
            at_provider = oidc.logout_url(provider, ended.id_token, settings.oidc_client_id, after)
            if at_provider:
                # a page that moves on by itself, not a 303: our CSP's form-action 'self' rightly
                # stops a form post from being redirected to another origin
                html = render("redirect.html", target=at_provider, message="Signed out here.")
                page = HTMLResponse(html)
                websession.clear_cookie(request, page)
                return secure_headers(page)
    response = RedirectResponse(target, status_code=303)
    websession.clear_cookie(request, response)
    return secure_headers(response)


# --- the audit page -------------------------------------------------------------------------------


@dataclass
class ChainStatus:
    ok: bool
    checked: int
    first_broken: int | None
    reason: str | None
    at: float


_chain_cache: dict[str, ChainStatus] = {}
_chain_lock = threading.Lock()


def chain_status(request: Request, principal: Principal, force: bool = False) -> ChainStatus:
    """The chain verification result, recomputed at most every VERIFY_TTL_S (a full walk of the log
    per page view would not scale); the verify button forces a fresh walk. Each walk is audited."""
    settings = settings_of(request)
    url = settings.sqlalchemy_url
    with _chain_lock:
        cached = _chain_cache.get(url)
        if cached and not force and time.time() - cached.at < VERIFY_TTL_S:
            return cached
        with get_sessionmaker(settings)() as session:
            result = audit.verify(session)
        with session_scope(settings) as session:
            audit.append(
                session,
                audit_ctx(request, principal),
                "audit.verify",
                audit.Outcome.success if result.ok else audit.Outcome.failure,
                detail={"checked": result.checked, "first_broken": result.first_broken, "api": "ui"},
            )
        status = ChainStatus(result.ok, result.checked, result.first_broken, result.reason, time.time())
        _chain_cache[url] = status
        return status


@dataclass
class AuditQuery:
    record: str = ""
    client: str = ""
    action: str = ""
    outcome: str = ""
    from_: str = ""
    to: str = ""
    actor: str = ""

    def params(self) -> dict[str, str]:
        raw = {
            "record": self.record,
            "client": self.client,
            "actor": self.actor,
            "action": self.action,
            "outcome": self.outcome,
            "from": self.from_,
            "to": self.to,
        }
        return {k: v for k, v in raw.items() if v}

    def filter(self) -> audit.AuditFilter:
        return audit.AuditFilter(
            record_id=self.record or None,
            client_id=self.client or None,
            actor=self.actor or None,
            action=self.action or None,
            outcome=self.outcome or None,
            since=reports.parse_time(self.from_, "from"),
            until=reports.parse_time(self.to, "to", end=True),
        )


def _page_of_events(
    settings: Settings, flt: audit.AuditFilter, before: int | None, after: int | None
) -> tuple[list[AuditEvent], bool, bool]:
    """Newest first. Returns (rows, newer events exist, older events exist)."""
    stmt = select(AuditEvent)
    for cond, value in (
        (AuditEvent.record_id == flt.record_id, flt.record_id),
        (AuditEvent.client_id == flt.client_id, flt.client_id),
        (AuditEvent.actor_sub == flt.actor, flt.actor),
        (AuditEvent.action == flt.action, flt.action),
        (AuditEvent.outcome == flt.outcome, flt.outcome),
    ):
        if value is not None:
            stmt = stmt.where(cond)
    if flt.since is not None:
        stmt = stmt.where(AuditEvent.ts >= flt.since)
    if flt.until is not None:
        stmt = stmt.where(AuditEvent.ts < flt.until)
    with get_sessionmaker(settings)() as session:
        if after is not None:
            rows = list(
                session.execute(
                    stmt.where(AuditEvent.id > after).order_by(AuditEvent.id).limit(PAGE_SIZE + 1)
                ).scalars()
            )
            newer = len(rows) > PAGE_SIZE
            rows = list(reversed(rows[:PAGE_SIZE]))
            older = (
                bool(rows)
                and session.execute(stmt.where(AuditEvent.id < rows[-1].id).limit(1)).first() is not None
            )
        else:
            base = stmt.where(AuditEvent.id < before) if before is not None else stmt
            rows = list(session.execute(base.order_by(AuditEvent.id.desc()).limit(PAGE_SIZE + 1)).scalars())
            older = len(rows) > PAGE_SIZE
            rows = rows[:PAGE_SIZE]
            newer = (
                before is not None
                and bool(rows)
                and session.execute(stmt.where(AuditEvent.id > rows[0].id).limit(1)).first() is not None
            )
        session.expunge_all()
    return rows, newer, older


@router.get("/audit")
def audit_page(
    request: Request,
    record: str = "",
    client: str = "",
    action: str = "",
    outcome: str = "",
    from_: Annotated[str, Query(alias="from")] = "",
    to: str = "",
    before: int | None = None,
    after: int | None = None,
    actor: str = "",
) -> Response:
    try:
        who = viewer(request)
    except LoginRequired:
        return _login_redirect(request)
    if not who.can("audit:read"):
        return _deny(request, who, "audit:read")
    settings = settings_of(request)
    fields = (record, client, action, outcome, from_, to, actor)
    q = AuditQuery(*(value.strip() for value in fields))
    error = None
    try:
        flt = q.filter()
    except Problem as exc:
        error, flt = exc.detail, audit.AuditFilter(record_id=q.record or None)
    if q.outcome and q.outcome not in OUTCOMES:
        error, flt.outcome = "Unknown outcome.", None
    rows, newer, older = _page_of_events(settings, flt, before, after)
    with get_sessionmaker(settings)() as session:
        actions = sorted(session.execute(select(AuditEvent.action).distinct()).scalars())
    with session_scope(settings) as session:
        audit.append(
            session,
            audit_ctx(request, who.principal),
            "audit.read",
            record_id=q.record or None,
            detail={"api": "ui", "filters": q.params(), "returned": len(rows)},
        )
    chain = chain_status(request, who.principal)
    params = q.params()
    return _page(
        request,
        "audit.html",
        who,
        q=q,
        rows=rows,
        actions=actions,
        outcomes=OUTCOMES,
        error=error,
        chain=chain,
        chain_checked_at=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(chain.at)),
        newer_url=f"/ui/audit?{urlencode({**params, 'after': rows[0].id})}" if newer and rows else None,
        older_url=f"/ui/audit?{urlencode({**params, 'before': rows[-1].id})}" if older and rows else None,
        first_url=f"/ui/audit?{urlencode(params)}" if before is not None or after is not None else None,
        export_query=urlencode(params),
        report_query=urlencode({k: v for k, v in params.items() if k in ("from", "to")}),
    )


@router.post("/audit/verify")
def audit_verify(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
    try:
        who = viewer(request)
    except LoginRequired:
        return _login_redirect(request)
    if who.session is not None and not (
        _same_origin(request) and websession.check_csrf(settings_of(request), who.session, csrf)
    ):
        raise Problem(403, "Invalid form token.", slug="forbidden")
    if not who.can("audit:read"):
        return _deny(request, who, "audit:read")
    chain_status(request, who.principal, force=True)
    return secure_headers(RedirectResponse("/ui/audit#chain", status_code=303))


@router.get("/audit/export")
async def audit_export(
    request: Request,
    format: Literal["csv", "ndjson"] = "csv",
    record: str = "",
    client: str = "",
    action: str = "",
    outcome: str = "",
    from_: Annotated[str, Query(alias="from")] = "",
    to: str = "",
    actor: str = "",
) -> Response:
    try:
        who = await run_in_threadpool(viewer, request)
    except LoginRequired:
        return _login_redirect(request)
    if not who.can("audit:read"):
        return await run_in_threadpool(_deny, request, who, "audit:read")
    settings = settings_of(request)
    flt = AuditQuery(record, client, action, outcome, from_, to, actor).filter()
    filters = reports.filter_dict(flt)
    head = await run_in_threadpool(
        reports.start_export,
        settings,
        audit_ctx(request, who.principal),
        "audit.export",
        flt,
        {"filters": filters, "format": format, "integrity": True, "api": "ui"},
    )
    return reports.stream_export(settings, flt, format, head, filters, "audit")


@router.get("/records/{record_id}/access-report")
async def access_report(
    request: Request,
    record_id: str,
    format: Literal["csv", "html"] = "html",
    from_: Annotated[str | None, Query(alias="from")] = None,
    to: str | None = None,
) -> Response:
    try:
        who = await run_in_threadpool(viewer, request)
    except LoginRequired:
        return _login_redirect(request)
    if not who.can("audit:read"):
        return await run_in_threadpool(_deny, request, who, "audit:read")
    return await reports.access_report(request, record_id, who.principal, format, from_ or None, to or None)


# --- the review page ------------------------------------------------------------------------------


@router.get("/records")
def records_lookup(request: Request, record: str = "") -> Response:
    try:
        who = viewer(request)
    except LoginRequired:
        return _login_redirect(request)
    if not who.can("media:read"):
        return _deny(request, who, "media:read")
    record = record.strip()
    if record:
        try:
            media_service.validate_record_id(record)
        except Problem:
            return _page(
                request,
                "records.html",
                who,
                status=422,
                record=record,
                error="A record ID is 1–64 letters, digits, dots, dashes or underscores.",
            )
        return secure_headers(RedirectResponse(f"/ui/records/{quote(record)}", status_code=303))
    return _page(request, "records.html", who, record="", error=None)


def _metrics(settings: Settings, art: Artifact) -> dict[str, Any] | None:
    try:
        doc = json.loads(get_store(settings).get_bytes("artifacts", art.metrics_key))
    except (ObjectNotFound, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


@router.get("/records/{record_id}")
def review_page(request: Request, record_id: str) -> Response:
    try:
        who = viewer(request)
    except LoginRequired:
        return _login_redirect(request)
    if not who.can("media:read"):
        return _deny(request, who, "media:read")
    settings = settings_of(request)
    media_service.validate_record_id(record_id)
    with session_scope(settings) as session:
        rows = media_service.record_media(session, record_id, who.principal)
        session.expunge_all()
    items = []
    for media, job, arts in rows:
        shown = []
        for art in arts:
            metrics = _metrics(settings, art)
            with session_scope(settings) as session:
                audit.append(
                    session,
                    audit_ctx(request, who.principal),
                    "artifact.metrics_read",
                    record_id=art.record_id,
                    media_id=art.media_id,
                    job_id=art.job_id,
                    artifact_id=art.id,
                    detail={"api": "ui", "found": metrics is not None},
                )
            summary = (metrics or {}).get("summary") or {}
            shown.append({"art": art, "metrics": metrics, "summary": summary, "duration": _duration(metrics)})
        items.append({"media": media, "job": job, "artifacts": shown})
    with session_scope(settings) as session:
        audit.append(
            session,
            audit_ctx(request, who.principal),
            "media.list",
            record_id=record_id,
            detail={"items": len(rows), "api": "ui"},
        )
    return _page(request, "review.html", who, record_id=record_id, items=items)


def _duration(metrics: dict[str, Any] | None) -> float | None:
    if not metrics or not metrics.get("fps") or not metrics.get("frames"):
        return None
    return float(metrics["frames"]) / float(metrics["fps"])


def _load_artifact(request: Request, artifact_id: str, who: Viewer) -> Artifact:
    from services.artifacts.routes import _load  # the owner's tenant check (404 + audited denial)

    return _load(request, artifact_id, who.principal)


RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """A single ``bytes=a-b`` / ``bytes=a-`` / ``bytes=-n`` range as (start, end inclusive)."""
    if not header:
        return None
    m = RANGE_RE.match(header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        raise Problem(
            416,
            "Unsupported range.",
            slug="range-not-satisfiable",
            headers={"Content-Range": f"bytes */{size}"},
        )
    if m.group(1):
        start = int(m.group(1))
        end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
    else:
        start, end = max(0, size - int(m.group(2))), size - 1
    if start >= size or end < start:
        raise Problem(
            416,
            "Range not satisfiable.",
            slug="range-not-satisfiable",
            headers={"Content-Range": f"bytes */{size}"},
        )
    return start, end


@router.get("/artifacts/{artifact_id}/file")
def artifact_file(request: Request, artifact_id: str) -> Response:
    try:
        who = viewer(request)
    except LoginRequired:
        raise Problem(401, "Log in first.", slug="unauthenticated") from None
    if not who.can("media:read"):
        _deny(request, who, "media:read")
        raise Problem(403, "This key lacks the scope media:read.", slug="forbidden")
    art = _load_artifact(request, artifact_id, who)
    settings = settings_of(request)
    store = get_store(settings)
    size = art.size_bytes
    rng = parse_range(request.headers.get("range"), size)
    start, end = rng if rng else (0, size - 1)
    try:
        fh = store.open_seekable("artifacts", art.object_key)
    except ObjectNotFound:
        raise Problem(410, "The artifact's file is no longer stored.", slug="gone") from None
    with session_scope(settings) as session:
        audit.append(
            session,
            audit_ctx(request, who.principal),
            "artifact.read",
            record_id=art.record_id,
            media_id=art.media_id,
            job_id=art.job_id,
            artifact_id=art.id,
            detail={"delivery": "ui", "range": f"{start}-{end}" if rng else "full"},
        )

    def body() -> Iterator[bytes]:
        with fh:
            fh.seek(start)
            left = end - start + 1
            while left > 0:
                chunk = fh.read(min(left, 1 << 18))
                if not chunk:
                    return
                left -= len(chunk)
                yield chunk

    headers = {
        "Accept-Ranges": "bytes",
        "Content-Length": str(end - start + 1),
        "ETag": f'"{art.sha256}"',
        "Content-Disposition": "inline",
    }
    if rng:
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    response = StreamingResponse(
        body(), status_code=206 if rng else 200, media_type=art.mime_type, headers=headers
    )
    return secure_headers(response, cache="private, no-store")


@router.get("/artifacts/{artifact_id}/metrics")
def artifact_metrics(request: Request, artifact_id: str) -> Response:
    try:
        who = viewer(request)
    except LoginRequired:
        raise Problem(401, "Log in first.", slug="unauthenticated") from None
    if not who.can("media:read"):
        _deny(request, who, "media:read")
        raise Problem(403, "This key lacks the scope media:read.", slug="forbidden")
    art = _load_artifact(request, artifact_id, who)
    settings = settings_of(request)
    metrics = _metrics(settings, art)
    if metrics is None:
        raise Problem(410, "The artifact's metrics are no longer stored.", slug="gone")
    with session_scope(settings) as session:
        audit.append(
            session,
            audit_ctx(request, who.principal),
            "artifact.metrics_read",
            record_id=art.record_id,
            media_id=art.media_id,
            job_id=art.job_id,
            artifact_id=art.id,
            detail={"api": "ui"},
        )
    return secure_headers(JSONResponse(metrics), cache="private, no-store")
