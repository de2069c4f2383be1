"""Security: who may reach what, key comparison, rate limiting, presigned-URL expiry, and PHI
staying out of logs, metrics, object keys and error messages.

The access table ``ACCESS`` declares, for every route the app serves, whether it is public, which
scopes may call it, and whether it holds one client's data (tenant isolation). The tests walk the
app's real route list, so a route added without a declared expectation fails
``test_every_route_is_declared`` (add it to ``ACCESS``; that is the point).
"""

from __future__ import annotations

import ast
import inspect
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from build_corpus import FACE_JPEG
from hardening_support import PRESIGN_TTL_S, query
from service_support import Seaweed, Stack, wait_job

pytestmark = pytest.mark.hardening

SCOPES = ("media:write", "media:read", "audit:read", "metrics", "webhooks:admin", "admin")


@dataclass(frozen=True)
class Rule:
    """``public``: reachable without a key. ``ui``: the web pages (session or key; anonymous
    visitors are sent to the login page). Otherwise ``scopes`` lists the scopes that may call it
    (admin always may); every other key gets 403, no key 401. ``tenant``: it shows one client's
    data, so another client must not see it."""

    public: bool = False
    ui: bool = False
    scopes: tuple[str, ...] = ()
    tenant: bool = False
    anonymous: tuple[int, ...] = ()  # the answers an anonymous caller may get, when not the default


