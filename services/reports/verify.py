"""Offline verification of an audit export (``dmask audit verify EXPORT_FILE``).

Nothing here needs the database. Each row is turned back into an ``AuditEvent`` object and hashed with
the service's own ``services.audit.service.compute_hash`` (one canonical form, shared with the writer),
and each row must also be byte-for-byte in the export's canonical encoding: a change that leaves the
parsed value equal (a space inside the detail JSON, a leading zero, different quoting) is still an
alteration of the file and is reported. Then the links: a row whose seq follows the previous row's
must carry that row's hash as ``prev_hash``; the first event of the log links to the genesis hash.
Finally the trailer: row count, digest of row hashes, the chain head and, for an unfiltered export,
that no seq is missing between 1 and the head.

The first failure is reported with its data row number (1 = first row after any header), the file
line where that row starts, and its seq.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from services.audit.models import AuditEvent
from services.audit.routes import CSV_FIELDS, LEGACY_CSV_FIELDS
from services.audit.service import ACTOR_FIELDS, GENESIS_HASH, compute_hash
from services.reports.export import (
    EXPORT_FORMAT,
    NDJSON_TRAILER_KEY,
    TRAILER_MARK,
    csv_values,
    encode_csv_row,
    encode_ndjson_row,
    rows_digest,
)

NULLABLE = {
    "client_id",
    "key_id",
    "source_ip",
    "record_id",
    "media_id",
    "job_id",
    "artifact_id",
    "request_id",
    *ACTOR_FIELDS,
}


class RowError(ValueError):
    pass


@dataclass
class ExportVerifyResult:
    ok: bool
    format: str
    rows: int
    first_bad_row: int | None = None
    line: int | None = None
    seq: int | None = None
    reason: str | None = None
    chain_head: dict[str, Any] | None = None
    filters: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _parse_ts(value: Any) -> datetime:
    if not isinstance(value, str):
        raise RowError("timestamp is not a string")
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        raise RowError("timestamp is not in the canonical form") from None


def event_from_row(row: dict[str, Any]) -> AuditEvent:
    """A transient (never persisted) ORM event, so the service's hashing applies unchanged. Rows
    exported before the actor columns existed (migration 0004) have none of them, and hash without."""
    if set(row) == set(LEGACY_CSV_FIELDS):
        row = {**row, **dict.fromkeys(ACTOR_FIELDS)}
    if set(row) != set(CSV_FIELDS):
        raise RowError("unexpected or missing fields")
    if not isinstance(row["id"], int) or isinstance(row["id"], bool):
        raise RowError("id is not an integer")
    if not isinstance(row["detail"], dict):
        raise RowError("detail is not an object")
    for name in (*NULLABLE, "action", "outcome", "prev_hash", "hash"):
        value = row[name]
        if not (isinstance(value, str) or (value is None and name in NULLABLE)):
            raise RowError(f"{name} has the wrong type")
    return AuditEvent(
        id=row["id"],
        ts=_parse_ts(row["ts"]),
        client_id=row["client_id"],
        key_id=row["key_id"],
        source_ip=row["source_ip"],
        action=row["action"],
        outcome=row["outcome"],
        record_id=row["record_id"],
        media_id=row["media_id"],
        job_id=row["job_id"],
        artifact_id=row["artifact_id"],
        request_id=row["request_id"],
        detail=row["detail"],
        prev_hash=row["prev_hash"],
        hash=row["hash"],
        **{name: row[name] for name in ACTOR_FIELDS},
    )


@dataclass
class Record:
    number: int  # data row number, 1-based
    line: int  # file line where the record starts
    row: dict[str, Any] | None = None
    trailer: dict[str, Any] | None = None
    error: str | None = None


class _LineTap:
    """Feeds lines to csv.reader while keeping the raw text of the record being read."""

    def __init__(self, fh: TextIO) -> None:
        self.fh = fh
        self.raw: list[str] = []
        self.lines = 0

    def __iter__(self) -> _LineTap:
        return self

    def __next__(self) -> str:
        line = self.fh.readline()
        if not line:
            raise StopIteration
        self.lines += 1
        self.raw.append(line)
        return line


def _csv_records(fh: TextIO) -> Iterator[Record]:
    tap = _LineTap(fh)
    reader = csv.reader(tap)
    try:
        header = next(reader)
    except StopIteration:
        raise RowError("empty file") from None
    except csv.Error:
        raise RowError("the header is not valid CSV") from None
    fields = header if header in (CSV_FIELDS, LEGACY_CSV_FIELDS) else None
    if fields is None or "".join(tap.raw) != encode_csv_row(fields):
        raise RowError("the header is not the export's header")
    number = 0
    while True:
        tap.raw = []
        start = tap.lines + 1
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            number += 1
            yield Record(number, start, error=f"not valid CSV ({exc})")
            return
        raw = "".join(tap.raw)
        if values and values[0] == TRAILER_MARK:
            if len(values) != 2 or raw != encode_csv_row(values):
                yield Record(number + 1, start, error="malformed integrity trailer")
                return
            try:
                yield Record(number + 1, start, trailer=json.loads(values[1]))
            except ValueError:
                yield Record(number + 1, start, error="malformed integrity trailer")
            continue
        number += 1
        rec = Record(number, start)
        try:
            if len(values) != len(fields):
                raise RowError("wrong number of columns")
            row: dict[str, Any] = dict(zip(fields, values, strict=True))
            for name in NULLABLE.intersection(fields):
                row[name] = row[name] or None
            if not row["id"].isdigit():
                raise RowError("id is not an integer")
            row["id"] = int(row["id"])
            try:
                row["detail"] = json.loads(row["detail"])
            except ValueError:
                raise RowError("detail is not valid JSON") from None
            if raw != encode_csv_row(csv_values(row, fields)):
                raise RowError("row is not in the export's canonical encoding")
            rec.row = row
        except RowError as exc:
            rec.error = str(exc)
        yield rec


def _ndjson_records(fh: TextIO) -> Iterator[Record]:
    number = 0
    for lineno, line in enumerate(fh, start=1):
        try:
            obj = json.loads(line)
        except ValueError:
            number += 1
            yield Record(number, lineno, error="not valid JSON")
            continue
        if isinstance(obj, dict) and set(obj) == {NDJSON_TRAILER_KEY}:
            ok = isinstance(obj[NDJSON_TRAILER_KEY], dict) and line == json.dumps(obj, sort_keys=True) + "\n"
            yield Record(
                number + 1,
                lineno,
                trailer=obj[NDJSON_TRAILER_KEY] if ok else None,
                error=None if ok else "malformed integrity trailer",
            )
            continue
        number += 1
        rec = Record(number, lineno)
        if not isinstance(obj, dict):
            rec.error = "not a JSON object"
        elif line != encode_ndjson_row(obj):
            rec.error = "row is not in the export's canonical encoding"
        else:
            rec.row = obj
        yield rec


def _fail(result: ExportVerifyResult, rec: Record | None, seq: int | None, reason: str) -> ExportVerifyResult:
    result.ok = False
    result.first_bad_row = rec.number if rec else None
    result.line = rec.line if rec else None
    result.seq = seq
    result.reason = reason
    return result


def verify_export(path: Path, *, require_trailer: bool = True) -> ExportVerifyResult:
    with open(path, encoding="utf-8", newline="") as fh:
        first = fh.read(1)
        fh.seek(0)
        fmt = "ndjson" if first == "{" else "csv"
        result = ExportVerifyResult(ok=True, format=fmt, rows=0)
        try:
            records = list(_ndjson_records(fh) if fmt == "ndjson" else _csv_records(fh))
        except RowError as exc:
            return _fail(result, None, None, str(exc))
        except UnicodeDecodeError:
            return _fail(result, None, None, "the file is not UTF-8 text")
    trailers = [i for i, rec in enumerate(records) if rec.trailer is not None]
    info: dict[str, Any] | None = records[trailers[0]].trailer if trailers else None
    # an unfiltered export holds the whole chain: seq must run 1, 2, 3, ... row by row
    gapless = isinstance(info, dict) and not info.get("filters")
    prev: AuditEvent | None = None
    hashes: list[str] = []
    seqs: list[int] = []
    seen_trailer = False
    for rec in records:
        if seen_trailer:
            return _fail(result, rec, None, "content after the integrity trailer")
        if rec.error:
            return _fail(result, rec, None, rec.error)
        if rec.trailer is not None:
            seen_trailer = True
            continue
        assert rec.row is not None
        try:
            ev = event_from_row(rec.row)
        except RowError as exc:
            seq = rec.row.get("id") if isinstance(rec.row.get("id"), int) else None
            return _fail(result, rec, seq, str(exc))
        if compute_hash(ev) != ev.hash:
            return _fail(result, rec, ev.id, "content does not match its hash")
        if gapless and ev.id != len(seqs) + 1:
            return _fail(
                result, rec, ev.id, f"expected event seq {len(seqs) + 1} here (rows removed or moved)"
            )
        if prev is not None and ev.id <= prev.id:
            return _fail(result, rec, ev.id, "rows out of order or duplicated")
        if ev.id == 1 and ev.prev_hash != GENESIS_HASH:
            return _fail(result, rec, ev.id, "first event does not link to the genesis hash")
        if prev is not None and ev.id == prev.id + 1 and ev.prev_hash != prev.hash:
            return _fail(result, rec, ev.id, "previous-hash link broken")
        prev = ev
        hashes.append(ev.hash)
        seqs.append(ev.id)
        result.rows += 1
    if info is None:
        if require_trailer:
            return _fail(
                result, None, None, "no integrity trailer (file truncated, or not an integrity export)"
            )
        result.warnings.append("no integrity trailer: chain head and completeness not checked")
        return result
    return _check_trailer(result, info, hashes, seqs, prev)


def _check_trailer(
    result: ExportVerifyResult,
    info: dict[str, Any],
    hashes: list[str],
    seqs: list[int],
    last: AuditEvent | None,
) -> ExportVerifyResult:
    head = info.get("chain_head")
    if info.get("format") != EXPORT_FORMAT or not isinstance(head, dict):
        return _fail(result, None, None, "unknown export format in the trailer")
    result.chain_head = head
    filters = info.get("filters")
    result.filters = filters if isinstance(filters, dict) else None
    if info.get("rows") != len(hashes):
        return _fail(result, None, None, f"trailer says {info.get('rows')} rows, the file has {len(hashes)}")
    if info.get("rows_digest") != rows_digest(hashes):
        return _fail(
            result, None, None, "row hashes do not match the trailer's digest (rows removed or replaced)"
        )
    if info.get("first_seq") != (seqs[0] if seqs else None) or info.get("last_seq") != (
        seqs[-1] if seqs else None
    ):
        return _fail(result, None, None, "first/last seq do not match the trailer")
    if last is not None and last.id > head.get("seq", -1):
        return _fail(result, None, last.id, "rows beyond the chain head")
    if last is not None and last.id == head.get("seq") and last.hash != head.get("hash"):
        return _fail(result, None, last.id, "last row does not match the chain head")
    if not result.filters:
        # everything was exported: rows ran 1..n (checked row by row); n must be the head
        if len(seqs) != head.get("seq"):
            return _fail(result, None, len(seqs) + 1, "events missing at the end of the export")
    elif last is None or last.id != head.get("seq"):
        result.warnings.append(
            "filtered export: rows are verified and linked where consecutive; "
            "compare the chain head with the live service to anchor them"
        )
    return result


def verify_export_command(argv: Sequence[str]) -> int:
    """``dmask audit verify EXPORT_FILE [--json] [--allow-no-trailer]``: 0 verified, 1 altered, 2 unusable."""
    p = argparse.ArgumentParser(prog="dmask audit verify", description="Verify an audit export offline.")
    p.add_argument("export_file", type=Path)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument(
        "--allow-no-trailer",
        action="store_true",
        help="accept an export without integrity trailer (rows and links only)",
    )
    args = p.parse_args(list(argv))
    if not args.export_file.is_file():
        print(f"error: no such file: {args.export_file}", file=sys.stderr)
        return 2
    result = verify_export(args.export_file, require_trailer=not args.allow_no_trailer)
    if args.json:
        print(json.dumps(result.as_dict(), sort_keys=True))
    elif result.ok:
        head = result.chain_head or {}
        print(
            f"OK: {result.rows} rows verified ({result.format}); chain head seq {head.get('seq')} "
            f"hash {head.get('hash')}"
        )
        for w in result.warnings:
            print(f"note: {w}")
    else:
        where = []
        if result.first_bad_row is not None:
            where.append(f"row {result.first_bad_row}")
        if result.line is not None:
            where.append(f"line {result.line}")
        if result.seq is not None:
            where.append(f"seq {result.seq}")
        print(f"ALTERED: {', '.join(where) or 'trailer'}: {result.reason}")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(verify_export_command(sys.argv[1:]))
