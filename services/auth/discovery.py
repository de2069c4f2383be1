"""The identity provider's published configuration: OpenID discovery metadata and its signing keys
(JWKS), fetched over HTTPS with the standard library and cached in the process.

Keys rotate at the provider, so a token whose ``kid`` is not in the cached set triggers one JWKS
refresh; refreshes are spaced at least ``MIN_REFRESH_S`` apart, so a stream of forged ``kid`` values
cannot turn the API into a flood of requests to the provider. The provider being unreachable is
``ProviderUnavailable`` (the API answers 503), never a silently accepted token.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from jwt import PyJWK, PyJWKSet
from jwt.exceptions import PyJWKError, PyJWKSetError

log = logging.getLogger("dmask.auth.oidc")

METADATA_TTL_S = 3600.0
JWKS_TTL_S = 3600.0
MIN_REFRESH_S = 10.0
HTTP_TIMEOUT_S = 5.0
MAX_DOCUMENT_BYTES = 1 << 20


class ProviderUnavailable(RuntimeError):
    """The identity provider could not be reached or answered nonsense."""


def http_json(url: str, data: dict[str, str] | None = None, headers: dict[str, str] | None = None) -> Any:
    """GET (or, with ``data``, a form POST) returning parsed JSON. Error bodies are parsed too, as
    token endpoints report errors as JSON with status 400; the caller looks at ``error``."""
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    req = urllib.request.Request(url, data=body, headers={"Accept": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_S) as resp:  # noqa: S310 (configured URL)
            raw = resp.read(MAX_DOCUMENT_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raw = exc.read(MAX_DOCUMENT_BYTES + 1)
        if not raw:
            raise ProviderUnavailable(f"{url}: HTTP {exc.code}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise ProviderUnavailable(f"{url}: {type(exc).__name__}") from None
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise ProviderUnavailable(f"{url}: answer too large")
    try:
        return json.loads(raw)
    except ValueError:
        raise ProviderUnavailable(f"{url}: not JSON") from None


class Provider:
    """One OpenID provider: its discovery document and signing keys, cached."""

    def __init__(self, issuer: str, min_refresh_s: float = MIN_REFRESH_S) -> None:
        self.issuer = issuer  # exactly as configured: it must equal the tokens' ``iss``
        self.min_refresh_s = min_refresh_s
        self._lock = threading.RLock()
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._keys: dict[str, PyJWK] = {}
        self._keys_at = 0.0
        self.jwks_fetches = 0

    def metadata(self) -> dict[str, Any]:
        with self._lock:
            if self._metadata is None or time.monotonic() - self._metadata_at > METADATA_TTL_S:
                url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
                doc = http_json(url)
                if not isinstance(doc, dict) or doc.get("issuer") != self.issuer:
                    # OpenID Connect Discovery 1.0 §4.3: the document must name the configured issuer
                    raise ProviderUnavailable("discovery document does not name the configured issuer")
                self._metadata, self._metadata_at = doc, time.monotonic()
            return self._metadata

    def endpoint(self, name: str) -> str | None:
        value = self.metadata().get(name)
        return value if isinstance(value, str) else None

    def _fetch_keys(self) -> None:
        uri = self.endpoint("jwks_uri")
        if uri is None:
            raise ProviderUnavailable("discovery document has no jwks_uri")
        self.jwks_fetches += 1
        doc = http_json(uri)
        try:
            keyset = PyJWKSet.from_dict(doc)
        except (PyJWKSetError, PyJWKError, TypeError) as exc:
            raise ProviderUnavailable(f"unusable JWKS ({exc})") from None
        self._keys = {k.key_id: k for k in keyset.keys if k.key_id and k.public_key_use in (None, "sig")}
        self._keys_at = time.monotonic()

    def signing_key(self, kid: str) -> PyJWK | None:
        """The provider's key ``kid``; an unknown kid refreshes the key set once (rate-limited)."""
        with self._lock:
            stale = time.monotonic() - self._keys_at > JWKS_TTL_S
            if not self._keys or stale:
                self._fetch_keys()
            key = self._keys.get(kid)
            if key is None and time.monotonic() - self._keys_at >= self.min_refresh_s:
                log.info("unknown key id: refreshing the provider's JWKS once")
                self._fetch_keys()
                key = self._keys.get(kid)
            return key
