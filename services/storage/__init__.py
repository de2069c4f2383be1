"""Object storage: the ``ObjectStore`` protocol and its local-folder and S3 implementations."""

from __future__ import annotations

import threading

from services.settings import Settings, get_settings
from services.storage.base import (
    BucketName,
    ObjectNotFound,
    ObjectStore,
    StoredObject,
    StoreError,
    StoreUnavailable,
    new_key,
)

__all__ = [
    "BucketName",
    "ObjectNotFound",
    "ObjectStore",
    "StoreError",
    "StoreUnavailable",
    "StoredObject",
    "get_store",
    "make_store",
    "new_key",
]

_stores: dict[int, ObjectStore] = {}
_lock = threading.Lock()


def make_store(settings: Settings) -> ObjectStore:
    buckets: dict[BucketName, str] = {
        "originals": settings.bucket_originals,
        "artifacts": settings.bucket_artifacts,
    }
    if settings.s3_endpoint:
        from services.storage.s3 import S3Store

        if settings.sse_c_key is None:
            raise ValueError(
                "DMASK_SSE_C_KEY is required with S3 storage: originals must be encrypted at rest"
            )
        return S3Store(
            settings.s3_endpoint,
            settings.s3_access_key.get_secret_value() if settings.s3_access_key else None,
            settings.s3_secret_key.get_secret_value() if settings.s3_secret_key else None,
            secure=settings.s3_secure,
            region=settings.s3_region,
            buckets=buckets,
            sse_c_key_b64=settings.sse_c_key.get_secret_value(),
            public_endpoint=settings.s3_public_endpoint,
            part_size=settings.s3_part_size_mb << 20,
            create_buckets=settings.create_buckets,
            ca_bundle=settings.s3_ca_bundle,
        )
    from services.storage.local import LocalFolderStore

    return LocalFolderStore(settings.home / "objects", buckets)


def get_store(settings: Settings | None = None) -> ObjectStore:
    settings = settings or get_settings()
    with _lock:
        store = _stores.get(id(settings))
        if store is None:
            store = make_store(settings)
            _stores[id(settings)] = store
        return store
