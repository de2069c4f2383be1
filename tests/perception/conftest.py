"""Shared fixtures of the perception tests: real photos from the shared DEV set, one FacePerception
per session (loading the networks takes ~0.5 s), and the reference .tflite models."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from perception_support import MEDIAPIPE_VERSION, REPO, TFLITE_FILES, shared_data_dir

from models.perception import FacePerception


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = shared_data_dir()
    if not (root / "manifest.json").is_file():
        pytest.skip(f"shared DEV data not found at {root} (set DMASK_SHARED_DATA)")
    return root


@pytest.fixture(scope="session")
def manifest(shared_data: Path) -> dict[str, Any]:
    return dict(json.loads((shared_data / "manifest.json").read_text()))


@pytest.fixture(scope="session")
def perception() -> FacePerception:
    return FacePerception(device="cpu", detector="full")


@pytest.fixture(scope="session")
def tflite_dir() -> Path:
    """The four MediaPipe .tflite models, fetched once into a cache by
    tools/fetch_mediapipe_models.sh (env DMASK_MEDIAPIPE_DIR may point at an existing copy)."""
    given = os.environ.get("DMASK_MEDIAPIPE_DIR")
    if given:
        folder = Path(given)
    else:
        cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        folder = cache / "dmask" / f"mediapipe-{MEDIAPIPE_VERSION}"
    if not all((folder / f).is_file() for f in TFLITE_FILES):
        tmp = folder.with_name(folder.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        proc = subprocess.run(
            ["bash", str(REPO / "tools" / "fetch_mediapipe_models.sh"), str(tmp)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if proc.returncode != 0:
            pytest.skip(
                "cannot fetch the reference mediapipe wheel with pip (registry unreachable?): "
                + (proc.stderr.strip().splitlines() or ["no output"])[-1]
            )
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
    return folder
