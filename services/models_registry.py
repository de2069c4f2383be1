"""Imports every ORM module so ``Base.metadata`` is complete (Alembic, tests, create_all)."""

from __future__ import annotations


def import_all_models() -> None:
    import services.artifacts.models
    import services.audit.models
    import services.auth.models
    import services.dicomweb.models
    import services.jobs.models
    import services.media.models
    import services.retention.models
    import services.webhooks.models  # noqa: F401
