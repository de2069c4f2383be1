"""Database engine and sessions (SQLAlchemy 2, typed ORM).

One engine per URL per process. SQLite is the embedded default, so it gets the settings that make it
safe with several threads and processes: WAL, a busy timeout, and ``BEGIN IMMEDIATE`` for every
transaction, because a deferred SQLite transaction that reads and then writes fails with
``database is locked`` instead of waiting when another writer got in between.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Engine, create_engine, event
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from services.settings import Settings, get_settings


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite hands back naive values otherwise, and
    the audit hash chain needs the same canonical timestamp on write and on verification)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: dict[Any, Any] = {datetime: UTCDateTime()}


_engines: dict[str, Engine] = {}
_sessionmakers: dict[str, sessionmaker[Session]] = {}
_lock = threading.Lock()


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below emit BEGIN itself (pysqlite would emit a deferred one).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def get_engine(settings: Settings | None = None) -> Engine:
    settings = settings or get_settings()
    url = settings.sqlalchemy_url
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            if url.startswith("sqlite"):
                settings.home.mkdir(parents=True, exist_ok=True)
                engine = create_engine(
                    url, connect_args={"check_same_thread": False, "timeout": 30}, hide_parameters=True
                )
                _configure_sqlite(engine)
            else:
                # hide_parameters: a failed statement's message would otherwise carry its bound
                # values (record IDs) into logs. connect_timeout: a database that does not answer
                # fails a request in seconds (503) instead of hanging it.
                engine = create_engine(
                    url,
                    pool_pre_ping=True,
                    pool_size=10,
                    max_overflow=20,
                    pool_timeout=10,
                    hide_parameters=True,
                    connect_args={"connect_timeout": 5},
                )
            _engines[url] = engine
        return engine


def get_sessionmaker(settings: Settings | None = None) -> sessionmaker[Session]:
    settings = settings or get_settings()
    url = settings.sqlalchemy_url
    maker = _sessionmakers.get(url)
    if maker is None:
        maker = sessionmaker(get_engine(settings), expire_on_commit=False)
        _sessionmakers[url] = maker
    return maker


@contextmanager
def session_scope(settings: Settings | None = None) -> Iterator[Session]:
    """A unit of work: commit on success, roll back on any exception."""
    session = get_sessionmaker(settings)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def is_database_outage(exc: BaseException) -> bool:
    """Connection-level database failures (server down or restarting, connection dropped, pool
    exhausted): the same work may succeed if retried. Integrity and programming errors are not."""
    from sqlalchemy import exc as sa_exc

    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.TimeoutError):
        return True
    return isinstance(exc, sa_exc.DBAPIError) and bool(exc.connection_invalidated)


def dispose_engines() -> None:
    """Forget pooled connections inherited across fork() (a child must never share a parent's socket)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose(close=False)


def is_sqlite(settings: Settings | None = None) -> bool:
    return (settings or get_settings()).sqlalchemy_url.startswith("sqlite")