PUBLIC = Rule(public=True)
ACCESS: dict[tuple[str, str], Rule] = {
    # health, metrics, docs
    ("GET", "/livez"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/dependencies"): PUBLIC,  # up/down of database, broker, store: no data
    ("GET", "/metrics"): Rule(scopes=("metrics",)),  # Prometheus scrapes with a metrics-only key
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    ("GET", "/fhir/metadata"): PUBLIC,  # a FHIR CapabilityStatement: describes the API, no data
    # media, jobs, artifacts
    ("POST", "/v1/records/{record_id}/media"): Rule(scopes=("media:write",)),
    ("GET", "/v1/records/{record_id}/media"): Rule(scopes=("media:read",), tenant=True),
    ("GET", "/v1/jobs/{job_id}"): Rule(scopes=("media:read", "media:write"), tenant=True),
    ("GET", "/v1/artifacts/{artifact_id}"): Rule(scopes=("media:read",), tenant=True),
    ("GET", "/v1/artifacts/{artifact_id}/metrics"): Rule(scopes=("media:read",), tenant=True),
    ("POST", "/dicomweb/studies"): Rule(scopes=("media:write",)),
    ("POST", "/dicomweb/studies/{study_uid}"): Rule(scopes=("media:write",)),
    ("GET", "/v1/whoami"): Rule(scopes=SCOPES),
    # DICOMweb QIDO/WADO and FHIR Media over masked instances (tenant isolation: tests/dicomweb, tests/fhir)
    **{
        ("GET", f"/dicomweb{p}"): Rule(scopes=("media:read",))
        for p in (
            "/studies",
            "/series",
            "/instances",
            "/studies/{study}",
            "/studies/{study}/metadata",
            "/studies/{study}/series",
            "/studies/{study}/instances",
            "/studies/{study}/series/{series}",
            "/studies/{study}/series/{series}/metadata",
            "/studies/{study}/series/{series}/instances",
            "/studies/{study}/series/{series}/instances/{sop}",
            "/studies/{study}/series/{series}/instances/{sop}/metadata",
            "/studies/{study}/series/{series}/instances/{sop}/rendered",
            "/studies/{study}/series/{series}/instances/{sop}/frames/{frames}",
            "/studies/{study}/series/{series}/instances/{sop}/frames/{frame}/rendered",
            "/studies/{study}/series/{series}/instances/{sop}/bulkdata/{tag}",
        )
    },
    ("GET", "/fhir/Media"): Rule(scopes=("media:read",)),
    ("GET", "/fhir/Media/{media_id}"): Rule(scopes=("media:read",), tenant=True),
    # webhooks (another client's endpoint: tests/webhooks)
    ("POST", "/v1/webhooks"): Rule(scopes=("webhooks:admin",)),
    ("GET", "/v1/webhooks"): Rule(scopes=("webhooks:admin",)),
    ("DELETE", "/v1/webhooks/{endpoint_id}"): Rule(scopes=("webhooks:admin",)),
    ("POST", "/v1/webhooks/{endpoint_id}/rotate-secret"): Rule(scopes=("webhooks:admin",)),
    ("GET", "/v1/webhooks/{endpoint_id}/deliveries"): Rule(scopes=("webhooks:admin",)),
    ("POST", "/v1/webhooks/{endpoint_id}/deliveries/{message_id}/replay"): Rule(scopes=("webhooks:admin",)),
    # audit and compliance
    ("GET", "/v1/audit"): Rule(scopes=("audit:read",)),
    ("GET", "/v1/audit/verify"): Rule(scopes=("audit:read",)),
    ("GET", "/v1/audit/export"): Rule(scopes=("audit:read",)),
    ("GET", "/v1/records/{record_id}/access-report"): Rule(scopes=("audit:read",)),
    ("GET", "/fhir/AuditEvent"): Rule(scopes=("audit:read",)),
    ("GET", "/fhir/AuditEvent/{event_id}"): Rule(scopes=("audit:read",)),
    ("PUT", "/v1/records/{record_id}/legal-hold"): Rule(scopes=("admin",)),
    ("DELETE", "/v1/records/{record_id}/legal-hold"): Rule(scopes=("admin",)),
    ("GET", "/v1/records/{record_id}/legal-hold"): Rule(scopes=("admin", "audit:read")),
    # web pages
    ("GET", "/ui/static/{name}"): PUBLIC,
    ("GET", "/ui/login"): PUBLIC,
    ("POST", "/ui/login"): Rule(public=True, anonymous=(401,)),  # the login form, refusing no key
    ("POST", "/ui/logout"): PUBLIC,
    ("POST", "/ui/login/password"): Rule(public=True, anonymous=(401,)),  # local sign-in
    ("GET", "/ui/oidc/callback"): PUBLIC,  # the identity provider's return (404 when none is configured)
    ("GET", "/ui"): Rule(ui=True),
    ("GET", "/ui/"): Rule(ui=True),
    ("GET", "/ui/audit"): Rule(ui=True, scopes=("audit:read",)),
    ("POST", "/ui/audit/verify"): Rule(ui=True, scopes=("audit:read",)),
    ("GET", "/ui/audit/export"): Rule(ui=True, scopes=("audit:read",)),
    ("GET", "/ui/records/{record_id}/access-report"): Rule(ui=True, scopes=("audit:read",)),
    ("GET", "/ui/records"): Rule(ui=True, scopes=("media:read",)),
    ("GET", "/ui/records/{record_id}"): Rule(ui=True, scopes=("media:read",), tenant=True),
    ("GET", "/ui/artifacts/{artifact_id}/file"): Rule(
        ui=True, scopes=("media:read",), tenant=True, anonymous=(401,)
    ),
    ("GET", "/ui/artifacts/{artifact_id}/metrics"): Rule(
        ui=True, scopes=("media:read",), tenant=True, anonymous=(401,)
    ),
}


def iter_routes(app: Any) -> Iterator[tuple[str, str]]:
    """(method, path) of every route the app serves, through FastAPI's included-router wrappers
    (FastAPI >= 0.16x keeps them unflattened in ``app.routes``)."""
    for route in app.routes:
        contexts = route.effective_route_contexts() if hasattr(route, "effective_route_contexts") else [route]
        for ctx in contexts:
            for method in sorted(getattr(ctx, "methods", None) or {"GET"}):
                if method != "HEAD":
                    yield method, ctx.path


@pytest.fixture(scope="module")
def served_routes(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str]]:
    from services.app import create_app
    from services.settings import Settings

    app = create_app(Settings(home=tmp_path_factory.mktemp("routes")))
    return sorted(set(iter_routes(app)))


def test_every_route_is_declared(served_routes: list[tuple[str, str]]) -> None:
    undeclared = [r for r in served_routes if r not in ACCESS]
    assert not undeclared, f"declare who may call these routes in ACCESS: {undeclared}"
    public = sorted(r for r in served_routes if ACCESS[r].public)
    assert all(
        p.startswith(
            ("/livez", "/readyz", "/dependencies", "/openapi", "/docs", "/redoc", "/fhir/metadata", "/ui/")
        )
        for _, p in public
    ), public


