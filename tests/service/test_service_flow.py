"""End to end on the distributed setup: upload -> Celery job -> masked artifact -> download."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from service_support import Stack, upload, wait_job

pytestmark = pytest.mark.slow


def _download(client: httpx.Client, artifact_id: str) -> httpx.Response:
    r = client.get(f"/v1/artifacts/{artifact_id}")
    assert r.status_code == 307, r.text  # S3 store: short-lived presigned URL
    url = r.headers["location"]
    assert "X-Amz-Signature" in url and "X-Amz-Expires=300" in url
    got = httpx.get(url, timeout=60)
    assert got.status_code == 200
    return got


def test_photo_upload_is_masked_and_downloadable(
    stack: Stack, writer_a: str, shared_data: Path, record_id: str
) -> None:
    src = shared_data / "faces/barack_obama/1.jpg"
    with stack.http(writer_a) as c:
        r = upload(
            c,
            record_id,
            src,
            metadata={
                "laterality": "OU",
                "description": "external photo",
                "capture_time": "2026-01-02T03:04:05Z",
            },
        )
        assert r.status_code == 202, r.text
        body = r.json()
        assert r.headers["location"] == f"/v1/jobs/{body['job_id']}"
        assert body["kind"] == "photo" and body["mime_type"] == "image/jpeg" and body["status"] == "queued"
        assert body["size_bytes"] == src.stat().st_size

        job = wait_job(c, body["job_id"])
        assert job["status"] == "succeeded", job
        assert job["progress"] == 1.0 and job["model_version"] and job["artifact_id"]
        assert job["started_at"] and job["finished_at"] and job["deliveries"] == 1

        got = _download(c, job["artifact_id"])
        assert got.headers["content-type"] == "image/jpeg"
        masked = np.asarray(Image.open(io.BytesIO(got.content)).convert("RGB"))
        original = np.asarray(Image.open(src).convert("RGB"))
        assert masked.shape == original.shape
        assert got.content != src.read_bytes()
        assert np.abs(masked.astype(int) - original.astype(int)).mean() > 5  # the face was replaced

        metrics = c.get(f"/v1/artifacts/{job['artifact_id']}/metrics")
        assert metrics.status_code == 200
        assert metrics.json()["frames"] == 1

        listing = c.get(f"/v1/records/{record_id}/media").json()
        assert listing["record_id"] == record_id
        [item] = listing["items"]
        assert item["media_id"] == body["media_id"] and item["job_status"] == "succeeded"
        assert item["metadata"] == {
            "laterality": "OU",
            "description": "external photo",
            "capture_time": "2026-01-02T03:04:05Z",
        }
        assert item["original_stored"] is False  # deleted after masking (delete_originals default)
        assert [a["artifact_id"] for a in item["artifacts"]] == [job["artifact_id"]]


def test_video_upload_is_masked(stack: Stack, writer_a: str, shared_data: Path, record_id: str) -> None:
    src = shared_data / "videos/livep_d0.mp4"  # 78 frames
    with stack.http(writer_a) as c:
        r = upload(c, record_id, src, raw=True)  # raw body this time
        assert r.status_code == 202, r.text
        assert r.json()["kind"] == "video" and r.json()["mime_type"] == "video/mp4"
        job = wait_job(c, r.json()["job_id"], timeout=400)
        assert job["status"] == "succeeded", job
        got = _download(c, job["artifact_id"])
        assert got.headers["content-type"] == "video/mp4"
        import av

        with av.open(io.BytesIO(got.content)) as container:
            frames = sum(1 for _ in container.decode(video=0))
        assert frames == 78
        metrics = c.get(f"/v1/artifacts/{job['artifact_id']}/metrics").json()
        assert metrics["frames"] == 78


def test_webp_named_jpg_is_accepted_as_webp(
    stack: Stack, writer_a: str, shared_data: Path, record_id: str
) -> None:
    src = shared_data / "faces/scarlett_johansson/3.jpg"  # WebP bytes behind a .jpg name
    with stack.http(writer_a) as c:
        files = {"file": ("3.jpg", src.read_bytes(), "image/jpeg")}
        r = c.post(f"/v1/records/{record_id}/media", files=files)
        assert r.status_code == 202, r.text
        assert r.json()["mime_type"] == "image/webp"
        job = wait_job(c, r.json()["job_id"])
        assert job["status"] == "succeeded", job
        assert _download(c, job["artifact_id"]).headers["content-type"] == "image/webp"


def test_object_keys_are_opaque_and_originals_deleted(
    stack: Stack, writer_a: str, shared_data: Path, weed: object
) -> None:
    """Keys carry no record ID or file name; the original is gone once masked."""
    from minio.error import S3Error
    from service_support import Seaweed

    assert isinstance(weed, Seaweed)
    record = "MRN-opaque-check"
    s3 = weed.client()
    with stack.http(writer_a) as c:
        r = upload(c, record, shared_data / "faces/tony_blair/1.jpg")
        assert r.status_code == 202
        import psycopg

        with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{stack.db_name}") as conn:
            key = conn.execute(
                "SELECT original_key FROM media WHERE id = %s", (r.json()["media_id"],)
            ).fetchone()
        assert key is not None
        job = wait_job(c, r.json()["job_id"])
    bucket_o, bucket_a = stack.env["DMASK_BUCKET_ORIGINALS"], stack.env["DMASK_BUCKET_ARTIFACTS"]
    for name in [o.object_name for o in s3.list_objects(bucket_a, recursive=True)] + [key[0] or ""]:
        assert record not in name and ".jpg" not in name
    assert job["status"] == "succeeded"
    # Deleted after masking:
    with pytest.raises(S3Error):
        s3.stat_object(bucket_o, key[0])


def test_dicom_upload_goes_through_the_dicom_path(
    stack: Stack, writer_a: str, shared_data: Path, record_id: str
) -> None:
    import pydicom

    src = shared_data / "dicom/ot_pal8_face.dcm"  # a face photo as palette-colour Secondary Capture
    original = pydicom.dcmread(src, force=True)
    with stack.http(writer_a) as c:
        r = upload(c, record_id, src)
        assert r.status_code == 202, r.text
        assert r.json()["kind"] == "dicom" and r.json()["mime_type"] == "application/dicom"
        job = wait_job(c, r.json()["job_id"])
        assert job["status"] == "succeeded", job
        got = _download(c, job["artifact_id"])
        assert got.headers["content-type"] == "application/dicom"
        masked = pydicom.dcmread(io.BytesIO(got.content))
        assert masked.PatientID.startswith("DM") and masked.PatientID != original.get("PatientID")
        assert masked.SOPInstanceUID != original.get("SOPInstanceUID")
        assert masked.PhotometricInterpretation == "RGB"
        metrics = c.get(f"/v1/artifacts/{job['artifact_id']}/metrics").json()
        assert metrics["dicom"]["frames"] == 1
