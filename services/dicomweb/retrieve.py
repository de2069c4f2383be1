"""QIDO-RS and WADO-RS routes (PS3.18 10.6 and 10.4) over the masked instances, scope ``media:read``.

Everything resolves through the tenant-keyed index (services.dicomweb.models): a UID of another
client is answered exactly like an unknown one (404, audited as a denial). Every search and every
retrieval is audited before the answer leaves (``dicomweb.search``, ``dicomweb.read``). Photos and
videos uploaded through ``/v1`` are not DICOM objects and are not served here (see the README).
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse
from sqlalchemy import select

from services.artifacts.models import Artifact
from services.audit import service as audit
from services.auth.deps import audit_ctx, deny_other_tenant, require_scope, settings_of
from services.auth.service import Principal
from services.db import get_sessionmaker, session_scope
from services.dicomweb import qido, wado
from services.dicomweb.models import DicomInstance
from services.dicomweb.schema import DICOM_JSON_DATASET
from services.problems import Problem, not_found
from services.storage import ObjectNotFound, get_store

log = logging.getLogger("dmask.dicomweb")
router = APIRouter(prefix="/dicomweb", tags=["dicomweb"])
Reader = Annotated[Principal, Depends(require_scope("media:read"))]

JSON_TYPES = (wado.DICOM_JSON, "application/json")
NO_STORE = {"Cache-Control": "no-store"}


class DicomJson(Response):
    """QIDO-RS and metadata answers are DICOM JSON (PS3.18 F.2); as response class, OpenAPI says so."""

    media_type = wado.DICOM_JSON


def _documented(media_type: str) -> dict[int | str, dict[str, Any]]:
    return {200: {"description": "Success", "content": {media_type: {}}}}


MULTIPART_DICOM = _documented('multipart/related; type="application/dicom"')
MULTIPART_OCTETS = _documented('multipart/related; type="application/octet-stream"')
RENDERED_IMAGE: dict[int | str, dict[str, Any]] = {
    200: {"description": "Success", "content": {"image/jpeg": {}, "image/png": {}}}
}
# PS3.18 F.2: an array of data sets keyed by 8-hex-digit tags (the STOW answer's schema, per item).
DICOM_JSON_ARRAY: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Success",
        "content": {wado.DICOM_JSON: {"schema": {"type": "array", "items": DICOM_JSON_DATASET}}},
    }
}


def service_base(request: Request) -> str:
    """The DICOMweb service root as integrators reach it (DMASK_PUBLIC_URL, never the Host header)."""
    return settings_of(request).public_base + "/dicomweb"


def _audit(request: Request, principal: Principal, action: str, **fields: Any) -> None:
    detail = fields.pop("detail", {})
    with session_scope(settings_of(request)) as session:
        audit.append(
            session, audit_ctx(request, principal), action, detail={"api": "dicomweb", **detail}, **fields
        )


def _json(body: Any, headers: dict[str, str] | None = None) -> Response:
    return DicomJson(json.dumps(body, separators=(",", ":")), headers={**NO_STORE, **(headers or {})})


def _accept_json(request: Request) -> None:
    try:
        wado.negotiate_single(request.headers.get("accept"), JSON_TYPES)
    except wado.NotAcceptable as exc:
        raise Problem(406, str(exc), slug="not-acceptable") from None


# --- QIDO-RS ---------------------------------------------------------------------------------------


def _query(request: Request) -> qido.Query:
    _accept_json(request)
    try:
        return qido.parse(list(request.query_params.multi_items()))
    except qido.QueryError as exc:
        raise Problem(400, str(exc), slug="invalid-query") from None


def _warnings(q: qido.Query, more: bool) -> dict[str, str]:
    """PS3.18 8.3.4.1 / 10.6.3.3: Warning headers (code 299) for ignored keys and truncated results."""
    notes = []
    if q.ignored:
        notes.append(
            '299 dmask "The following query keys are not supported and were ignored: '
            + ", ".join(sorted(set(q.ignored)))
            + '"'
        )
    if more:
        notes.append('299 dmask "There are additional results that can be requested"')
    return {"Warning": ", ".join(notes)} if notes else {}


def _search(request: Request, principal: Principal, level: str, scope: dict[str, str]) -> Response:
    q = _query(request)
    base = service_base(request)
    with get_sessionmaker(settings_of(request))() as session:
        if level == "studies":
            studies, more = qido.run_studies(session, q, principal.client_id)
            body = [qido.study_json(s, q, base) for s in studies]
        elif level == "series":
            pairs, more = qido.run_series(session, q, principal.client_id, scope.get("study"))
            body = [qido.series_json(se, st, q, base, with_study="study" not in scope) for se, st in pairs]
        else:
            rows, more = qido.run_instances(
                session, q, principal.client_id, scope.get("study"), scope.get("series")
            )
            body = [
                qido.instance_json(i, se, st, q, base, with_parents="series" not in scope)
                for i, se, st in rows
            ]
    _audit(
        request,
        principal,
        "dicomweb.search",
        detail={"level": level, "scoped": sorted(scope), "returned": len(body), **qido.describe(q)},
    )
    return _json(body, _warnings(q, more))


SEARCH_DOC = (
    "QIDO-RS: matching keys StudyInstanceUID, PatientID (the masked pseudonym), StudyDate (ranges), "
    "AccessionNumber, ModalitiesInStudy, Modality, SeriesInstanceUID, SOPInstanceUID, SOPClassUID; limit, "
    "offset, includefield (keyword, tag or all). Answer: application/dicom+json (200, [] when none match)."
)


@router.get("/studies", description=SEARCH_DOC, response_class=DicomJson, responses=DICOM_JSON_ARRAY)
def search_studies(request: Request, principal: Reader) -> Response:
    return _search(request, principal, "studies", {})


@router.get("/series", description=SEARCH_DOC, response_class=DicomJson, responses=DICOM_JSON_ARRAY)
def search_series(request: Request, principal: Reader) -> Response:
    return _search(request, principal, "series", {})


@router.get(
    "/studies/{study}/series", description=SEARCH_DOC, response_class=DicomJson, responses=DICOM_JSON_ARRAY
)
def search_study_series(request: Request, study: str, principal: Reader) -> Response:
    return _search(request, principal, "series", {"study": study})


@router.get("/instances", description=SEARCH_DOC, response_class=DicomJson, responses=DICOM_JSON_ARRAY)
def search_instances(request: Request, principal: Reader) -> Response:
    return _search(request, principal, "instances", {})


@router.get(
    "/studies/{study}/instances", description=SEARCH_DOC, response_class=DicomJson, responses=DICOM_JSON_ARRAY
)
def search_study_instances(request: Request, study: str, principal: Reader) -> Response:
    return _search(request, principal, "instances", {"study": study})


@router.get(
    "/studies/{study}/series/{series}/instances",
    description=SEARCH_DOC,
    response_class=DicomJson,
    responses=DICOM_JSON_ARRAY,
)
def search_series_instances(request: Request, study: str, series: str, principal: Reader) -> Response:
    return _search(request, principal, "instances", {"study": study, "series": series})


# --- WADO-RS ---------------------------------------------------------------------------------------


def _resolve(
    request: Request, principal: Principal, study: str, series: str | None = None, sop: str | None = None
) -> list[tuple[DicomInstance, Artifact]]:
    """The tenant's instances under the path, with their artifacts; 404 when there are none (also
    when the UIDs are another client's: audited as a denial, answered the same)."""
    what = "instance" if sop else "series" if series else "study"
    for uid in (study, series, sop):
        if uid is not None and (len(uid) > 64 or not qido.UID_RE.match(uid)):
            raise not_found(what)
    where = [DicomInstance.study_uid == study]
    if series is not None:
        where.append(DicomInstance.series_uid == series)
    if sop is not None:
        where.append(DicomInstance.sop_uid == sop)
    with get_sessionmaker(settings_of(request))() as session:
        rows = [
            (i, a)
            for i, a in session.execute(
                select(DicomInstance, Artifact)
                .join(Artifact, Artifact.id == DicomInstance.artifact_id)
                .where(DicomInstance.client_id == principal.client_id, *where)
                .where(Artifact.deleted_at.is_(None))
                .order_by(DicomInstance.series_uid, DicomInstance.instance_number, DicomInstance.sop_uid)
            ).all()
        ]
        if not rows:
            elsewhere = session.execute(
                select(DicomInstance.record_id).where(*where).limit(1)
            ).scalar_one_or_none()
            if elsewhere is not None:
                raise deny_other_tenant(request, principal, what)
            raise not_found(what)
    return rows


