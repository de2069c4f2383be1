"""Bad input is refused with the right problem, and nothing of it is left in storage or the database."""

from __future__ import annotations

import io
import json
import struct
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from service_support import Seaweed, Stack, upload, wait_job

MIB = 1 << 20


class Storage:
    """What the stack holds: objects and unfinished multipart uploads in the originals bucket, and
    media rows per record."""

    def __init__(self, stack: Stack, weed: Seaweed) -> None:
        self.stack, self.s3 = stack, weed.client()
        self.bucket = stack.env["DMASK_BUCKET_ORIGINALS"]

    def objects(self) -> set[str]:
        names = {o.object_name or "" for o in self.s3.list_objects(self.bucket, recursive=True)}
        uploads = self.s3._list_multipart_uploads(self.bucket).uploads  # noqa: SLF001 - test inspection
        return names | {f"multipart:{u.object_name}" for u in uploads}

    def media_rows(self, record_id: str) -> int:
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{self.stack.db_name}") as conn:
            row = conn.execute("SELECT count(*) FROM media WHERE record_id = %s", (record_id,)).fetchone()
        assert row is not None
        return int(row[0])


@pytest.fixture
def storage(stack: Stack, weed: Seaweed) -> Storage:
    return Storage(stack, weed)


def assert_problem(r: httpx.Response, status: int, slug: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["status"] == status and body["title"] and body["request_id"]
    if slug:
        assert body["type"] == f"urn:dmask:problem:{slug}"
    return body


def png_header(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a huge image (a decompression bomb's calling card)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def test_oversize_upload_is_refused_and_nothing_is_left(
    stack: Stack, writer_a: str, shared_data: Path, storage: Storage, record_id: str
) -> None:
    before = storage.objects()
    jpeg = (shared_data / "faces/barack_obama/1.jpg").read_bytes()
    body = jpeg + b"\0" * (17 * MIB - len(jpeg))  # a real photo padded past the 16 MiB cap
    with stack.http(writer_a) as c:
        # Declared length over the cap: refused before streaming.
        r = c.post(f"/v1/records/{record_id}/media", content=body, headers={"Content-Type": "image/jpeg"})
        assert_problem(r, 413, "upload-too-large")

        # Chunked (no length): refused once the stream crosses the cap, after parts reached S3.
        def chunks() -> Iterator[bytes]:
            for i in range(0, len(body), 256 * 1024):
                yield body[i : i + 256 * 1024]

        r = c.post(f"/v1/records/{record_id}/media", content=chunks(), headers={"Content-Type": "image/jpeg"})
        assert_problem(r, 413, "upload-too-large")

        # Multipart, same.
        r = c.post(f"/v1/records/{record_id}/media", files={"file": ("big.jpg", body, "image/jpeg")})
        assert_problem(r, 413, "upload-too-large")
    assert storage.objects() - before == set()
    assert storage.media_rows(record_id) == 0


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        ("html", b"<!DOCTYPE html><html><body><img src=x onerror=alert(1)></body></html>" * 100),
        ("zip", None),
        ("gif", b"GIF89a" + b"\0" * 5000),
        ("empty", b""),
        ("text", b"patient name: nobody\n" * 400),
    ],
)
def test_unsupported_types_get_415(
    stack: Stack, writer_a: str, storage: Storage, record_id: str, name: str, payload: bytes | None
) -> None:
    if payload is None:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("face.jpg", b"\xff\xd8\xff" + b"\0" * 10000)
        payload = buf.getvalue()
    before = storage.objects()
    with stack.http(writer_a) as c:
        # A lying Content-Type and file name do not matter: the content is sniffed.
        r = c.post(f"/v1/records/{record_id}/media", files={"file": ("photo.jpg", payload, "image/jpeg")})
        body = assert_problem(r, 415, "unsupported-media-type")
        assert "detected" in body
        r = c.post(f"/v1/records/{record_id}/media", content=payload, headers={"Content-Type": "image/png"})
        assert_problem(r, 415, "unsupported-media-type")
    assert storage.objects() - before == set()
    assert storage.media_rows(record_id) == 0


