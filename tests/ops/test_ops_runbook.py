"""docs/operations.md, executed: every ``sh`` block runs, in document order, against a site of this
test's own (a private PostgreSQL cluster, Redis and SeaweedFS S3 server, ``dmask serve`` and
``dmask worker`` started by the document's own commands). Between blocks the test does what the
document says happens there (clients upload; the site is lost; the service is stopped for a key
rotation) and checks the results the document promises:

* least privilege: the service runs as ``dmask_app``; neither it nor ``dmask_migrator`` (who ran
  the migrations) can UPDATE, DELETE or TRUNCATE audit events;
* the restore drill: back up, destroy the database and both buckets, restore, then ``dmask audit
  verify`` and ``/v1/audit/verify`` pass and every artifact listed downloads, byte for byte;
* the SSE-C rotation: originals written with the old key are read with the new one;
* Redis settings take effect; the private-CA check passes against a TLS store signed by that CA,
  and the service itself stores and reads through it;
* every metric an alert rule names is exported.

Blocks run with ``bash -euo pipefail``; variables the document exports carry over to later blocks
(``export -p`` into a state file), as they would in the operator's shell."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from deploy_support import prod_values, render
from hardening_support import PrivatePostgres, RestartableSeaweed
from service_support import (
    REPO,
    S3_ACCESS,
    S3_SECRET,
    SSE_C_KEY,
    PrivateRedis,
    clean_env,
    free_port,
    wait_for,
)

pytestmark = [pytest.mark.ops, pytest.mark.slow]

DOC = REPO / "docs" / "operations.md"
BIN = Path(sys.executable).parent
LONG_RUNNING = re.compile(r"^dmask (serve|worker)\b.*$", re.M)


@dataclass
class Block:
    section: str
    code: str


def doc_blocks(kind: str = "sh") -> list[Block]:
    blocks: list[Block] = []
    section = ""
    fence: list[str] | None = None
    for line in DOC.read_text().splitlines():
        if fence is None and line.startswith("## "):
            section = line[3:].strip()
        elif fence is None and line.strip() == f"```{kind}":
            fence = []
        elif fence is not None and line.strip() == "```":
            blocks.append(Block(section, "\n".join(fence)))
            fence = None
        elif fence is not None:
            fence.append(line)
    return blocks


@dataclass
class Site:
    work: Path
    pg: PrivatePostgres
    broker: PrivateRedis
    s3: RestartableSeaweed
    env: dict[str, str]
    blocks: list[Block]
    next_block: int = 0
    pids: list[int] = field(default_factory=list)

    @property
    def state(self) -> Path:
        return self.work / "shell.state"

    def run_next(self, section_prefix: str) -> str:
        """Run the document's next block, which must belong to the section named."""
        block = self.blocks[self.next_block]
        assert block.section.startswith(section_prefix), (block.section, section_prefix)
        self.next_block += 1
        code = LONG_RUNNING.sub(
            lambda m: (
                f'setsid nohup {m.group(0)} > "$RUNBOOK_LOGS/{m.group(1)}.log" 2>&1 &\n'
                f'echo $! >> "$RUNBOOK_LOGS/pids"'
            ),
            block.code,
        )
        script = f'source "{self.state}"\nset -euo pipefail\n{code}\nexport -p > "{self.state}"\n'
        res = subprocess.run(
            ["bash", "-c", script], env=self.env, capture_output=True, text=True, timeout=300, cwd=self.work
        )
        assert res.returncode == 0, (
            f"block failed ({block.section}):\n{block.code}\n{res.stdout}\n{res.stderr}"
        )
        pids = self.work / "logs" / "pids"
        if pids.exists():
            self.pids += [int(p) for p in pids.read_text().split()]
            pids.unlink()
        return res.stdout

    def shell_env(self) -> dict[str, str]:
        """The environment as the document's shell has it now (its exports included)."""
        out = subprocess.run(
            ["bash", "-c", f'source "{self.state}"; env -0'], env=self.env, capture_output=True, check=True
        ).stdout
        return dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)

    def wait_ready(self) -> None:
        """The API answers /readyz and the worker's heartbeat is fresh."""
        api = self.env["API"]
        wait_for(lambda: httpx.get(api + "/readyz", timeout=3).status_code == 200, 90, "API ready")
        beat = Path(self.env["DMASK_WORKER_HEARTBEAT_FILE"])
        since = time.time()
        wait_for(lambda: beat.exists() and beat.stat().st_mtime >= since - 1, 90, "worker heartbeat")

    def stop_service(self) -> None:
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
        for pid in self.pids:
            with contextlib.suppress(ChildProcessError, ProcessLookupError):
                wait_for(lambda p=pid: not Path(f"/proc/{p}").exists() or _zombie(p), 30, "service stopped")
        self.pids.clear()

    def dmask(self, *args: str, **extra: str) -> str:
        env = {**self.shell_env(), **extra}
        res = subprocess.run(
            [str(BIN / "dmask"), *args], env=env, capture_output=True, text=True, timeout=120, cwd=self.work
        )
        assert res.returncode == 0, res.stderr
        return res.stdout

    def sql(self, user: str = "postgres", db: str = "dmask") -> psycopg.Connection[Any]:
        return psycopg.connect(f"postgresql://{user}@127.0.0.1:{self.pg.port}/{db}", autocommit=True)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    work = tmp_path_factory.mktemp("runbook")
    (work / "logs").mkdir()
    pg = PrivatePostgres()
    pg.start()
    broker = PrivateRedis(work / "redis")
    broker.start()
    s3 = RestartableSeaweed(work / "seaweed")
    s3.start()
    port = free_port()
    (work / "backup.pass").write_text(uuid.uuid4().hex)
    env = clean_env()
    env.update(
        {
            "PATH": f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}",
            "RUNBOOK_LOGS": str(work / "logs"),
            "PG_SERVER_URL": f"postgresql://postgres@127.0.0.1:{pg.port}",
            "DB_SERVER": f"127.0.0.1:{pg.port}",
            "MIGRATOR_PASSWORD": uuid.uuid4().hex,
            "APP_PASSWORD": uuid.uuid4().hex,
            "DMASK_HOME": str(work / "home"),
            "DMASK_HOST": "127.0.0.1",
            "DMASK_PORT": str(port),
            "DMASK_BROKER_URL": broker.url,
            "DMASK_S3_ENDPOINT": s3.endpoint,
            "DMASK_S3_SECURE": "false",
            "DMASK_S3_ACCESS_KEY": S3_ACCESS,
            "DMASK_S3_SECRET_KEY": S3_SECRET,
            "DMASK_S3_REGION": "us-east-1",
            "DMASK_BUCKET_ORIGINALS": "runbook-originals",
            "DMASK_BUCKET_ARTIFACTS": "runbook-artifacts",
            "DMASK_SSE_C_KEY": SSE_C_KEY,
            "DMASK_HMAC_KEY": base64.b64encode(os.urandom(48)).decode(),
            "DMASK_WORKER_HEARTBEAT_FILE": str(work / "run" / "worker.heartbeat"),
            "DMASK_DEVICE": "cpu",
            "DMASK_LOG_LEVEL": "info",
            "DMASK_JOB_LEASE_S": "10",
            "S3_URL": f"http://{s3.endpoint}",
            "AWS_ACCESS_KEY_ID": S3_ACCESS,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET,
            "AWS_DEFAULT_REGION": "us-east-1",
            "API": f"http://127.0.0.1:{port}",
            "BACKUP_DIR": str(work / "backup" / "today"),
            "BACKUP_PASSPHRASE_FILE": str(work / "backup.pass"),
        }
    )
    s = Site(work, pg, broker, s3, env, doc_blocks())
    s.state.write_text("")
    try:
        yield s
    finally:
        s.stop_service()
        s3.stop()
        broker.kill()
        pg.destroy()


