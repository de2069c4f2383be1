"""Property-based fuzzing of the HTTP API from its own OpenAPI schema (schemathesis).

Every operation of ``/openapi.json`` is called with generated valid and invalid input, with an admin
key (every route reachable) on the real deployment. Checks: no 5xx ever, and every response whose
status the schema documents matches the documented schema. Bounded (examples per operation, a time
budget, deterministic generation) so it takes a minute or two in CI; schemathesis prints a curl
command for each failure. The coverage phase is left out: in schemathesis 4.32 it fails inside
hypothesis ("AST constructor recursion depth mismatch") on this schema.

Found so far (fixed, with the regressions below): a NUL in a query parameter reached PostgreSQL
and answered 500; every 422 was documented as FastAPI's JSON instead of problem+json.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from service_support import Stack

pytestmark = pytest.mark.hardening

ST = shutil.which("st", path=str(Path(sys.executable).parent)) or shutil.which("st")
MAX_EXAMPLES = int(os.environ.get("DMASK_FUZZ_API_EXAMPLES", "12"))
MAX_TIME_S = int(os.environ.get("DMASK_FUZZ_API_SECONDS", "45"))
SEED = int(os.environ.get("DMASK_FUZZ_API_SEED", "20261128"))


@pytest.mark.skipif(ST is None, reason="schemathesis is not installed (pip install schemathesis)")
def test_api_conforms_to_its_schema_under_fuzzing(hstack: Stack, tmp_path: Path) -> None:
    key = hstack.key("fuzzer", "admin")
    assert ST is not None
    cmd = [
        ST,
        "run",
        f"{hstack.api_url}/openapi.json",
        "--header",
        f"Authorization: Bearer {key}",
        "--checks",
        "not_a_server_error,response_schema_conformance,content_type_conformance",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--max-time",
        str(MAX_TIME_S),
        "--seed",
        str(SEED),
        "--workers",
        "2",
        "--request-timeout",
        "30",
        "--generation-deterministic",
        "--no-color",
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path),
        "--phases",
        "examples,fuzzing,stateful",
        # /readyz answers 503 by design while a dependency is down, and documents it. STOW-RS
        # bodies are multipart/related, which schemathesis cannot generate (its own tests cover it).
        "--exclude-path",
        "/readyz",
        "--exclude-path-regex",
        "^/dicomweb/",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=MAX_TIME_S + 240)
    out = res.stdout + res.stderr
    (tmp_path / "schemathesis.txt").write_text(out)
    assert res.returncode == 0, out[-20000:]
    assert "passed" in out.lower() or "success" in out.lower(), out[-5000:]


def test_nul_in_a_query_parameter_is_a_client_error(hstack: Stack) -> None:
    """Regression (found by the fuzzer): ``GET /v1/audit?action=%00`` answered 500 (PostgreSQL text
    cannot hold NUL); now 422."""
    with hstack.http(hstack.key("fuzzer", "admin")) as c:
        for params in ({"action": "a\x00b"}, {"outcome": "\x00"}, {"record": "MRN\x00"}):
            r = c.get("/v1/audit", params=params)
            assert r.status_code == 422, r.text
            assert r.headers["content-type"].startswith("application/problem+json")


def test_error_answers_are_documented_as_problems(hstack: Stack) -> None:
    spec = hstack.http().get("/openapi.json").json()
    assert "Problem" in spec["components"]["schemas"]
    for path, item in spec["paths"].items():
        for method, op in item.items():
            for code, response in op.get("responses", {}).items():
                if code.isdigit() and int(code) >= 400:
                    assert list(response.get("content", {})) == ["application/problem+json"], (
                        method,
                        path,
                        code,
                    )
