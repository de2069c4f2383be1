"""Masked media as FHIR R4 ``Media`` resources, and their search (patient, created, status, paging).

One Media per masking job (the job is what an EHR waits for): ``status`` follows the job, ``subject``
is the record (identifier only), ``content.url`` the masked artifact (``/v1/artifacts/{id}``, under
DMASK_PUBLIC_URL) once there is one. The original upload is never linked. Paging is keyset-based on
(created, id), so pages stay stable while new uploads arrive.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, or_, select
from sqlalchemy.orm import Session

from services.artifacts.models import Artifact
from services.audit.service import _ts
from services.dicomweb.models import DicomInstance
from services.fhir.mapping import SYS_JOB, SYS_MEDIA, SYS_RECORD
from services.fhir.search import SearchError, date_clause, split_token, strip_reference
from services.jobs.models import Job
from services.media.models import Media

MEDIA_TYPE = "http://terminology.hl7.org/CodeSystem/media-type"
DEFAULT_COUNT, MAX_COUNT = 50, 500
STATUS = {"queued": "preparation", "running": "in-progress", "succeeded": "completed", "failed": "not-done"}
SEARCH_PARAMS = [
    ("patient", "reference", "The EHR record ID (Patient/<id> or <id>)"),
    ("created", "date", "When the media was received (prefixes eq ne gt lt ge le sa eb)"),
    ("status", "token", "preparation | in-progress | completed | not-done"),
]


@dataclass
class MediaSearch:
    clauses: list[ColumnElement[bool]] = field(default_factory=list)
    used: list[tuple[str, str]] = field(default_factory=list)
    count: int = DEFAULT_COUNT
    after: tuple[datetime, str] | None = None
    patients: set[str] = field(default_factory=set)


def encode_cursor(created: datetime, job_id: str) -> str:
    raw = json.dumps({"t": created.isoformat(), "i": job_id}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str) -> tuple[datetime, str]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        return datetime.fromisoformat(raw["t"]), str(raw["i"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise SearchError("Invalid _cursor.") from None


def parse(params: Sequence[tuple[str, str]]) -> MediaSearch:
    """Unknown parameters are ignored (FHIR's lenient default) and left out of the self link."""
    search = MediaSearch()
    for name, raw in params:
        values = [v.strip() for v in raw.split(",") if v.strip()]
        if name == "_count":
            if not raw.isdigit() or int(raw) < 1:
                raise SearchError("_count must be a positive integer.")
            search.count = min(int(raw), MAX_COUNT)
        elif name == "_cursor":
            search.after = decode_cursor(raw)
            continue
        elif name not in ("patient", "created", "status"):
            continue
        elif not values:
            raise SearchError(f"Empty value for {name}.")
        elif name == "patient":
            recs = [strip_reference(v) for v in values]
            search.patients.update(recs)
            search.clauses.append(Job.record_id.in_(recs))
        elif name == "created":
            search.clauses.append(or_(*(date_clause(v, Job.created_at) for v in values)))
        else:
            codes = {split_token(v)[1] for v in values}
            unknown = codes - set(STATUS.values())
            if unknown:
                raise SearchError("status must be preparation, in-progress, completed or not-done.")
            search.clauses.append(Job.status.in_(sorted(k for k, v in STATUS.items() if v in codes)))
        search.used.append((name, raw))
    return search


# One Media: the job with its media and, once masked, its artifact and DICOM instance.
MediaRow = tuple[Job, Media, Artifact | None, DicomInstance | None]


def _joined() -> Select[Job, Media, Artifact, DicomInstance]:
    """The rows a search and a read both start from (MediaRow; the outer joins are None until masked)."""
    return (
        select(Job, Media, Artifact, DicomInstance)
        .join(Media, Media.id == Job.media_id)
        .outerjoin(Artifact, Artifact.id == Job.artifact_id)
        .outerjoin(DicomInstance, DicomInstance.artifact_id == Job.artifact_id)
    )


def run(
    session: Session, search: MediaSearch, client_id: str | None
) -> tuple[list[MediaRow], tuple[datetime, str] | None]:
    """One page (``client_id`` None: every client's, for admins) and the cursor of the next one."""
    stmt = _joined().where(*search.clauses)
    if client_id is not None:
        stmt = stmt.where(Job.client_id == client_id)
    if search.after is not None:
        t, i = search.after
        stmt = stmt.where(or_(Job.created_at > t, and_(Job.created_at == t, Job.id > i)))
    stmt = stmt.order_by(Job.created_at, Job.id).limit(search.count + 1)
    rows: list[MediaRow] = [(j, m, a, d) for j, m, a, d in session.execute(stmt).all()]
    more = len(rows) > search.count
    rows = rows[: search.count]
    nxt = (rows[-1][0].created_at, rows[-1][0].id) if more and rows else None
    return rows, nxt


def read(session: Session, job_id: str, client_id: str | None) -> MediaRow | None:
    """One Media by its id (the job's), as search finds it; None when it does not exist or belongs to
    another client (``client_id`` None: admins see every client's), so a read cannot probe for others'."""
    stmt = _joined().where(Job.id == job_id)
    if client_id is not None:
        stmt = stmt.where(Job.client_id == client_id)
    row = session.execute(stmt).first()
    return None if row is None else (row[0], row[1], row[2], row[3])


def to_fhir(
    job: Job, media: Media, art: Artifact | None, inst: DicomInstance | None, public_base: str
) -> dict[str, Any]:
    kind = "video" if media.kind == "video" else "image"
    resource: dict[str, Any] = {
        "resourceType": "Media",
        "id": job.id,
        "identifier": [{"system": SYS_JOB, "value": job.id}, {"system": SYS_MEDIA, "value": media.id}],
        "status": STATUS.get(job.status, "unknown"),
        "type": {"coding": [{"system": MEDIA_TYPE, "code": kind, "display": kind.capitalize()}]},
        "subject": {"type": "Patient", "identifier": {"system": SYS_RECORD, "value": job.record_id}},
        "createdDateTime": _ts(job.created_at),
    }
    if job.finished_at is not None:
        resource["issued"] = _ts(job.finished_at)
    if art is not None and art.deleted_at is None:
        resource["content"] = {
            "contentType": art.mime_type,
            "url": f"{public_base}/v1/artifacts/{art.id}",
            "size": art.size_bytes,
            "title": "masked " + media.kind,
            "creation": _ts(art.created_at),
        }
        if art.frames_total and kind == "video":
            resource["frames"] = art.frames_total
        if inst is not None:
            resource["identifier"].append({"system": "urn:dicom:uid", "value": f"urn:oid:{inst.sop_uid}"})
    elif art is not None:
        resource["content"] = {"title": "masked " + media.kind + ": expired under the retention policy"}
    else:
        resource["content"] = {"title": f"masked {media.kind}: not available ({resource['status']})"}
    return resource
