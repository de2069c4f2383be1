"""``/v1/webhooks``: push notifications of job and artifact events (scope ``webhooks:admin``).

Deliveries follow Standard Webhooks (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``);
see docs/integration.md for verifying them. Another client's endpoint answers 404.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from services.auth.deps import audit_ctx, deny_other_tenant, require_scope, settings_of
from services.auth.service import Principal
from services.db import get_sessionmaker, session_scope
from services.problems import Problem, not_found
from services.webhooks import service
from services.webhooks.dispatch import kick
from services.webhooks.models import WebhookEndpoint
from services.webhooks.schemas import AttemptOut, DeliveryOut, EndpointCreated, EndpointIn, EndpointOut

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
Admin = Annotated[Principal, Depends(require_scope("webhooks:admin"))]


def _out(endpoint: WebhookEndpoint) -> EndpointOut:
    return EndpointOut(
        id=endpoint.id,
        url=endpoint.url,
        events=endpoint.events,
        created_at=endpoint.created_at,
        previous_secret_valid_until=endpoint.previous_until,
    )


def _owned(request: Request, principal: Principal, session: object, endpoint_id: str) -> WebhookEndpoint:
    from sqlalchemy.orm import Session

    assert isinstance(session, Session)
    endpoint = service.owned(session, principal.client_id, endpoint_id, principal.is_admin)
    if endpoint is None:
        exists = session.get(WebhookEndpoint, endpoint_id)
        if exists is not None and exists.deleted_at is None:
            raise deny_other_tenant(request, principal, "webhook endpoint")
        raise not_found("webhook endpoint")
    return endpoint


@router.post("", status_code=201, response_model=EndpointCreated)
def create_endpoint(request: Request, body: EndpointIn, principal: Admin) -> EndpointCreated:
    """Register a receiver. The answer holds the signing secret; it is never shown again."""
    settings = settings_of(request)
    with session_scope(settings) as session:
        try:
            endpoint = service.create(
                session,
                settings,
                audit_ctx(request, principal),
                principal.client_id,
                body.url,
                list(body.events),
            )
        except service.EndpointRefused as exc:
            raise Problem(422, str(exc), slug="webhook-url-refused") from None
        out = _out(endpoint)
        secret = endpoint.secret
    return EndpointCreated(**out.model_dump(), secret=secret)


@router.get("", response_model=list[EndpointOut])
def list_endpoints(request: Request, principal: Admin) -> list[EndpointOut]:
    with get_sessionmaker(settings_of(request))() as session:
        return [_out(e) for e in service.listing(session, principal.client_id)]


@router.delete("/{endpoint_id}", status_code=204)
def delete_endpoint(request: Request, endpoint_id: str, principal: Admin) -> Response:
    with session_scope(settings_of(request)) as session:
        service.delete(
            session, audit_ctx(request, principal), _owned(request, principal, session, endpoint_id)
        )
    return Response(status_code=204)


@router.post("/{endpoint_id}/rotate-secret", response_model=EndpointCreated)
def rotate_secret(request: Request, endpoint_id: str, principal: Admin) -> EndpointCreated:
    """A new secret; deliveries carry signatures with both for 24 hours, then only the new one."""
    with session_scope(settings_of(request)) as session:
        endpoint = service.rotate(
            session, audit_ctx(request, principal), _owned(request, principal, session, endpoint_id)
        )
        out = _out(endpoint)
        secret = endpoint.secret
    return EndpointCreated(**out.model_dump(), secret=secret)


@router.get("/{endpoint_id}/deliveries", response_model=list[DeliveryOut])
def list_deliveries(
    request: Request,
    endpoint_id: str,
    principal: Admin,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[DeliveryOut]:
    """Messages to this endpoint, newest first, each with its attempts."""
    with get_sessionmaker(settings_of(request))() as session:
        endpoint = _owned(request, principal, session, endpoint_id)
        return [
            DeliveryOut(
                id=m.id,
                event_type=m.event_type,
                status=m.status,
                attempts=m.attempts,
                next_attempt_at=m.next_attempt_at if m.status == "pending" else None,
                created_at=m.created_at,
                delivered_at=m.delivered_at,
                payload=m.payload,
                attempt_log=[
                    AttemptOut(
                        attempt=a.attempt,
                        started_at=a.started_at,
                        duration_ms=a.duration_ms,
                        status_code=a.status_code,
                        error=a.error,
                        succeeded=a.succeeded,
                    )
                    for a in attempts
                ],
            )
            for m, attempts in service.deliveries(session, endpoint, limit)
        ]


@router.post("/{endpoint_id}/deliveries/{message_id}/replay", status_code=202)
async def replay_delivery(
    request: Request, endpoint_id: str, message_id: str, principal: Admin
) -> dict[str, str]:
    """Deliver a message again (same webhook-id), with a fresh retry budget."""
    settings = settings_of(request)

    def run() -> str:
        with session_scope(settings) as session:
            endpoint = _owned(request, principal, session, endpoint_id)
            msg = service.replay(session, audit_ctx(request, principal), endpoint, message_id)
            if msg is None:
                raise not_found("delivery")
            return msg.id

    msg_id = await run_in_threadpool(run)
    await run_in_threadpool(kick, settings)
    return {"id": msg_id, "status": "pending"}
