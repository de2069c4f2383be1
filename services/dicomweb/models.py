"""The DICOMweb index of masked instances: what QIDO-RS searches and WADO-RS resolves.

Only masked (de-identified) instances are ever indexed: the worker writes a row when it records a
DICOM artifact, in the same transaction, so an instance is findable exactly when its artifact exists.
Studies and series carry their aggregates (counts, modalities) so that a search never groups the
instance table: QIDO stays fast however many instances a tenant has. Every row is keyed by the
client (tenant) first; another tenant's UIDs simply do not match.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from services.db import Base, utcnow


class DicomStudy(Base):
    __tablename__ = "dicom_studies"
    __table_args__ = (
        Index("ix_dicom_studies_date", "client_id", "study_date", "study_uid"),
        Index("ix_dicom_studies_patient", "client_id", "patient_id"),
    )

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    study_uid: Mapped[str] = mapped_column(String(64), primary_key=True)
    record_id: Mapped[str] = mapped_column(String(64))
    patient_id: Mapped[str | None] = mapped_column(String(64))
    study_date: Mapped[str | None] = mapped_column(String(8))  # YYYYMMDD (the masked, shifted date)
    accession_number: Mapped[str | None] = mapped_column(String(64))
    modalities: Mapped[str] = mapped_column(String(200), default="")  # backslash-joined, sorted
    n_series: Mapped[int] = mapped_column(Integer, default=0)
    n_instances: Mapped[int] = mapped_column(Integer, default=0)
    attrs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # study-level DICOM JSON
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class DicomSeries(Base):
    __tablename__ = "dicom_series"
    __table_args__ = (Index("ix_dicom_series_study", "client_id", "study_uid", "series_uid"),)

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    series_uid: Mapped[str] = mapped_column(String(64), primary_key=True)
    study_uid: Mapped[str] = mapped_column(String(64))
    modality: Mapped[str | None] = mapped_column(String(16))
    n_instances: Mapped[int] = mapped_column(Integer, default=0)
    attrs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # series-level DICOM JSON


class DicomInstance(Base):
    __tablename__ = "dicom_instances"
    __table_args__ = (
        Index("ix_dicom_instances_series", "client_id", "study_uid", "series_uid", "sop_uid"),
        Index("ix_dicom_instances_sop", "client_id", "sop_uid", unique=True),
    )

    artifact_id: Mapped[str] = mapped_column(ForeignKey("artifacts.id"), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    record_id: Mapped[str] = mapped_column(String(64), index=True)
    job_id: Mapped[str] = mapped_column(String(36))
    study_uid: Mapped[str] = mapped_column(String(64))
    series_uid: Mapped[str] = mapped_column(String(64))
    sop_uid: Mapped[str] = mapped_column(String(64))
    sop_class_uid: Mapped[str] = mapped_column(String(64))
    transfer_syntax_uid: Mapped[str] = mapped_column(String(64))
    instance_number: Mapped[int | None] = mapped_column(Integer)
    frames: Mapped[int] = mapped_column(Integer, default=1)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # the header as DICOM JSON
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
