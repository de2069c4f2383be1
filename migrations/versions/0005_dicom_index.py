"""DICOMweb index of masked instances, and webhooks (endpoints, outbox messages, attempts).

Revision ID: 0005_dicom_index
Revises: 0004_actors
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_dicom_index"
down_revision: str | None = "0004_actors"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "dicom_studies",
        sa.Column("client_id", sa.String(64), primary_key=True),
        sa.Column("study_uid", sa.String(64), primary_key=True),
        sa.Column("record_id", sa.String(64), nullable=False),
        sa.Column("patient_id", sa.String(64)),
        sa.Column("study_date", sa.String(8)),
        sa.Column("accession_number", sa.String(64)),
        sa.Column("modalities", sa.String(200), nullable=False),
        sa.Column("n_series", sa.Integer, nullable=False),
        sa.Column("n_instances", sa.Integer, nullable=False),
        sa.Column("attrs", sa.JSON, nullable=False),
        _ts("updated_at", nullable=False),
    )
    op.create_index("ix_dicom_studies_date", "dicom_studies", ["client_id", "study_date", "study_uid"])
    op.create_index("ix_dicom_studies_patient", "dicom_studies", ["client_id", "patient_id"])
    op.create_table(
        "dicom_series",
        sa.Column("client_id", sa.String(64), primary_key=True),
        sa.Column("series_uid", sa.String(64), primary_key=True),
        sa.Column("study_uid", sa.String(64), nullable=False),
        sa.Column("modality", sa.String(16)),
        sa.Column("n_instances", sa.Integer, nullable=False),
        sa.Column("attrs", sa.JSON, nullable=False),
    )
    op.create_index("ix_dicom_series_study", "dicom_series", ["client_id", "study_uid", "series_uid"])
    op.create_table(
        "dicom_instances",
        sa.Column("artifact_id", sa.String(36), sa.ForeignKey("artifacts.id"), primary_key=True),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("record_id", sa.String(64), nullable=False),
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("study_uid", sa.String(64), nullable=False),
        sa.Column("series_uid", sa.String(64), nullable=False),
        sa.Column("sop_uid", sa.String(64), nullable=False),
        sa.Column("sop_class_uid", sa.String(64), nullable=False),
        sa.Column("transfer_syntax_uid", sa.String(64), nullable=False),
        sa.Column("instance_number", sa.Integer),
        sa.Column("frames", sa.Integer, nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("meta", sa.JSON, nullable=False),
        _ts("created_at", nullable=False),
    )
    op.create_index(
        "ix_dicom_instances_series", "dicom_instances", ["client_id", "study_uid", "series_uid", "sop_uid"]
    )
    op.create_index("ix_dicom_instances_sop", "dicom_instances", ["client_id", "sop_uid"], unique=True)
    op.create_index("ix_dicom_instances_record_id", "dicom_instances", ["record_id"])

    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("events", sa.JSON, nullable=False),
        sa.Column("secret", sa.String(100), nullable=False),
        sa.Column("previous_secret", sa.String(100)),
        _ts("previous_until"),
        _ts("created_at", nullable=False),
        _ts("deleted_at"),
    )
    op.create_index("ix_webhook_endpoints_client_id", "webhook_endpoints", ["client_id"])
    op.create_table(
        "webhook_messages",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("endpoint_id", sa.String(36), sa.ForeignKey("webhook_endpoints.id"), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("event_type", sa.String(32), nullable=False),
        sa.Column("event_key", sa.String(100), nullable=False),
        sa.Column("record_id", sa.String(64)),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        _ts("next_attempt_at", nullable=False),
        _ts("lease_until"),
        sa.Column("last_status_code", sa.Integer),
        sa.Column("last_error", sa.String(200)),
        _ts("created_at", nullable=False),
        _ts("delivered_at"),
        sa.UniqueConstraint("endpoint_id", "event_key", name="uq_webhook_messages_event"),
    )
    op.create_index("ix_webhook_messages_due", "webhook_messages", ["status", "next_attempt_at"])
    op.create_index("ix_webhook_messages_endpoint", "webhook_messages", ["endpoint_id", "created_at"])
    op.create_table(
        "webhook_attempts",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
        ),
        sa.Column("message_id", sa.String(40), sa.ForeignKey("webhook_messages.id"), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        _ts("started_at", nullable=False),
        sa.Column("duration_ms", sa.Integer, nullable=False),
        sa.Column("status_code", sa.Integer),
        sa.Column("error", sa.String(200)),
        sa.Column("succeeded", sa.Boolean, nullable=False),
    )
    op.create_index("ix_webhook_attempts_message_id", "webhook_attempts", ["message_id"])


def downgrade() -> None:
    op.drop_table("webhook_attempts")
    op.drop_table("webhook_messages")
    op.drop_table("webhook_endpoints")
    op.drop_table("dicom_instances")
    op.drop_table("dicom_series")
    op.drop_table("dicom_studies")
