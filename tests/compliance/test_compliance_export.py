"""Audit exports with integrity: an unaltered export verifies offline, any one-character alteration is
caught and the first altered row named, and so are removed, reordered or re-hashed rows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from compliance_support import Service

from services.audit.models import AuditEvent
from services.audit.service import compute_hash
from services.reports.verify import NULLABLE, event_from_row, verify_export, verify_export_command


def _download(service: Service, key: str, path: Path, **params: str) -> Path:
    with service.http(key) as c:
        r = c.get("/v1/audit/export", params=params)
    assert r.status_code == 200, r.text
    path.write_bytes(r.content)
    seq, head_hash = r.headers["x-dmask-chain-head"].split(":")
    assert verify_export(path).chain_head == {"seq": int(seq), "hash": head_hash}
    return path


@pytest.fixture(scope="module", autouse=True)
def some_activity(service: Service, writer: str) -> None:
    """Enough events of several shapes (with and without client, detail, record) to export."""
    with service.http() as anon:
        for i in range(4):
            anon.get(f"/v1/records/R{i}/media")
    with service.http(writer) as c:
        for i in range(4):
            c.get(f"/v1/records/MRN-export-{i}/media", headers={"X-Request-ID": f"exp-{i}"})
        c.post("/v1/records/MRN-export-0/media", content=b"not an image" * 40)


@pytest.fixture(scope="module")
def csv_export(service: Service, auditor: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _download(service, auditor, tmp_path_factory.mktemp("export") / "audit.csv", format="csv")


@pytest.fixture(scope="module")
def ndjson_export(service: Service, auditor: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _download(service, auditor, tmp_path_factory.mktemp("export") / "audit.ndjson", format="ndjson")


def _data_lines(path: Path) -> list[str]:
    text = path.read_bytes().decode("utf-8")
    return [line + "\n" for line in text.split("\n")[:-1]]


def test_unaltered_exports_verify(csv_export: Path, ndjson_export: Path) -> None:
    for path, fmt, first_line in ((csv_export, "csv", 1), (ndjson_export, "ndjson", 0)):
        result = verify_export(path)
        assert result.ok, result
        assert result.format == fmt and result.rows > 10 and not result.filters
        head = result.chain_head
        assert head is not None and head["seq"] == result.rows  # the whole chain, genesis to head
        lines = _data_lines(path)
        last = json.loads(lines[-2]) if fmt == "ndjson" else None
        if last is not None:  # the export's own audit event is the last row: exporting is audited
            assert last["action"] == "audit.export" and last["detail"]["integrity"] is True
            assert last["hash"] == head["hash"]
        assert lines[first_line]  # non-empty


def _swap(ch: str) -> str:
    if ch.isdigit():
        return "7" if ch != "7" else "3"
    if ch.isalpha():
        return "q" if ch != "q" else "z"
    return "x"


@pytest.mark.parametrize("fmt", ["csv", "ndjson"])
def test_every_one_character_alteration_names_its_row(
    fmt: str, csv_export: Path, ndjson_export: Path, tmp_path: Path
) -> None:
    src = csv_export if fmt == "csv" else ndjson_export
    lines = _data_lines(src)
    header = 1 if fmt == "csv" else 0
    row_number = 6  # the sixth data row
    index = header + row_number - 1
    line = lines[index]
    target = tmp_path / f"altered.{fmt}"
    body = line.rstrip("\r\n")
    assert len(body) > 200
    for pos in range(len(body)):
        altered = body[:pos] + _swap(body[pos]) + body[pos + 1 :] + line[len(body) :]
        target.write_text(
            "".join(lines[:index] + [altered] + lines[index + 1 :]), encoding="utf-8", newline=""
        )
        result = verify_export(target)
        assert not result.ok, f"alteration at column {pos} ({body[pos]!r}) went unnoticed"
        assert result.first_bad_row == row_number, (pos, body[pos], result)
        assert result.line == index + 1


def test_removed_reordered_rehashed_rows_and_truncation(csv_export: Path, tmp_path: Path) -> None:
    lines = _data_lines(csv_export)
    target = tmp_path / "t.csv"

    def check(new_lines: list[str]) -> tuple[int | None, str | None]:
        target.write_bytes("".join(new_lines).encode())
        result = verify_export(target)
        assert not result.ok
        return result.first_bad_row, result.reason

    # row 4 removed, or rows 4 and 5 swapped: row 4 is not the event that must come fourth
    assert check(lines[:4] + lines[5:]) == (4, "expected event seq 4 here (rows removed or moved)")
    assert check(lines[:4] + [lines[5], lines[4]] + lines[6:]) == (
        4,
        "expected event seq 4 here (rows removed or moved)",
    )
    # the trailer cut off (a truncated download)
    bad_row, reason = check(lines[:-1])
    assert bad_row is None and reason is not None and "trailer" in reason
    # the last row removed, trailer kept
    assert check(lines[:-2] + lines[-1:])[1] is not None
    # row 3 rewritten with a recomputed hash: the chain breaks at the next row
    import csv as csvmod
    import io

    from services.audit.routes import CSV_FIELDS
    from services.reports.export import csv_values, encode_csv_row

    values = next(csvmod.reader(io.StringIO(lines[3])))
    row: dict[str, object] = dict(zip(CSV_FIELDS, values, strict=True))
    for k in NULLABLE:
        row[k] = row[k] or None
    row["id"] = int(str(row["id"]))
    row["detail"] = json.loads(str(row["detail"]))
    row["source_ip"] = "10.6.6.6"
    ev: AuditEvent = event_from_row(row)
    row["hash"] = compute_hash(ev)
    forged = encode_csv_row(csv_values(row))
    assert check(lines[:3] + [forged] + lines[4:]) == (4, "previous-hash link broken")


def test_cli_verifies_offline(csv_export: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert verify_export_command([str(csv_export)]) == 0
    assert capsys.readouterr().out.startswith("OK: ")
    lines = _data_lines(csv_export)
    altered = tmp_path / "altered.csv"
    lines[9] = (
        lines[9].replace("success", "successs", 1) if "success" in lines[9] else lines[9][:-3] + "x\r\n"
    )
    altered.write_bytes("".join(lines).encode())
    # the module is runnable without the service: no database, no settings
    proc = subprocess.run(
        [sys.executable, "-m", "services.reports.verify", str(altered)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "DMASK_DATABASE_URL": "postgresql://nowhere.invalid/none"},
        cwd=Path(__file__).resolve().parents[2],
        timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.startswith("ALTERED: row 9, line 10"), proc.stdout
    assert verify_export_command([str(altered), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["first_bad_row"] == 9
    assert verify_export_command([str(tmp_path / "missing.csv")]) == 2


def test_owner_export_without_trailer(service: Service, auditor: str, tmp_path: Path) -> None:
    """The plain ``/v1/audit?format=csv`` rows verify too; without a trailer only on request."""
    with service.http(auditor) as c:
        r = c.get("/v1/audit", params={"format": "csv"})
    assert r.status_code == 200
    path = tmp_path / "plain.csv"
    path.write_bytes(r.content)
    assert not verify_export(path).ok
    relaxed = verify_export(path, require_trailer=False)
    assert relaxed.ok and relaxed.rows > 10 and relaxed.warnings


def test_export_filters_and_scope(service: Service, auditor: str, writer: str, tmp_path: Path) -> None:
    path = _download(service, auditor, tmp_path / "f.ndjson", format="ndjson", client="clinic-a")
    result = verify_export(path)
    assert result.ok and result.filters == {"client": "clinic-a"} and result.rows > 0
    rows = [json.loads(x) for x in _data_lines(path)[:-1]]
    assert {r["client_id"] for r in rows} == {"clinic-a"}
    with service.http(writer) as c:
        assert c.get("/v1/audit/export").status_code == 403