def _audit_read(
    request: Request,
    principal: Principal,
    what: str,
    rows: list[tuple[DicomInstance, Artifact]],
    **detail: Any,
) -> None:
    records = {i.record_id for i, _ in rows}
    single = rows[0][0] if len(rows) == 1 else None
    _audit(
        request,
        principal,
        "dicomweb.read",
        record_id=next(iter(records)) if len(records) == 1 else None,
        job_id=single.job_id if single else None,
        artifact_id=single.artifact_id if single else None,
        detail={"what": what, "instances": len(rows), **detail},
    )


def _object_chunks(request: Request, key: str) -> Iterator[bytes]:
    store = get_store(settings_of(request))
    try:
        yield from store.iter_chunks("artifacts", key)
    except ObjectNotFound:  # deleted between the index lookup and the read: the part stays empty
        log.warning("an indexed instance's object is missing from the artifacts bucket")


def _retrieve(
    request: Request, principal: Principal, study: str, series: str | None, sop: str | None
) -> Response:
    rows = _resolve(request, principal, study, series, sop)
    try:
        accepted = wado.negotiate_multipart(
            request.headers.get("accept"), wado.DICOM, {i.transfer_syntax_uid for i, _ in rows}
        )
    except wado.NotAcceptable as exc:
        raise Problem(406, str(exc), slug="not-acceptable") from None
    _audit_read(request, principal, "instances", rows)
    boundary = wado.new_boundary()
    base = service_base(request)
    parts = (
        (
            f"{wado.DICOM}; transfer-syntax={inst.transfer_syntax_uid}",
            _object_chunks(request, art.object_key),
            qido.instance_url(base, inst),
        )
        for inst, art in rows
    )
    del accepted
    return StreamingResponse(
        wado.multipart(parts, boundary),
        media_type=wado.multipart_content_type(wado.DICOM, boundary),
        headers=NO_STORE,
    )


