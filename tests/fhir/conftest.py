"""Fixtures of the fhir tests: one embedded-mode service on PostgreSQL + SeaweedFS per session."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "dicomweb"))

from dicomweb_support import node, shared_data, weed  # noqa: E402, F401  (session fixtures)
