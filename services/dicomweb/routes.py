"""DICOMweb STOW-RS (PS3.18 10.5): ``POST /dicomweb/studies[/{study_uid}]``.

The body (``multipart/related; type="application/dicom"``) is parsed by ``services.dicom.stow`` in a
thread fed through the upload path's bounded pipe, under ``max_upload_bytes`` for the whole body.
Each part is checked as DICOM (structure first, never trusting lengths); a good one then goes through
the same upload path as ``POST /v1/records/{record_id}/media`` (``service.ingest_from``: sniff, caps,
originals bucket, media + job + audit in one transaction), so every instance gets its own job. The
EHR record comes from the required ``record_id`` query parameter, never from the PatientID.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import mmap
import re
from collections.abc import AsyncIterator
from concurrent.futures import Executor
from typing import Annotated

import pydicom
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydicom.uid import UID
from starlette.concurrency import run_in_threadpool

from services.auth.deps import audit_ctx, require_scope, settings_of
from services.auth.service import Principal
from services.dicom import (
    FailedInstance,
    FailureReason,
    MultipartLimits,
    Part,
    ReadLimits,
    StoredInstance,
    StowError,
    WarningReason,
    build_stow_response,
    check_stow_content_type,
    inspect_bytes,
    parse_multipart_related,
    stow_http_status,
)
from services.dicom.stow import DICOM_MEDIA_TYPE
from services.dicom.support import refusal
from services.dicom.uids import keyed_uid, service_uid_key
from services.dicomweb.schema import DICOM_JSON_DATASET
from services.media import service
from services.media.service import BodyState, ChunkPipe, Received, UploadAborted
from services.metrics import UPLOAD_BYTES
from services.problems import Problem
from services.settings import Settings
from services.storage import ObjectStore, get_store

router = APIRouter(prefix="/dicomweb", tags=["dicomweb"])

DICOM_JSON = "application/dicom+json"
UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
STOW_PARTS_MAX = 1000  # instances per request: each becomes a job
READ_CHUNK = 1 << 20

STOW_DOC = """DICOMweb STOW-RS: store DICOM instances; each one is masked asynchronously (one job each).

Body: `multipart/related; type="application/dicom"`, one Part 10 instance per part. `record_id` (query,
required) names the EHR record the instances belong to. The answer is `application/dicom+json`:
ReferencedSOPSequence (accepted instances; RetrieveURL is the WADO-RS URL the masked instance will
have, under DMASK_PUBLIC_URL: 404 until its job succeeds) and FailedSOPSequence with a FailureReason:
0x0122 SOP class without an image (nothing to mask), 0xA900 no usable pixel data or not in the
study of the URL, 0xC122 transfer syntax not decodable, 0x0111 this SOP Instance UID was already
stored for the record with other content, 0xC000 unreadable/not DICOM, 0xA700 over a cap, 0x0110
other. Nothing is stored for a failed instance. 200 all stored, 202 some failed or stored with a
warning, 409 none stored. A second STOW of the same SOP Instance UID for the same record (a client
retrying) is recognised: same job, no new work, WarningReason 0x0111 and a `Warning` header.
"""


class DicomJsonResponse(Response):
    """PS3.18 answers are DICOM JSON; as the route's response class it is also what OpenAPI says."""

    media_type = DICOM_JSON


STOW_ANSWER = {DICOM_JSON: {"schema": DICOM_JSON_DATASET}}

RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"description": "All instances stored", "content": STOW_ANSWER},
    202: {"description": "Some instances failed", "content": STOW_ANSWER},
    400: {"description": "Malformed multipart body"},
    409: {"description": "No instance stored", "content": STOW_ANSWER},
    413: {"description": "Too large"},
    415: {"description": "Not multipart/related; type=application/dicom"},
    422: {"description": "Invalid record_id"},
}
OPENAPI_BODY = {
    "requestBody": {
        "content": {'multipart/related; type="application/dicom"': {"schema": {"type": "string"}}},
        "required": True,
    }
}


