"""Retention policies of originals and masked artifacts.

``artifact_retention_days`` and ``audit_retention_days`` are the service settings; the knobs that only
retention needs are read here from the same ``DMASK_`` environment, so the settings module stays the
owner's. ``None`` days means "keep". Audit events have no deletion policy at all: they are kept at
least ``audit_retention_days`` (6 years by default) and the product has no code path that deletes them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.settings import Settings


class RetentionSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DMASK_", env_file=None, extra="ignore", env_parse_none_str="none"
    )

    original_retention_days: int | None = Field(
        default=30,
        ge=0,
        description="Delete a stored original (unmasked PHI) this many days after upload, once its job is "
        "no longer queued or running. 'none': keep. (Masked originals are usually gone already: "
        "delete_originals.)",
    )
    artifact_retention_days_by_kind: str = Field(
        default="",
        description='JSON object of per-kind overrides of artifact_retention_days, e.g. {"video": 3650}.',
    )
    retention_interval_s: float = Field(default=3600.0, gt=0, description="Seconds between retention runs.")
    retention_batch: int = Field(default=500, ge=1, description="Most deletions of each kind per run.")


@dataclass(frozen=True)
class RetentionPolicy:
    artifact_days: int | None = None
    artifact_days_by_kind: dict[str, int | None] = field(default_factory=dict)
    original_days: int | None = 30
    audit_days: int = 6 * 365
    batch: int = 500

    def artifact_max_age(self, kind: str) -> timedelta | None:
        days = self.artifact_days_by_kind.get(kind, self.artifact_days)
        return None if days is None else timedelta(days=days)

    def original_max_age(self) -> timedelta | None:
        return None if self.original_days is None else timedelta(days=self.original_days)

    def describe(self) -> dict[str, object]:
        return {
            "artifact_days": self.artifact_days,
            "artifact_days_by_kind": dict(self.artifact_days_by_kind),
            "original_days": self.original_days,
            "audit_days": self.audit_days,
        }


def policy_from_settings(settings: Settings, extra: RetentionSettings | None = None) -> RetentionPolicy:
    extra = extra or RetentionSettings()
    by_kind: dict[str, int | None] = {}
    if extra.artifact_retention_days_by_kind.strip():
        raw = json.loads(extra.artifact_retention_days_by_kind)
        if not isinstance(raw, dict):
            raise ValueError("DMASK_ARTIFACT_RETENTION_DAYS_BY_KIND must be a JSON object")
        for kind, days in raw.items():
            if days is not None and (not isinstance(days, int) or days < 0):
                raise ValueError("retention days must be non-negative integers or null")
            by_kind[str(kind)] = days
    return RetentionPolicy(
        artifact_days=settings.artifact_retention_days,
        artifact_days_by_kind=by_kind,
        original_days=extra.original_retention_days,
        audit_days=settings.audit_retention_days,
        batch=extra.retention_batch,
    )
