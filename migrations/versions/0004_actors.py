"""The audit names the actor; people sign in (identity provider or local users).

- ``audit_events`` gains the actor columns (kind, subject, name, issuer, client) and an index to
  filter by actor. Existing rows keep NULLs: their hashed content has no actor and is unchanged, so
  the chain verifies as before (see ``services.audit.service.canonical_content``). Adding columns is
  DDL, which the append-only triggers (UPDATE/DELETE) do not concern.
- ``local_users``: the embedded default's password sign-in (``dmask users create``).
- ``person_sessions``: people's /ui sessions, bounded by their token's lifetime.
- ``oidc_logins``: sign-ins in flight (state, nonce, PKCE verifier), deleted when used.

Revision ID: 0004_actors
Revises: 0003_storage_key_indexes
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_actors"
down_revision: str | None = "0003_storage_key_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTOR_COLUMNS = {
    "actor_kind": 16,
    "actor_sub": 255,
    "actor_name": 255,
    "actor_issuer": 255,
    "actor_client": 255,
}


def upgrade() -> None:
    for name, length in ACTOR_COLUMNS.items():
        op.add_column("audit_events", sa.Column(name, sa.String(length), nullable=True))
    op.create_index("ix_audit_actor", "audit_events", ["actor_sub", "id"])
    op.create_table(
        "local_users",
        sa.Column("username", sa.String(64), primary_key=True),
        sa.Column("display_name", sa.String(255), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "person_sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=True),
        sa.Column("issuer", sa.String(255), nullable=False),
        sa.Column("client", sa.String(255), nullable=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("id_token", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "oidc_logins",
        sa.Column("state", sa.String(64), primary_key=True),
        sa.Column("nonce", sa.String(64), nullable=False),
        sa.Column("code_verifier", sa.String(128), nullable=False),
        sa.Column("next_url", sa.String(2048), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("oidc_logins")
    op.drop_table("person_sessions")
    op.drop_table("local_users")
    op.drop_index("ix_audit_actor", table_name="audit_events")
    for name in reversed(ACTOR_COLUMNS):
        op.drop_column("audit_events", name)
