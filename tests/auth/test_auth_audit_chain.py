"""The actor columns joined the hash-chained audit log (migration 0004_actors) without breaking it:
rows written before keep their hashes and verify, online and in exports of either format, and a new
row's actor is covered by its hash."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
from service_support import create_database, drop_database, pg_connect
from sqlalchemy import text

from services.settings import Settings

GENESIS = "0" * 64


def _legacy_hash(row: dict[str, Any]) -> str:
    """The hash as the service computed it before 0004, written out independently of its code."""
    content = {k: row[k] for k in row if k not in ("id", "hash")} | {"seq": row["id"]}
    blob = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _legacy_rows(n: int) -> list[dict[str, Any]]:
    rows, prev = [], GENESIS
    for i in range(1, n + 1):
        row = {
            "id": i,
            "ts": f"2026-11-28T10:00:0{i}.000000Z",
            "client_id": "clinic-a",
            "key_id": "0123456789abcdef",
            "source_ip": "10.1.2.3",
            "action": "artifact.read",
            "outcome": "success",
            "record_id": f"MRN-{i}",
            "media_id": None,
            "job_id": None,
            "artifact_id": None,
            "request_id": f"req-{i}",
            "detail": {"delivery": "presigned"},
            "prev_hash": prev,
        }
        row["hash"] = _legacy_hash(row)
        prev = row["hash"]
        rows.append(row)
    return rows


@pytest.fixture
def upgraded_db(tmp_path: Path) -> Any:
    """A database at revision 0003 holding three events, then upgraded to head."""
    from services.migrate import upgrade

    name, url = create_database("dmask_auth_chain")
    settings = Settings(home=tmp_path, database_url=url)
    upgrade(settings, "0003_storage_key_indexes")
    rows = _legacy_rows(3)
    with pg_connect(name) as conn:
        for row in rows:
            conn.execute(
                "INSERT INTO audit_events (id, ts, client_id, key_id, source_ip, action, outcome, record_id, "
                "media_id, job_id, artifact_id, request_id, detail, prev_hash, hash) VALUES (%s, %s, %s, %s, "
                "%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    row["id"],
                    row["ts"].replace("Z", "+00:00"),
                    *(row[k] for k in ("client_id", "key_id", "source_ip", "action", "outcome", "record_id")),
                    *(row[k] for k in ("media_id", "job_id", "artifact_id", "request_id")),
                    json.dumps(row["detail"]),
                    row["prev_hash"],
                    row["hash"],
                ],
            )
        conn.execute("UPDATE audit_head SET seq = %s, hash = %s WHERE id = 1", [3, rows[-1]["hash"]])
    upgrade(settings)
    yield settings, rows
    from services.db import get_engine

    get_engine(settings).dispose()
    drop_database(name)


def test_old_rows_verify_beside_new_rows_that_name_their_actor(upgraded_db: Any, tmp_path: Path) -> None:
    from services.audit import service as audit
    from services.db import get_sessionmaker, session_scope
    from services.reports import export
    from services.reports.verify import verify_export

    settings, legacy = upgraded_db
    person = audit.Actor("person", "olivia", "Olivia Officer", "https://idp.hospital.example", "dmask-ui")
    with session_scope(settings) as s:
        new = audit.append(s, audit.AuditContext(client_id="unassigned", actor=person), "audit.read")
        assert new.prev_hash == legacy[-1]["hash"]
    with get_sessionmaker(settings)() as s:
        result = audit.verify(s)
        assert result.ok and result.checked == 4, result
        stored = [audit.event_dict(e) for e in audit.query(s, audit.AuditFilter(), None)]
    assert [r["hash"] for r in stored[:3]] == [r["hash"] for r in legacy], "old rows keep their hashes"
    assert stored[3]["actor_name"] == "Olivia Officer" and stored[0]["actor_kind"] is None

    with get_sessionmaker(settings)() as s:
        head = export.chain_head(s)
        body = b"".join(export.generate(export.iter_rows(s, audit.AuditFilter(), head.seq), "csv", head, {}))
    good = tmp_path / "audit.csv"
    good.write_bytes(body)
    assert verify_export(good).ok

    # blanking the person's name in the export breaks the row's hash
    text_ = body.decode()
    forged = tmp_path / "forged.csv"
    forged.write_text(text_.replace("Olivia Officer", "Someone Else"), newline="")
    bad = verify_export(forged)
    assert not bad.ok and bad.seq == 4 and bad.reason == "content does not match its hash"


def test_an_export_written_before_the_actor_columns_still_verifies(upgraded_db: Any, tmp_path: Path) -> None:
    """A file exported under the old 15-column header (kept in an archive) verifies unchanged."""
    from services.audit.routes import LEGACY_CSV_FIELDS
    from services.reports.export import TRAILER_MARK, rows_digest
    from services.reports.verify import verify_export

    _settings, legacy = upgraded_db
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(LEGACY_CSV_FIELDS)
    for row in legacy:
        w.writerow(
            [
                "" if row[f] is None else (json.dumps(row[f], sort_keys=True) if f == "detail" else row[f])
                for f in LEGACY_CSV_FIELDS
            ]
        )
    trailer = {
        "format": "dmask.audit-export/1",
        "chain_head": {"seq": 3, "hash": legacy[-1]["hash"]},
        "rows": 3,
        "first_seq": 1,
        "last_seq": 3,
        "rows_digest": rows_digest(r["hash"] for r in legacy),
        "filters": {},
        "exported_at": "2026-11-29T00:00:00.000000Z",
    }
    w.writerow([TRAILER_MARK, json.dumps(trailer, sort_keys=True)])
    old = tmp_path / "old.csv"
    old.write_text(buf.getvalue(), newline="")
    result = verify_export(old)
    assert result.ok and result.rows == 3, result
    # and the old export is still checked: a changed source address is found
    old.write_text(buf.getvalue().replace("10.1.2.3", "10.6.6.6", 1), newline="")
    assert not verify_export(old).ok


def test_the_actor_columns_are_in_place_after_the_migration(upgraded_db: Any) -> None:
    from services.db import get_engine

    settings, _ = upgraded_db
    with get_engine(settings).connect() as conn:
        cols = {
            r[0]
            for r in conn.execute(
                text("SELECT column_name FROM information_schema.columns WHERE table_name = 'audit_events'")
            )
        }
    assert {"actor_kind", "actor_sub", "actor_name", "actor_issuer", "actor_client"} <= cols
