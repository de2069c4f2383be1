"""Standard Webhooks signatures (https://www.standardwebhooks.com): ``whsec_`` secrets and
``v1,<base64 HMAC-SHA256(id.timestamp.body)>``. Pure functions: the sender and the tests share them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def signature_header(secrets_in_use: list[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """One signature per secret in use (the current one first; the previous one while a rotation's
    grace period runs), space-separated as the specification allows."""
    return " ".join(sign(s, msg_id, timestamp, body) for s in secrets_in_use)