@pytest.mark.parametrize(
    "bad", ["%2E%2E", "%2E", "a%20b", "x" * 65, "semi%3Bcolon", "%C3%A9t%C3%A9", "a%00b"]
)
def test_bad_record_ids_get_422(
    stack: Stack, writer_a: str, storage: Storage, shared_data: Path, bad: str
) -> None:
    before = storage.objects()
    jpeg = (shared_data / "faces/barack_obama/1.jpg").read_bytes()
    with stack.http(writer_a) as c:
        r = c.post(f"/v1/records/{bad}/media", content=jpeg, headers={"Content-Type": "image/jpeg"})
        assert_problem(r, 422, "invalid-record-id")
        r = c.get(f"/v1/records/{bad}/media")
        assert_problem(r, 422, "invalid-record-id")
    assert storage.objects() - before == set()


def test_traversal_through_encoded_slash_does_not_reach_a_record(stack: Stack, writer_a: str) -> None:
    with stack.http(writer_a) as c:
        r = c.post("/v1/records/..%2F..%2Fetc/media", content=b"x", headers={"Content-Type": "image/jpeg"})
        assert r.status_code in (404, 422)
        assert r.headers["content-type"].startswith("application/problem+json")


def test_pixel_cap(stack: Stack, writer_a: str, storage: Storage, record_id: str, shared_data: Path) -> None:
    before = storage.objects()
    with stack.http(writer_a) as c:
        r = c.post(
            f"/v1/records/{record_id}/media",
            content=png_header(20000, 20000),
            headers={"Content-Type": "image/png"},
        )
        body = assert_problem(r, 413, "too-many-pixels")
        assert body["max_pixels"] == 64_000_000
        # A real JPEG whose frame header is patched to claim 60000 x 60000 pixels.
        jpeg = bytearray((shared_data / "faces/barack_obama/1.jpg").read_bytes())
        sof = next(
            i for i in range(2, len(jpeg) - 9) if jpeg[i] == 0xFF and jpeg[i + 1] in (0xC0, 0xC1, 0xC2)
        )
        struct.pack_into(">HH", jpeg, sof + 5, 60000, 60000)
        r = c.post(f"/v1/records/{record_id}/media", files={"file": ("x.jpg", bytes(jpeg), "image/jpeg")})
        assert_problem(r, 413, "too-many-pixels")
    assert storage.objects() - before == set()
    assert storage.media_rows(record_id) == 0


def test_video_duration_cap(
    stack: Stack, writer_a: str, storage: Storage, record_id: str, shared_data: Path
) -> None:
    before = storage.objects()
    with stack.http(writer_a) as c:
        r = upload(c, record_id, shared_data / "videos/livep_d3.mp4")  # 11.8 s; the stack allows 10 s
        body = assert_problem(r, 413, "video-too-long")
        assert body["max_seconds"] == 10
    assert storage.objects() - before == set()
    assert storage.media_rows(record_id) == 0


@pytest.mark.parametrize(
    "metadata",
    ['{"laterality": "left-ish"}', '{"surprise": 1}', "{not json", '{"capture_time": "yesterday"}'],
)
def test_bad_metadata_gets_422(
    stack: Stack, writer_a: str, shared_data: Path, storage: Storage, record_id: str, metadata: str
) -> None:
    before = storage.objects()
    jpeg = (shared_data / "faces/barack_obama/1.jpg").read_bytes()
    with stack.http(writer_a) as c:
        r = c.post(
            f"/v1/records/{record_id}/media",
            files={"file": ("a.jpg", jpeg, "image/jpeg"), "metadata": (None, metadata)},
        )
        assert_problem(r, 422, "validation")
    assert storage.objects() - before == set()
    assert storage.media_rows(record_id) == 0


def test_multipart_without_file_part(stack: Stack, writer_a: str, record_id: str) -> None:
    with stack.http(writer_a) as c:
        r = c.post(f"/v1/records/{record_id}/media", files={"metadata": (None, "{}")})
        assert_problem(r, 422, "bad-multipart")


