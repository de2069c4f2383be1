"""Fixtures for the masking-model tests: real data from ../shared/data and one loaded model."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image, ImageOps

from models.api import get_model
from models.pipeline import DigitalMask

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = Path(os.environ.get("DMASK_SHARED_DATA", REPO.parent / "shared" / "data"))
    if not (root / "manifest.json").exists():
        pytest.fail(f"shared data not found at {root} (set DMASK_SHARED_DATA)")
    return root


@pytest.fixture(scope="session")
def manifest(shared_data: Path) -> dict[str, Any]:
    return json.loads((shared_data / "manifest.json").read_text())


@pytest.fixture(scope="session")
def model() -> DigitalMask:
    return get_model("cpu", 8)


@pytest.fixture(scope="session")
def load_photo(shared_data: Path) -> Callable[[str], np.ndarray]:
    """Upright RGB pixels of a shared photo, by its path in the manifest."""

    def load(rel: str) -> np.ndarray:
        return np.asarray(ImageOps.exif_transpose(Image.open(shared_data / rel)).convert("RGB"))

    return load


@pytest.fixture(scope="session")
def load_video(shared_data: Path) -> Callable[[str], tuple[list[np.ndarray], float]]:
    """Every RGB frame of a shared video, by its path in the manifest, and its frame rate."""

    def load(rel: str) -> tuple[list[np.ndarray], float]:
        with av.open(str(shared_data / rel)) as c:
            rate = c.streams.video[0].average_rate
            assert rate is not None, f"{rel} declares no frame rate"
            return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)], float(rate)

    return load