@dataclass
class World:
    """Keys and one resource of each kind owned by client A."""

    stack: Stack
    keys: dict[str, str]  # scope -> key of client A with only that scope
    other: str  # client B, every non-admin scope
    record_id: str
    job_id: str
    artifact_id: str


@pytest.fixture(scope="module")
def world(hstack: Stack, shared_data: Path) -> World:
    keys = {scope: hstack.key("tenant-a", scope) for scope in SCOPES}
    other = hstack.key("tenant-b", "media:write", "media:read", "audit:read")
    record = f"MRN-{uuid.uuid4().hex[:10]}"
    with hstack.http(hstack.key("tenant-a", "media:write", "media:read")) as c:
        photo = (shared_data / FACE_JPEG).read_bytes()
        r = c.post(f"/v1/records/{record}/media", files={"file": ("a.jpg", photo)})
        job = wait_job(c, r.json()["job_id"])
    assert job["status"] == "succeeded", job
    return World(hstack, keys, other, record, job["job_id"], job["artifact_id"])


def concrete(path: str, w: World) -> str:
    values = {
        "record_id": w.record_id,
        "job_id": w.job_id,
        "media_id": w.job_id,  # a FHIR Media is one masking job
        "artifact_id": w.artifact_id,
        "event_id": "1",
        "study_uid": "1.2.826.0.1.3680043.8.498.1",
        "study": "1.2.826.0.1.3680043.8.498.1",
        "series": "1.2.826.0.1.3680043.8.498.2",
        "sop": "1.2.826.0.1.3680043.8.498.3",
        "frames": "1",
        "frame": "1",
        "tag": "7FE00010",
        "endpoint_id": "00000000-0000-4000-8000-000000000000",
        "message_id": "msg_00000000000000000000000000000000",
        "name": "app.css",
    }
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