def test_idempotent_replay_and_key_reuse(
    stack: Stack, writer_a: str, writer_b: str, shared_data: Path, storage: Storage, record_id: str
) -> None:
    photo = shared_data / "faces/tony_blair/2.jpg"
    other = shared_data / "faces/tony_blair/3.jpg"
    with stack.http(writer_a) as c:
        first = upload(c, record_id, photo, idem="upload-0001", metadata={"laterality": "OD"})
        assert first.status_code == 202 and first.json()["replayed"] is False
        before = storage.objects()
        again = upload(c, record_id, photo, idem="upload-0001", metadata={"laterality": "OD"})
        assert again.status_code == 202, again.text
        assert again.json()["job_id"] == first.json()["job_id"] and again.json()["replayed"] is True
        assert again.headers["location"] == first.headers["location"]
        assert again.headers["idempotency-replayed"] == "true"
        # Same key, different content / metadata / record: 422, and nothing new stored.
        assert_problem(
            upload(c, record_id, other, idem="upload-0001", metadata={"laterality": "OD"}),
            422,
            "idempotency-key-reused",
        )
        assert_problem(
            upload(c, record_id, photo, idem="upload-0001", metadata={"laterality": "OS"}),
            422,
            "idempotency-key-reused",
        )
        assert_problem(
            upload(c, record_id + "x", photo, idem="upload-0001", metadata={"laterality": "OD"}),
            422,
            "idempotency-key-reused",
        )
        assert storage.objects() - before == set()
        assert storage.media_rows(record_id) == 1
        job = wait_job(c, first.json()["job_id"])
        assert job["status"] == "succeeded"
        # Replaying after completion still answers with the same job.
        late = upload(c, record_id, photo, idem="upload-0001", metadata={"laterality": "OD"})
        assert late.status_code == 202 and late.json()["job_id"] == first.json()["job_id"]
        assert late.json()["status"] == "succeeded"
    # Keys are per client: another client may use the same key for its own upload.
    with stack.http(writer_b) as c:
        r = upload(c, record_id, photo, idem="upload-0001", metadata={"laterality": "OD"})
        assert r.status_code == 202 and r.json()["job_id"] != first.json()["job_id"]
        wait_job(c, r.json()["job_id"])


def test_auth_and_scopes(
    stack: Stack, writer_a: str, auditor: str, shared_data: Path, record_id: str
) -> None:
    reader = stack.key("clinic-a", "media:read")
    jpeg = (shared_data / "faces/barack_obama/1.jpg").read_bytes()
    url = f"/v1/records/{record_id}/media"
    with stack.http() as c:
        r = c.post(url, content=jpeg)
        assert_problem(r, 401, "unauthenticated")
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert_problem(c.get(url, headers={"Authorization": "Bearer dmk_0123456789abcdef_" + "A" * 43}), 401)
        assert_problem(c.get(url, headers={"Authorization": "Basic Zm9vOmJhcg=="}), 401)
        assert_problem(c.get(url, headers={"Authorization": "Bearer " + writer_a[:-1] + "x"}), 401)
    with stack.http(reader) as c:
        body = assert_problem(c.post(url, content=jpeg), 403, "forbidden")
        assert body["required_scope"] == "media:write"
        assert c.get(url).status_code == 200
        assert_problem(c.get("/v1/audit"), 403, "forbidden")
    with stack.http(auditor) as c:
        assert_problem(c.get(url), 403, "forbidden")
        assert_problem(c.post(url, content=jpeg), 403, "forbidden")
        assert c.get("/v1/audit", params={"limit": 1}).status_code == 200
    with stack.http(writer_a) as c:
        assert_problem(c.get("/v1/audit"), 403, "forbidden")
        assert_problem(c.get("/v1/audit/verify"), 403, "forbidden")
    # Denials are audited.
    with stack.http(auditor) as c:
        events = c.get("/v1/audit", params={"action": "request.denied", "limit": 1000}).json()["items"]
    statuses = {(e["detail"]["status"], e["detail"]["route"]) for e in events}
    assert (401, "/v1/records/{record_id}/media") in statuses
    assert (403, "/v1/records/{record_id}/media") in statuses
    assert (403, "/v1/audit") in statuses


