"""Sessions for people: a signed cookie naming the API key they logged in with, or their person
session (signed in at the identity provider, or locally with a password).

The cookie holds ``{key id or person session id, expiry, nonce}`` and an HMAC-SHA256 over it with a
key derived from ``settings.hmac_key``; never the API key or a token itself. Every request re-loads
the key or session row, so revoking the key (``dmask keys revoke``) ends its sessions at once, and a
person's session ends at sign-out or when their token expires (``person_sessions.expires_at``).
The cookie is HttpOnly, SameSite=Strict, scoped to ``/ui`` and Secure whenever the page was served
over HTTPS. Forms that change state also carry a CSRF token derived from the session (belt and
braces next to SameSite=Strict).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from fastapi import Request, Response
from sqlalchemy import delete

from services.audit.service import Actor
from services.auth.models import ApiKey, LocalUser, PersonSession
from services.auth.passwords import LOCAL_ISSUER
from services.auth.service import Principal
from services.db import session_scope, utcnow
from services.settings import Settings

COOKIE = "dmask_session"
COOKIE_PATH = "/ui"
SESSION_TTL_S = 8 * 3600


def _key(settings: Settings) -> bytes:
    master = settings.hmac_key.get_secret_value().encode("utf-8")
    return hmac.new(master, b"dmask/ui-session/v1", hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Session:
    key_id: str | None
    expires: int
    token: str  # the cookie value (CSRF tokens are derived from it)
    person: str | None = None  # person_sessions.id

    @property
    def max_age(self) -> int:
        return max(0, self.expires - int(time.time()))


def issue(
    settings: Settings,
    key_id: str | None,
    now: float | None = None,
    person: str | None = None,
    expires_at: float | None = None,
) -> Session:
    expires = int((now or time.time()) + SESSION_TTL_S)
    if expires_at is not None:
        expires = min(expires, int(expires_at))
    data = {"e": expires, "n": secrets.token_hex(8), **({"p": person} if person else {"k": key_id})}
    payload = _b64(json.dumps(data).encode())
    sig = _b64(hmac.new(_key(settings), payload.encode(), hashlib.sha256).digest())
    return Session(key_id, expires, f"{payload}.{sig}", person)


def read(settings: Settings, token: str | None, now: float | None = None) -> Session | None:
    if not token or token.count(".") != 1 or len(token) > 512:
        return None
    payload, sig = token.split(".")
    expected = _b64(hmac.new(_key(settings), payload.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(sig, expected):
        return None
    try:
        data = json.loads(_unb64(payload))
        expires = int(data["e"])
        key_id = str(data["k"]) if "k" in data else None
        person = str(data["p"]) if "p" in data else None
    except (ValueError, KeyError, TypeError):
        return None
    if expires < (now or time.time()) or (key_id is None) == (person is None):
        return None
    return Session(key_id, expires, token, person)


def start_person(
    settings: Settings,
    actor: Actor,
    tenant: str,
    scopes: frozenset[str],
    expires_at: datetime,
    id_token: str | None = None,
) -> Session:
    """A person's session, ending no later than ``expires_at`` (their token's expiry)."""
    row = PersonSession(
        id=secrets.token_hex(16),
        subject=actor.subject,
        name=actor.name,
        issuer=actor.issuer or "",
        client=actor.client,
        tenant=tenant,
        scopes=sorted(scopes),
        id_token=id_token,
        expires_at=expires_at,
    )
    with session_scope(settings) as db:
        # sessions over for a day go (they hold ID tokens, which name people); the audit keeps the record
        db.execute(delete(PersonSession).where(PersonSession.expires_at < utcnow() - timedelta(days=1)))
        db.add(row)
    return issue(settings, None, person=row.id, expires_at=expires_at.timestamp())


def person_row(settings: Settings, session: Session) -> PersonSession | None:
    """The person session, if it has not ended or expired."""
    if session.person is None:
        return None
    with session_scope(settings) as db:
        row = db.get(PersonSession, session.person)
        if row is None or row.ended_at is not None or row.expires_at <= utcnow():
            return None
        if row.issuer == LOCAL_ISSUER:  # a disabled local user's sessions end at once
            user = db.get(LocalUser, row.subject)
            if user is None or user.disabled_at is not None:
                return None
        db.expunge(row)
        return row


def end_person(settings: Settings, session: Session) -> PersonSession | None:
    """Sign-out: the session row ends now (a copied cookie is worthless from here on)."""
    if session.person is None:
        return None
    with session_scope(settings) as db:
        row = db.get(PersonSession, session.person)
        if row is not None and row.ended_at is None:
            row.ended_at = utcnow()
            db.flush()
            db.expunge(row)
            return row
    return None


def principal_for(settings: Settings, session: Session) -> Principal | None:
    """The key's or person session's current state decides: a revoked key, an ended or expired
    person session has no session."""
    if session.person is not None:
        person = person_row(settings, session)
        if person is None:
            return None
        actor = Actor("person", person.subject, person.name, person.issuer or None, person.client)
        return Principal(client_id=person.tenant, key_id=None, scopes=frozenset(person.scopes), actor=actor)
    with session_scope(settings) as db:
        row = db.get(ApiKey, session.key_id)
        if row is None or row.revoked_at is not None:
            return None
        return Principal(client_id=row.client_id, key_id=row.id, scopes=frozenset(row.scopes))


def csrf_token(settings: Settings, session: Session) -> str:
    return _b64(hmac.new(_key(settings), b"csrf:" + session.token.encode(), hashlib.sha256).digest())


def check_csrf(settings: Settings, session: Session | None, presented: str | None) -> bool:
    if session is None or not presented:
        return False
    return hmac.compare_digest(csrf_token(settings, session), presented)


def set_cookie(request: Request, response: Response, session: Session) -> None:
    response.set_cookie(
        COOKIE,
        session.token,
        max_age=session.max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(
        COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )
