"""Fixtures of the operations suite: the service tests' real components (``make_stack``, ``weed``,
``shared_data`` from tests/service/conftest.py, loaded, not copied) and the hardening suite's
restartable private dependencies (tests/hardening/hardening_support.py), so outages here are real:
a Redis or SeaweedFS process of this test's own is killed and started again."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
for p in (TESTS / "service", TESTS / "hardening", TESTS / "deploy", HERE):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from service_support import service_fixtures  # noqa: E402

_service_conftest = service_fixtures("service_conftest_ops")
shared_data = _service_conftest.shared_data
weed = _service_conftest.weed
make_stack = _service_conftest.make_stack


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "ops: outage, recovery and runbook tests (tests/ops)")
