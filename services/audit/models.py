"""The audit log: append-only and hash-chained.

``audit_head`` holds the chain's last sequence number and hash in one row. Every append first
UPDATEs that row, which takes a row lock on PostgreSQL and the write lock on SQLite, so appends from
any number of processes form one linear chain. On PostgreSQL a trigger (see the migration) rejects
UPDATE, DELETE and TRUNCATE on ``audit_events``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from services.db import Base


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_record", "record_id", "id"),
        Index("ix_audit_client", "client_id", "id"),
        Index("ix_audit_ts", "ts"),
        Index("ix_audit_actor", "actor_sub", "id"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )
    ts: Mapped[datetime]
    client_id: Mapped[str | None] = mapped_column(String(64))
    key_id: Mapped[str | None] = mapped_column(String(32))
    # who acted (migration 0004): person / system / key, the issuer's stable subject id, a display
    # name, the issuer, and the OAuth client (or API-key client) the request came through
    actor_kind: Mapped[str | None] = mapped_column(String(16), default=None)
    actor_sub: Mapped[str | None] = mapped_column(String(255), default=None)
    actor_name: Mapped[str | None] = mapped_column(String(255), default=None)
    actor_issuer: Mapped[str | None] = mapped_column(String(255), default=None)
    actor_client: Mapped[str | None] = mapped_column(String(255), default=None)
    source_ip: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64), index=True)
    outcome: Mapped[str] = mapped_column(String(16))
    record_id: Mapped[str | None] = mapped_column(String(64))
    media_id: Mapped[str | None] = mapped_column(String(36))
    job_id: Mapped[str | None] = mapped_column(String(36))
    artifact_id: Mapped[str | None] = mapped_column(String(36))
    request_id: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)  # always 1
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    hash: Mapped[str] = mapped_column(String(64))
