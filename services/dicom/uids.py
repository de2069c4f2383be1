"""Keyed, consistent UID replacement (PS3.15 action ``U``).

Every UID an instance carries (Study, Series, Frame of Reference, SOP Instance and the references
between instances) is replaced by ``2.25.<int>`` where the integer is the first 128 bits of
HMAC-SHA256(key, original UID). The same key therefore maps the same original UID to the same new UID
in every instance of a study, so series stay grouped and references still resolve, while nobody
without the key can recompute or reverse the mapping. The mapping itself is handed to the
``UidMapper`` implementation (the service persists it in its database); it is never written into the
output file.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Protocol, runtime_checkable

_UID_LABEL = b"dmask/uid/v1\x00"


def service_uid_key(master: bytes) -> bytes:
    """The UID-remapping key the service derives from its master key (DMASK_HMAC_KEY): the worker
    masks with it and the API predicts masked UIDs with it (STOW-RS RetrieveURL)."""
    return hmac.new(master, b"dmask/uid/v1", hashlib.sha256).digest()


def keyed_uid(key: bytes, original_uid: str) -> str:
    """The ``2.25.<int>`` UID for ``original_uid`` under ``key`` (deterministic, <= 44 characters)."""
    if not key:
        raise ValueError("a non-empty key is required")
    digest = hmac.new(key, _UID_LABEL + original_uid.strip().encode("ascii", "replace"), hashlib.sha256)
    return "2.25." + str(int.from_bytes(digest.digest()[:16], "big"))


@runtime_checkable
class UidMapper(Protocol):
    """Maps an original UID to its replacement and records the pair wherever the service keeps it."""

    def map(self, original_uid: str) -> str:
        """Return the replacement UID (same input -> same output for the mapper's lifetime/key)."""
        ...


class HmacUidMapper:
    """``UidMapper`` built on :func:`keyed_uid`; ``on_map(original, new)`` is called once per new pair
    so that a service can persist the mapping (for re-identification under governance)."""

    def __init__(self, key: bytes, on_map: Callable[[str, str], None] | None = None) -> None:
        if not key:
            raise ValueError("a non-empty key is required")
        self._key = key
        self._on_map = on_map
        self._seen: dict[str, str] = {}

    def map(self, original_uid: str) -> str:
        original = original_uid.strip()
        new = self._seen.get(original)
        if new is None:
            new = keyed_uid(self._key, original)
            self._seen[original] = new
            if self._on_map is not None:
                self._on_map(original, new)
        return new


class InMemoryUidMapper(HmacUidMapper):
    """The mapper for tests and one-off tools: keeps the mapping in ``self.mapping``."""

    def __init__(self, key: bytes) -> None:
        self.mapping: dict[str, str] = {}
        super().__init__(key, on_map=self.mapping.__setitem__)
