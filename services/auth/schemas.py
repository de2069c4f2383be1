"""Auth API shapes."""

from __future__ import annotations

from pydantic import BaseModel, Field


class WhoAmI(BaseModel):
    kind: str = Field(description="person, system or key")
    subject: str = Field(description="Stable identifier: the token's sub, or the key id.")
    name: str | None = Field(description="Display name, as the audit log shows it.")
    issuer: str | None = Field(description="Token issuer; null for API keys.")
    client_id: str = Field(description="Tenant: the client whose media the caller sees.")
    key_id: str | None = Field(description="The API key's id; null for tokens.")
    scopes: list[str]
