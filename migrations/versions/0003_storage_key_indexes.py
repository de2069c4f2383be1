"""Indexes on storage keys, for the orphan sweeper.

The sweeper (services.storage.sweeper) asks, for every object older than the grace period, whether
a row still names it: ``media.original_key``, ``artifacts.object_key``, ``artifacts.metrics_key``.
Without an index each batch of 500 keys is a full scan of the table; the artifacts bucket holds
every masked file ever produced, so the sweep would grow quadratically with the archive.

Revision ID: 0003_storage_key_indexes
Revises: 0002_legal_holds
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003_storage_key_indexes"
down_revision: str | None = "0002_legal_holds"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = {
    "ix_media_original_key": ("media", "original_key"),
    "ix_artifacts_object_key": ("artifacts", "object_key"),
    "ix_artifacts_metrics_key": ("artifacts", "metrics_key"),
}


def upgrade() -> None:
    for name, (table, column) in INDEXES.items():
        op.create_index(name, table, [column])


def downgrade() -> None:
    for name, (table, _) in INDEXES.items():
        op.drop_index(name, table_name=table)
