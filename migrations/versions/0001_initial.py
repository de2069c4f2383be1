"""Initial schema: clients, keys, media, jobs, artifacts, hash-chained audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

AUDIT_GUARD_FN = """
CREATE OR REPLACE FUNCTION dmask_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only (% rejected)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$ LANGUAGE plpgsql
"""


def upgrade() -> None:
    op.create_table(
        "clients",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("client_id", sa.String(64), sa.ForeignKey("clients.id"), nullable=False, index=True),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
    )
    op.create_table(
        "media",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("record_id", sa.String(64), nullable=False, index=True),
        sa.Column("client_id", sa.String(64), nullable=False, index=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("mime_type", sa.String(100), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("original_key", sa.String(128), nullable=True),
        sa.Column("original_deleted_at", TS, nullable=True),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.Column("request_fingerprint", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("client_id", "idempotency_key", name="uq_media_client_idempotency"),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("media_id", sa.String(36), sa.ForeignKey("media.id"), nullable=False, index=True),
        sa.Column("record_id", sa.String(64), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("failure_reason", sa.String(500), nullable=True),
        sa.Column("model_version", sa.String(64), nullable=True),
        sa.Column("deliveries", sa.Integer(), nullable=False),
        sa.Column("claim_token", sa.String(36), nullable=True),
        sa.Column("worker", sa.String(200), nullable=True),
        sa.Column("artifact_id", sa.String(36), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("enqueued_at", TS, nullable=False),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("heartbeat_at", TS, nullable=True),
        sa.Column("finished_at", TS, nullable=True),
    )
    op.create_index("ix_jobs_status_enqueued", "jobs", ["status", "enqueued_at"])
    op.create_table(
        "artifacts",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("job_id", sa.String(36), sa.ForeignKey("jobs.id"), nullable=False, unique=True),
        sa.Column("media_id", sa.String(36), sa.ForeignKey("media.id"), nullable=False, index=True),
        sa.Column("record_id", sa.String(64), nullable=False, index=True),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("mime_type", sa.String(100), nullable=False),
        sa.Column("object_key", sa.String(128), nullable=False),
        sa.Column("metrics_key", sa.String(128), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("frames_total", sa.Integer(), nullable=False),
        sa.Column("frames_blanked", sa.Integer(), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("deleted_at", TS, nullable=True),
    )
    op.create_table(
        "audit_events",
        sa.Column("id", BIGID, primary_key=True, autoincrement=False),
        sa.Column("ts", TS, nullable=False),
        sa.Column("client_id", sa.String(64), nullable=True),
        sa.Column("key_id", sa.String(32), nullable=True),
        sa.Column("source_ip", sa.String(64), nullable=True),
        sa.Column("action", sa.String(64), nullable=False, index=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("record_id", sa.String(64), nullable=True),
        sa.Column("media_id", sa.String(36), nullable=True),
        sa.Column("job_id", sa.String(36), nullable=True),
        sa.Column("artifact_id", sa.String(36), nullable=True),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_record", "audit_events", ["record_id", "id"])
    op.create_index("ix_audit_client", "audit_events", ["client_id", "id"])
    op.create_index("ix_audit_ts", "audit_events", ["ts"])
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("seq", BIGID, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": "0" * 64}])

    if op.get_bind().dialect.name == "postgresql":
        op.execute(AUDIT_GUARD_FN)
        op.execute(
            "CREATE TRIGGER audit_events_no_update_delete BEFORE UPDATE OR DELETE ON audit_events "
            "FOR EACH ROW EXECUTE FUNCTION dmask_audit_append_only()"
        )
        op.execute(
            "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events "
            "FOR EACH STATEMENT EXECUTE FUNCTION dmask_audit_append_only()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events")
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_update_delete ON audit_events")
        op.execute("DROP FUNCTION IF EXISTS dmask_audit_append_only()")
    op.drop_table("audit_head")
    op.drop_table("audit_events")
    op.drop_table("artifacts")
    op.drop_table("jobs")
    op.drop_table("media")
    op.drop_table("api_keys")
    op.drop_table("clients")