RETRIEVE_DOC = (
    'WADO-RS: the masked instances as multipart/related; type="application/dicom" (as stored: '
    "transfer-syntax=* or the instance's own). 404 for unknown UIDs and for other clients' UIDs alike."
)


@router.get("/studies/{study}", description=RETRIEVE_DOC, responses=MULTIPART_DICOM, response_class=Response)
def retrieve_study(request: Request, study: str, principal: Reader) -> Response:
    return _retrieve(request, principal, study, None, None)


@router.get(
    "/studies/{study}/series/{series}",
    description=RETRIEVE_DOC,
    responses=MULTIPART_DICOM,
    response_class=Response,
)
def retrieve_series(request: Request, study: str, series: str, principal: Reader) -> Response:
    return _retrieve(request, principal, study, series, None)


@router.get(
    "/studies/{study}/series/{series}/instances/{sop}", description=RETRIEVE_DOC, responses=MULTIPART_DICOM
)
def retrieve_instance(request: Request, study: str, series: str, sop: str, principal: Reader) -> Response:
    return _retrieve(request, principal, study, series, sop)


def _metadata(
    request: Request, principal: Principal, study: str, series: str | None, sop: str | None
) -> Response:
    _accept_json(request)
    rows = _resolve(request, principal, study, series, sop)
    base = service_base(request)
    body = []
    for inst, _ in rows:
        url = qido.instance_url(base, inst)
        meta = qido.absolute_bulk(inst.meta, url)
        bits = meta.get("00280100", {}).get("Value", [8])[0]
        encapsulated = inst.transfer_syntax_uid != wado.EXPLICIT_LE
        meta["7FE00010"] = {
            "vr": "OB" if encapsulated or bits == 8 else "OW",
            "BulkDataURI": f"{url}/bulkdata/7FE00010",
        }
        body.append(dict(sorted(meta.items())))
    _audit_read(request, principal, "metadata", rows)
    return _json(body)


METADATA_DOC = (
    "WADO-RS metadata: application/dicom+json, the masked headers; bulk data (pixel data included) "
    "by BulkDataURI."
)


@router.get(
    "/studies/{study}/metadata",
    description=METADATA_DOC,
    response_class=DicomJson,
    responses=DICOM_JSON_ARRAY,
)
def study_metadata(request: Request, study: str, principal: Reader) -> Response:
    return _metadata(request, principal, study, None, None)


@router.get(
    "/studies/{study}/series/{series}/metadata",
    description=METADATA_DOC,
    response_class=DicomJson,
    responses=DICOM_JSON_ARRAY,
)
def series_metadata(request: Request, study: str, series: str, principal: Reader) -> Response:
    return _metadata(request, principal, study, series, None)


@router.get(
    "/studies/{study}/series/{series}/instances/{sop}/metadata",
    description=METADATA_DOC,
    response_class=DicomJson,
)
def instance_metadata(request: Request, study: str, series: str, sop: str, principal: Reader) -> Response:
    return _metadata(request, principal, study, series, sop)


def _download(request: Request, art: Artifact) -> Path:
    store = get_store(settings_of(request))
    tmp = tempfile.NamedTemporaryFile(prefix="dmask-wado-", suffix=".dcm", delete=False)  # noqa: SIM115
    tmp.close()
    path = Path(tmp.name)
    try:
        store.get_to_file("artifacts", art.object_key, path)
    except ObjectNotFound:
        path.unlink(missing_ok=True)
        raise Problem(410, "The instance's file is no longer stored.", slug="gone") from None
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def _octets(parts: list[bytes], locations: list[str]) -> Response:
    boundary = wado.new_boundary()
    body = b"".join(
        wado.multipart(
            (
                (f"{wado.OCTET}; transfer-syntax={wado.EXPLICIT_LE}", [p], loc)
                for p, loc in zip(parts, locations, strict=True)
            ),
            boundary,
        )
    )
    return Response(body, media_type=wado.multipart_content_type(wado.OCTET, boundary), headers=NO_STORE)


