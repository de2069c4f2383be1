"""Auth API shapes."""

from __future__ import annotations

from pydantic import BaseModel


class WhoAmI(BaseModel):
    client_id: str
    key_id: str
    scopes: list[str]
