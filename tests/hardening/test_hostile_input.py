"""Hostile and broken input, table-driven over the corpus of ``build_corpus.py``.

Every case is sent to the real deployment once (module fixture ``outcomes``); one test per case
then checks its documented answer: a 4xx problem (and nothing of it stored: no media row, no
object), or a job that ends failed with a reason (or, for damaged-but-decodable input, ends at all).
Afterwards the worker processes are the same ones (nothing crashed them) and storage holds exactly
what the database accounts for.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from build_corpus import Case
from hardening_support import assert_accounted, pool_children, query, wait_settled
from service_support import Seaweed, Stack, wait_job

pytestmark = pytest.mark.hardening


@dataclass
class Outcome:
    case: Case
    record_id: str | None  # the record the request was for, when it was a valid one
    response: httpx.Response
    job: dict[str, Any] | None = None


def send(c: httpx.Client, folder: Path, case: Case) -> tuple[str | None, httpx.Response]:
    data = (folder / case.file).read_bytes()
    valid_record = case.record_id is None
    record = f"MRN-{uuid.uuid4().hex[:12]}" if valid_record else case.record_id
    url = f"/v1/records/{record}/media"
    headers = dict(case.headers)
    if case.send == "multipart":
        files: list[tuple[str, Any]] = [
            ("file", (case.filename, data, case.content_type or "application/octet-stream"))
        ]
        if case.metadata is not None:
            files.append(("metadata", (None, case.metadata, "application/json")))
        for name, extra in case.extra_parts:
            body = (folder / extra).read_bytes()
            files.append((name, ("x.bin", body) if name == "file" else (None, body)))
        r = c.post(url, files=files, headers=headers)
    else:
        headers["Content-Type"] = case.content_type or "application/octet-stream"
        if case.metadata is not None:
            headers["X-DMask-Metadata"] = case.metadata
        r = c.post(url, content=data, headers=headers)
    return (record if valid_record else None), r


@pytest.fixture(scope="module")
def outcomes(hstack: Stack, corpus: tuple[Path, list[Case]], weed: Seaweed) -> dict[str, Outcome]:
    folder, cases = corpus
    worker = hstack.workers[0]
    children_before = pool_children(worker)
    results: dict[str, Outcome] = {}
    key = hstack.key("hostile", "media:write", "media:read")
    with hstack.http(key, timeout=120) as c:
        for case in cases:
            record, r = send(c, folder, case)
            results[case.name] = Outcome(case, record, r)
        for out in results.values():
            if out.response.status_code == 202:
                out.job = wait_job(c, out.response.json()["job_id"], timeout=300)
    wait_settled(hstack)
    assert worker.alive(), "the worker died"
    assert pool_children(worker) == children_before, "a pool process crashed and was replaced"
    return results


def case_names() -> list[str]:
    import os

    from build_corpus import build

    # The table is the builder's; building it twice is cheap (a few seconds) but needs the shared
    # media, so ids are taken from a build into a throw-away folder at collection time.
    shared = Path(os.environ.get("DMASK_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared/data"))
    if not (shared / "manifest.json").exists():
        return ["corpus-unavailable"]
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return [c.name for c in build(Path(tmp), shared)]


@pytest.mark.parametrize("name", case_names())
def test_case(name: str, outcomes: dict[str, Outcome], hstack: Stack) -> None:
    out = outcomes[name]
    r, expect = out.response, out.case.expect
    kind, _, rest = expect.partition(":")
    if kind == "http":
        status, _, slug = rest.partition(":")
        if status == "4xx":
            assert 400 <= r.status_code < 500, (r.status_code, r.text)
        else:
            assert r.status_code == int(status), (r.status_code, r.text[:500])
        assert r.headers["content-type"].startswith("application/problem+json"), r.headers
        body = r.json()
        if slug:
            assert body["type"] == f"urn:dmask:problem:{slug}", body
        assert body["request_id"]
        if out.record_id:
            assert query(hstack, "SELECT count(*) FROM media WHERE record_id = %s", out.record_id) == [(0,)]
        return
    assert r.status_code == 202, (r.status_code, r.text[:500])
    assert out.job is not None
    status, _, reason = rest.partition(":")
    job = out.job
    assert job["status"] in ("succeeded", "failed"), job
    if status == "done":
        assert job["status"] == "succeeded" or job["failure_reason"], job
    else:
        assert job["status"] == status, job
    if job["status"] == "failed":
        assert job["failure_reason"], job
        assert reason.lower() in job["failure_reason"].lower(), job
        assert job["artifact_id"] is None
        assert query(hstack, "SELECT count(*) FROM artifacts WHERE job_id = %s", job["job_id"]) == [(0,)]


def test_polyglot_payload_does_not_reach_the_artifact(outcomes: dict[str, Outcome], hstack: Stack) -> None:
    job = outcomes["jpeg-with-zip-appended"].job
    assert job is not None and job["status"] == "succeeded"
    with hstack.http(hstack.key("hostile", "media:write", "media:read")) as c:
        masked = c.get(f"/v1/artifacts/{job['artifact_id']}", follow_redirects=True)
    assert masked.status_code == 200 and masked.content[:3] == b"\xff\xd8\xff"
    assert b"PK\x03\x04" not in masked.content and b"<script" not in masked.content


def test_metadata_that_passed_is_stored_normalised(outcomes: dict[str, Outcome], hstack: Stack) -> None:
    out = outcomes["metadata-emoji-zwj"]
    [(meta,)] = query(hstack, "SELECT meta FROM media WHERE record_id = %s", out.record_id)
    sent = json.loads(out.case.metadata or "{}")
    assert meta["description"] == sent["description"] and meta["laterality"] == "OD"


def test_nothing_half_written_is_left(outcomes: dict[str, Outcome], hstack: Stack, weed: Seaweed) -> None:
    """Refused uploads left no object and no row; failed jobs left no artifact object; the bucket
    contents are exactly what the rows name (no sweep needed: nothing was orphaned)."""
    accounting = assert_accounted(hstack, weed.client())
    for out in outcomes.values():
        if out.job is not None:
            assert accounting.status(out.job["job_id"]) == out.job["status"]
