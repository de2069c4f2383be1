"""Per-client request rate limits: fixed one-minute windows, shared by every API process.

With several uvicorn workers or API replicas, a limit kept in each process would let a client make
N times the setting. So, when the deployment has a Redis broker, the window counters live there
(one ``INCR`` per request, keys expiring with their window), named after ``queue_name``, which
already tells deployments apart on a shared Redis. The embedded mode (no broker) counts in the
process. If Redis cannot be reached, each process falls back to its own count rather than refusing
or waving through every request: the broker being down must not take the API's limits with it
(and for ``REDIS_RETRY_S`` after a failure, requests do not wait on Redis again).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

import redis

from services.settings import Settings

log = logging.getLogger("dmask.ratelimit")

WINDOW_S = 60
REDIS_RETRY_S = 5.0


class RateLimiter(Protocol):
    per_minute: int

    def hit(self, bucket: str) -> tuple[bool, int, bool]:
        """Count one request of ``bucket`` (a client id, or ``ip:<address>``). Returns (allowed,
        seconds until the window resets, whether this is the first refusal of the window)."""
        ...


def _verdict(per_minute: int, count: int, now: float) -> tuple[bool, int, bool]:
    retry = WINDOW_S - int(now % WINDOW_S)
    allowed = per_minute <= 0 or count <= per_minute
    return allowed, retry, count == per_minute + 1


class LocalRateLimiter:
    """Counts in this process. Only the current window is kept, so the table cannot grow past the
    number of clients and addresses seen within one minute."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._window = -1
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def hit(self, bucket: str) -> tuple[bool, int, bool]:
        now = time.time()
        window = int(now // WINDOW_S)
        with self._lock:
            if window != self._window:
                self._window, self._counts = window, {}
            count = self._counts.get(bucket, 0) + 1
            self._counts[bucket] = count
        return _verdict(self.per_minute, count, now)


class RedisRateLimiter:
    """Counts in Redis, shared by every API process of the deployment."""

    def __init__(self, per_minute: int, url: str, namespace: str) -> None:
        self.per_minute = per_minute
        self.prefix = f"dmask:ratelimit:{namespace}:"
        self.client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self.fallback = LocalRateLimiter(per_minute)
        self._warned_window = -1
        self._retry_at = 0.0  # monotonic time before which Redis is not tried again

    def hit(self, bucket: str) -> tuple[bool, int, bool]:
        if self.per_minute <= 0:
            return True, WINDOW_S, False
        now = time.time()
        window = int(now // WINDOW_S)
        if time.monotonic() < self._retry_at:
            return self.fallback.hit(bucket)
        key = f"{self.prefix}{window}:{bucket}"
        try:
            pipe = self.client.pipeline()
            pipe.incr(key)
            pipe.expire(key, 2 * WINDOW_S)
            count = int(pipe.execute()[0])
        except redis.RedisError as exc:
            self._retry_at = time.monotonic() + REDIS_RETRY_S
            if window != self._warned_window:  # once a minute, not once a request
                self._warned_window = window
                log.warning("rate limit counted per process: Redis unavailable (%s)", type(exc).__name__)
            return self.fallback.hit(bucket)
        return _verdict(self.per_minute, count, now)


def make_rate_limiter(settings: Settings) -> RateLimiter:
    url = settings.broker_url
    if url and url.startswith(("redis://", "rediss://", "unix://")):
        return RedisRateLimiter(settings.rate_limit_per_minute, url, settings.queue_name)
    return LocalRateLimiter(settings.rate_limit_per_minute)
