"""The masking model is a library of its own: nothing under models/ imports the service or the workers
(the design card in the README), so it can be used, tested and shipped without them."""

from __future__ import annotations

import ast
from pathlib import Path

MODELS = Path(__file__).resolve().parents[2] / "models"
PRODUCT = ("services", "workers")


def _imported_modules(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def test_models_imports_nothing_from_the_service_or_the_workers() -> None:
    offending = [
        f"{path.relative_to(MODELS.parent)}: {name}"
        for path in sorted(MODELS.rglob("*.py"))
        for name in _imported_modules(path)
        if name.split(".")[0] in PRODUCT
    ]
    assert offending == []
