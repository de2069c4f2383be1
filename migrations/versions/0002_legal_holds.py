"""Legal holds (retention suspension per record); append-only audit log on SQLite too.

PostgreSQL already rejects UPDATE/DELETE/TRUNCATE on ``audit_events`` (0001); the embedded SQLite
database gets the equivalent triggers here, so no deployment can delete audit events through the
product (retention never touches them: they are kept at least ``audit_retention_days``).

Revision ID: 0002_legal_holds
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_legal_holds"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQLITE_GUARDS = {
    "audit_events_no_update": "UPDATE",
    "audit_events_no_delete": "DELETE",
}


def upgrade() -> None:
    op.create_table(
        "legal_holds",
        sa.Column("record_id", sa.String(64), primary_key=True),
        sa.Column("reason", sa.String(500), nullable=True),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    if op.get_bind().dialect.name == "sqlite":
        for name, verb in SQLITE_GUARDS.items():
            op.execute(
                f"CREATE TRIGGER {name} BEFORE {verb} ON audit_events "
                f"BEGIN SELECT RAISE(ABORT, 'audit_events is append-only ({verb} rejected)'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in SQLITE_GUARDS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table("legal_holds")
