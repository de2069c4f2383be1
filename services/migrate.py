"""Applying the Alembic migrations from code (``dmask db upgrade`` and embedded start-up).

On PostgreSQL an advisory lock serialises concurrent upgrades (several API replicas starting at once
would otherwise race to create the same tables)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from services.db import get_engine
from services.settings import Settings, get_settings

REPO_ROOT = Path(__file__).resolve().parent.parent
MIGRATION_LOCK_ID = 0x444D41534B  # "DMASK"


def alembic_config() -> Config:
    ini = REPO_ROOT / "alembic.ini"
    cfg = Config(str(ini)) if ini.exists() else Config()
    cfg.set_main_option("script_location", str(REPO_ROOT / "migrations"))
    return cfg


def upgrade(settings: Settings | None = None, revision: str = "head") -> None:
    settings = settings or get_settings()
    engine = get_engine(settings)
    cfg = alembic_config()
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_ID})
            conn.commit()
        try:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
            conn.commit()
        finally:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_ID})
                conn.commit()
