"""API keys: creation, listing, revocation, verification.

A key looks like ``dmk_<key id>_<secret>``. The key id is public (it appears in listings and in the
audit log) and lets verification find the row without scanning; the database keeps only the SHA-256
of the whole key, compared in constant time. 256 random bits make a slow password hash unnecessary.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.audit import service as audit
from services.auth.models import ApiKey, Client
from services.db import utcnow

# metrics: read /metrics only (a Prometheus scraper's key); it sees no record, job or audit data
SCOPES = ("media:write", "media:read", "audit:read", "metrics", "webhooks:admin", "admin")
CLIENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
KEY_FORMAT = re.compile(r"^dmk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")


class KeyManagementError(ValueError):
    """Bad key-management input (unknown scope, bad client name, unknown key)."""


@dataclass(frozen=True)
class Principal:
    """The caller of one request. ``client_id`` is the tenant: the client whose media it may see (an
    API key's client, a token's tenant claim). ``actor`` says who it is for the audit; an API key's
    actor is the key itself."""

    client_id: str
    key_id: str | None
    scopes: frozenset[str]
    actor: audit.Actor | None = None

    @property
    def audit_actor(self) -> audit.Actor:
        if self.actor is not None:
            return self.actor
        return audit.Actor(kind="key", subject=self.key_id or "", name=self.client_id, client=self.client_id)

    @property
    def is_admin(self) -> bool:
        return "admin" in self.scopes

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or self.is_admin


def check_scopes(scopes: list[str]) -> None:
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise KeyManagementError(
            f"scopes must be among {', '.join(SCOPES)} (got {', '.join(unknown) or 'none'})"
        )


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_key(
    session: Session, client: str, scopes: list[str], ctx: audit.AuditContext
) -> tuple[ApiKey, str]:
    """Create a key (and the client on first use). Returns the row and the key, shown once."""
    if not CLIENT_NAME.match(client):
        raise KeyManagementError("client name must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    check_scopes(scopes)
    if session.get(Client, client) is None:
        session.add(Client(id=client))
        session.flush()
    key_id = secrets.token_hex(8)
    key = f"dmk_{key_id}_{secrets.token_urlsafe(32)}"
    row = ApiKey(id=key_id, client_id=client, key_hash=hash_key(key), scopes=sorted(set(scopes)))
    session.add(row)
    session.flush()
    audit.append(
        session, ctx, "key.create", detail={"key_id": key_id, "client": client, "scopes": row.scopes}
    )
    return row, key


def list_keys(session: Session) -> list[ApiKey]:
    return list(session.execute(select(ApiKey).order_by(ApiKey.client_id, ApiKey.created_at)).scalars())


def revoke_key(session: Session, key_id: str, ctx: audit.AuditContext) -> ApiKey:
    row = session.get(ApiKey, key_id)
    if row is None:
        raise KeyManagementError(f"no key {key_id}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.flush()
    audit.append(session, ctx, "key.revoke", detail={"key_id": key_id, "client": row.client_id})
    return row


def verify_key(session: Session, presented: str, now: datetime | None = None) -> Principal | None:
    m = KEY_FORMAT.match(presented)
    if not m:
        return None
    row = session.get(ApiKey, m.group(1))
    if row is None or row.revoked_at is not None:
        # Still spend a comparison so timing does not tell "unknown id" from "wrong secret".
        hmac.compare_digest(hash_key(presented), "0" * 64)
        return None
    if not hmac.compare_digest(hash_key(presented), row.key_hash):
        return None
    return Principal(client_id=row.client_id, key_id=row.id, scopes=frozenset(row.scopes))
