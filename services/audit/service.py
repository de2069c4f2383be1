"""Appending to, querying and verifying the hash-chained audit log.

Each event's ``hash`` is the SHA-256 of its canonical JSON content, which includes its sequence
number and the previous event's hash. Changing, removing or reordering any row therefore breaks the
chain from that row on, and ``verify`` finds the first broken row.

The actor fields (who acted: kind, subject, name, issuer, client) came later (migration 0004). They
enter the hashed content as one ``actor`` object only when the event has an actor, so rows written
before them hash exactly as they did and old chains and old exports still verify; a new row's actor
is covered by its hash like everything else (blanking it changes the content, and the hash).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.audit.models import AuditEvent, AuditHead
from services.db import utcnow

GENESIS_HASH = "0" * 64


class Outcome:
    success = "success"
    denied = "denied"
    rejected = "rejected"
    failure = "failure"


@dataclass(frozen=True)
class Actor:
    """Who acted. ``kind`` is ``person`` (signed in at the identity provider or locally), ``system``
    (an OAuth 2.0 bearer token) or ``key`` (an API key); ``subject`` is the issuer's stable id (the
    token's ``sub``, the key id); ``client`` the OAuth client or API-key client the request came in by."""

    kind: str
    subject: str
    name: str | None = None
    issuer: str | None = None
    client: str | None = None


@dataclass(frozen=True)
class AuditContext:
    """Who did it and from where: attached to every event written during one request or task."""

    client_id: str | None = None
    key_id: str | None = None
    source_ip: str | None = None
    request_id: str | None = None
    actor: Actor | None = None


ACTOR_FIELDS = ("actor_kind", "actor_sub", "actor_name", "actor_issuer", "actor_client")

SYSTEM = AuditContext(client_id=None, key_id=None, source_ip=None, request_id=None)


