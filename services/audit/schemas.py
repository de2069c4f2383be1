"""Audit API shapes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class AuditPage(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: str | None


class VerifyOut(BaseModel):
    ok: bool
    checked: int
    first_broken: int | None
    reason: str | None = None
