"""Sessions for people: a signed cookie naming the API key they logged in with.

The cookie holds ``{key id, expiry, nonce}`` and an HMAC-SHA256 over it with a key derived from
``settings.hmac_key``; never the API key itself. Every request re-loads the key row, so revoking the
key (``dmask keys revoke``) ends its sessions at once. The cookie is HttpOnly, SameSite=Strict, scoped
to ``/ui`` and Secure whenever the page was served over HTTPS. Forms that change state also carry a
CSRF token derived from the session (belt and braces next to SameSite=Strict).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from fastapi import Request, Response

from services.auth.models import ApiKey
from services.auth.service import Principal
from services.db import session_scope
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
    key_id: str
    expires: int
    token: str  # the cookie value (CSRF tokens are derived from it)


def issue(settings: Settings, key_id: str, now: float | None = None) -> Session:
    expires = int((now or time.time()) + SESSION_TTL_S)
    payload = _b64(json.dumps({"k": key_id, "e": expires, "n": secrets.token_hex(8)}).encode())
    sig = _b64(hmac.new(_key(settings), payload.encode(), hashlib.sha256).digest())
    return Session(key_id, expires, f"{payload}.{sig}")


def read(settings: Settings, token: str | None, now: float | None = None) -> Session | None:
    if not token or token.count(".") != 1 or len(token) > 512:
        return None
    payload, sig = token.split(".")
    expected = _b64(hmac.new(_key(settings), payload.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(sig, expected):
        return None
    try:
        data = json.loads(_unb64(payload))
        key_id, expires = str(data["k"]), int(data["e"])
    except (ValueError, KeyError, TypeError):
        return None
    if expires < (now or time.time()):
        return None
    return Session(key_id, expires, token)


def principal_for(settings: Settings, session: Session) -> Principal | None:
    """The key's current state decides: a revoked key has no session."""
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
        max_age=SESSION_TTL_S,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(
        COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )
