"""Fixtures for the media tests (builders live in ``media_builders``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from media_builders import shared_data_dir
from PIL import Image


@pytest.fixture(scope="session")
def shared() -> Path:
    root = shared_data_dir()
    if not (root / "manifest.json").is_file():
        pytest.skip("shared data set not available (set DMASK_SHARED_DATA)")
    return root


@pytest.fixture(scope="session")
def manifest(shared: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((shared / "manifest.json").read_text())
    return data


@pytest.fixture(scope="session")
def face_rgb(shared: Path) -> np.ndarray:
    """A real face photo, small, as RGB."""
    with Image.open(shared / "faces" / "angelina_jolie" / "4.jpg") as im:
        return np.asarray(im.convert("RGB").resize((160, 248)))
