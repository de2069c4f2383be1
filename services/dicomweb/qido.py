"""QIDO-RS (PS3.18 10.6): query parameters -> SQL over the index -> DICOM JSON answers.

Pure parsing (``parse``) is separate from running (``run_*``) so the matching rules are testable and
the routes stay thin. Matching follows PS3.4 C.2.2.2: single value (with ``*``/``?`` wildcards for
PatientID and AccessionNumber), UID lists (comma or backslash separated), date ranges
(``20200101-20201231``, ``-2020...``, ``2020...-``). Unknown or unsupported keys are ignored and named
in a ``Warning`` header (PS3.18 8.3.4.1); malformed values are a 400.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from sqlalchemy import ColumnElement, and_, exists, select
from sqlalchemy.orm import Session

from services.dicomweb.index import SERIES_TAGS, STUDY_TAGS
from services.dicomweb.models import DicomInstance, DicomSeries, DicomStudy

UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
DATE_RE = re.compile(r"^\d{8}$")
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_OFFSET = 1_000_000

# Matching keys this server supports, by tag, with the level they match at.
KEYS: dict[str, str] = {
    "0020000D": "StudyInstanceUID",
    "00100020": "PatientID",
    "00080020": "StudyDate",
    "00080050": "AccessionNumber",
    "00080061": "ModalitiesInStudy",
    "0020000E": "SeriesInstanceUID",
    "00080060": "Modality",
    "00080018": "SOPInstanceUID",
    "00080016": "SOPClassUID",
}
CONTROL = {"limit", "offset", "includefield", "fuzzymatching"}

INSTANCE_TAGS = {
    "00080016": "SOPClassUID",
    "00080018": "SOPInstanceUID",
    "00200013": "InstanceNumber",
    "00280010": "Rows",
    "00280011": "Columns",
    "00280100": "BitsAllocated",
    "00280008": "NumberOfFrames",
    "0020000D": "StudyInstanceUID",
    "0020000E": "SeriesInstanceUID",
}


class QueryError(ValueError):
    """A malformed QIDO parameter (answered 400); the message names the parameter, not its value."""


@dataclass
class Query:
    filters: dict[str, list[str]] = field(default_factory=dict)  # keyword -> values
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    include: set[str] = field(default_factory=set)  # tags (8 hex digits)
    include_all: bool = False
    ignored: list[str] = field(default_factory=list)


def _tag_of(name: str) -> str | None:
    """8-hex tag of a keyword or tag given as QIDO allows ('PatientID', '00100020'); None if unknown."""
    if re.fullmatch(r"[0-9A-Fa-f]{8}", name):
        tag = name.upper()
        return tag if keyword_for_tag(int(tag, 16)) else None
    value = tag_for_keyword(name)
    return f"{value:08X}" if value is not None else None


def _uids(name: str, raw: str) -> list[str]:
    values = [v.strip() for v in re.split(r"[,\\]", raw) if v.strip()]
    if not values or any(len(v) > 64 or not UID_RE.match(v) for v in values):
        raise QueryError(f"{name} must be one or more valid UIDs.")
    return values


def _date_range(raw: str) -> list[str]:
    value = raw.strip()
    if "-" in value:
        lo, _, hi = value.partition("-")
        if (lo and not DATE_RE.match(lo)) or (hi and not DATE_RE.match(hi)) or not (lo or hi):
            raise QueryError("StudyDate must be YYYYMMDD or a range YYYYMMDD-YYYYMMDD.")
        if lo and hi and lo > hi:
            raise QueryError("StudyDate range starts after it ends.")
        return [lo, hi]
    if not DATE_RE.match(value):
        raise QueryError("StudyDate must be YYYYMMDD or a range YYYYMMDD-YYYYMMDD.")
    return [value, value]


def _int(name: str, raw: str, lo: int, hi: int) -> int:
    if not re.fullmatch(r"\d{1,9}", raw.strip()):
        raise QueryError(f"{name} must be a non-negative integer.")
    value = int(raw)
    if value < lo:
        raise QueryError(f"{name} must be at least {lo}.")
    return min(value, hi)


def parse(params: Sequence[tuple[str, str]]) -> Query:
    q = Query()
    for name, raw in params:
        if name == "limit":
            q.limit = _int("limit", raw, 1, MAX_LIMIT)
        elif name == "offset":
            q.offset = _int("offset", raw, 0, MAX_OFFSET)
        elif name == "fuzzymatching":
            if raw.lower() not in ("true", "false"):
                raise QueryError("fuzzymatching must be true or false.")
            if raw.lower() == "true":
                q.ignored.append("fuzzymatching")
        elif name == "includefield":
            for item in (v.strip() for v in raw.split(",")):
                if item == "all":
                    q.include_all = True
                elif item:
                    tag = _tag_of(item)
                    if tag is None:
                        raise QueryError("includefield names an unknown attribute.")
                    q.include.add(tag)
        else:
            tag = _tag_of(name)
            keyword = KEYS.get(tag or "")
            if keyword is None:
                q.ignored.append(name if tag else "unknown key")
                continue
            if keyword in q.filters:
                raise QueryError(f"{keyword} is given more than once.")
            if keyword.endswith("UID"):
                q.filters[keyword] = _uids(keyword, raw)
            elif keyword == "StudyDate":
                q.filters[keyword] = _date_range(raw)
            else:
                values = [v.strip() for v in raw.split("\\") if v.strip()] if "Modal" in keyword else [raw]
                if not values or any(len(v) > 64 or "\x00" in v for v in values):
                    raise QueryError(f"{keyword} has an invalid value.")
                q.filters[keyword] = values
    return q


def _like(column: Any, value: str) -> ColumnElement[bool]:
    if "*" in value or "?" in value:
        escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return column.like(escaped.replace("*", "%").replace("?", "_"), escape="\\")
    return column == value


def study_clauses(q: Query, client_id: str) -> list[ColumnElement[bool]]:
    f = q.filters
    out: list[ColumnElement[bool]] = [DicomStudy.client_id == client_id]
    if "StudyInstanceUID" in f:
        out.append(DicomStudy.study_uid.in_(f["StudyInstanceUID"]))
    if "PatientID" in f:
        out.append(_like(DicomStudy.patient_id, f["PatientID"][0]))
    if "AccessionNumber" in f:
        out.append(_like(DicomStudy.accession_number, f["AccessionNumber"][0]))
    if "StudyDate" in f:
        lo, hi = f["StudyDate"]
        if lo:
            out.append(DicomStudy.study_date >= lo)
        if hi:
            out.append(DicomStudy.study_date <= hi)
    if "ModalitiesInStudy" in f:
        out.append(
            exists().where(
                DicomSeries.client_id == client_id,
                DicomSeries.study_uid == DicomStudy.study_uid,
                DicomSeries.modality.in_(f["ModalitiesInStudy"]),
            )
        )
    return out


def _needs_study(q: Query) -> bool:
    return any(k in q.filters for k in ("PatientID", "AccessionNumber", "StudyDate", "ModalitiesInStudy"))


def _page(stmt: Any, q: Query) -> Any:
    """One page plus one row (to know whether more follow)."""
    return stmt.offset(q.offset).limit(q.limit + 1)


def run_studies(session: Session, q: Query, client_id: str) -> tuple[list[DicomStudy], bool]:
    stmt = select(DicomStudy).where(*study_clauses(q, client_id))
    stmt = stmt.order_by(DicomStudy.study_date.desc(), DicomStudy.study_uid)
    rows = list(session.execute(_page(stmt, q)).scalars())
    return rows[: q.limit], len(rows) > q.limit


def run_series(
    session: Session, q: Query, client_id: str, study_uid: str | None
) -> tuple[list[tuple[DicomSeries, DicomStudy]], bool]:
    stmt = select(DicomSeries, DicomStudy).join(
        DicomStudy,
        and_(DicomStudy.client_id == DicomSeries.client_id, DicomStudy.study_uid == DicomSeries.study_uid),
    )
    stmt = stmt.where(DicomSeries.client_id == client_id, *study_clauses(q, client_id))
    if study_uid is not None:
        stmt = stmt.where(DicomSeries.study_uid == study_uid)
    if "SeriesInstanceUID" in q.filters:
        stmt = stmt.where(DicomSeries.series_uid.in_(q.filters["SeriesInstanceUID"]))
    if "Modality" in q.filters:
        stmt = stmt.where(DicomSeries.modality.in_(q.filters["Modality"]))
    stmt = stmt.order_by(DicomSeries.study_uid, DicomSeries.series_uid)
    rows = [(a, b) for a, b in session.execute(_page(stmt, q)).all()]
    return rows[: q.limit], len(rows) > q.limit


def run_instances(
    session: Session, q: Query, client_id: str, study_uid: str | None, series_uid: str | None
) -> tuple[list[tuple[DicomInstance, DicomSeries, DicomStudy]], bool]:
    stmt = (
        select(DicomInstance, DicomSeries, DicomStudy)
        .join(
            DicomSeries,
            and_(
                DicomSeries.client_id == DicomInstance.client_id,
                DicomSeries.series_uid == DicomInstance.series_uid,
            ),
        )
        .join(
            DicomStudy,
            and_(
                DicomStudy.client_id == DicomInstance.client_id,
                DicomStudy.study_uid == DicomInstance.study_uid,
            ),
        )
        .where(DicomInstance.client_id == client_id)
    )
    if _needs_study(q) or "StudyInstanceUID" in q.filters:
        stmt = stmt.where(*study_clauses(q, client_id))
    if study_uid is not None:
        stmt = stmt.where(DicomInstance.study_uid == study_uid)
    if series_uid is not None:
        stmt = stmt.where(DicomInstance.series_uid == series_uid)
    f = q.filters
    if "SeriesInstanceUID" in f:
        stmt = stmt.where(DicomInstance.series_uid.in_(f["SeriesInstanceUID"]))
    if "SOPInstanceUID" in f:
        stmt = stmt.where(DicomInstance.sop_uid.in_(f["SOPInstanceUID"]))
    if "SOPClassUID" in f:
        stmt = stmt.where(DicomInstance.sop_class_uid.in_(f["SOPClassUID"]))
    if "Modality" in f:
        stmt = stmt.where(DicomSeries.modality.in_(f["Modality"]))
    stmt = stmt.order_by(
        DicomInstance.study_uid,
        DicomInstance.series_uid,
        DicomInstance.instance_number,
        DicomInstance.sop_uid,
    )
    rows = [(a, b, c) for a, b, c in session.execute(_page(stmt, q)).all()]
    return rows[: q.limit], len(rows) > q.limit


# --- answers --------------------------------------------------------------------------------------


def element(tag: str, values: list[Any]) -> dict[str, Any]:
    vr = dictionary_VR(int(tag, 16))
    return {"vr": vr, "Value": values} if values else {"vr": vr}


def _pick(attrs: dict[str, Any], q: Query, defaults: dict[str, str]) -> dict[str, Any]:
    wanted = set(defaults) | q.include
    return {t: v for t, v in attrs.items() if q.include_all or t in wanted}


def study_json(study: DicomStudy, q: Query, base: str) -> dict[str, Any]:
    out = _pick(study.attrs, q, STUDY_TAGS)
    out["0020000D"] = element("0020000D", [study.study_uid])
    out["00080061"] = element("00080061", study.modalities.split("\\") if study.modalities else [])
    out["00201206"] = element("00201206", [study.n_series])
    out["00201208"] = element("00201208", [study.n_instances])
    out["00080056"] = element("00080056", ["ONLINE"])
    out["00081190"] = element("00081190", [f"{base}/studies/{study.study_uid}"])
    return dict(sorted(out.items()))


def series_json(
    series: DicomSeries, study: DicomStudy, q: Query, base: str, with_study: bool
) -> dict[str, Any]:
    out = _pick(series.attrs, q, SERIES_TAGS)
    if with_study:
        out.update(_pick(study.attrs, q, STUDY_TAGS))
    out["0020000D"] = element("0020000D", [series.study_uid])
    out["0020000E"] = element("0020000E", [series.series_uid])
    out["00201209"] = element("00201209", [series.n_instances])
    out["00080056"] = element("00080056", ["ONLINE"])
    out["00081190"] = element("00081190", [f"{base}/studies/{series.study_uid}/series/{series.series_uid}"])
    return dict(sorted(out.items()))


def instance_url(base: str, inst: DicomInstance) -> str:
    return f"{base}/studies/{inst.study_uid}/series/{inst.series_uid}/instances/{inst.sop_uid}"


def absolute_bulk(meta: dict[str, Any], url: str) -> dict[str, Any]:
    """The stored header with relative BulkDataURIs made absolute (under the instance's URL)."""
    out: dict[str, Any] = {}
    for tag, attr in meta.items():
        if "BulkDataURI" in attr and not str(attr["BulkDataURI"]).startswith(("http://", "https://")):
            attr = {**attr, "BulkDataURI": f"{url}/{attr['BulkDataURI']}"}
        elif attr.get("vr") == "SQ" and attr.get("Value"):
            attr = {**attr, "Value": [absolute_bulk(item, url) for item in attr["Value"]]}
        out[tag] = attr
    return out


def instance_json(
    inst: DicomInstance, series: DicomSeries, study: DicomStudy, q: Query, base: str, with_parents: bool
) -> dict[str, Any]:
    url = instance_url(base, inst)
    out = _pick(absolute_bulk(inst.meta, url), q, INSTANCE_TAGS)
    if with_parents:
        out.update(_pick(series.attrs, q, SERIES_TAGS))
        out.update(_pick(study.attrs, q, STUDY_TAGS))
    out["00080056"] = element("00080056", ["ONLINE"])
    out["00081190"] = element("00081190", [url])
    return dict(sorted(out.items()))


def describe(q: Query) -> dict[str, Any]:
    """The query for the audit trail: which keys were matched, never their values."""
    return {
        "keys": sorted(q.filters),
        "limit": q.limit,
        "offset": q.offset,
        "includefield": "all" if q.include_all else len(q.include),
    }