def call(w: World, method: str, path: str, key: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with httpx.Client(base_url=w.stack.api_url, timeout=60, follow_redirects=False) as c:
        return c.request(method, concrete(path, w), headers=headers)


DECLARED = sorted(ACCESS)


@pytest.mark.parametrize(("method", "path"), DECLARED, ids=[f"{m} {p}" for m, p in DECLARED])
def test_route_access(method: str, path: str, world: World, served_routes: list[tuple[str, str]]) -> None:
    if (method, path) not in served_routes:
        pytest.skip("declared, not served by this build")
    rule = ACCESS[(method, path)]
    anonymous = call(world, method, path, None)
    if rule.anonymous:
        assert anonymous.status_code in rule.anonymous, (anonymous.status_code, anonymous.text[:300])
    if rule.public:
        if not rule.anonymous:
            assert anonymous.status_code not in (401, 403), anonymous.text[:300]
        assert anonymous.status_code < 500 or path == "/readyz", anonymous.text[:300]
        return
    if rule.anonymous:
        pass
    elif rule.ui:
        assert anonymous.status_code == 303, anonymous.text[:300]
        assert anonymous.headers["location"].startswith("/ui/login")
    else:
        assert anonymous.status_code == 401, anonymous.text[:300]
        assert anonymous.headers["www-authenticate"].startswith("Bearer")
    for scope in SCOPES:
        r = call(world, method, path, world.keys[scope])
        allowed = scope == "admin" or scope in rule.scopes or (rule.ui and not rule.scopes)
        if allowed:
            assert r.status_code not in (401, 403), (scope, r.status_code, r.text[:300])
            assert r.status_code < 500, (scope, r.status_code, r.text[:300])
        else:
            assert r.status_code == 403, (scope, r.status_code, r.text[:300])
    if rule.tenant:
        r = call(world, method, path, world.other)
        if path.startswith(("/v1/records/", "/ui/records/")):  # listings: the other client's view
            assert r.status_code == 200, (r.status_code, r.text[:300])
        else:
            assert r.status_code == 404, (r.status_code, r.text[:300])
        assert world.job_id not in r.text and world.artifact_id not in r.text


def test_key_comparison_is_constant_time() -> None:
    """Keys are looked up by their public id and compared as SHA-256 digests with
    hmac.compare_digest (never ``==``), also when the id is unknown (same work either way)."""
    from services.auth import service

    source = inspect.getsource(service.verify_key)
    tree = ast.parse(source)
    compares = [n for n in ast.walk(tree) if isinstance(n, ast.Compare)]
    for node in compares:
        names = {getattr(x, "attr", getattr(x, "id", "")) for x in ast.walk(node)}
        assert "key_hash" not in names, "key hashes must not be compared with =="
    assert source.count("hmac.compare_digest") >= 2


def test_key_verification_spends_one_digest_comparison_per_attempt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hmac

    from services.audit.service import AuditContext
    from services.auth import service
    from services.db import session_scope
    from services.migrate import upgrade
    from services.settings import Settings

    settings = Settings(home=tmp_path)
    upgrade(settings)
    with session_scope(settings) as s:
        row, key = service.create_key(s, "c", ["media:read"], AuditContext())
    calls: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(service.hmac, "compare_digest", spy)
    unknown_id = "dmk_" + "0" * 16 + "_" + key.split("_", 2)[2]
    wrong_secret = key[:-1] + ("A" if key[-1] != "A" else "B")
    with session_scope(settings) as s:
        assert service.verify_key(s, unknown_id) is None
        assert service.verify_key(s, wrong_secret) is None
        assert service.verify_key(s, key) is not None
    assert len(calls) == 3 and all(len(a) == len(b) == 64 for a, b in calls)


def test_rate_limit_is_per_client_and_covers_failed_logins(fresh_stack: Callable[..., Stack]) -> None:
    """One client over its limit gets 429 + Retry-After; another client is unaffected; failed
    authentications are limited per source address (each is an audit write), first 429 audited."""
    stack = fresh_stack(rate_limit_per_minute=5)
    stack.start_api()
    a, b = stack.key("chatty", "media:read"), stack.key("quiet", "media:read")
    with stack.http(a) as c:
        codes = [c.get("/v1/whoami").status_code for _ in range(7)]
        last = c.get("/v1/whoami")
    if codes[:5] != [200] * 5:  # the one-minute window rolled over mid-test: once more
        time.sleep(61 - time.time() % 60)
        with stack.http(a) as c:
            codes = [c.get("/v1/whoami").status_code for _ in range(7)]
            last = c.get("/v1/whoami")
    assert codes == [200] * 5 + [429] * 2
    assert 0 < int(last.headers["retry-after"]) <= 60
    with stack.http(b) as c:
        assert c.get("/v1/whoami").status_code == 200
    bad = "dmk_" + "1" * 16 + "_" + "x" * 43
    with stack.http(bad) as c:
        bad_codes = [c.get("/v1/whoami").status_code for _ in range(8)]
    assert bad_codes.count(401) <= 5 and bad_codes[-1] == 429
    assert httpx.get(stack.api_url + "/livez").status_code == 200
    denied = query(
        stack,
        "SELECT detail->>'status', count(*) FROM audit_events WHERE action = 'request.denied' GROUP BY 1",
    )
    counts = {int(k): n for k, n in denied}
    assert counts.get(401, 0) <= 5 and counts.get(429) in (1, 2)  # one per limited identity


def test_login_form_is_rate_limited_per_source(fresh_stack: Callable[..., Stack]) -> None:
    """Regression: POST /ui/login guessed keys without limit (each guess an audit write). Now every
    form post counts against the source address; past the limit 429 + Retry-After, and even a valid
    key is refused until the window ends."""
    stack = fresh_stack(rate_limit_per_minute=5)
    stack.start_api()
    good = stack.key("auditor", "audit:read")
    guess = "dmk_" + "2" * 16 + "_" + "y" * 43
    with stack.http(follow_redirects=False) as c:
        codes = [c.post("/ui/login", data={"api_key": guess}).status_code for _ in range(7)]
        refused = c.post("/ui/login", data={"api_key": good})
    assert codes.count(401) <= 5 and codes[-1] == 429  # <= 5: the window may roll over mid-test
    assert refused.status_code == 429 and 0 < int(refused.headers["retry-after"]) <= 60
    assert "dmask_session" not in refused.headers.get("set-cookie", "")
    limited = query(
        stack,
        "SELECT count(*) FROM audit_events WHERE action = 'request.denied' AND detail->>'status' = '429'",
    )
    assert limited[0][0] in (1, 2)  # the first refusal of a window is audited, not every one


def test_presigned_urls_expire(world: World) -> None:
    with world.stack.http(world.keys["media:read"]) as c:
        r = c.get(f"/v1/artifacts/{world.artifact_id}", follow_redirects=False)
    assert r.status_code == 307 and r.headers["cache-control"] == "no-store"
    url = r.headers["location"]
    assert "X-Amz-Expires" in url and world.record_id not in url
    assert httpx.get(url).status_code == 200
    tampered = re.sub(r"X-Amz-Expires=\d+", "X-Amz-Expires=86400", url)
    assert httpx.get(tampered).status_code == 403  # the lifetime is signed
    time.sleep(PRESIGN_TTL_S + 2)
    expired = httpx.get(url)
    assert expired.status_code == 403, expired.status_code
    assert b"expired" in expired.content.lower() or b"accessdenied" in expired.content.lower()


def scrape_metrics(stack: Stack) -> str:
    """GET /metrics as Prometheus does: with a metrics-only key."""
    with stack.http(stack.key("prometheus", "metrics")) as c:
        r = c.get("/metrics")
    assert r.status_code == 200, r.text
    return r.text


def leak_surfaces(stack: Stack, weed: Seaweed) -> dict[str, str]:
    """Where PHI must never appear, as text: both logs, /metrics and every object key."""
    time.sleep(1.5)  # let the worker flush its log lines
    return {
        "api log": stack.api.log.read_text(errors="replace") if stack.api else "",
        "worker logs": "".join(w.log.read_text(errors="replace") for w in stack.workers),
        "/metrics": scrape_metrics(stack),
        "object keys": "\n".join(
            o.object_name or ""
            for bucket in (stack.env["DMASK_BUCKET_ORIGINALS"], stack.env["DMASK_BUCKET_ARTIFACTS"])
            for o in weed.client().list_objects(bucket, recursive=True)
        ),
    }


def test_no_phi_in_logs_metrics_keys_or_errors(hstack: Stack, weed: Seaweed, shared_data: Path) -> None:
    """A full flow with identifying record ID, file name and metadata; afterwards neither the API
    nor the worker log, /metrics, the object listing nor any error answer contains them."""
    tag = uuid.uuid4().hex[:8]
    record = f"MRN-PHI-{tag}"
    filename = f"Doe_John_1970-01-01_{tag}.jpg"
    description = f"Jane Roe left eye {tag}"
    secrets = [record, filename, description, f"Roe left eye {tag}", f"Doe_John_1970-01-01_{tag}"]
    photo = (shared_data / FACE_JPEG).read_bytes()
    answers: list[httpx.Response] = []
    writer = hstack.key("phi-clinic", "media:write", "media:read")
    with hstack.http(writer) as c:
        meta = {"description": description, "laterality": "OS"}
        files = {"file": (filename, photo, "image/jpeg"), "metadata": (None, __import__("json").dumps(meta))}
        r = c.post(f"/v1/records/{record}/media", files=files, headers={"Idempotency-Key": f"phi-{tag}"})
        assert r.status_code == 202, r.text
        job = wait_job(c, r.json()["job_id"])
        assert job["status"] == "succeeded"
        answers += [
            c.get(f"/v1/records/{record}/media"),
            c.get(f"/v1/artifacts/{job['artifact_id']}/metrics"),
            c.get(f"/v1/artifacts/{job['artifact_id']}", follow_redirects=False),
            # refusals that carry the identifiers in their input
            c.post(
                f"/v1/records/{record}/media",
                files={"file": (filename, b"<html>" + description.encode()), "metadata": (None, "{}")},
            ),
            c.post(
                f"/v1/records/{record}/media",
                files={
                    "file": (filename, photo),
                    "metadata": (None, '{"description": 5, "x": "' + record + '"}'),
                },
            ),
            c.post(f"/v1/records/{record}/media", files=files, headers={"Idempotency-Key": "k" * 300}),
            c.post(f"/v1/records/{record}%00/media", content=photo),
            c.get(f"/v1/records/{record}/nothing"),
        ]
    with hstack.http(hstack.key("phi-other", "media:read")) as c:
        answers.append(c.get(f"/v1/jobs/{job['job_id']}"))
    with hstack.http("dmk_" + "2" * 16 + "_" + "y" * 43) as c:
        answers.append(c.get(f"/v1/records/{record}/media"))
    texts = leak_surfaces(hstack, weed)
    errors = [a for a in answers if a.status_code >= 400]
    assert len(errors) >= 6
    for a in errors:
        texts[f"error {a.status_code} {a.request.method}"] = a.text + str(dict(a.headers))
    texts["presigned url"] = answers[2].headers["location"]
    for where, text in texts.items():
        for secret in secrets:
            assert secret not in text, f"{secret!r} found in {where}"
    # ... while the audit log, which is meant to, does hold the record ID
    assert query(hstack, "SELECT count(*) FROM audit_events WHERE record_id = %s", record)[0][0] >= 3


def test_no_dicom_header_phi_in_logs_metrics_or_failure_reasons(
    hstack: Stack, weed: Seaweed, shared_data: Path
) -> None:
    """DICOM carries PHI inside the file: patient name, ID, birth date, institution, operator.
    Through the media upload and STOW-RS, for a good instance and for one whose pixel data is cut
    short, none of it appears in a log line, /metrics, an object key, an answer or a job's
    failure reason."""
    import io
    import json

    import pydicom

    tag = uuid.uuid4().hex[:8]
    phi = {
        "PatientName": f"Roe^Jane^{tag}",
        "PatientID": f"PID-{tag}",
        "PatientBirthDate": "19700101",
        "InstitutionName": f"St Elsewhere {tag}",
        "OperatorsName": f"Tech^Tom^{tag}",
        "ReferringPhysicianName": f"Doc^Dora^{tag}",
    }
    secrets = [v for k, v in phi.items() if k != "PatientBirthDate"] + [f"Roe^Jane^{tag}".replace("^", " ")]

    def dicom(truncate_pixels: bool) -> bytes:
        ds = pydicom.dcmread(shared_data / "dicom/ot_pal8_face.dcm", force=True)
        for keyword, value in phi.items():
            setattr(ds, keyword, value)
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        if truncate_pixels:
            ds.PixelData = ds.PixelData[: len(ds.PixelData) // 3]
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        return out.getvalue()

    good, cut = dicom(False), dicom(True)
    boundary = "phi-boundary"
    body = (
        b"".join(
            f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + part + b"\r\n"
            for part in (good, cut)
        )
        + f"--{boundary}--\r\n".encode()
    )
    record = f"MRN-DCM-{tag}"
    answers: list[httpx.Response] = []
    job_ids: list[str] = []
    with hstack.http(hstack.key("phi-pacs", "media:write", "media:read")) as c:
        for data in (good, cut):
            r = c.post(f"/v1/records/{record}/media", files={"file": ("x.dcm", data, "application/dicom")})
            answers.append(r)
            if r.status_code == 202:
                job_ids.append(r.json()["job_id"])
        r = c.post(
            "/dicomweb/studies",
            params={"record_id": record},
            content=body,
            headers={"Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'},
        )
        # The good one is accepted; the cut one is refused by STOW-RS itself (0xA900: its pixel data is
        # shorter than the image it declares); through /v1 above it fails in the worker instead.
        assert r.status_code == 202, r.text
        assert [i["00081197"]["Value"][0] for i in r.json()["00081198"]["Value"]] == [0xA900]
        answers.append(r)
        listed = [m["job_id"] for m in c.get(f"/v1/records/{record}/media").json()["items"]]
        job_ids += [j for j in listed if j not in job_ids]
        jobs = [wait_job(c, j) for j in job_ids]
        answers += [c.get(f"/v1/jobs/{j}") for j in job_ids]
        answers.append(c.get(f"/v1/records/{record}/media"))
    statuses = sorted(j["status"] for j in jobs)
    assert "succeeded" in statuses and "failed" in statuses, statuses  # both paths were exercised
    texts = leak_surfaces(hstack, weed)
    texts["failure reasons"] = json.dumps(
        query(hstack, "SELECT failure_reason FROM jobs WHERE failure_reason IS NOT NULL")
    )
    for i, a in enumerate(answers):
        texts[f"answer {i} {a.status_code} {a.request.method} {a.request.url.path}"] = a.text
    for where, text in texts.items():
        for secret in secrets:
            assert secret not in text, f"{secret!r} found in {where}"
