"""Fixtures of the sign-in tests: a real OpenID provider (oidc-provider on node) and the service
configured to trust it, each on a free loopback port."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "service"))

from auth_support import (  # noqa: E402
    UI_SHORT_CLIENT,
    OpenIdProvider,
    Service,
    oidc_settings,
    start_provider,
    start_service,
)
from service_support import free_port  # noqa: E402


@dataclass
class Ports:
    main: int
    short: int

    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in (self.main, self.short)]


@pytest.fixture(scope="session")
def ports() -> Ports:
    return Ports(free_port(), free_port())


@pytest.fixture(scope="session")
def idp(ports: Ports, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenIdProvider]:
    provider = start_provider(tmp_path_factory.mktemp("idp"), ports.urls())
    yield provider
    provider.stop()


@pytest.fixture(scope="session")
def service(idp: OpenIdProvider, ports: Ports, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    svc = start_service(tmp_path_factory.mktemp("home"), ports.main, **oidc_settings(idp))
    svc.app.state.oidc_provider.min_refresh_s = 0.0  # the unknown-kid test sees its one refresh at once
    yield svc
    svc.stop()


@pytest.fixture
def short_lived_service(
    idp: OpenIdProvider, ports: Ports, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    """The service as a client whose tokens live 3 seconds at the provider."""
    svc = start_service(
        tmp_path_factory.mktemp("home-short"), ports.short, **oidc_settings(idp, UI_SHORT_CLIENT)
    )
    yield svc
    svc.stop()


@pytest.fixture
def embedded_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Service]]:
    """The service without any identity provider (the embedded default's sign-in)."""
    made: list[Service] = []

    def factory(**overrides: Any) -> Service:
        svc = start_service(tmp_path_factory.mktemp("home-local"), free_port(), **overrides)
        made.append(svc)
        return svc

    yield factory
    for svc in made:
        svc.stop()
