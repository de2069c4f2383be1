"""The Jinja2 environment shared by the pages and the access report (autoescaped: record IDs and
audit details are data, never markup)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATIC = Path(__file__).resolve().parent / "static"

ACTION_LABELS = {
    "media.upload": "Uploaded media",
    "media.upload.replay": "Upload retried (idempotent replay)",
    "media.list": "Listed the record's media",
    "job.queued": "Masking job queued",
    "job.running": "Masking started",
    "job.succeeded": "Masking succeeded",
    "job.failed": "Masking failed",
    "job.requeued": "Masking job requeued",
    "original.delete": "Original deleted",
    "artifact.read": "Viewed or downloaded masked media",
    "artifact.metrics_read": "Read eye metrics",
    "artifact.delete": "Masked media deleted",
    "artifact.expire": "Masked media deleted (retention)",
    "audit.read": "Read the audit log",
    "audit.export": "Exported the audit log",
    "audit.report": "Produced an access report",
    "audit.verify": "Verified the audit chain",
    "request.denied": "Request refused",
    "key.create": "API key created",
    "key.revoke": "API key revoked",
    "user.create": "Local user created",
    "user.disable": "Local user disabled",
    "legal_hold.set": "Legal hold placed",
    "legal_hold.release": "Legal hold released",
    "legal_hold.read": "Legal hold looked up",
    "ui.login": "Signed in to the web pages",
    "ui.logout": "Signed out of the web pages",
    "retention.run": "Retention run",
}


def action_label(action: str) -> str:
    return ACTION_LABELS.get(action, action)


def short_json(value: Any) -> str:
    if not value:
        return ""
    return json.dumps(value, sort_keys=True, separators=(", ", ": "))


def fmt_ts(value: str | datetime | None) -> str:
    """``2026-11-28T10:11:12.345678Z`` -> ``2026-11-28 10:11:12 UTC`` (full precision stays in exports)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S UTC")
    return value[:19].replace("T", " ") + " UTC"


def fmt_num(value: float | int | None, digits: int = 1, unit: str = "") -> str:
    if value is None:
        return "—"
    text = f"{value:.{digits}f}"
    return f"{text} {unit}".strip()


env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
env.filters["action_label"] = action_label
env.filters["short_json"] = short_json
env.filters["fmt_ts"] = fmt_ts
env.filters["fmt_num"] = fmt_num


def render(name: str, **context: Any) -> str:
    return env.get_template(name).render(**context)
