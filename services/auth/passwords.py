"""Local sign-in for the embedded default: people created with ``dmask users create`` sign in to
/ui with a password when no identity provider is configured.

Passwords are hashed with scrypt (standard library; memory-hard, so a stolen database is expensive
to brute-force): ``scrypt$n$r$p$salt$hash``, parameters stored per hash so they can be raised later.
A wrong username spends the same hashing work as a wrong password.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.audit import service as audit
from services.auth.models import LocalUser
from services.auth.service import CLIENT_NAME, KeyManagementError, check_scopes

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
LOCAL_ISSUER = "urn:dmask:local"
MIN_PASSWORD_CHARS = 12
_DUMMY = f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}$" + "A" * 22 + "$" + "A" * 43


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024, dklen=32
    )


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        computed = _scrypt(password, _unb64(salt), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(computed, _unb64(digest))


def create_user(
    session: Session, username: str, password: str, name: str, scopes: list[str], ctx: audit.AuditContext
) -> LocalUser:
    if not CLIENT_NAME.match(username):
        raise KeyManagementError("username must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    if len(password) < MIN_PASSWORD_CHARS:
        raise KeyManagementError(f"the password must have at least {MIN_PASSWORD_CHARS} characters")
    check_scopes(scopes)
    if session.get(LocalUser, username) is not None:
        raise KeyManagementError(f"user {username} exists")
    row = LocalUser(username=username, display_name=name, password_hash=hash_password(password))
    row.scopes = sorted(set(scopes))
    session.add(row)
    session.flush()
    audit.append(session, ctx, "user.create", detail={"username": username, "scopes": row.scopes})
    return row


def disable_user(session: Session, username: str, ctx: audit.AuditContext) -> LocalUser:
    from services.db import utcnow

    row = session.get(LocalUser, username)
    if row is None:
        raise KeyManagementError(f"no user {username}")
    if row.disabled_at is None:
        row.disabled_at = utcnow()
    session.flush()
    audit.append(session, ctx, "user.disable", detail={"username": username})
    return row


def list_users(session: Session) -> list[LocalUser]:
    return list(session.execute(select(LocalUser).order_by(LocalUser.username)).scalars())


def verify_user(session: Session, username: str, password: str) -> LocalUser | None:
    row = session.get(LocalUser, username) if CLIENT_NAME.match(username) else None
    if row is None or row.disabled_at is not None:
        check_password(password, _DUMMY)  # same work as a real check
        return None
    return row if check_password(password, row.password_hash) else None
