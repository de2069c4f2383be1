"""Fixtures for the DICOM path tests (helpers live in dicom_helpers.py)."""

from __future__ import annotations

import json

import pytest
from dicom_helpers import shared


@pytest.fixture(scope="session")
def manifest() -> dict:
    return json.loads(shared("manifest.json").read_text())
