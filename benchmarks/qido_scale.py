"""QIDO-RS at scale: 100,000 masked instances in PostgreSQL, search latency over real HTTP (JSON out).

Builds a fresh database (migrated to head) and loads, with COPY, what the worker would have written
for N masked DICOM instances of one tenant (media, jobs, artifacts and the DICOMweb index: studies,
series, instances with their DICOM JSON headers), plus a second tenant of the same size whose rows
must never match. Then ``dmask``'s app is served by uvicorn on loopback (embedded mode, nothing to
mask) and each query kind is sent repeatedly: every request is authenticated, searched, serialised
and audited, exactly as in production.

Budget (stated here, checked in the output): p95 <= 50 ms per query kind.

    .venv/bin/python benchmarks/qido_scale.py [--instances 100000] [--requests 200] [--out FILE]

Run on demand, not in CI (about 1-3 minutes). Needs PostgreSQL on 127.0.0.1:5432.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "tests" / "service"))

import httpx  # noqa: E402
import psycopg  # noqa: E402
from ingest import load_average, percentile  # noqa: E402
from service_support import create_database, drop_database, free_port, wait_for  # noqa: E402

BUDGET_MS = 50.0
PER_STUDY, PER_SERIES = 10, 5
MODALITIES = ("OT", "XC", "US", "SC")


def uid(*parts: int) -> str:
    return "2.25." + ".".join(str(p) for p in parts)


def copy(conn: psycopg.Connection[Any], table: str, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    with conn.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as cp:
        for row in rows:
            cp.write_row(row)


def generate(conn: psycopg.Connection[Any], client: str, tenant_no: int, instances: int) -> dict[str, Any]:
    now = datetime.now(UTC)
    media, jobs, arts, studies, series, insts = [], [], [], [], [], []
    n_studies = instances // PER_STUDY
    for s in range(n_studies):
        study = uid(tenant_no, s)
        record = f"MRN-{tenant_no}-{s // 3}"
        pid = f"PSN{tenant_no:02d}{s // 3:08d}"
        date = f"20{10 + s % 15:02d}{1 + s % 12:02d}{1 + s % 28:02d}"
        modality = MODALITIES[s % len(MODALITIES)]
        study_attrs = {
            "0020000D": {"vr": "UI", "Value": [study]},
            "00100020": {"vr": "LO", "Value": [pid]},
            "00080020": {"vr": "DA", "Value": [date]},
        }
        studies.append(
            (
                client,
                study,
                record,
                pid,
                date,
                None,
                modality,
                PER_STUDY // PER_SERIES,
                PER_STUDY,
                json.dumps(study_attrs),
                now,
            )
        )
        for se in range(PER_STUDY // PER_SERIES):
            ser = uid(tenant_no, s, se)
            ser_attrs = {
                "0020000E": {"vr": "UI", "Value": [ser]},
                "00080060": {"vr": "CS", "Value": [modality]},
            }
            series.append((client, ser, study, modality, PER_SERIES, json.dumps(ser_attrs)))
            for i in range(PER_SERIES):
                sop = uid(tenant_no, s, se, i)
                mid, jid, aid = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
                media.append(
                    (mid, record, client, "dicom", "application/dicom", 1000, "0" * 64, "{}", "f" * 64, now)
                )
                jobs.append((jid, mid, record, client, "dicom", "succeeded", 1.0, 1, aid, now, now))
                arts.append(
                    (
                        aid,
                        jid,
                        mid,
                        record,
                        client,
                        "dicom",
                        "application/dicom",
                        f"k{aid}",
                        f"m{aid}",
                        1000,
                        "0" * 64,
                        1,
                        0,
                        "bench",
                        now,
                    )
                )
                meta = {
                    **study_attrs,
                    **ser_attrs,
                    "00080018": {"vr": "UI", "Value": [sop]},
                    "00080016": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.7"]},
                    "00200013": {"vr": "IS", "Value": [i + 1]},
                    "00280010": {"vr": "US", "Value": [512]},
                    "00280011": {"vr": "US", "Value": [512]},
                }
                insts.append(
                    (
                        aid,
                        client,
                        record,
                        jid,
                        study,
                        ser,
                        sop,
                        "1.2.840.10008.5.1.4.1.1.7",
                        "1.2.840.10008.1.2.1",
                        i + 1,
                        1,
                        1000,
                        json.dumps(meta),
                        now,
                    )
                )
    copy(
        conn,
        "media",
        [
            "id",
            "record_id",
            "client_id",
            "kind",
            "mime_type",
            "size_bytes",
            "sha256",
            "meta",
            "request_fingerprint",
            "created_at",
        ],
        media,
    )
    copy(
        conn,
        "jobs",
        [
            "id",
            "media_id",
            "record_id",
            "client_id",
            "kind",
            "status",
            "progress",
            "deliveries",
            "artifact_id",
            "created_at",
            "enqueued_at",
        ],
        jobs,
    )
    copy(
        conn,
        "artifacts",
        [
            "id",
            "job_id",
            "media_id",
            "record_id",
            "client_id",
            "kind",
            "mime_type",
            "object_key",
            "metrics_key",
            "size_bytes",
            "sha256",
            "frames_total",
            "frames_blanked",
            "model_version",
            "created_at",
        ],
        arts,
    )
    copy(
        conn,
        "dicom_studies",
        [
            "client_id",
            "study_uid",
            "record_id",
            "patient_id",
            "study_date",
            "accession_number",
            "modalities",
            "n_series",
            "n_instances",
            "attrs",
            "updated_at",
        ],
        studies,
    )
    copy(
        conn,
        "dicom_series",
        ["client_id", "series_uid", "study_uid", "modality", "n_instances", "attrs"],
        series,
    )
    copy(
        conn,
        "dicom_instances",
        [
            "artifact_id",
            "client_id",
            "record_id",
            "job_id",
            "study_uid",
            "series_uid",
            "sop_uid",
            "sop_class_uid",
            "transfer_syntax_uid",
            "instance_number",
            "frames",
            "size_bytes",
            "meta",
            "created_at",
        ],
        insts,
    )
    return {
        "studies": n_studies,
        "sample_study": uid(tenant_no, n_studies // 2),
        "sample_series": uid(tenant_no, n_studies // 2, 1),
        "sample_sop": uid(tenant_no, n_studies // 2, 1, 3),
        "sample_pid": f"PSN{tenant_no:02d}{(n_studies // 2) // 3:08d}",
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--instances", type=int, default=100_000, help="masked instances of the measured tenant")
    ap.add_argument("--requests", type=int, default=200, help="requests per query kind")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    import uvicorn

    from services.app import create_app
    from services.audit.service import AuditContext
    from services.auth.service import create_key
    from services.db import get_engine, session_scope
    from services.migrate import upgrade
    from services.settings import Settings

    db_name, db_url = create_database("dmask_qido_bench")
    home = Path(tempfile.mkdtemp(prefix="dmask-qido-"))
    port = free_port()
    settings = Settings(
        home=home,
        database_url=db_url,
        public_url=f"http://127.0.0.1:{port}",
        rate_limit_per_minute=0,
        log_level="warning",
    )
    result: dict[str, Any] = {
        "benchmark": "qido_scale",
        "instances": args.instances,
        "load_average_before": load_average(),
    }
    server = None
    try:
        upgrade(settings)
        started = time.monotonic()
        with psycopg.connect(db_url.replace("postgresql+psycopg", "postgresql"), autocommit=False) as conn:
            sample = generate(conn, "bench-pacs", 1, args.instances)
            generate(conn, "other-pacs", 2, args.instances)  # a second tenant: never in the answers
            conn.commit()
            conn.execute("ANALYZE")
        result["load_seconds"] = round(time.monotonic() - started, 1)
        with session_scope(settings) as session:
            _row, key = create_key(session, "bench-pacs", ["media:read"], AuditContext(request_id="bench"))
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(settings),
                host="127.0.0.1",
                port=port,
                log_level="warning",
                access_log=False,
                lifespan="on",
            )
        )
        threading.Thread(target=server.run, daemon=True).start()
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: httpx.get(url + "/readyz", timeout=5).status_code == 200, 60, "API")
        queries = {
            "studies (newest 100)": ("/dicomweb/studies", {}),
            "studies by PatientID": ("/dicomweb/studies", {"PatientID": sample["sample_pid"]}),
            "studies by StudyDate range": (
                "/dicomweb/studies",
                {"StudyDate": "20180101-20180630", "limit": "50"},
            ),
            "studies by ModalitiesInStudy": ("/dicomweb/studies", {"ModalitiesInStudy": "US", "limit": "50"}),
            "studies, offset 5000": ("/dicomweb/studies", {"offset": "5000", "limit": "20"}),
            "series of a study": (f"/dicomweb/studies/{sample['sample_study']}/series", {}),
            "instances of a series": (
                f"/dicomweb/studies/{sample['sample_study']}/series/{sample['sample_series']}/instances",
                {},
            ),
            "instance by SOPInstanceUID": ("/dicomweb/instances", {"SOPInstanceUID": sample["sample_sop"]}),
        }
        kinds = {}
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as c:
            for name, (path, params) in queries.items():
                c.get(path, params=params).raise_for_status()  # warm-up
                lat = []
                for _ in range(args.requests):
                    t0 = time.perf_counter()
                    r = c.get(path, params=params)
                    lat.append(time.perf_counter() - t0)
                    r.raise_for_status()
                body = r.json()
                assert body and all("bench" not in json.dumps(x) for x in body[:1])
                kinds[name] = {
                    "results": len(body),
                    "p50_ms": round(percentile(lat, 0.50) * 1000, 1),
                    "p95_ms": round(percentile(lat, 0.95) * 1000, 1),
                    "p99_ms": round(percentile(lat, 0.99) * 1000, 1),
                }
        worst = max(k["p95_ms"] for k in kinds.values())
        result.update(
            {
                "queries": kinds,
                "worst_p95_ms": worst,
                "budget_p95_ms": BUDGET_MS,
                "within_budget": worst <= BUDGET_MS,
                "load_average_after": load_average(),
                "requests_per_kind": args.requests,
            }
        )
    finally:
        if server is not None:
            server.should_exit = True
            time.sleep(1)
        get_engine(settings).dispose()
        drop_database(db_name)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0 if result.get("within_budget") else 3


if __name__ == "__main__":
    raise SystemExit(main())