def test_revoked_key_is_refused(stack: Stack) -> None:
    out = stack.cli("keys", "create", "--client", "temp-client", "--scope", "media:read").stdout
    key = out.strip().splitlines()[-1]
    key_id = key.split("_")[1]
    with stack.http(key) as c:
        assert c.get("/v1/whoami").json() == {
            "kind": "key",
            "subject": key_id,
            "name": "temp-client",
            "issuer": None,
            "client_id": "temp-client",
            "key_id": key_id,
            "scopes": ["media:read"],
        }
    listing = stack.cli("keys", "list").stdout
    assert key_id in listing and key not in listing
    stack.cli("keys", "revoke", key_id)
    assert "revoked" in [line for line in stack.cli("keys", "list").stdout.splitlines() if key_id in line][0]
    with stack.http(key) as c:
        assert_problem(c.get("/v1/whoami"), 401)


def test_tenant_isolation(
    stack: Stack, writer_a: str, writer_b: str, admin: str, shared_data: Path, record_id: str
) -> None:
    with stack.http(writer_a) as a:
        r = upload(a, record_id, shared_data / "faces/colin_powell/1.jpg")
        job = wait_job(a, r.json()["job_id"])
        assert job["status"] == "succeeded"
    with stack.http(writer_b) as b:
        assert_problem(b.get(f"/v1/jobs/{job['job_id']}"), 404, "not-found")
        assert_problem(b.get(f"/v1/artifacts/{job['artifact_id']}"), 404, "not-found")
        assert_problem(b.get(f"/v1/artifacts/{job['artifact_id']}/metrics"), 404, "not-found")
        assert b.get(f"/v1/records/{record_id}/media").json()["items"] == []
        r = upload(b, record_id, shared_data / "faces/colin_powell/2.jpg")
        job_b = r.json()["job_id"]
        assert [i["job_id"] for i in b.get(f"/v1/records/{record_id}/media").json()["items"]] == [job_b]
    with stack.http(admin) as ops:
        items = ops.get(f"/v1/records/{record_id}/media").json()["items"]
        assert {i["client_id"] for i in items} == {"clinic-a", "clinic-b"}
        assert ops.get(f"/v1/jobs/{job['job_id']}").status_code == 200
        assert ops.get(f"/v1/artifacts/{job['artifact_id']}/metrics").status_code == 200
        wait_job(ops, job_b)
    with stack.http(writer_a) as a:
        assert [i["job_id"] for i in a.get(f"/v1/records/{record_id}/media").json()["items"]] == [
            job["job_id"]
        ]


def test_framework_errors_are_problems(stack: Stack, auditor: str) -> None:
    with stack.http(auditor) as c:
        assert_problem(c.get("/v1/nothing-here"), 404)
        assert_problem(c.delete("/v1/audit"), 405)
        body = assert_problem(c.get("/v1/audit", params={"limit": 0}), 422, "validation")
        assert body["errors"][0]["loc"] == ["query", "limit"]
        assert_problem(c.get("/v1/audit", params={"cursor": "%%%"}), 422, "invalid-cursor")
        assert_problem(c.get("/v1/jobs/does-not-exist"), 403)  # scope is checked before existence
    with stack.http(stack.key("clinic-a", "media:write", "media:read")) as c:
        assert_problem(c.get("/v1/jobs/does-not-exist"), 404, "not-found")
        assert_problem(c.get("/v1/artifacts/does-not-exist"), 404, "not-found")


def test_problem_details_do_not_echo_input(stack: Stack, writer_a: str, record_id: str) -> None:
    with stack.http(writer_a) as c:
        r = c.post(
            f"/v1/records/{record_id}/media",
            files={
                "file": ("a.jpg", b"\xff\xd8\xff" + b"\0" * 5000),
                "metadata": (None, json.dumps({"description": "x" * 3000, "laterality": "Jane Doe"})),
            },
        )
        assert r.status_code == 422
        assert "Jane Doe" not in r.text
