"""FHIR search over the audit log: parameter parsing and the SQL it becomes.

Semantics follow FHIR R4 search: a comma inside one value is OR, a repeated parameter is AND, ``date``
takes the prefixes eq/ne/gt/lt/ge/le/sa/eb with the implicit range of the value's precision. Token
parameters computed by the mapping (``action``, ``type``, ``subtype``) are evaluated by classifying the
distinct ``action`` values present in the log (a short, indexed list) and filtering on those.

Paging is keyset-based: the cursor carries the last id seen and the chain head at the first page, so
a client paging through a snapshot never sees events appended meanwhile (including the ``audit.read``
events its own paging writes) and cannot page forever.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, false, or_, select
from sqlalchemy.orm import Session

from services.audit.models import AuditEvent
from services.fhir import mapping

DEFAULT_COUNT = 50
MAX_COUNT = 1000

SUPPORTED = (
    "_id",
    "patient",
    "patient:identifier",
    "agent",
    "agent:identifier",
    "altid",
    "address",
    "entity",
    "entity:identifier",
    "date",
    "action",
    "outcome",
    "type",
    "subtype",
    "_count",
    "_sort",
    "_cursor",
)
IGNORED = ("_format", "_pretty", "_summary", "_elements", "_total")


class SearchError(ValueError):
    """A search the server cannot honour (answered 400 with an OperationOutcome)."""

    def __init__(self, message: str, code: str = "invalid") -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Cursor:
    after: int  # last id returned (ascending) or the id to go below (descending)
    ceiling: int  # chain head when the first page was served


def encode_cursor(c: Cursor) -> str:
    raw = json.dumps({"a": c.after, "h": c.ceiling}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str) -> Cursor:
    try:
        raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        after, ceiling = raw["a"], raw["h"]
        if not (isinstance(after, int) and isinstance(ceiling, int)) or after < 0 or ceiling < 0:
            raise ValueError
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise SearchError("Invalid _cursor.") from None
    return Cursor(after, ceiling)


# --- dates ----------------------------------------------------------------------------------------

DATE_RE = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?P<f>\.\d+)?)?(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)
PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb")


def date_range(value: str) -> tuple[datetime, datetime]:
    """[start, end) of a FHIR date/dateTime/instant at its own precision (times without zone: UTC)."""
    value = value.replace(" ", "+")  # an unencoded '+' of a zone offset arrives as a space
    m = DATE_RE.match(value)
    if not m:
        raise SearchError("Invalid date value (expected a FHIR date, dateTime or instant).")
    g = m.groupdict()
    tz = UTC
    if g["tz"] and g["tz"] != "Z":
        sign = 1 if g["tz"][0] == "+" else -1
        hh, mm = int(g["tz"][1:3]), int(g["tz"][4:6])
        tz = timezone(sign * timedelta(hours=hh, minutes=mm))
    try:
        y = int(g["y"])
        if g["m"] is None:
            start = datetime(y, 1, 1, tzinfo=tz)
            end = datetime(y + 1, 1, 1, tzinfo=tz)
        elif g["d"] is None:
            mo = int(g["m"])
            start = datetime(y, mo, 1, tzinfo=tz)
            end = datetime(y + (mo == 12), mo % 12 + 1, 1, tzinfo=tz)
        elif g["H"] is None:
            start = datetime(y, int(g["m"]), int(g["d"]), tzinfo=tz)
            end = start + timedelta(days=1)
        else:
            base = datetime(y, int(g["m"]), int(g["d"]), int(g["H"]), int(g["M"]), tzinfo=tz)
            if g["S"] is None:
                start, end = base, base + timedelta(minutes=1)
            elif g["f"] is None:
                start = base.replace(second=int(g["S"]))
                end = start + timedelta(seconds=1)
            else:
                digits = g["f"][1:]
                micros = int((digits + "000000")[:6])
                start = base.replace(second=int(g["S"]), microsecond=micros)
                end = start + timedelta(microseconds=10 ** max(0, 6 - len(digits)))
    except ValueError:
        raise SearchError("Invalid date value (expected a FHIR date, dateTime or instant).") from None
    return start.astimezone(UTC), end.astimezone(UTC)


def date_clause(raw: str, ts: Any = AuditEvent.ts) -> ColumnElement[bool]:
    """A FHIR ``date`` search value (with its prefix) as a clause on the timestamp column ``ts``."""
    prefix, value = ("eq", raw)
    if raw[:2] in PREFIXES and not raw[:2].isdigit():
        prefix, value = raw[:2], raw[2:]
    elif raw[:2].isalpha():
        raise SearchError("Unsupported date prefix (use eq ne gt lt ge le sa eb).", code="not-supported")
    lo, hi = date_range(value)
    if prefix == "eq":
        return and_(ts >= lo, ts < hi)
    if prefix == "ne":
        return or_(ts < lo, ts >= hi)
    if prefix in ("gt", "sa"):
        return ts >= hi
    if prefix in ("lt", "eb"):
        return ts < lo
    if prefix == "ge":
        return ts >= lo
    return ts < hi  # le


# --- tokens and references ------------------------------------------------------------------------


def split_token(value: str) -> tuple[str | None, str]:
    """``system|code`` -> (system, code); ``|code`` -> ("", code); ``code`` -> (None, code)."""
    if "|" in value:
        system, code = value.split("|", 1)
        return system, code
    return None, value


def strip_reference(value: str) -> str:
    """``Patient/MRN-1`` or a full URL ending so -> ``MRN-1`` (our entities are identifiers only)."""
    return value.rstrip("/").rsplit("/", 1)[-1] if "/" in value else value


def _coding_matches(c: dict[str, str], system: str | None, code: str) -> bool:
    if system is None:
        return c["code"] == code
    return c["code"] == code and c["system"] == system


def actions_matching(known: Iterable[str], param: str, value: str) -> set[str]:
    system, code = split_token(value)
    out: set[str] = set()
    for action in known:
        cls = mapping.classify(action)
        if param == "action":
            hit = code == cls.action and system in (None, "", "http://hl7.org/fhir/audit-event-action")
        elif param == "type":
            hit = _coding_matches(cls.type, system, code)
        else:  # subtype
            hit = any(_coding_matches(c, system, code) for c in mapping.subtypes(action))
        if hit:
            out.add(action)
    return out


def outcomes_matching(value: str) -> set[str]:
    system, code = split_token(value)
    if system in (None, "", "http://hl7.org/fhir/audit-event-outcome") and code in ("0", "4", "8", "12"):
        return {o for o, c in mapping.OUTCOME_CODES.items() if c == code}
    if system in (None, mapping.SYS_OUTCOME):
        return {code}
    return set()


IDENTIFIER_COLUMNS = {
    mapping.SYS_RECORD: AuditEvent.record_id,
    mapping.SYS_MEDIA: AuditEvent.media_id,
    mapping.SYS_JOB: AuditEvent.job_id,
    mapping.SYS_ARTIFACT: AuditEvent.artifact_id,
    mapping.SYS_REQUEST: AuditEvent.request_id,
}


def entity_clause(value: str, by_identifier: bool) -> ColumnElement[bool]:
    if by_identifier:
        system, ident = split_token(value)
        if system:
            column = IDENTIFIER_COLUMNS.get(system)
            return column == ident if column is not None else false()
    else:
        ident = strip_reference(value)
    return or_(*(col == ident for col in IDENTIFIER_COLUMNS.values()))


# --- the search -----------------------------------------------------------------------------------


@dataclass
class AuditSearch:
    clauses: list[ColumnElement[bool]] = field(default_factory=list)
    used: list[tuple[str, str]] = field(default_factory=list)  # parameters honoured, for self links
    count: int = DEFAULT_COUNT
    descending: bool = False
    cursor: Cursor | None = None
    record_ids: set[str] = field(default_factory=set)

    def statement(self, ceiling: int) -> Select[AuditEvent]:
        stmt = select(AuditEvent).where(AuditEvent.id <= ceiling, *self.clauses)
        if self.cursor is not None:
            if self.descending:
                stmt = stmt.where(AuditEvent.id < self.cursor.after)
            else:
                stmt = stmt.where(AuditEvent.id > self.cursor.after)
        order = AuditEvent.id.desc() if self.descending else AuditEvent.id
        return stmt.order_by(order).limit(self.count + 1)


def _ors(values: Sequence[str]) -> list[str]:
    return [v for v in (x.strip() for x in values) if v]


def parse(params: Sequence[tuple[str, str]], known_actions: Iterable[str]) -> AuditSearch:
    """Turn query parameters into SQL clauses. Unknown parameters are ignored (FHIR's lenient
    default) and left out of the self link, which tells the client what was applied."""
    search = AuditSearch()
    known = list(known_actions)
    for name, raw in params:
        if name in IGNORED or name not in SUPPORTED:
            continue
        values = _ors(raw.split(","))
        if name == "_count":
            try:
                count = int(raw)
            except ValueError:
                raise SearchError("_count must be an integer.") from None
            if count < 1:
                raise SearchError("_count must be at least 1.")
            search.count = min(count, MAX_COUNT)
        elif name == "_sort":
            if raw not in ("date", "-date", "_id", "-_id"):
                raise SearchError("_sort supports date, -date, _id and -_id.", code="not-supported")
            search.descending = raw.startswith("-")
        elif name == "_cursor":
            search.cursor = decode_cursor(raw)
            continue  # not part of the self link of the first page
        elif not values:
            raise SearchError(f"Empty value for {name}.")
        elif name == "_id":
            ids = []
            for v in values:
                if not v.isdigit():
                    raise SearchError("_id must be numeric.")
                ids.append(int(v))
            search.clauses.append(AuditEvent.id.in_(ids))
        elif name == "patient":
            recs = [strip_reference(v) for v in values]
            search.record_ids.update(recs)
            search.clauses.append(AuditEvent.record_id.in_(recs))
        elif name == "patient:identifier":
            recs = []
            for v in values:
                system, code = split_token(v)
                if system not in (None, "", mapping.SYS_RECORD):
                    raise SearchError(f"patient identifiers use the system {mapping.SYS_RECORD}.")
                recs.append(code)
            search.record_ids.update(recs)
            search.clauses.append(AuditEvent.record_id.in_(recs))
        elif name in ("agent", "agent:identifier"):
            # a client (API keys), or a person's or system's subject (with its issuer as the system)
            agents = []
            for v in values:
                if name == "agent:identifier":
                    system, code = split_token(v)
                    if system in (None, "", mapping.SYS_CLIENT):
                        agents.append(or_(AuditEvent.client_id == code, AuditEvent.actor_sub == code))
                    else:
                        agents.append(and_(AuditEvent.actor_issuer == system, AuditEvent.actor_sub == code))
                else:
                    code = strip_reference(v)
                    agents.append(or_(AuditEvent.client_id == code, AuditEvent.actor_sub == code))
            search.clauses.append(or_(*agents))
        elif name == "altid":
            search.clauses.append(AuditEvent.key_id.in_(values))
        elif name == "address":
            search.clauses.append(AuditEvent.source_ip.in_(values))
        elif name in ("entity", "entity:identifier"):
            search.clauses.append(or_(*(entity_clause(v, name == "entity:identifier") for v in values)))
        elif name == "date":
            search.clauses.append(or_(*(date_clause(v) for v in values)))
        elif name == "outcome":
            outcomes: set[str] = set()
            for v in values:
                outcomes |= outcomes_matching(v)
            search.clauses.append(AuditEvent.outcome.in_(sorted(outcomes)) if outcomes else false())
        else:  # action, type, subtype
            actions: set[str] = set()
            for v in values:
                actions |= actions_matching(known, name, v)
            search.clauses.append(AuditEvent.action.in_(sorted(actions)) if actions else false())
        search.used.append((name, raw))
    return search


def distinct_actions(session: Session) -> list[str]:
    return list(session.execute(select(AuditEvent.action).distinct()).scalars())


def run(session: Session, search: AuditSearch, head_seq: int) -> tuple[list[AuditEvent], Cursor | None]:
    """One page, and the cursor of the next page (None on the last)."""
    ceiling = search.cursor.ceiling if search.cursor else head_seq
    rows = list(session.execute(search.statement(ceiling)).scalars())
    more = len(rows) > search.count
    rows = rows[: search.count]
    nxt = Cursor(rows[-1].id, ceiling) if more and rows else None
    return rows, nxt


def describe(search: AuditSearch) -> dict[str, Any]:
    """The search, PHI-light, for the audit event that records it."""
    out: dict[str, Any] = {}
    for name, raw in search.used:
        out.setdefault(name, []).append(raw)
    return {k: v if len(v) > 1 else v[0] for k, v in out.items()}


__all__ = [
    "AuditSearch",
    "Cursor",
    "SearchError",
    "date_range",
    "decode_cursor",
    "describe",
    "distinct_actions",
    "encode_cursor",
    "parse",
    "run",
]
