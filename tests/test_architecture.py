"""The layers of the design card (README): the masking model is a library of its own, and the API
hands jobs to the workers without importing them. Checked on the source, so a new import that crosses
a layer fails here rather than in a deployment that lacks the other side."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imported_modules(path: Path) -> list[str]:
    """Every absolute module a file imports, at the top or inside a function."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _crossing(files: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{path.relative_to(ROOT)}: {name}"
        for path in files
        for name in _imported_modules(path)
        if name.split(".")[0] in forbidden
    ]


def test_models_imports_nothing_from_the_service_or_the_workers() -> None:
    assert _crossing(sorted((ROOT / "models").rglob("*.py")), ("services", "workers")) == []


def test_the_api_sends_jobs_without_importing_the_workers() -> None:
    """services.jobs (dispatch, broker) is imported by the workers; importing them back was a cycle."""
    assert _crossing(sorted((ROOT / "services" / "jobs").rglob("*.py")), ("workers",)) == []


def test_the_api_imports_the_workers_only_where_it_starts_them() -> None:
    """The workers import services (jobs, storage, the DICOM library); the API imports a worker module
    only in its entry points, to run the embedded in-process worker or start Celery (app.py, cli.py)."""
    entry_points = {ROOT / "services" / "app.py", ROOT / "services" / "cli.py"}
    files = sorted(p for p in (ROOT / "services").rglob("*.py") if p not in entry_points)
    assert _crossing(files, ("workers",)) == []
