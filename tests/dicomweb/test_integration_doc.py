"""docs/integration.md runs: its Python snippets are executed in order against the service, with the
names the page leaves to the reader (BASE, KEY, ...) supplied, so the integrator guide cannot drift."""

from __future__ import annotations

import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pydicom
from dicomweb_client.api import DICOMwebClient
from dicomweb_support import Node, poll
from service_support import REPO, free_port

DOC = REPO / "docs" / "integration.md"


def snippets() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def test_every_snippet_of_the_integration_guide_runs(node: Node, shared_data: Path) -> None:
    client = f"t-{uuid.uuid4().hex[:8]}"
    deliveries: list[tuple[bytes, dict[str, str]]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["content-length"]))
            deliveries.append((body, {k.lower(): v for k, v in self.headers.items()}))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    port = free_port()
    receiver = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    ns: dict[str, Any] = {
        "BASE": node.url,
        "KEY": node.key(client, "media:write", "media:read"),
        "ADMIN_KEY": node.key(client, "webhooks:admin"),
        "RECORD_ID": f"MRN-{uuid.uuid4().hex[:8]}",
        "FACE_DCM": shared_data / "dicom/ot_pal8_face.dcm",
        "RECEIVER_URL": f"http://127.0.0.1:{port}/dmask",
    }
    try:
        code = snippets()
        assert len(code) >= 5
        for snippet in code:
            exec(compile(snippet, str(DOC), "exec"), ns)  # noqa: S102 - the guide's own code
        assert ns["masked"].PatientIdentityRemoved == "YES" and ns["jpeg"][:2] == b"\xff\xd8"
        assert ns["studies"] and ns["media"] and ns["SECRET"].startswith("whsec_")
        # A new instance: the webhook registered by the guide announces it; the guide's handler verifies it.
        ds = pydicom.dcmread(ns["FACE_DCM"], force=True)
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        DICOMwebClient(
            url=f"{node.url}/dicomweb", headers={"Authorization": f"Bearer {ns['KEY']}"}
        ).store_instances([ds], additional_params={"record_id": ns["RECORD_ID"]})
        poll(lambda: deliveries, 240, "webhook delivery")
        payload = ns["handle"](*deliveries[0])
        assert payload["data"]["record_id"] == ns["RECORD_ID"]
    finally:
        receiver.shutdown()
        receiver.server_close()