def _refuse(request: Request, principal: Principal, record_id: str | None, problem: Problem) -> Problem:
    service.audit_rejection(settings_of(request), audit_ctx(request, principal), record_id, problem)
    return problem


def _stow_problem(exc: StowError, settings: Settings) -> Problem:
    if exc.status == 415:
        return Problem(415, str(exc.reason), slug="unsupported-media-type")
    if exc.status == 413:
        if "request body" in exc.reason:
            return service.too_large(settings)
        return Problem(413, str(exc.reason), slug="upload-too-large", max_bytes=settings.max_upload_bytes)
    return Problem(exc.status, str(exc.reason), slug="bad-multipart")


async def _read_parts(
    request: Request, settings: Settings, executor: Executor, content_type: str
) -> list[Part]:
    """All parts of the body (spooled to temporary files), parsed in a thread as the body streams in."""
    state = BodyState()
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > settings.max_upload_bytes:
        await service.drain(request, state)
        raise service.too_large(settings)
    limits = MultipartLimits(
        max_part_bytes=settings.max_upload_bytes,
        max_total_bytes=settings.max_upload_bytes,
        max_parts=STOW_PARTS_MAX,
    )
    parts: list[Part] = []
    pipe = ChunkPipe()

    def parse() -> None:
        parts.extend(parse_multipart_related(content_type, pipe, limits))

    loop = asyncio.get_running_loop()
    parser = loop.run_in_executor(executor, parse)

    def parser_alive() -> bool:
        return not parser.done()

    pump_error: BaseException | None = None
    try:
        async for chunk in service.raw_body(request, state):
            if state.raw_bytes > settings.max_upload_bytes:
                raise service.too_large(settings)
            await pipe.put(chunk, parser_alive)
        await pipe.put(b"", parser_alive)  # end of data
    except BaseException as exc:
        pump_error = exc
        pipe.abort()
    parser_error: BaseException | None = None
    try:
        await parser
    except BaseException as exc:
        parser_error = exc
    if pump_error is None and parser_error is None:
        return parts
    if parser_error is None and isinstance(pump_error, UploadAborted):
        # The parser saw the close delimiter before the body ended (an epilogue): all parts are in.
        with contextlib.suppress(Exception):
            await service.drain(request, state)
        return parts
    for part in parts:
        part.close()
    if isinstance(parser_error, StowError):
        with contextlib.suppress(Exception):
            await service.drain(request, state)
        raise _stow_problem(parser_error, settings) from None
    if isinstance(pump_error, Problem):
        with contextlib.suppress(Exception):
            await service.drain(request, state)
        raise pump_error
    if pump_error is not None and not isinstance(pump_error, UploadAborted):
        raise pump_error  # cancelled, or a bug
    if parser_error is not None and not isinstance(parser_error, UploadAborted):
        raise parser_error
    # The client went away mid-body: nothing is kept (as for an interrupted upload).
    raise Problem(400, "The upload was interrupted before it was complete.", slug="upload-interrupted")


