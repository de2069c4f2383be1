"""A circuit breaker in front of the object store.

Without it, every request during a store outage pays the S3 client's connect attempts and retries
(seconds each) before answering 503, and logs one error per request: an outage turns into a retry
storm against a store that is trying to come back, and a flood of logs. With it, the first failure
opens the circuit; while open, calls fail at once with ``StoreUnavailable`` (the API answers 503 +
Retry-After in milliseconds); after ``cooldown_s`` one call is let through as a probe (half-open):
its success closes the circuit, its failure opens it again. Each state change is logged once, as a
warning (opened) or info (closed), and is visible as the ``dmask_storage_circuit_open`` gauge.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from enum import StrEnum

from prometheus_client import Gauge

from services.storage.base import StoreUnavailable

log = logging.getLogger("dmask.storage")

CIRCUIT_OPEN = Gauge(
    "dmask_storage_circuit_open",
    "1 while the object-store circuit breaker is open or probing (store unreachable), else 0",
)


class State(StrEnum):
    closed = "closed"
    open = "open"
    half_open = "half-open"


class CircuitBreaker:
    def __init__(self, cooldown_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._lock = threading.Lock()
        self._state = State.closed
        self._opened_at = 0.0
        self._probe_in_flight = False
        self._last_error = ""

    @property
    def state(self) -> State:
        with self._lock:
            return self._state

    def before_call(self) -> None:
        """Raise ``StoreUnavailable`` at once while the circuit is open (and while another call is
        probing it); else let the call through, as the probe once the cooldown has passed."""
        with self._lock:
            if self._state == State.closed:
                return
            if self._state == State.open and self._clock() - self._opened_at >= self.cooldown_s:
                self._state = State.half_open
                self._probe_in_flight = False
            if self._state == State.half_open and not self._probe_in_flight:
                self._probe_in_flight = True
                return
            raise StoreUnavailable(f"object store unreachable (circuit open: {self._last_error})")

    def record_success(self) -> None:
        with self._lock:
            previous = self._state
            self._state = State.closed
            self._probe_in_flight = False
        if previous != State.closed:
            CIRCUIT_OPEN.set(0)
            log.warning("object store reachable again: circuit closed")

    def record_failure(self, error: str) -> None:
        """An outage answer (unreachable, timeout): open the circuit (again) from now."""
        with self._lock:
            previous = self._state
            self._state = State.open
            self._opened_at = self._clock()
            self._probe_in_flight = False
            self._last_error = error
        if previous == State.closed:
            CIRCUIT_OPEN.set(1)
            log.warning(
                "object store unreachable (%s): circuit open, calls fail fast for %.0f s between probes",
                error,
                self.cooldown_s,
            )

    def abandon_probe(self) -> None:
        """The call ended for a reason that says nothing about the store (the caller's own reader
        failed, an interrupt): let the next call probe instead."""
        with self._lock:
            self._probe_in_flight = False
