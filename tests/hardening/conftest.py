"""Fixtures of the hardening suite: the service tests' real components, reused.

The deployment factory (``make_stack``), the SeaweedFS server (``weed``) and ``shared_data`` are the
ones of ``tests/service/conftest.py``, loaded from there (not copied): a deployment here is started
exactly like one there. On top of them: a deployment for this suite (``hstack``), private
PostgreSQL/Redis/SeaweedFS processes that tests may stop and restart (``hardening_support``), the
corpus of hostile input (``corpus``), and invariant checks shared by the fault tests.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
SERVICE_TESTS = HERE.parent / "service"
for p in (SERVICE_TESTS, HERE):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from hardening_support import PRESIGN_TTL_S  # noqa: E402
from service_support import Stack, service_fixtures  # noqa: E402

_service_conftest = service_fixtures("service_conftest")

# The service suite's fixtures, registered for this directory too.
shared_data = _service_conftest.shared_data
weed = _service_conftest.weed
make_stack = _service_conftest.make_stack
record_id = _service_conftest.record_id


@pytest.fixture(scope="session")
def hstack(make_stack: Callable[..., Stack]) -> Stack:
    """This suite's shared deployment: API + one Celery worker, short presigned-URL lifetime."""
    s = make_stack(presign_ttl_s=PRESIGN_TTL_S, max_upload_bytes=32 << 20)
    s.start_api()
    s.start_worker()
    return s


@pytest.fixture
def fresh_stack(make_stack: Callable[..., Stack]) -> Iterator[Callable[..., Stack]]:
    """A deployment of its own for one test, stopped when the test ends (the factory's session
    teardown only drops its database): fault tests leave no worker running behind them."""
    made: list[Stack] = []

    def factory(**kw: Any) -> Stack:
        s = make_stack(**kw)
        made.append(s)
        return s

    yield factory
    for s in made:
        s.stop()


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> tuple[Path, list[Any]]:
    """The hostile-input corpus, built once per session into a temporary folder."""
    from build_corpus import build

    out = tmp_path_factory.mktemp("corpus")
    return out, build(out, shared_data)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "hardening: fault, hostile-input, fuzz and security tests (tests/hardening)"
    )
