"""The audit trail: what a full flow writes, queries and exports, and tamper evidence."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from service_support import Stack, pg_connect, wait_for, wait_job


def test_full_flow_is_audited(
    stack: Stack, writer_a: str, auditor: str, shared_data: Path, record_id: str
) -> None:
    with stack.http(writer_a) as c:
        r = c.post(
            f"/v1/records/{record_id}/media",
            content=(shared_data / "faces/matt_damon/1.jpg").read_bytes(),
            headers={"Content-Type": "image/jpeg", "X-Request-ID": "ehr-req-42"},
        )
        assert r.status_code == 202 and r.headers["x-request-id"] == "ehr-req-42"
        job = wait_job(c, r.json()["job_id"])
        assert job["status"] == "succeeded"
        assert c.get(f"/v1/artifacts/{job['artifact_id']}").status_code == 307
        assert c.get(f"/v1/artifacts/{job['artifact_id']}/metrics").status_code == 200
        assert c.get(f"/v1/records/{record_id}/media").status_code == 200
    with stack.http(auditor) as c:
        # The original is deleted right after the success is committed: wait for that event too.
        events = wait_for(
            lambda: (
                (ev := c.get("/v1/audit", params={"record": record_id}).json()["items"])
                and any(e["action"] == "original.delete" for e in ev)
                and ev
            ),
            30,
            "original.delete event",
        )
    events = [e for e in events if not e["action"].startswith("audit.")]  # our own reads of the log
    actions = [e["action"] for e in events]
    deletion = actions.index("original.delete")
    assert deletion > actions.index("job.succeeded")
    del actions[deletion]
    assert actions == [
        "media.upload",
        "job.queued",
        "job.running",
        "job.succeeded",
        "artifact.read",
        "artifact.metrics_read",
        "media.list",
    ], actions
    key_id = writer_a.split("_")[1]
    by_action = {e["action"]: e for e in events}
    upload_ev = by_action["media.upload"]
    assert upload_ev["client_id"] == "clinic-a" and upload_ev["key_id"] == key_id
    assert upload_ev["source_ip"] == "127.0.0.1" and upload_ev["request_id"] == "ehr-req-42"
    assert upload_ev["outcome"] == "success"
    assert upload_ev["media_id"] == r.json()["media_id"] and upload_ev["job_id"] == job["job_id"]
    assert upload_ev["detail"]["sha256"] == r.json()["sha256"]
    assert by_action["job.succeeded"]["artifact_id"] == job["artifact_id"]
    assert by_action["artifact.read"]["artifact_id"] == job["artifact_id"]
    assert by_action["artifact.read"]["key_id"] == key_id
    assert by_action["original.delete"]["outcome"] == "success"
    for e in events:
        assert e["record_id"] == record_id and len(e["hash"]) == 64 and e["ts"].endswith("Z")
    ids = [e["id"] for e in events]
    assert ids == sorted(ids)


def test_rejections_are_audited(stack: Stack, writer_a: str, auditor: str, record_id: str) -> None:
    with stack.http(writer_a) as c:
        assert c.post(f"/v1/records/{record_id}/media", content=b"<html></html>" * 10).status_code == 415
    with stack.http(auditor) as c:
        [ev] = [
            e
            for e in c.get("/v1/audit", params={"record": record_id}).json()["items"]
            if e["action"] == "media.upload"
        ]
    assert ev["action"] == "media.upload" and ev["outcome"] == "rejected"
    assert ev["detail"] == {"status": 415, "reason": "unsupported-media-type"}


def test_query_filters_cursor_and_exports(stack: Stack, auditor: str, writer_a: str) -> None:
    with stack.http() as anon:  # a few denied requests to have something to page through
        for _ in range(5):
            anon.get("/v1/records/R/media")
    with stack.http(auditor) as c:
        everything = []
        cursor = None
        while True:
            params: dict[str, str | int] = {"limit": 7}
            if cursor:
                params["cursor"] = cursor
            page = c.get("/v1/audit", params=params).json()
            everything += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        ids = [e["id"] for e in everything]
        assert ids == list(range(1, len(ids) + 1))  # the chain is gapless and ordered
        for e, prev in zip(everything[1:], everything, strict=False):
            assert e["prev_hash"] == prev["hash"]

        denied = c.get("/v1/audit", params={"action": "request.denied", "outcome": "denied", "limit": 1000})
        assert denied.json()["items"] and all(e["action"] == "request.denied" for e in denied.json()["items"])
        mine = c.get("/v1/audit", params={"client": "clinic-a", "limit": 1000}).json()["items"]
        assert mine and all(e["client_id"] == "clinic-a" for e in mine)
        future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        assert c.get("/v1/audit", params={"since": future}).json()["items"] == []
        past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
        assert c.get("/v1/audit", params={"until": past}).json()["items"] == []

        nd = c.get("/v1/audit", params={"format": "ndjson", "action": "request.denied"})
        assert nd.headers["content-type"].startswith("application/x-ndjson")
        nd_rows = [json.loads(line) for line in nd.text.splitlines() if line]
        assert [r["id"] for r in nd_rows][: len(denied.json()["items"])] == [
            e["id"] for e in denied.json()["items"]
        ]

        cs = c.get("/v1/audit", params={"format": "csv", "client": "clinic-a"})
        assert cs.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(cs.text)))
        assert {r["client_id"] for r in rows} == {"clinic-a"}
        assert [int(r["id"]) for r in rows][: len(mine)] == [e["id"] for e in mine]
        assert json.loads(rows[0]["detail"]) == mine[0]["detail"]

        exports = c.get("/v1/audit", params={"action": "audit.export", "limit": 1000}).json()["items"]
        assert {e["detail"]["format"] for e in exports} >= {"csv", "ndjson"}

        v = c.get("/v1/audit/verify").json()
        assert v["ok"] is True and v["first_broken"] is None and v["checked"] >= len(ids)


def test_concurrent_appends_keep_one_linear_chain(stack: Stack, auditor: str) -> None:
    """Appends from many API threads and from CLI processes at once: one chain, no forks, no gaps."""

    def denied(_: int) -> int:
        with stack.http() as c:
            return c.get("/v1/records/R/media").status_code

    with ThreadPoolExecutor(16) as pool:
        keys = [
            pool.submit(stack.cli, "keys", "create", "--client", f"burst-{i}", "--scope", "media:read")
            for i in range(3)
        ]
        assert set(pool.map(denied, range(60))) == {401}
        for k in keys:
            k.result()
    with stack.http(auditor) as c:
        v = c.get("/v1/audit/verify").json()
    assert v["ok"] is True, v


def test_postgres_trigger_rejects_update_and_delete(stack: Stack) -> None:
    assert stack.db_name
    with pg_connect(stack.db_name) as conn:
        for sql in (
            "UPDATE audit_events SET outcome = 'success' WHERE id = 1",
            "DELETE FROM audit_events WHERE id = 1",
            "TRUNCATE audit_events",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                conn.execute(sql)


def test_tampering_is_found_by_verify(make_stack: Callable[..., Stack]) -> None:
    """On PostgreSQL the trigger stops UPDATE/DELETE; a superuser who disables it can still edit
    rows, and the hash chain then shows where."""
    s = make_stack()
    s.start_api()
    auditor = s.key("compliance", "audit:read")
    s.key("clinic-a", "media:write")
    with s.http() as anon:
        for _ in range(4):
            anon.get("/v1/records/R/media")
    with s.http(auditor) as c:
        assert c.get("/v1/audit/verify").json()["ok"] is True
        events = c.get("/v1/audit").json()["items"]
    target = events[3]["id"]
    assert s.db_name
    with pg_connect(s.db_name) as conn:
        conn.execute("SET session_replication_role = replica")  # superuser: triggers off for this session
        conn.execute("UPDATE audit_events SET source_ip = '10.9.9.9' WHERE id = %s", (target,))
    with s.http(auditor) as c:
        v = c.get("/v1/audit/verify").json()
    assert v == {
        "ok": False,
        "checked": target - 1,
        "first_broken": target,
        "reason": "content does not match its hash",
    }
    res = s.cli("audit", "verify", check=False)
    assert res.returncode == 1 and json.loads(res.stdout)["first_broken"] == target

    # Recomputing the row's own hash does not help: the next row's link breaks instead.
    with pg_connect(s.db_name) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("UPDATE audit_events SET hash = repeat('a', 64) WHERE id = %s", (target,))
    with s.http(auditor) as c:
        assert c.get("/v1/audit/verify").json()["first_broken"] in (target, target + 1)

    # Deleting a row leaves a gap.
    with pg_connect(s.db_name) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("DELETE FROM audit_events WHERE id = 2")
    with s.http(auditor) as c:
        v = c.get("/v1/audit/verify").json()
    assert v["ok"] is False and v["first_broken"] == 2
