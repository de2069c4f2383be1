"""Fixtures of the fhir tests: one embedded-mode service on PostgreSQL + SeaweedFS per session."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "dicomweb"))

from dicomweb_support import Node, serve  # noqa: E402
from service_support import REPO, Seaweed  # noqa: E402


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = Path(os.environ.get("DMASK_SHARED_DATA", REPO.parent / "shared" / "data"))
    if not (root / "manifest.json").exists():
        pytest.fail(f"shared data not found at {root} (set DMASK_SHARED_DATA)")
    return root


@pytest.fixture(scope="session")
def weed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seaweed]:
    server = Seaweed(tmp_path_factory.mktemp("seaweed"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def node(weed: Seaweed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    with serve(weed, tmp_path_factory.mktemp("home")) as n:
        yield n
