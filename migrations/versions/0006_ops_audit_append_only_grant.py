"""The audit table append-only by grant as well as by trigger.

Migration 0001's triggers refuse UPDATE, DELETE and TRUNCATE of audit events for everyone; a table
owner can drop a trigger, though, and a least-privilege setup (docs/operations.md: one role migrates,
another serves) grants the application role UPDATE and DELETE on every table by default. Here every
role that holds UPDATE, DELETE or TRUNCATE on ``audit_events`` loses it, the table's owner (the role
running this migration) included: neither the service nor a later migration can change a recorded
event without first re-granting itself the privilege, a deliberate, reviewable act. Reading and
appending stay allowed. PostgreSQL only (SQLite has no privileges); the downgrade grants nothing back.

Revision ID: 0006_ops
Revises: 0005_dicom_index
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006_ops"
down_revision: str | None = "0005_dicom_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REVOKE_ALL_WRITERS = """
DO $$
DECLARE
  grantee text;
BEGIN
  FOR grantee IN
    SELECT DISTINCT p.grantee FROM information_schema.table_privileges p
    WHERE p.table_schema = current_schema() AND p.table_name = 'audit_events'
      AND p.privilege_type IN ('UPDATE', 'DELETE', 'TRUNCATE')
    UNION SELECT current_user
  LOOP
    EXECUTE format(
      'REVOKE UPDATE, DELETE, TRUNCATE ON audit_events FROM %s',
      CASE WHEN grantee = 'PUBLIC' THEN 'PUBLIC' ELSE quote_ident(grantee) END
    );
  END LOOP;
END $$;
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(REVOKE_ALL_WRITERS)


def downgrade() -> None:
    """Nothing is granted back: append-only is not a property to lose by downgrading."""