def test_runbook_blocks_are_shell_and_name_no_unset_variable() -> None:
    """A cheap check that fails before the long drill: every block parses as bash, and every
    variable it reads is defined in the table of variables or by an earlier block."""
    text = DOC.read_text()
    blocks = doc_blocks()
    assert len(blocks) >= 10
    table = {
        name
        for line in text.splitlines()
        if line.startswith("| `")
        for name in re.findall(r"`([A-Z_0-9]+)`", line.split("|")[1])
    }
    defined = table | {"RESTORE_TMP", "KEYS_TMP", "NEW_SSE_C_KEY", "NEW_HMAC_KEY", "bucket", "key"}
    for block in blocks:
        subprocess.run(["bash", "-n", "-c", block.code], check=True)
        for name in re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", block.code):
            assert name in defined or name.startswith("DMASK_") or name == "AUDIT_KEY", (name, block.section)


def upload_photos(api: str, key: str, photos: list[Path]) -> list[str]:
    with httpx.Client(base_url=api, headers={"Authorization": f"Bearer {key}"}, timeout=60) as c:
        ids = []
        for p in photos:
            r = c.post(
                f"/v1/records/MRN-{uuid.uuid4().hex[:8]}/media", files={"file": (p.name, p.read_bytes())}
            )
            assert r.status_code == 202, r.text
            ids.append(r.json()["job_id"])
        return ids