def _check_part(
    part: Part, settings: Settings, study_uid: str | None
) -> tuple[str, str, str, str] | FailedInstance:
    """(SOP Class, SOP Instance, Study, Series UIDs) of a sound DICOM part the worker can mask, else
    why it fails (PS3.18 failure reason)."""
    unreadable = FailedInstance(FailureReason.CANNOT_UNDERSTAND)
    if part.content_type != DICOM_MEDIA_TYPE or part.size == 0:
        return unreadable
    try:
        with mmap.mmap(part.body.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            layout = inspect_bytes(mm, ReadLimits(max_file_bytes=settings.max_upload_bytes))
        part.body.seek(0)
        # Values over 64 KiB (pixel data) are deferred: present for the checks, never loaded.
        ds = pydicom.dcmread(part.body, force=True, defer_size=65536)
        sop_class = str(ds.get("SOPClassUID", "") or "").strip()
        sop_instance = str(ds.get("SOPInstanceUID", "") or "").strip()
        study = str(ds.get("StudyInstanceUID", "") or "").strip()
        series = str(ds.get("SeriesInstanceUID", "") or "").strip()
        if not ds.file_meta.get("TransferSyntaxUID"):  # no file meta: the structural pass inferred it
            ds.file_meta.TransferSyntaxUID = UID(layout.transfer_syntax_uid)
        why_not = refusal(ds)
    except Exception:  # DicomError from the structural pass; pydicom raises assorted types
        return unreadable
    finally:
        part.body.seek(0)
    if not UID_RE.match(sop_class) or not UID_RE.match(sop_instance):
        return unreadable
    if study_uid is not None and study != study_uid:
        return FailedInstance(FailureReason.DATASET_DOES_NOT_MATCH_SOP_CLASS, sop_class, sop_instance)
    if why_not is not None:
        return FailedInstance(why_not[0], sop_class, sop_instance)
    return sop_class, sop_instance, study, series


REFUSAL_SLUGS: dict[int, str] = {
    FailureReason.DATASET_DOES_NOT_MATCH_SOP_CLASS: "no-usable-image-or-study-mismatch",
    FailureReason.SOP_CLASS_NOT_SUPPORTED: "sop-class-not-supported",
    FailureReason.TRANSFER_SYNTAX_NOT_SUPPORTED: "transfer-syntax-not-supported",
}


def _failure_of(problem: Problem) -> FailureReason:
    if problem.status == 413:
        return FailureReason.OUT_OF_RESOURCES
    if problem.status in (415, 422):
        return FailureReason.CANNOT_UNDERSTAND
    return FailureReason.PROCESSING_FAILURE


def _instance_idempotency_key(record_id: str, sop_instance: str) -> str:
    """A PACS identifies an instance by its SOP Instance UID: the same UID for the same record (and
    client: idempotency keys are per client) is the same upload, whether or not the client sent an
    Idempotency-Key, so its retries never become new jobs."""
    return "stow-sop-" + hashlib.sha256(f"{record_id}\0{sop_instance}".encode()).hexdigest()


def _masked_url(settings: Settings, study: str, series: str, sop: str) -> str:
    """The WADO-RS URL the masked instance will have: UIDs are remapped by a keyed HMAC the API can
    compute too (services.dicom.uids), under the configured public base URL."""
    key = service_uid_key(settings.hmac_key.get_secret_value().encode("utf-8"))
    m = [keyed_uid(key, uid) for uid in (study, series, sop)]
    return f"{settings.public_base}/dicomweb/studies/{m[0]}/series/{m[1]}/instances/{m[2]}"


async def _part_chunks(part: Part, executor: Executor) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    part.body.seek(0)
    while True:
        chunk = await loop.run_in_executor(executor, part.body.read, READ_CHUNK)
        if not chunk:
            return
        yield chunk


async def stow(request: Request, principal: Principal, record_id: str, study_uid: str | None) -> Response:
    settings = settings_of(request)
    ctx = audit_ctx(request, principal)
    try:
        record_id = service.validate_record_id(record_id)
    except Problem as problem:
        raise await run_in_threadpool(_refuse, request, principal, None, problem) from None
    try:
        if study_uid is not None and (len(study_uid) > 64 or not UID_RE.match(study_uid)):
            raise Problem(400, "The study UID in the path is not a valid UID.", slug="invalid-study-uid")
        content_type = request.headers.get("content-type", "")
        try:
            check_stow_content_type(content_type)
        except StowError as exc:
            raise _stow_problem(exc, settings) from None
        idem_key = request.headers.get("idempotency-key")
        service.check_idempotency_key(idem_key)
        executor: Executor = request.app.state.upload_executor
        parts = await _read_parts(request, settings, executor, content_type)
        if not parts:
            raise Problem(400, "The multipart body has no parts.", slug="bad-multipart")
    except Problem as problem:
        raise await run_in_threadpool(_refuse, request, principal, record_id, problem) from None

    store: ObjectStore = get_store(settings)
    stored: list[StoredInstance] = []
    failed: list[FailedInstance] = []
    new_jobs: list[str] = []
    repeated = 0
    try:
        for part in parts:
            try:
                checked = await run_in_threadpool(_check_part, part, settings, study_uid)
                if isinstance(checked, FailedInstance):
                    failed.append(checked)
                    slug = REFUSAL_SLUGS.get(checked.failure_reason, "unreadable-dicom")
                    await run_in_threadpool(
                        service.audit_rejection, settings, ctx, record_id, Problem(422, slug=slug)
                    )
                    continue
                sop_class, sop_instance, part_study, part_series = checked

                async def receiver(keep: bool, part: Part = part) -> Received:
                    return await service.store_stream(
                        _part_chunks(part, executor), settings, store, executor, keep=keep
                    )

                try:
                    accepted = await service.ingest_from(
                        receiver,
                        record_id,
                        principal,
                        ctx,
                        settings,
                        store,
                        _instance_idempotency_key(record_id, sop_instance),
                    )
                except Problem as problem:
                    if problem.status >= 500:
                        raise  # an outage: the client retries the request
                    reason = (
                        FailureReason.DUPLICATE_SOP_INSTANCE
                        if problem.slug == "idempotency-key-reused"
                        else _failure_of(problem)
                    )
                    failed.append(FailedInstance(reason, sop_class, sop_instance))
                    continue
                media, job = accepted.media, accepted.job
                if not accepted.replayed:
                    UPLOAD_BYTES.labels(kind=media.kind).inc(media.size_bytes)
                if accepted.to_dispatch:
                    new_jobs.append(job.id)
                repeated += accepted.replayed
                stored.append(
                    StoredInstance(
                        sop_class,
                        sop_instance,
                        retrieve_url=_masked_url(settings, part_study, part_series, sop_instance),
                        warning_reason=WarningReason.ALREADY_RECEIVED if accepted.replayed else None,
                    )
                )
            finally:
                part.close()
    finally:
        for part in parts:
            part.close()
        if new_jobs:
            await run_in_threadpool(request.app.state.dispatcher.enqueue, new_jobs)

    study_url = None
    if study_uid is not None:
        key = service_uid_key(settings.hmac_key.get_secret_value().encode("utf-8"))
        study_url = f"{settings.public_base}/dicomweb/studies/{keyed_uid(key, study_uid)}"
    body = build_stow_response(stored, failed, retrieve_url=study_url).to_json_dict()
    headers = {}
    if repeated:
        headers["Warning"] = (
            f'299 dmask "{repeated} instance(s) were already received for this record; '
            'their existing jobs stand and nothing was stored again"'
        )
    return DicomJsonResponse(json.dumps(body), status_code=stow_http_status(stored, failed), headers=headers)


@router.post(
    "/studies",
    description=STOW_DOC,
    responses=RESPONSES,
    openapi_extra=OPENAPI_BODY,
    response_class=DicomJsonResponse,
)
async def store_instances(
    request: Request,
    principal: Annotated[Principal, Depends(require_scope("media:write"))],
    record_id: Annotated[str, Query(description="The EHR record the instances belong to.")],
) -> Response:
    return await stow(request, principal, record_id, None)


@router.post(
    "/studies/{study_uid}",
    description=STOW_DOC,
    responses=RESPONSES,
    openapi_extra=OPENAPI_BODY,
    response_class=DicomJsonResponse,
)
async def store_study_instances(
    request: Request,
    study_uid: str,
    principal: Annotated[Principal, Depends(require_scope("media:write"))],
    record_id: Annotated[str, Query(description="The EHR record the instances belong to.")],
) -> Response:
    """Like ``POST /dicomweb/studies``; instances of another study fail with FailureReason 0xA900."""
    return await stow(request, principal, record_id, study_uid)
