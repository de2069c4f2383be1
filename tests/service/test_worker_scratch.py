"""Job scratch folders (workers/scratch.py): removed when their process is gone, however it went;
never while it lives. Real processes and real ``flock`` locks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from service_support import REPO

from workers.scratch import CREATION_GRACE_S, job_scratch, remove_abandoned

HOLDER = """
import sys, time
from pathlib import Path
from workers.scratch import job_scratch
with job_scratch(Path(sys.argv[1])) as folder:
    (folder / "original").write_bytes(b"a patient's photo")
    print(folder, flush=True)
    time.sleep(600)
"""


def later() -> float:
    """A moment past the grace period of a folder made now."""
    return time.time() + CREATION_GRACE_S + 5


def hold_a_job_folder(base: Path) -> tuple[subprocess.Popen[str], Path]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(base)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, Path(proc.stdout.readline().strip())


def test_a_folder_in_use_is_kept_and_removed_once_its_process_is_killed(tmp_path: Path) -> None:
    proc, folder = hold_a_job_folder(tmp_path)
    try:
        assert remove_abandoned(tmp_path, now=later()) == []
        assert (folder / "original").exists()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert (folder / "original").exists()  # SIGKILL: nothing cleaned up after itself
    assert remove_abandoned(tmp_path, now=later()) == [folder]
    assert not folder.exists()


def test_a_folder_being_created_is_kept(tmp_path: Path) -> None:
    """Between mkdtemp and the lock there is no lock to test: a young folder is left alone."""
    young = tmp_path / "dmask-job-young"
    young.mkdir()
    assert remove_abandoned(tmp_path) == []
    assert remove_abandoned(tmp_path, now=later()) == [young]


def test_a_job_folder_is_private_and_removed_after_use(tmp_path: Path) -> None:
    with job_scratch(tmp_path) as folder:
        assert folder.stat().st_mode & 0o777 == 0o700
        (folder / "original").write_bytes(b"x")
        assert remove_abandoned(tmp_path, now=later()) == []  # this process holds it
    assert not folder.exists()


def test_other_folders_are_never_touched(tmp_path: Path) -> None:
    (tmp_path / "someone-else").mkdir()
    (tmp_path / "dmask-job-file").write_text("not a folder")
    assert remove_abandoned(tmp_path, now=later()) == []
    assert (tmp_path / "someone-else").is_dir() and (tmp_path / "dmask-job-file").is_file()
