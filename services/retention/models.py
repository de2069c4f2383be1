"""Legal holds: a record under hold keeps its originals and masked artifacts whatever the retention
policy says, until an admin releases the hold. One row per record ID (held for every client)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from services.db import Base, utcnow


class LegalHold(Base):
    __tablename__ = "legal_holds"

    record_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    reason: Mapped[str | None] = mapped_column(String(500), default=None)
    created_by: Mapped[str] = mapped_column(String(64))  # client id of the admin key
    key_id: Mapped[str | None] = mapped_column(String(32), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
