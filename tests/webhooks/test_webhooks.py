"""Webhooks: registration (scope webhooks:admin, SSRF guard), Standard Webhooks signatures verified by
the ``standardwebhooks`` library in a real HTTP receiver on loopback, retries with back-off recorded
per attempt, exactly-once delivery to a receiver that was down, replay, rotation, no PHI."""

from __future__ import annotations

import json
import socket
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pydicom
from dicomweb_client.api import DICOMwebClient
from dicomweb_support import Node, poll, serve
from service_support import Seaweed
from standardwebhooks.webhooks import Webhook


class Receiver:
    """An HTTP receiver on a fixed loopback port that verifies every delivery with standardwebhooks."""

    def __init__(self, port: int | None = None) -> None:
        if port is None:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
        self.port = port
        self.secrets: list[str] = []
        self.received: list[dict[str, Any]] = []
        self.ids: list[str] = []
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/dmask"

    def start(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["content-length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    payload = Webhook(outer.secrets[-1]).verify(body, headers)
                except Exception:
                    self.send_response(401)
                    self.end_headers()
                    return
                outer.received.append(payload)
                outer.ids.append(headers["webhook-id"])
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def stow_face(base_url: str, key: str, record_id: str, shared_data: Path) -> None:
    dw = DICOMwebClient(url=f"{base_url}/dicomweb", headers={"Authorization": f"Bearer {key}"})
    ds = pydicom.dcmread(shared_data / "dicom/ot_pal8_face.dcm", force=True)
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    dw.store_instances([ds], additional_params={"record_id": record_id})


def register(c: httpx.Client, url: str, events: list[str]) -> dict[str, Any]:
    r = c.post("/v1/webhooks", json={"url": url, "events": events})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    assert body["secret"].startswith("whsec_")
    return body


def test_signed_events_reach_a_receiver_that_was_down_exactly_once(node: Node, shared_data: Path) -> None:
    client = f"t-{uuid.uuid4().hex[:8]}"
    admin, writer = node.key(client, "webhooks:admin"), node.key(client, "media:write", "media:read")
    receiver = Receiver()  # not started yet: the endpoint refuses connections
    record_ids = [f"MRN-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    with node.http(admin) as c:
        endpoint = register(c, receiver.url, ["job.succeeded", "job.failed"])
        receiver.secrets.append(endpoint["secret"])
        for rid in record_ids:
            stow_face(node.url, writer, rid, shared_data)
        for rid in record_ids:
            node.wait_jobs(writer, rid, 1)

        def deliveries_now() -> list[dict[str, Any]]:
            items: list[dict[str, Any]] = c.get(f"/v1/webhooks/{endpoint['id']}/deliveries").json()
            return items

        def failed_attempts() -> bool:
            items = deliveries_now()
            return len(items) == 2 and all(len(d["attempt_log"]) >= 2 for d in items)

        poll(failed_attempts, 60, "failed attempts while the receiver is down")
        receiver.start()
        try:
            poll(lambda: len(receiver.received) >= 2, 60, "deliveries after the receiver came up")

            def recorded() -> list[dict[str, Any]] | None:
                # the worker records an attempt after the receiver has answered it, so the delivery
                # rows catch up with what the receiver saw a moment later
                items = deliveries_now()
                return items if all(d["status"] != "pending" for d in items) else None

            deliveries = poll(recorded, 30, "the deliveries' outcome recorded")
        finally:
            receiver.stop()
    assert sorted(p["data"]["record_id"] for p in receiver.received) == sorted(record_ids)
    assert len(set(receiver.ids)) == len(receiver.ids) == 2  # each event exactly once
    for payload in receiver.received:
        assert payload["type"] == "job.succeeded"
        assert set(payload["data"]) == {"job_id", "record_id", "status", "artifact_id", "links"}
        assert all(link.startswith(node.url + "/") for link in payload["data"]["links"].values())
        assert "/dicomweb/studies/" in payload["data"]["links"]["dicomweb"]
    for d in deliveries:
        log = d["attempt_log"]
        assert (
            d["status"] == "delivered" and log[-1]["succeeded"] and not any(a["succeeded"] for a in log[:-1])
        )
        assert all(a["error"] and a["status_code"] is None for a in log[:-1])  # connection refused
        gaps = [(b["started_at"], a["started_at"]) for a, b in zip(log, log[1:], strict=False)]
        assert gaps == sorted(gaps)  # attempts in order, spaced by the back-off


def test_replay_and_rotation_are_signed_with_the_current_secret(node: Node, shared_data: Path) -> None:
    client = f"t-{uuid.uuid4().hex[:8]}"
    admin, writer = node.key(client, "webhooks:admin"), node.key(client, "media:write", "media:read")
    receiver = Receiver()
    receiver.start()
    rid = f"MRN-{uuid.uuid4().hex[:8]}"
    try:
        with node.http(admin) as c:
            endpoint = register(c, receiver.url, ["job.succeeded"])
            receiver.secrets.append(endpoint["secret"])
            stow_face(node.url, writer, rid, shared_data)
            poll(lambda: receiver.received, 240, "first delivery")
            rotated = c.post(f"/v1/webhooks/{endpoint['id']}/rotate-secret").json()
            assert rotated["secret"] != endpoint["secret"] and rotated["previous_secret_valid_until"]
            receiver.secrets.append(rotated["secret"])
            (msg,) = c.get(f"/v1/webhooks/{endpoint['id']}/deliveries").json()
            r = c.post(f"/v1/webhooks/{endpoint['id']}/deliveries/{msg['id']}/replay")
            assert r.status_code == 202
            poll(lambda: len(receiver.received) == 2, 30, "replayed delivery")
            assert receiver.ids == [msg["id"], msg["id"]]  # same webhook-id: receivers deduplicate
            assert [e["id"] for e in c.get("/v1/webhooks").json()] == [endpoint["id"]]
            assert c.delete(f"/v1/webhooks/{endpoint['id']}").status_code == 204
            assert c.get("/v1/webhooks").json() == []
    finally:
        receiver.stop()
    with node.http(node.key("compliance", "audit:read")) as c:
        actions = [e["action"] for e in c.get("/v1/audit", params={"record": rid}).json()["items"]]
        wh = [
            e["action"]
            for e in c.get("/v1/audit", params={"action": "webhook.rotate_secret"}).json()["items"]
        ]
    assert actions.count("webhook.delivery") == 2 and wh


def test_registration_refusals_change_nothing(node: Node) -> None:
    client = f"t-{uuid.uuid4().hex[:8]}"
    admin = node.key(client, "webhooks:admin")
    with node.http(admin) as c:
        for body in (
            {"url": "ftp://example.org/x", "events": ["job.succeeded"]},
            {"url": "https://user:pw@example.org/x", "events": ["job.succeeded"]},
            {"url": "not a url", "events": ["job.succeeded"]},
        ):
            r = c.post("/v1/webhooks", json=body)
            assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json", r.text
            assert body["url"] not in r.text
        assert (
            c.post("/v1/webhooks", json={"url": "https://a.example/x", "events": ["job.nope"]}).status_code
            == 422
        )
        assert c.post("/v1/webhooks", json={"url": "https://a.example/x", "events": []}).status_code == 422
        assert c.get("/v1/webhooks").json() == []
        assert c.delete(f"/v1/webhooks/{uuid.uuid4()}").status_code == 404
    with node.http(node.key(client, "media:read")) as c:
        assert (
            c.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/x", "events": ["job.failed"]}).status_code
            == 403
        )


def test_private_targets_refused_without_the_admin_setting(tmp_path: Path) -> None:
    from services.settings import Settings
    from services.webhooks import urls

    strict = Settings(home=tmp_path, webhook_allow_private=False)
    for url in (
        "http://example.org/x",
        "https://127.0.0.1/x",
        "https://10.1.2.3/x",
        "https://[::1]/x",
        "https://169.254.169.254/latest",
        "https://localhost/x",
        "https://[::ffff:192.168.0.1]/x",
    ):
        try:
            urls.resolve(url, strict.webhook_allow_private)
        except urls.UrlRefused as exc:
            assert url not in str(exc)
        else:
            raise AssertionError(f"{url} was accepted")
    assert urls.resolve("http://127.0.0.1:8080/x", True).address == "127.0.0.1"


def test_another_clients_endpoint_is_404(node: Node) -> None:
    a, b = (node.key(f"t-{uuid.uuid4().hex[:8]}", "webhooks:admin") for _ in range(2))
    with node.http(a) as c:
        endpoint = register(c, "http://127.0.0.1:9/x", ["artifact.expired"])
    with node.http(b) as c:
        for r in (
            c.get(f"/v1/webhooks/{endpoint['id']}/deliveries"),
            c.post(f"/v1/webhooks/{endpoint['id']}/rotate-secret"),
            c.delete(f"/v1/webhooks/{endpoint['id']}"),
        ):
            assert r.status_code == 404 and json.loads(r.text)["detail"] == "No such webhook endpoint."
    with node.http(a) as c:
        assert [e["id"] for e in c.get("/v1/webhooks").json()] == [endpoint["id"]]


def test_expired_artifact_is_announced_and_leaves_dicomweb(
    weed: Seaweed, tmp_path: Path, shared_data: Path
) -> None:
    """Retention of 0 days: the masked instance expires at the next reconciler pass; subscribers get
    ``artifact.expired``, QIDO stops finding it, FHIR Media says so."""
    with serve(weed, tmp_path, artifact_retention_days=0, reconcile_interval_s=1) as short:
        client = f"t-{uuid.uuid4().hex[:8]}"
        writer = short.key(client, "media:write", "media:read")
        receiver = Receiver()
        receiver.start()
        rid = f"MRN-{uuid.uuid4().hex[:8]}"
        try:
            with short.http(short.key(client, "webhooks:admin")) as c:
                receiver.secrets.append(register(c, receiver.url, ["artifact.expired"])["secret"])
            stow_face(short.url, writer, rid, shared_data)
            poll(lambda: receiver.received, 240, "artifact.expired delivery")
        finally:
            receiver.stop()
        (payload,) = receiver.received
        assert payload["type"] == "artifact.expired" and payload["data"]["record_id"] == rid
        assert payload["data"]["status"] == "expired" and payload["data"]["artifact_id"]
        with short.http(writer) as c:
            assert c.get("/dicomweb/instances").json() == []
            (entry,) = c.get("/fhir/Media", params={"patient": rid}).json()["entry"]
        assert (
            "url" not in entry["resource"]["content"] and "expired" in entry["resource"]["content"]["title"]
        )
