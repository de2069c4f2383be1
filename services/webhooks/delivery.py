"""Delivering webhook messages: one attempt at a time, each recorded and audited.

A message is claimed with a lease (a guarded UPDATE), so the Celery task, the beat sweep and the
in-process pump can all run ``deliver_due`` without sending one message twice at the same time. A
failed attempt schedules the next one ``webhook_retry_base_s * 2**(n-1)`` seconds later (capped at
10 hours) until ``webhook_max_attempts``; then the message is ``failed`` and can be replayed. A 2xx
answer is success. Receivers deduplicate on ``webhook-id`` (a crash between a 2xx and its record
would resend it once the lease expires).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy import func, select, update

from services.audit import service as audit
from services.db import session_scope, utcnow
from services.settings import Settings
from services.webhooks import signing, urls
from services.webhooks.models import WebhookAttempt, WebhookEndpoint, WebhookMessage

log = logging.getLogger("dmask.webhooks")

TIMEOUT_S = 10.0
LEASE_S = TIMEOUT_S + 20.0
MAX_DELAY_S = 10 * 3600.0
USER_AGENT = "DigitalMask-Webhooks/1"


def retry_delay(settings: Settings, attempts: int) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt (exponential back-off)."""
    return float(min(settings.webhook_retry_base_s * 2 ** max(attempts - 1, 0), MAX_DELAY_S))


@dataclass(frozen=True)
class AttemptResult:
    succeeded: bool
    status_code: int | None
    error: str | None
    duration_ms: int


def post(settings: Settings, endpoint: WebhookEndpoint, msg: WebhookMessage, body: bytes) -> AttemptResult:
    """One HTTP POST to the endpoint, to the address the SSRF guard checked."""
    started = time.monotonic()

    def result(ok: bool, code: int | None, error: str | None) -> AttemptResult:
        return AttemptResult(ok, code, error, int((time.monotonic() - started) * 1000))

    try:
        target = urls.resolve(endpoint.url, settings.webhook_allow_private)
    except urls.UrlRefused as exc:
        return result(False, None, str(exc))
    now = utcnow()
    secrets_in_use = [endpoint.secret]
    if endpoint.previous_secret and endpoint.previous_until and endpoint.previous_until > now:
        secrets_in_use.append(endpoint.previous_secret)
    ts = int(time.time())
    host = f"[{target.address}]" if ":" in target.address else target.address
    default_port = 443 if target.scheme == "https" else 80
    host_header = target.host if target.port == default_port else f"{target.host}:{target.port}"
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "host": host_header,
        "webhook-id": msg.id,
        "webhook-timestamp": str(ts),
        "webhook-signature": signing.signature_header(secrets_in_use, msg.id, ts, body),
    }
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    try:
        with httpx.Client(timeout=TIMEOUT_S, follow_redirects=False, trust_env=False) as client:
            resp = client.post(
                f"{target.scheme}://{host}:{target.port}{target.path}",
                content=body,
                headers=headers,
                extensions=extensions,
            )
    except httpx.HTTPError as exc:
        return result(False, None, type(exc).__name__)
    ok = 200 <= resp.status_code < 300
    return result(ok, resp.status_code, None if ok else f"HTTP {resp.status_code}")


def _claim(settings: Settings, msg_id: str) -> tuple[WebhookMessage, WebhookEndpoint] | None:
    now = utcnow()
    with session_scope(settings) as session:
        res = session.execute(
            update(WebhookMessage)
            .where(
                WebhookMessage.id == msg_id,
                WebhookMessage.status == "pending",
                WebhookMessage.next_attempt_at <= now,
                (WebhookMessage.lease_until.is_(None)) | (WebhookMessage.lease_until < now),
            )
            .values(lease_until=now + timedelta(seconds=LEASE_S))
        )
        if getattr(res, "rowcount", 0) != 1:
            return None
        msg = session.get(WebhookMessage, msg_id)
        assert msg is not None
        endpoint = session.get(WebhookEndpoint, msg.endpoint_id)
        assert endpoint is not None
        session.expunge_all()
        return msg, endpoint


def attempt(settings: Settings, msg_id: str) -> bool | None:
    """Try one due message once. True delivered, False failed (retry scheduled or given up), None
    not attempted (not due, leased by another sender, or already done)."""
    claimed = _claim(settings, msg_id)
    if claimed is None:
        return None
    msg, endpoint = claimed
    started_at = utcnow()
    if endpoint.deleted_at is not None:
        res = AttemptResult(False, None, "endpoint deleted", 0)
    else:
        body = json.dumps(msg.payload, separators=(",", ":"), sort_keys=True).encode()
        res = post(settings, endpoint, msg, body)
    with session_scope(settings) as session:
        row = session.get(WebhookMessage, msg_id)
        assert row is not None
        number = (
            session.execute(
                select(func.count()).select_from(WebhookAttempt).where(WebhookAttempt.message_id == msg_id)
            ).scalar_one()
            + 1
        )
        session.add(
            WebhookAttempt(
                message_id=msg_id,
                attempt=number,
                started_at=started_at,
                duration_ms=res.duration_ms,
                status_code=res.status_code,
                error=res.error,
                succeeded=res.succeeded,
            )
        )
        row.attempts += 1
        row.lease_until = None
        row.last_status_code = res.status_code
        row.last_error = res.error
        if res.succeeded:
            row.status = "delivered"
            row.delivered_at = utcnow()
        elif row.attempts >= settings.webhook_max_attempts or endpoint.deleted_at is not None:
            row.status = "failed"
        else:
            row.next_attempt_at = utcnow() + timedelta(seconds=retry_delay(settings, row.attempts))
        session.flush()
        audit.append(
            session,
            audit.SYSTEM,
            "webhook.delivery",
            audit.Outcome.success if res.succeeded else audit.Outcome.failure,
            record_id=msg.record_id,
            job_id=msg.payload.get("data", {}).get("job_id"),
            artifact_id=msg.payload.get("data", {}).get("artifact_id"),
            detail={
                "endpoint_id": endpoint.id,
                "message_id": msg_id,
                "event": msg.event_type,
                "attempt": number,
                "status_code": res.status_code,
                "error": res.error,
                "final": row.status,
            },
        )
    return res.succeeded


def due_ids(settings: Settings, limit: int = 50) -> list[str]:
    now = utcnow()
    with session_scope(settings) as session:
        return list(
            session.execute(
                select(WebhookMessage.id)
                .where(WebhookMessage.status == "pending", WebhookMessage.next_attempt_at <= now)
                .where((WebhookMessage.lease_until.is_(None)) | (WebhookMessage.lease_until < now))
                .order_by(WebhookMessage.next_attempt_at)
                .limit(limit)
            ).scalars()
        )


def next_due(settings: Settings) -> datetime | None:
    """When the earliest pending message is due (None: nothing pending)."""
    with session_scope(settings) as session:
        value: datetime | None = session.execute(
            select(func.min(WebhookMessage.next_attempt_at)).where(WebhookMessage.status == "pending")
        ).scalar_one()
        return value


def deliver_due(settings: Settings, limit: int = 50) -> int:
    """Attempt every message due now (up to ``limit``); returns how many were attempted."""
    done = 0
    for msg_id in due_ids(settings, limit):
        try:
            if attempt(settings, msg_id) is not None:
                done += 1
        except Exception as exc:  # a database blip: the lease expires and the message is retried
            log.warning("webhook message %s: attempt not recorded: %s", msg_id, type(exc).__name__)
    return done