@dataclass
class AuditIds:
    record_id: str | None = None
    media_id: str | None = None
    job_id: str | None = None
    artifact_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def _ts(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_content(event: AuditEvent) -> dict[str, Any]:
    content = {
        "seq": event.id,
        "ts": _ts(event.ts),
        "client_id": event.client_id,
        "key_id": event.key_id,
        "source_ip": event.source_ip,
        "action": event.action,
        "outcome": event.outcome,
        "record_id": event.record_id,
        "media_id": event.media_id,
        "job_id": event.job_id,
        "artifact_id": event.artifact_id,
        "request_id": event.request_id,
        "detail": event.detail or {},
        "prev_hash": event.prev_hash,
    }
    actor = {name: getattr(event, name) for name in ACTOR_FIELDS}
    if any(value is not None for value in actor.values()):
        content["actor"] = actor  # absent on rows without an actor: older rows hash as before
    return content


def compute_hash(event: AuditEvent) -> str:
    blob = json.dumps(canonical_content(event), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def append(
    session: Session,
    ctx: AuditContext,
    action: str,
    outcome: str = Outcome.success,
    *,
    record_id: str | None = None,
    media_id: str | None = None,
    job_id: str | None = None,
    artifact_id: str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event inside the caller's transaction (commit makes it durable together with the
    change it describes). Call it last in a transaction: it locks the chain head until commit."""
    head = session.execute(select(AuditHead).where(AuditHead.id == 1).with_for_update()).scalar_one()
    event = AuditEvent(
        id=head.seq + 1,
        ts=utcnow(),
        client_id=ctx.client_id,
        key_id=ctx.key_id,
        source_ip=ctx.source_ip,
        action=action,
        outcome=outcome,
        record_id=record_id,
        media_id=media_id,
        job_id=job_id,
        artifact_id=artifact_id,
        request_id=ctx.request_id,
        detail=detail or {},
        prev_hash=head.hash,
        actor_kind=ctx.actor.kind if ctx.actor else None,
        actor_sub=ctx.actor.subject if ctx.actor else None,
        actor_name=ctx.actor.name if ctx.actor else None,
        actor_issuer=ctx.actor.issuer if ctx.actor else None,
        actor_client=ctx.actor.client if ctx.actor else None,
    )
    event.hash = compute_hash(event)
    session.add(event)
    head.seq = event.id
    head.hash = event.hash
    session.flush()
    return event


@dataclass
class VerifyResult:
    ok: bool
    checked: int
    first_broken: int | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "first_broken": self.first_broken,
            "reason": self.reason,
        }


def verify(session: Session, batch: int = 2000) -> VerifyResult:
    """Walk the whole chain online, in id order, in batches (constant memory)."""
    head = session.execute(select(AuditHead).where(AuditHead.id == 1)).scalar_one()
    head_seq, head_hash = head.seq, head.hash
    session.commit()  # end the read transaction: the walk below must not hold locks
    expected_prev = GENESIS_HASH
    expected_seq = 1
    checked = 0
    last_id = 0
    while True:
        rows = (
            session.execute(
                select(AuditEvent)
                .where(AuditEvent.id > last_id, AuditEvent.id <= head_seq)
                .order_by(AuditEvent.id)
                .limit(batch)
            )
            .scalars()
            .all()
        )
        session.expunge_all()
        session.commit()
        if not rows:
            break
        for ev in rows:
            if ev.id != expected_seq:
                return VerifyResult(False, checked, expected_seq, "missing event (gap in sequence)")
            if ev.prev_hash != expected_prev:
                return VerifyResult(False, checked, ev.id, "previous-hash link broken")
            if compute_hash(ev) != ev.hash:
                return VerifyResult(False, checked, ev.id, "content does not match its hash")
            checked += 1
            expected_prev = ev.hash
            expected_seq += 1
            last_id = ev.id
    if expected_seq - 1 != head_seq:
        return VerifyResult(False, checked, expected_seq, "events missing at the end of the chain")
    if expected_prev != head_hash:
        return VerifyResult(False, checked, head_seq or None, "chain head does not match the last event")
    return VerifyResult(True, checked)


@dataclass
class AuditFilter:
    record_id: str | None = None
    client_id: str | None = None
    actor: str | None = None  # an actor's subject (or, for API keys, key id)
    action: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    after_id: int = 0


def query(session: Session, flt: AuditFilter, limit: int | None) -> list[AuditEvent]:
    stmt = select(AuditEvent).where(AuditEvent.id > flt.after_id)
    if flt.record_id is not None:
        stmt = stmt.where(AuditEvent.record_id == flt.record_id)
    if flt.client_id is not None:
        stmt = stmt.where(AuditEvent.client_id == flt.client_id)
    if flt.actor is not None:
        stmt = stmt.where(AuditEvent.actor_sub == flt.actor)
    if flt.action is not None:
        stmt = stmt.where(AuditEvent.action == flt.action)
    if flt.outcome is not None:
        stmt = stmt.where(AuditEvent.outcome == flt.outcome)
    if flt.since is not None:
        stmt = stmt.where(AuditEvent.ts >= flt.since)
    if flt.until is not None:
        stmt = stmt.where(AuditEvent.ts < flt.until)
    stmt = stmt.order_by(AuditEvent.id)
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.execute(stmt).scalars().all())


def iter_all(session: Session, flt: AuditFilter, batch: int = 1000) -> Iterator[AuditEvent]:
    """Every matching event, fetched in keyset-paginated batches (exports stay constant-memory)."""
    after = flt.after_id
    while True:
        page = query(session, AuditFilter(**{**flt.__dict__, "after_id": after}), batch)
        session.expunge_all()
        if not page:
            return
        yield from page
        after = page[-1].id


def event_dict(ev: AuditEvent) -> dict[str, Any]:
    return {
        "id": ev.id,
        "ts": _ts(ev.ts),
        "client_id": ev.client_id,
        "key_id": ev.key_id,
        "source_ip": ev.source_ip,
        "action": ev.action,
        "outcome": ev.outcome,
        "record_id": ev.record_id,
        "media_id": ev.media_id,
        "job_id": ev.job_id,
        "artifact_id": ev.artifact_id,
        "request_id": ev.request_id,
        "detail": ev.detail or {},
        "prev_hash": ev.prev_hash,
        "hash": ev.hash,
        **{name: getattr(ev, name) for name in ACTOR_FIELDS},
    }
