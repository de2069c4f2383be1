"""Audit exports that can be verified offline.

The rows are exactly those of the owner's ``/v1/audit?format=csv|ndjson`` export (same columns, same
encoding: ``services.audit.routes.CSV_FIELDS`` and ``services.audit.service.event_dict``), each with its
``hash`` and ``prev_hash``. What this module adds is the integrity trailer, the last line of the file:

- CSV: a row ``#dmask-export,<JSON>``; NDJSON: a line ``{"dmask_export": <JSON>}``
- the JSON holds the chain head (seq, hash) read right after the export itself was audited, the row
  count, first/last seq, a SHA-256 over the row hashes, the filters and the export time.

Rows are bounded by that chain head, so an unfiltered export ends exactly at the head and its chain
can be walked from genesis to head offline; a missing trailer means a truncated file.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.audit import service as audit
from services.audit.models import AuditHead
from services.audit.routes import CSV_FIELDS
from services.db import utcnow

EXPORT_FORMAT = "dmask.audit-export/1"
TRAILER_MARK = "#dmask-export"
NDJSON_TRAILER_KEY = "dmask_export"

ExportFormat = Literal["csv", "ndjson"]


@dataclass(frozen=True)
class ChainHead:
    seq: int
    hash: str


def chain_head(session: Session) -> ChainHead:
    head = session.execute(select(AuditHead).where(AuditHead.id == 1)).scalar_one()
    return ChainHead(head.seq, head.hash)


def encode_csv_row(values: Iterable[Any]) -> str:
    """One CSV record exactly as the exports write it (csv module defaults, CRLF)."""
    buf = io.StringIO()
    csv.writer(buf).writerow(["" if v is None else v for v in values])
    return buf.getvalue()


def csv_values(row: dict[str, Any], fields: Sequence[str] = CSV_FIELDS) -> list[Any]:
    """An ``event_dict`` as the CSV columns (detail as sorted-key JSON, like the owner's export)."""
    return [json.dumps(row[f], sort_keys=True) if f == "detail" else row[f] for f in fields]


def encode_ndjson_row(row: dict[str, Any]) -> str:
    return json.dumps(row, sort_keys=True) + "\n"


def rows_digest(hashes: Iterable[str]) -> str:
    h = hashlib.sha256()
    for value in hashes:
        h.update(value.encode("ascii", "replace") + b"\n")
    return h.hexdigest()


def iter_rows(session: Session, flt: audit.AuditFilter, ceiling: int) -> Iterator[dict[str, Any]]:
    """Matching events with id <= ceiling, in chain order, constant memory (the owner's keyset walk)."""
    for ev in audit.iter_all(session, flt):
        if ev.id > ceiling:
            return
        yield audit.event_dict(ev)


def trailer(
    head: ChainHead, count: int, first: int | None, last: int | None, digest: str, filters: dict[str, Any]
) -> dict[str, Any]:
    return {
        "format": EXPORT_FORMAT,
        "chain_head": {"seq": head.seq, "hash": head.hash},
        "rows": count,
        "first_seq": first,
        "last_seq": last,
        "rows_digest": digest,
        "filters": filters,
        "exported_at": audit._ts(utcnow()),
    }


def generate(
    rows: Iterable[dict[str, Any]], fmt: ExportFormat, head: ChainHead, filters: dict[str, Any]
) -> Iterator[bytes]:
    """The export body: header (CSV), rows, then the integrity trailer, in ~64 KiB chunks."""
    digest = hashlib.sha256()
    count = 0
    first: int | None = None
    last: int | None = None
    buf = io.StringIO()
    if fmt == "csv":
        buf.write(encode_csv_row(CSV_FIELDS))
    for row in rows:
        count += 1
        first = row["id"] if first is None else first
        last = row["id"]
        digest.update(row["hash"].encode("ascii", "replace") + b"\n")
        buf.write(encode_csv_row(csv_values(row)) if fmt == "csv" else encode_ndjson_row(row))
        if buf.tell() > 1 << 16:
            yield buf.getvalue().encode()
            buf.seek(0)
            buf.truncate()
    info = trailer(head, count, first, last, digest.hexdigest(), filters)
    if fmt == "csv":
        buf.write(encode_csv_row([TRAILER_MARK, json.dumps(info, sort_keys=True)]))
    else:
        buf.write(json.dumps({NDJSON_TRAILER_KEY: info}, sort_keys=True) + "\n")
    yield buf.getvalue().encode()
