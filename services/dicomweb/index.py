"""Indexing a masked instance for DICOMweb, in the transaction that records its artifact.

``read_entry`` runs before the transaction (it parses the masked file the worker just wrote: never the
original); ``write`` then inserts the instance and recomputes its series' and study's aggregates.
The recomputation happens after the study row is locked, so concurrent workers indexing instances of
one study each see every instance committed before them plus their own, and the last one leaves the
counts right. ``forget`` takes an instance out when its artifact expires.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataelem import DataElement
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from services.db import utcnow
from services.dicomweb.models import DicomInstance, DicomSeries, DicomStudy

BULK_THRESHOLD = 1024  # binary values above this are served as bulk data, not inlined in metadata
PIXEL_TAGS = {"7FE00010", "7FE00008", "7FE00009"}

# Attributes of the Patient / General Study modules and the General Series module (PS3.3), by tag:
# what a study-level or series-level QIDO answer may carry.
STUDY_TAGS = {
    "00100010": "PatientName",
    "00100020": "PatientID",
    "00100030": "PatientBirthDate",
    "00100040": "PatientSex",
    "00080020": "StudyDate",
    "00080030": "StudyTime",
    "00080050": "AccessionNumber",
    "00080090": "ReferringPhysicianName",
    "00200010": "StudyID",
    "00081030": "StudyDescription",
    "0020000D": "StudyInstanceUID",
    "00080005": "SpecificCharacterSet",
}
SERIES_TAGS = {
    "00080060": "Modality",
    "0020000E": "SeriesInstanceUID",
    "00200011": "SeriesNumber",
    "0008103E": "SeriesDescription",
    "00080021": "SeriesDate",
    "00080031": "SeriesTime",
    "00400244": "PerformedProcedureStepStartDate",
}


@dataclass(frozen=True)
class IndexEntry:
    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    patient_id: str | None
    study_date: str | None
    accession_number: str | None
    modality: str | None
    instance_number: int | None
    frames: int
    meta: dict[str, Any]


def _bulk_uri(element: DataElement) -> str:
    """Relative to the instance's WADO-RS URL; made absolute when served."""
    return f"bulkdata/{element.tag:08X}"


def _text(ds: pydicom.Dataset, keyword: str, size: int) -> str | None:
    value = str(ds.get(keyword, "") or "").strip()
    return value[:size] or None


def read_entry(path: Path | str) -> IndexEntry:
    """The index entry of a masked instance file (header only; pixel data is not read)."""
    ds = pydicom.dcmread(str(path), stop_before_pixels=True)
    meta = ds.to_json_dict(bulk_data_threshold=BULK_THRESHOLD, bulk_data_element_handler=_bulk_uri)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    number = ds.get("InstanceNumber")
    date = _text(ds, "StudyDate", 8)
    return IndexEntry(
        study_uid=str(ds.StudyInstanceUID),
        series_uid=str(ds.SeriesInstanceUID),
        sop_uid=str(ds.SOPInstanceUID),
        sop_class_uid=str(ds.SOPClassUID),
        transfer_syntax_uid=str(ds.file_meta.TransferSyntaxUID),
        patient_id=_text(ds, "PatientID", 64),
        study_date=date if date and date.isdigit() and len(date) == 8 else None,
        accession_number=_text(ds, "AccessionNumber", 64),
        modality=_text(ds, "Modality", 16),
        instance_number=int(number) if number not in (None, "") else None,
        frames=frames,
        meta=meta,
    )


def _subset(meta: dict[str, Any], tags: dict[str, str]) -> dict[str, Any]:
    return {tag: value for tag, value in meta.items() if tag in tags}


