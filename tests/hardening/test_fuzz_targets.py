"""Runs the coverage-guided fuzz targets of ``fuzz/`` (atheris, libFuzzer) for a bounded time.

Each target runs as its own process (libFuzzer owns the process: it exits on the first crash and
writes the input to ``crash-*`` under ``-artifact_prefix``), seeded with the shared DICOM files and
the hostile-input corpus. ``DMASK_FUZZ_SECONDS`` sets the time per target (default 15 s in CI; run
longer by hand, e.g. ``DMASK_FUZZ_SECONDS=600``). A failure names the crash file: feed it back with
``python fuzz/<target>.py <crash file>`` to reproduce.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from service_support import REPO, clean_env

pytestmark = pytest.mark.hardening


@pytest.fixture(autouse=True)
def _atheris_installed() -> None:
    """A fuzz test that skips itself cannot fail: a missing fuzzer is an error of the test setup."""
    assert importlib.util.find_spec("atheris") is not None, (
        "atheris is not installed: scripts/bootstrap --dev installs it"
    )


SECONDS = int(os.environ.get("DMASK_FUZZ_SECONDS", "15"))


def run_target(target: str, seeds: Path, work: Path, *extra: str) -> None:
    work.mkdir(parents=True, exist_ok=True)
    env = clean_env()
    env["PYTHONPATH"] = str(REPO)
    cmd = [
        sys.executable,
        str(REPO / "fuzz" / f"{target}.py"),
        f"-max_total_time={SECONDS}",
        "-rss_limit_mb=2048",
        "-timeout=15",
        f"-artifact_prefix={work}/",
        "-print_final_stats=1",
        *extra,
        str(seeds),
    ]
    res = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=SECONDS + 180)
    out = res.stdout + res.stderr
    crashes = sorted(p.name for p in work.iterdir() if p.name.startswith(("crash-", "timeout-", "oom-")))
    assert res.returncode == 0 and not crashes, f"{target} found {crashes} in {work}:\n{out[-6000:]}"
    assert "Done" in out and "runs" in out, out[-3000:]


def test_fuzz_upload_sniffing(tmp_path: Path, corpus: tuple[Path, list[Any]]) -> None:
    folder, _ = corpus
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    for f in folder.iterdir():
        if f.suffix == ".bin":
            (seeds / f.name).write_bytes(f.read_bytes()[:8192])
    run_target("fuzz_sniff", seeds, tmp_path / "work", "-max_len=8192")


def test_fuzz_dicom_reader(tmp_path: Path, corpus: tuple[Path, list[Any]], shared_data: Path) -> None:
    folder, cases = corpus
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    for f in (shared_data / "dicom").glob("*.dcm"):
        shutil.copy(f, seeds / f.name)
    for case in cases:
        data = (folder / case.file).read_bytes()
        if case.name.startswith("dicom-") and len(data) < 64 << 10:
            (seeds / case.file).write_bytes(data)
    run_target("fuzz_dicom", seeds, tmp_path / "work", "-max_len=65536")
