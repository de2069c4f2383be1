"""The embedded default: `dmask serve` with nothing but DMASK_HOME set runs SQLite, the local folder
store and an in-process worker, and masks an upload (the curl walk-through of services/README.md)."""

from __future__ import annotations

import sqlite3
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from service_support import PY, REPO, Proc, clean_env, free_port, tail, wait_for, wait_job

pytestmark = pytest.mark.slow


def test_embedded_default_masks_an_upload(tmp_path: Path, shared_data: Path) -> None:
    home = tmp_path / "var"
    env = clean_env()
    env["DMASK_HOME"] = str(home)

    def dmask(*args: str) -> str:
        res = subprocess.run(
            [PY, "-m", "services.cli", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
        )
        assert res.returncode == 0, res.stderr
        return res.stdout

    key = (
        dmask(
            "keys",
            "create",
            "--client",
            "frontdesk",
            "--scope",
            "media:write",
            "--scope",
            "media:read",
            "--scope",
            "audit:read",
        )
        .strip()
        .splitlines()[-1]
    )
    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "ab") as out:
        popen = subprocess.Popen(
            [PY, "-m", "services.cli", "serve", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    proc = Proc(popen, log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: httpx.get(base + "/readyz", timeout=3).status_code == 200, 60, "embedded API")
        assert httpx.get(base + "/readyz").json()["checks"] == {"database": "ok"}
        report = httpx.get(base + "/dependencies").json()
        assert report["dependencies"] == {"database": "ok", "broker": "in-process", "storage": "ok"}
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60) as c:
            photo = shared_data / "faces/natalie_portman/1.jpg"
            r = c.post("/v1/records/MRN-0001/media", files={"file": ("p.jpg", photo.read_bytes())})
            assert r.status_code == 202, r.text
            job = wait_job(c, r.json()["job_id"], timeout=240)
            assert job["status"] == "succeeded", (job, tail(log))
            got = c.get(f"/v1/artifacts/{job['artifact_id']}")  # local store: streamed, no redirect
            assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg"
            assert got.content[:3] == b"\xff\xd8\xff" and got.content != photo.read_bytes()
            assert len(got.content) == int(got.headers["content-length"])
            assert c.get(f"/v1/artifacts/{job['artifact_id']}/metrics").json()["frames"] == 1
            wait_for(
                lambda: not list((home / "objects" / "dmask-originals").rglob("??/*")), 20, "original deleted"
            )
            assert c.get("/v1/audit/verify").json()["ok"] is True
        heartbeat = home / "worker.heartbeat"
        assert heartbeat.exists() and time.time() - heartbeat.stat().st_mtime < 15
    finally:
        proc.stop()
    assert not proc.alive()

    # Everything lives under DMASK_HOME: the database, objects, heartbeat.
    db = home / "dmask.sqlite3"
    assert db.exists() and (home / "objects" / "dmask-artifacts").is_dir()

    # SQLite has no trigger: a tampered row is caught by the hash chain (every SQLite transaction is
    # BEGIN IMMEDIATE, which kept the chain linear across threads and processes).
    # `dmask audit verify` reports the first broken row and exits 1.
    assert '"ok": true' in dmask("audit", "verify")
    with sqlite3.connect(db) as conn:
        # Whoever holds the file can drop any guard trigger first; the chain still tells.
        triggers = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_events'"
        ).fetchall()
        for (name,) in triggers:
            conn.execute(f'DROP TRIGGER "{name}"')
        conn.execute("UPDATE audit_events SET outcome = 'denied' WHERE action = 'media.upload'")
        (target,) = conn.execute("SELECT id FROM audit_events WHERE action = 'media.upload'").fetchone()
    res = subprocess.run(
        [PY, "-m", "services.cli", "audit", "verify"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 1
    assert f'"first_broken": {target}' in res.stdout
