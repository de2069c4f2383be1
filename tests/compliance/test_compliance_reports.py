"""Per-record access reports: CSV (an integrity export of the record) and printable HTML, one request."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from compliance_support import Service, Uploads

from services.reports.verify import verify_export


def test_access_report_csv_verifies_and_covers_the_record(
    service: Service, auditor: str, uploads: Uploads, tmp_path: Path
) -> None:
    rec = uploads.record_id
    today = datetime.now(UTC).date()
    with service.http(auditor) as c:
        r = c.get(
            f"/v1/records/{rec}/access-report", params={"format": "csv", "from": str(today), "to": str(today)}
        )
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/csv")
        assert "attachment" in r.headers["content-disposition"]
        path = tmp_path / "report.csv"
        path.write_bytes(r.content)
        result = verify_export(path)
        assert result.ok, result
        assert result.filters and result.filters["record"] == rec
        rows = path.read_text().splitlines()[1:-1]
        assert len(rows) == result.rows >= 3
        assert all(f",{rec}," in row for row in rows)
        actions = [row.split(",")[5] for row in rows]
        assert actions[:2] == ["media.upload", "job.queued"] and "audit.report" in actions
        # a window before any of it: nothing but the trailer
        yesterday = str(today - timedelta(days=1))
        r = c.get(f"/v1/records/{rec}/access-report", params={"format": "csv", "to": yesterday})
        empty = tmp_path / "empty.csv"
        empty.write_bytes(r.content)
        assert verify_export(empty).ok and verify_export(empty).rows == 0
        bad = c.get(f"/v1/records/{rec}/access-report", params={"from": str(today), "to": yesterday})
        assert bad.status_code == 422
        assert c.get(f"/v1/records/{rec}/access-report", params={"from": "soon"}).status_code == 422


def test_access_report_html_is_self_contained(service: Service, auditor: str, uploads: Uploads) -> None:
    rec = uploads.record_id
    with service.http(auditor) as c:
        r = c.get(f"/v1/records/{rec}/access-report", params={"format": "html"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert f'Access report — record <span class="id">{rec}</span>' in html
    assert "<script" not in html and not re.search(r"""(src|href)=["']?https?:""", html)
    assert "default-src 'none'" in r.headers["content-security-policy"]
    assert "Uploaded media" in html and "Masking job queued" in html and "ehr-video-1" in html
    body_rows = re.findall(r"<tr>\s*<td class=\"id\">(\d+)</td>", html)
    assert len(body_rows) >= 3 and body_rows == sorted(body_rows, key=int)
    assert "Chain head" in html and re.search(r"<code>[0-9a-f]{64}</code>", html)


def test_access_report_scope_and_audit(service: Service, auditor: str, writer: str, uploads: Uploads) -> None:
    rec = uploads.record_id
    with service.http(writer) as c:
        assert c.get(f"/v1/records/{rec}/access-report").status_code == 403
        assert c.get("/v1/records/bad..id/access-report").status_code in (403, 404, 422)
    with service.http(auditor) as c:
        assert c.get("/v1/records/%20bad/access-report").status_code == 422
        events = c.get("/v1/audit", params={"record": rec, "action": "audit.report", "limit": 1000}).json()[
            "items"
        ]
    assert events and events[-1]["client_id"] == "compliance"
    assert events[-1]["detail"]["format"] in ("csv", "html")