@router.get(
    "/studies/{study}/series/{series}/instances/{sop}/frames/{frames}",
    responses=MULTIPART_OCTETS,
    response_class=Response,
)
def retrieve_frames(
    request: Request, study: str, series: str, sop: str, frames: str, principal: Reader
) -> Response:
    """WADO-RS frames: multipart/related; type="application/octet-stream", each frame as uncompressed
    8-bit RGB (Explicit VR Little Endian pixel layout), decoded from the masked instance."""
    rows = _resolve(request, principal, study, series, sop)
    inst, art = rows[0]
    try:
        wado.negotiate_multipart(request.headers.get("accept"), wado.OCTET, set())
        numbers = wado.parse_frame_list(frames, inst.frames)
    except wado.NotAcceptable as exc:
        raise Problem(406, str(exc), slug="not-acceptable") from None
    except LookupError:
        raise not_found("frame") from None
    except ValueError as exc:
        raise Problem(400, str(exc).capitalize() + ".", slug="invalid-frame-list") from None
    path = _download(request, art)
    try:
        decoded = wado.read_frames(path, numbers)
    finally:
        path.unlink(missing_ok=True)
    if len(decoded) != len(set(numbers)):
        raise not_found("frame")
    _audit_read(request, principal, "frames", rows, frames=len(numbers))
    url = qido.instance_url(service_base(request), inst)
    return _octets([decoded[n].tobytes() for n in numbers], [f"{url}/frames/{n}" for n in numbers])


def _rendered(
    request: Request, principal: Principal, study: str, series: str, sop: str, frame: str
) -> Response:
    rows = _resolve(request, principal, study, series, sop)
    inst, art = rows[0]
    try:
        media_type = wado.negotiate_single(request.headers.get("accept"), wado.RENDERED)
        (number,) = wado.parse_frame_list(frame, inst.frames)
    except wado.NotAcceptable as exc:
        raise Problem(406, str(exc), slug="not-acceptable") from None
    except LookupError:
        raise not_found("frame") from None
    except ValueError:
        raise Problem(
            400, "A rendered frame is one positive frame number.", slug="invalid-frame-list"
        ) from None
    path = _download(request, art)
    try:
        decoded = wado.read_frames(path, [number])
    finally:
        path.unlink(missing_ok=True)
    if number not in decoded:
        raise not_found("frame")
    image = wado.render(decoded[number], media_type)
    _audit_read(request, principal, "rendered", rows, frame=number, media_type=media_type)
    return Response(image, media_type=media_type, headers=NO_STORE)


@router.get(
    "/studies/{study}/series/{series}/instances/{sop}/frames/{frame}/rendered", responses=RENDERED_IMAGE
)
def retrieve_rendered_frame(
    request: Request, study: str, series: str, sop: str, frame: str, principal: Reader
) -> Response:
    """A masked frame rendered as image/jpeg (default) or image/png."""
    return _rendered(request, principal, study, series, sop, frame)


@router.get(
    "/studies/{study}/series/{series}/instances/{sop}/rendered",
    responses=RENDERED_IMAGE,
    response_class=Response,
)
def retrieve_rendered_instance(
    request: Request, study: str, series: str, sop: str, principal: Reader
) -> Response:
    """The instance's first masked frame rendered as image/jpeg (default) or image/png."""
    return _rendered(request, principal, study, series, sop, "1")


@router.get(
    "/studies/{study}/series/{series}/instances/{sop}/bulkdata/{tag}",
    responses=MULTIPART_OCTETS,
    response_class=Response,
)
def retrieve_bulkdata(
    request: Request, study: str, series: str, sop: str, tag: str, principal: Reader
) -> Response:
    """Bulk data named by a metadata BulkDataURI: multipart/related; type="application/octet-stream"."""
    rows = _resolve(request, principal, study, series, sop)
    inst, art = rows[0]
    if len(tag) != 8 or any(c not in "0123456789ABCDEFabcdef" for c in tag):
        raise not_found("bulk data")
    try:
        wado.negotiate_multipart(request.headers.get("accept"), wado.OCTET, set())
    except wado.NotAcceptable as exc:
        raise Problem(406, str(exc), slug="not-acceptable") from None
    path = _download(request, art)
    try:
        value = wado.bulk_value(path, tag.upper())
    finally:
        path.unlink(missing_ok=True)
    if value is None:
        raise not_found("bulk data")
    _audit_read(request, principal, "bulkdata", rows, tag=tag.upper())
    url = qido.instance_url(service_base(request), inst)
    return _octets([value], [f"{url}/bulkdata/{tag.upper()}"])
