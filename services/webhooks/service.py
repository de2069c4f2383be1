"""Managing webhook endpoints (per client): register, list, delete, rotate the secret, replay."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from services.audit import service as audit
from services.db import utcnow
from services.settings import Settings
from services.webhooks import signing, urls
from services.webhooks.models import WebhookAttempt, WebhookEndpoint, WebhookMessage

ROTATION_GRACE = timedelta(hours=24)  # deliveries are signed with the old secret too meanwhile
MAX_ENDPOINTS = 20


class EndpointRefused(ValueError):
    """A registration that cannot be accepted; the message is safe to show (no input echoed)."""


def _audit(
    session: Session, ctx: audit.AuditContext, action: str, endpoint: WebhookEndpoint, **more: object
) -> None:
    detail: dict[str, object] = {"endpoint_id": endpoint.id, **more}
    audit.append(session, ctx, action, detail=detail)


def create(
    session: Session, settings: Settings, ctx: audit.AuditContext, client_id: str, url: str, events: list[str]
) -> WebhookEndpoint:
    try:
        urls.resolve(url, settings.webhook_allow_private)
    except urls.UrlRefused as exc:
        raise EndpointRefused(str(exc)) from None
    active = session.execute(
        select(WebhookEndpoint.id).where(
            WebhookEndpoint.client_id == client_id, WebhookEndpoint.deleted_at.is_(None)
        )
    ).all()
    if len(active) >= MAX_ENDPOINTS:
        raise EndpointRefused(f"A client may register at most {MAX_ENDPOINTS} endpoints.")
    endpoint = WebhookEndpoint(
        id=str(uuid.uuid4()),
        client_id=client_id,
        url=url,
        events=sorted(set(events)),
        secret=signing.new_secret(),
    )
    session.add(endpoint)
    session.flush()
    _audit(session, ctx, "webhook.create", endpoint, events=endpoint.events, scheme=url.split(":", 1)[0])
    return endpoint


def owned(session: Session, client_id: str, endpoint_id: str, admin: bool) -> WebhookEndpoint | None:
    """The live endpoint if the client owns it (or is an admin); None otherwise."""
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or endpoint.deleted_at is not None:
        return None
    if endpoint.client_id != client_id and not admin:
        return None
    return endpoint


def listing(session: Session, client_id: str) -> list[WebhookEndpoint]:
    return list(
        session.execute(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.client_id == client_id, WebhookEndpoint.deleted_at.is_(None))
            .order_by(WebhookEndpoint.created_at)
        ).scalars()
    )


def delete(session: Session, ctx: audit.AuditContext, endpoint: WebhookEndpoint) -> None:
    endpoint.deleted_at = utcnow()
    session.execute(
        update(WebhookMessage)
        .where(WebhookMessage.endpoint_id == endpoint.id, WebhookMessage.status == "pending")
        .values(status="failed", last_error="endpoint deleted")
    )
    _audit(session, ctx, "webhook.delete", endpoint)


def rotate(session: Session, ctx: audit.AuditContext, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_until = utcnow() + ROTATION_GRACE
    endpoint.secret = signing.new_secret()
    _audit(session, ctx, "webhook.rotate_secret", endpoint)
    return endpoint


def deliveries(
    session: Session, endpoint: WebhookEndpoint, limit: int
) -> list[tuple[WebhookMessage, list[WebhookAttempt]]]:
    msgs = list(
        session.execute(
            select(WebhookMessage)
            .where(WebhookMessage.endpoint_id == endpoint.id)
            .order_by(WebhookMessage.created_at.desc(), WebhookMessage.id)
            .limit(limit)
        ).scalars()
    )
    attempts: dict[str, list[WebhookAttempt]] = {m.id: [] for m in msgs}
    if msgs:
        for a in session.execute(
            select(WebhookAttempt)
            .where(WebhookAttempt.message_id.in_(list(attempts)))
            .order_by(WebhookAttempt.attempt)
        ).scalars():
            attempts[a.message_id].append(a)
    return [(m, attempts[m.id]) for m in msgs]


def replay(
    session: Session, ctx: audit.AuditContext, endpoint: WebhookEndpoint, message_id: str
) -> WebhookMessage | None:
    """Send a message again (delivered or failed): it becomes pending with a fresh retry budget and
    keeps its id, so a receiver that already processed it recognises the duplicate."""
    msg = session.get(WebhookMessage, message_id)
    if msg is None or msg.endpoint_id != endpoint.id:
        return None
    msg.status = "pending"
    msg.attempts = 0
    msg.next_attempt_at = utcnow()
    msg.lease_until = None
    _audit(session, ctx, "webhook.replay", endpoint, message_id=msg.id, event=msg.event_type)
    return msg