def wait_jobs(api: str, key: str, ids: list[str]) -> None:
    with httpx.Client(base_url=api, headers={"Authorization": f"Bearer {key}"}, timeout=30) as c:

        def done() -> bool:
            states = [c.get(f"/v1/jobs/{j}").json()["status"] for j in ids]
            assert "failed" not in states, states
            return all(s == "succeeded" for s in states)

        wait_for(done, 240, "jobs done", interval=0.5)


def artifact_digests(site: Site, key: str) -> dict[str, str]:
    """Every artifact the database lists, downloaded through the API: its SHA-256."""
    with site.sql() as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM artifacts ORDER BY id")]
    out = {}
    with httpx.Client(
        base_url=site.env["API"],
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
        follow_redirects=True,
    ) as c:
        for artifact_id in ids:
            r = c.get(f"/v1/artifacts/{artifact_id}")
            assert r.status_code == 200 and r.content, (artifact_id, r.status_code)
            out[artifact_id] = hashlib.sha256(r.content).hexdigest()
    return out


def assert_append_only(site: Site) -> None:
    for role in ("dmask_migrator", "dmask_app"):
        with site.sql(role) as conn:
            for stmt in (
                "UPDATE audit_events SET action = 'x'",
                "DELETE FROM audit_events",
                "TRUNCATE audit_events",
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(stmt)
            conn.execute("SELECT count(*) FROM audit_events")  # reading stays allowed
    with site.sql("dmask_app") as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("CREATE TABLE app_cannot_do_ddl (x int)")


def test_runbook_end_to_end(site: Site, shared_data: Path) -> None:
    # 1. Roles and database; 2. migrate as the migrator, start as the app, check.
    site.run_next("1.")
    site.run_next("2.")  # dmask db upgrade as dmask_migrator + append-only grants
    site.run_next("2.")  # dmask serve / dmask worker as dmask_app
    site.wait_ready()
    site.run_next("2.")  # the probes and the heartbeat check
    assert_append_only(site)
    with site.sql() as conn:
        users = {
            r[0]
            for r in conn.execute(
                "SELECT usename FROM pg_stat_activity WHERE datname = 'dmask' AND pid <> pg_backend_pid()"
            )
        }
    assert "dmask_app" in users and "postgres" not in users

    writer = site.dmask(
        "keys", "create", "--client", "clinic", "--scope", "media:write", "--scope", "media:read"
    )
    writer = writer.strip().splitlines()[-1]
    auditor = site.dmask("keys", "create", "--client", "compliance", "--scope", "audit:read")
    site.env["AUDIT_KEY"] = auditor.strip().splitlines()[-1]
    admin = site.dmask("keys", "create", "--client", "ops", "--scope", "admin").strip().splitlines()[-1]
    photos = sorted((shared_data / "faces").glob("*/1.jpg"))[:4]
    done_ids = upload_photos(site.env["API"], writer, photos[:3])
    wait_jobs(site.env["API"], writer, done_ids)
    site.stop_service()
    # One upload still waiting for a worker: its original is in the originals bucket at backup time.
    start_api(site)
    pending = upload_photos(site.env["API"], writer, photos[3:])
    before = artifact_digests(site, admin)
    assert len(before) == 3
    site.stop_service()
    s3 = site.s3.client()
    assert list(s3.list_objects(site.env["DMASK_BUCKET_ORIGINALS"], recursive=True))

    # 3. Back up.
    site.run_next("3.")
    backup = Path(site.env["BACKUP_DIR"])
    assert (backup / "dmask.pgdump").stat().st_size > 0 and (backup / "originals.tar.enc").stat().st_size > 0
    assert not (backup / "originals").exists() and not (backup / ".sse-c.key").exists()

    # The site is lost: database and buckets gone.
    with psycopg.connect(site.pg.admin_url, autocommit=True) as conn:
        conn.execute("DROP DATABASE dmask WITH (FORCE)")
    for bucket in (site.env["DMASK_BUCKET_ORIGINALS"], site.env["DMASK_BUCKET_ARTIFACTS"]):
        for obj in s3.list_objects(bucket, recursive=True):
            s3.remove_object(bucket, obj.object_name)
        s3.remove_bucket(bucket)

    # 4. Restore, verify offline, start the API again (section 2's start block), verify online.
    site.run_next("4.")
    site.run_next("4.")
    start_block = next(b for b in site.blocks if LONG_RUNNING.search(b.code))
    start_api(site)  # the API only: the pending job's original waits for the key rotation below
    site.run_next("4.")
    assert artifact_digests(site, admin) == before
    assert_append_only(site)  # the grants came back with the dump
    site.stop_service()

    # 5. Rotate the HMAC and SSE-C keys (service stopped), then start with the new key: the pending
    # job's original, written with the old key, is read with the new one.
    old_key = site.shell_env()["DMASK_SSE_C_KEY"]
    assert list(s3.list_objects(site.env["DMASK_BUCKET_ORIGINALS"], recursive=True)), "nothing to re-encrypt"
    site.run_next("5.")
    site.run_next("5.")
    new_key = site.shell_env()["DMASK_SSE_C_KEY"]
    assert new_key != old_key
    _run_code(site, start_block.code)
    site.wait_ready()
    wait_jobs(site.env["API"], writer, pending)
    assert len(artifact_digests(site, admin)) == 4

    # 6. Redis settings; the private CA of a TLS store.
    site.run_next("6.")
    import redis

    r = redis.Redis.from_url(site.env["DMASK_BROKER_URL"])
    assert r.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    ca, endpoint = tls_store(site)
    site.env["DMASK_S3_CA_BUNDLE"] = str(ca)
    site.env["S3_TLS_ENDPOINT"] = endpoint
    site.run_next("6.")
    assert site.next_block == len(site.blocks), "a block of the runbook was not run"

    # 7. Alerts (the chart's PrometheusRule, which the section documents): every metric a rule names is
    # exported by this running site.
    metrics_key = (
        site.dmask("keys", "create", "--client", "prom", "--scope", "metrics").strip().splitlines()[-1]
    )
    exported = httpx.get(
        site.env["API"] + "/metrics", headers={"Authorization": f"Bearer {metrics_key}"}
    ).text
    (group,) = render(prod_values()).one("PrometheusRule", "")["spec"]["groups"]  # on in production values
    for rule in group["rules"]:
        for name in re.findall(r"\b(dmask_[a-z0-9_]+)", rule["expr"]):
            assert re.search(rf"^{name}[{{ ]", exported, re.M), (rule["alert"], name)
        assert f"`{rule['alert']}`" in DOC.read_text()


def start_api(site: Site) -> None:
    """``dmask serve`` alone, with the document's shell environment."""
    api = subprocess.Popen(
        [str(BIN / "dmask"), "serve"],
        env=site.shell_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    site.pids.append(api.pid)
    wait_for(lambda: httpx.get(site.env["API"] + "/readyz", timeout=3).status_code == 200, 60, "API")


def _run_code(site: Site, code: str) -> None:
    """Run one of the document's blocks again (the start block, after a restore or a rotation)."""
    saved = site.blocks, site.next_block
    site.blocks, site.next_block = [Block("again", code)], 0
    try:
        site.run_next("again")
    finally:
        site.blocks, site.next_block = saved


def tls_store(site: Site) -> tuple[Path, str]:
    """The site's S3 server restarted with an HTTPS port whose certificate a private CA signed; the
    service stores and reads through it with DMASK_S3_CA_BUNDLE, and fails without it."""
    d = site.work / "ca"
    d.mkdir()

    def ssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    ssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=Hospital Test CA",
    )
    ssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "s3.key",
        "-out",
        "s3.csr",
        "-subj",
        "/CN=127.0.0.1",
    )
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    ssl(
        "x509",
        "-req",
        "-in",
        "s3.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "s3.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    )
    https_port = free_port()
    site.s3.kill()
    site.s3._cmd = [  # noqa: SLF001 - the restart command of the test's own server
        *site.s3._cmd,  # noqa: SLF001
        f"-s3.cert.file={d / 's3.pem'}",
        f"-s3.key.file={d / 's3.key'}",
        f"-s3.port.https={https_port}",
    ]
    site.s3.start()
    endpoint = f"127.0.0.1:{https_port}"
    from services.storage.base import StoreError
    from services.storage.s3 import S3Store

    def store(ca: Path | None) -> S3Store:
        return S3Store(
            endpoint,
            S3_ACCESS,
            S3_SECRET,
            secure=True,
            region="us-east-1",
            buckets={"originals": "tls-originals", "artifacts": "tls-artifacts"},
            sse_c_key_b64=SSE_C_KEY,
            ca_bundle=ca,
        )

    trusted = store(d / "ca.pem")
    wait_for(lambda: trusted.ensure_buckets() or True, 30, "TLS store")
    import io

    trusted.put_stream("originals", "k", io.BytesIO(b"phi"), content_type="application/octet-stream")
    assert trusted.get_bytes("originals", "k") == b"phi"
    with pytest.raises(StoreError):
        store(None).check()  # the system trust store does not know the hospital's CA
    return d / "ca.pem", endpoint