def _insert_ignore(session: Session, row: Any, **values: Any) -> None:
    """INSERT ... ON CONFLICT DO NOTHING on PostgreSQL and SQLite alike."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        session.execute(pg_insert(row).values(**values).on_conflict_do_nothing())
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        session.execute(sqlite_insert(row).values(**values).on_conflict_do_nothing())


def write(
    session: Session,
    entry: IndexEntry,
    *,
    artifact_id: str,
    client_id: str,
    record_id: str,
    job_id: str,
    size_bytes: int,
) -> None:
    """Index one instance (the caller's transaction). A newer masking of the same SOP Instance UID
    for the same tenant replaces the older one: one UID, one instance."""
    old = session.execute(
        select(DicomInstance).where(
            DicomInstance.client_id == client_id, DicomInstance.sop_uid == entry.sop_uid
        )
    ).scalar_one_or_none()
    stale: list[tuple[str, str]] = []
    if old is not None:
        stale.append((old.study_uid, old.series_uid))
        session.delete(old)
        session.flush()
    session.add(
        DicomInstance(
            artifact_id=artifact_id,
            client_id=client_id,
            record_id=record_id,
            job_id=job_id,
            study_uid=entry.study_uid,
            series_uid=entry.series_uid,
            sop_uid=entry.sop_uid,
            sop_class_uid=entry.sop_class_uid,
            transfer_syntax_uid=entry.transfer_syntax_uid,
            instance_number=entry.instance_number,
            frames=entry.frames,
            size_bytes=size_bytes,
            meta=entry.meta,
        )
    )
    session.flush()
    _insert_ignore(
        session,
        DicomStudy,
        client_id=client_id,
        study_uid=entry.study_uid,
        record_id=record_id,
        modalities="",
        n_series=0,
        n_instances=0,
        attrs={},
        updated_at=utcnow(),
    )
    _insert_ignore(
        session,
        DicomSeries,
        client_id=client_id,
        series_uid=entry.series_uid,
        study_uid=entry.study_uid,
        n_instances=0,
        attrs={},
    )
    study = session.execute(
        select(DicomStudy)
        .where(DicomStudy.client_id == client_id, DicomStudy.study_uid == entry.study_uid)
        .with_for_update()
    ).scalar_one()
    study.record_id = record_id
    study.patient_id = entry.patient_id
    study.study_date = entry.study_date
    study.accession_number = entry.accession_number
    study.attrs = _subset(entry.meta, STUDY_TAGS)
    series = session.get(DicomSeries, (client_id, entry.series_uid))
    assert series is not None
    series.modality = entry.modality
    series.attrs = _subset(entry.meta, SERIES_TAGS)
    for study_uid, series_uid in {*stale, (entry.study_uid, entry.series_uid)}:
        _recount(session, client_id, study_uid, series_uid)


def _recount(session: Session, client_id: str, study_uid: str, series_uid: str) -> None:
    """Counts and modalities from the instance table (a study's rows only: an indexed range)."""
    session.flush()
    n_series_instances = session.execute(
        select(func.count())
        .select_from(DicomInstance)
        .where(DicomInstance.client_id == client_id, DicomInstance.series_uid == series_uid)
    ).scalar_one()
    series = session.get(DicomSeries, (client_id, series_uid))
    if series is not None:
        if n_series_instances == 0:
            session.delete(series)
        else:
            series.n_instances = n_series_instances
    session.flush()
    study = session.get(DicomStudy, (client_id, study_uid))
    if study is None:
        return
    rows = session.execute(
        select(DicomSeries.modality, DicomSeries.n_instances).where(
            DicomSeries.client_id == client_id, DicomSeries.study_uid == study_uid
        )
    ).all()
    if not rows:
        session.delete(study)
        return
    study.n_series = len(rows)
    study.n_instances = sum(n for _, n in rows)
    study.modalities = "\\".join(sorted({m for m, _ in rows if m}))
    study.updated_at = utcnow()


def forget(session: Session, artifact_id: str) -> None:
    """Take the instance of an expired or deleted artifact out of the index."""
    old = session.get(DicomInstance, artifact_id)
    if old is None:
        return
    client_id, study_uid, series_uid = old.client_id, old.study_uid, old.series_uid
    session.execute(delete(DicomInstance).where(DicomInstance.artifact_id == artifact_id))
    _recount(session, client_id, study_uid, series_uid)
